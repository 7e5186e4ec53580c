"""Data for the kit: the embedded SYNTHETIC street scenes and loaders for real benchmarks.

    from collab_lib.data import build_dataset
    train = build_dataset("streets", split="train", crop_size=(128, 256))  # synthetic, no download
    image, label = train[0]  # float32 (3, H, W) normalised; int64 (H, W), 255 = ignore
    train.set_epoch(epoch)   # before each epoch: augmentation is a function of (seed, epoch, index)

Names: "streets" (procedural, synthetic, the default), "cityscapes", "camvid",
"voc" and "folder" (your own images/ + masks/ with class_names=[...]).
`check_dataset(name, root)` lists every problem of a split in one pass.
"""

from .augment import SegmentationTransform
from .base import SegmentationDataset
from .camvid import CamVidDataset
from .checking import check_dataset
from .cityscapes import CityscapesDataset
from .common import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD, denormalize
from .folder import FolderDataset
from .io import DatasetError
from .streets import StreetsDataset
from .textures import TEXTURE_LICENCES
from .voc import VOCDataset

DATASETS = {
    "streets": StreetsDataset,
    "cityscapes": CityscapesDataset,
    "camvid": CamVidDataset,
    "voc": VOCDataset,
    "folder": FolderDataset,
}
DATASET_NAMES = tuple(DATASETS)


def build_dataset(name, root=None, split="train", **options):
    """Dataset `name` (one of DATASET_NAMES) for `split`; items (image (3, H, W) float32, label (H, W) int64).

    Common options: crop_size=(H, W), augment (default: split == "train"), seed,
    scale_range, jitter, flip. Dataset options: see each class (StreetsDataset:
    size, num_samples, endless, cache_dir; FolderDataset: class_names, palette).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    return DATASETS[name](root=root, split=split, **options)


__all__ = ["build_dataset", "check_dataset", "DATASET_NAMES", "DATASETS", "IMAGENET_MEAN", "IMAGENET_STD",
           "IGNORE_INDEX", "denormalize", "DatasetError", "SegmentationDataset", "SegmentationTransform",
           "StreetsDataset", "CityscapesDataset", "CamVidDataset", "VOCDataset", "FolderDataset",
           "TEXTURE_LICENCES"]
