"""Cityscapes (real photographs) in its official layout, 19 training classes.

    root/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png
    root/gtFine/<split>/<city>/<name>_gtFine_labelIds.png        (official ids 0..33)
    root/gtFine/<split>/<city>/<name>_gtFine_labelTrainIds.png   (optional: used when present)
labelIds are mapped to the 19 training ids by the official table (cityscapesScripts
labels.py); every other id becomes 255 (ignore).
"""

import os

import numpy as np

from .base import SegmentationDataset
from .files import require_folder
from .io import DatasetError

LAYOUT = ("  ROOT/leftImg8bit/{split}/<city>/<name>_leftImg8bit.png\n"
          "  ROOT/gtFine/{split}/<city>/<name>_gtFine_labelIds.png (or _gtFine_labelTrainIds.png)")
SOURCE = ("https://www.cityscapes-dataset.com (free registration): leftImg8bit_trainvaltest.zip "
          "and gtFine_trainvaltest.zip, unzipped into ROOT")

CLASS_NAMES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
               "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
               "motorcycle", "bicycle"]
PALETTE = np.array([
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32)], np.uint8)

# Official labelId -> trainId (cityscapesScripts/helpers/labels.py); ids not listed map to 255.
LABEL_ID_TO_TRAIN_ID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
                        24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
NUM_LABEL_IDS = 34  # official ids 0..33 (license plate, -1, never appears in the PNGs)
_LOOKUP = np.full(256, 255, np.uint8)
for _label_id, _train_id in LABEL_ID_TO_TRAIN_ID.items():
    _LOOKUP[_label_id] = _train_id


def label_ids_to_train_ids(label):
    """Official labelIds (H, W), values 0..33 -> training ids 0..18 or 255."""
    return _LOOKUP[label]


class CityscapesDataset(SegmentationDataset):
    """Cityscapes fine annotations, 19 classes. Options: see SegmentationDataset (crop_size, augment, seed...)."""

    class_names = CLASS_NAMES
    palette = PALETTE

    def __init__(self, root=None, split="train", strict=True, **options):
        super().__init__(split=split, **options)
        layout = LAYOUT.format(split=split)
        require_folder(root, "cityscapes", layout, SOURCE)
        image_root = require_folder(os.path.join(root, "leftImg8bit", split), "cityscapes", layout, SOURCE)
        pairs, problems = [], []
        for city in sorted(os.listdir(image_root)):
            city_folder = os.path.join(image_root, city)
            if not os.path.isdir(city_folder):
                continue
            for name in sorted(os.listdir(city_folder)):
                if not name.endswith("_leftImg8bit.png"):
                    continue
                base = name[: -len("_leftImg8bit.png")]
                label_stem = os.path.join(root, "gtFine", split, city, base + "_gtFine_")
                train_ids, label_ids = label_stem + "labelTrainIds.png", label_stem + "labelIds.png"
                label = train_ids if os.path.exists(train_ids) else label_ids
                if not os.path.exists(label):
                    problems.append(f"{os.path.join(city_folder, name)}: no label (expected {label_ids})")
                    continue
                pairs.append((os.path.join(city_folder, name), label))
        self.use_files(pairs, problems, strict, layout)

    def map_label(self, label, label_path):
        if label_path.endswith("_labelTrainIds.png"):
            return label
        if label.max(initial=0) >= NUM_LABEL_IDS:
            bad = [int(v) for v in np.unique(label) if v >= NUM_LABEL_IDS]
            raise DatasetError(f"{label_path}: values {bad} are not Cityscapes labelIds (0..{NUM_LABEL_IDS - 1})")
        return label_ids_to_train_ids(label)
