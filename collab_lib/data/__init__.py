"""Data for the kit: the embedded SYNTHETIC street scenes and loaders for real benchmarks.

    from collab_lib.data import build_dataset
    train = build_dataset("streets", split="train", crop_size=(128, 256))  # synthetic, no download
    image, label = train[0]  # float32 (3, H, W) normalised; int64 (H, W), 255 = ignore
    train.set_epoch(epoch)   # before each epoch: augmentation is a function of (seed, epoch, index)

Names: "streets" (procedural, synthetic, the default), "cityscapes", "camvid",
"voc" and "folder" (your own images/ + masks/ + classes.txt, see folder.py).
`check_dataset(name, root)` lists every problem of a split in one pass
(its command line: `python -m collab_lib.data.check NAME ROOT`).
"""

import numpy as np

from ..names import DATASET_NAMES
from .augment import SegmentationTransform
from .base import SegmentationDataset
from .camvid import CamVidDataset
from .cityscapes import CityscapesDataset
from .common import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD, denormalize
from .folder import FolderDataset
from .io import DatasetError
from .streets import StreetsDataset
from .textures import TEXTURE_LICENCES
from .voc import VOCDataset

# One class per name of collab_lib.names.DATASET_NAMES, in its order (a test checks it).
DATASETS = {
    "streets": StreetsDataset,
    "cityscapes": CityscapesDataset,
    "camvid": CamVidDataset,
    "voc": VOCDataset,
    "folder": FolderDataset,
}


def build_dataset(name, root=None, split="train", **options):
    """Dataset `name` (one of DATASET_NAMES) for `split`; items (image (3, H, W) float32, label (H, W) int64).

    Common options: crop_size=(H, W), resize_to=(H, W) (every item first resized to it),
    augment (default: split == "train"), seed, scale_range, jitter, flip. Dataset options: see each class (StreetsDataset:
    size, num_samples, endless, cache_dir; FolderDataset: class_names, palette,
    read from ROOT/classes.txt and ROOT/palette.txt when not given).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    return DATASETS[name](root=root, split=split, **options)


def check_dataset(name, root=None, split="train", verbose=False, **options):
    """List of problem strings for split `split` of dataset `name` (empty if every item loads cleanly).

    Reads every image and label once (no augmentation), so it costs one pass over the files.
    verbose: also print the class names with each class's pixel count (after the dataset's label
    mapping; ignore pixels counted apart), then every problem and their number.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    try:
        dataset = DATASETS[name](root=root, split=split, augment=False,
                                 **({} if name == "streets" else {"strict": False}), **options)
    except DatasetError as err:
        dataset, problems = None, [str(err)]
    else:
        problems = list(dataset.problems)
        counts = np.zeros(dataset.num_classes + 1, np.int64)  # the last slot counts ignore pixels
        for index in range(len(dataset)):
            try:
                _, label = dataset.load(index)
            except DatasetError as err:
                problems.append(str(err))
                continue
            ids = np.where(label == dataset.ignore_index, dataset.num_classes, label).ravel()
            counts += np.bincount(ids, minlength=dataset.num_classes + 1)  # load() checked every value
        if not len(dataset) and not problems:
            problems.append(f"{name} {split}: no items found under {root}")
    if verbose:
        if dataset is not None:
            _print_class_counts(dataset, counts, f"{name} {split}")
        for problem in problems:
            print(problem)
        print(f"{name} {split}: {len(problems)} problem(s)")
    return problems


def _print_class_counts(dataset, counts, title):
    """One line per class: label value, name, pixels and their share of the labelled pixels."""
    labelled = max(int(counts[:-1].sum()), 1)
    print(f"{title}: {len(dataset)} items, {dataset.num_classes} classes "
          f"({'SYNTHETIC' if dataset.synthetic else 'real files'}); pixels per class in the readable labels:")
    width = max(len(n) for n in dataset.class_names)
    for value, class_name in enumerate(dataset.class_names):
        print(f"  {value:3d}  {class_name:<{width}}  {counts[value]:>12,d}  {100.0 * counts[value] / labelled:5.1f} %")
    print(f"  {dataset.ignore_index:3d}  {'(ignore)':<{width}}  {counts[-1]:>12,d}")


__all__ = ["build_dataset", "check_dataset", "DATASET_NAMES", "DATASETS", "IMAGENET_MEAN", "IMAGENET_STD",
           "IGNORE_INDEX", "denormalize", "DatasetError", "SegmentationDataset", "SegmentationTransform",
           "StreetsDataset", "CityscapesDataset", "CamVidDataset", "VOCDataset", "FolderDataset",
           "TEXTURE_LICENCES"]
