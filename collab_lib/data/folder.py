"""A user's own dataset: images and index-PNG masks with the same names.

    root/images/<name>.png|.jpg   root/masks/<name>.png
or, with one sub-folder per split:
    root/images/<split>/<name>.png   root/masks/<split>/<name>.png
Masks hold one class index per pixel (0 .. len(class_names) - 1, 255 = ignore);
a grey or palette PNG (palette indices are read, not colours). Pass
class_names=[...]; a mask value outside that range is an error naming the file.
"""

import os

import numpy as np

from .base import SegmentationDataset
from .folders import list_images, require_folder, stem

LAYOUT = ("  ROOT/images/<name>.png (or .jpg)  and  ROOT/masks/<name>.png (index PNG, 255 = ignore)\n"
          "  or ROOT/images/{split}/... and ROOT/masks/{split}/...")
SOURCE = "your own data (the folder dataset reads any images with index masks)"


def default_palette(count):
    """Distinct colours for `count` classes: (count, 3) uint8, deterministic."""
    rng = np.random.default_rng(0)
    return rng.integers(40, 256, (count, 3)).astype(np.uint8)


class FolderDataset(SegmentationDataset):
    """images/ + masks/ with a class list. Options: class_names (required), palette, and SegmentationDataset's."""

    def __init__(self, root=None, split="train", class_names=None, palette=None, strict=True, **options):
        if not class_names:
            raise ValueError("folder dataset: pass class_names=[...] (one name per label value 0, 1, ...)")
        super().__init__(split=split, **options)
        self.class_names = list(class_names)
        self.palette = np.asarray(palette, np.uint8) if palette is not None else default_palette(len(class_names))
        if len(self.palette) != len(self.class_names):
            raise ValueError(f"folder dataset: {len(self.palette)} palette colours for {len(self.class_names)} classes")
        layout = LAYOUT.format(split=split)
        require_folder(root, "folder", layout, SOURCE)
        image_folder = require_folder(os.path.join(root, "images"), "folder", layout, SOURCE)
        mask_folder = require_folder(os.path.join(root, "masks"), "folder", layout, SOURCE)
        if os.path.isdir(os.path.join(image_folder, split)):
            image_folder = os.path.join(image_folder, split)
            mask_folder = require_folder(os.path.join(mask_folder, split), "folder", layout, SOURCE)
        pairs, problems = [], []
        for image in list_images(image_folder):
            label = os.path.join(mask_folder, stem(image) + ".png")
            if os.path.exists(label):
                pairs.append((image, label))
            else:
                problems.append(f"{image}: no mask (expected {label})")
        self.use_files(pairs, problems, strict, layout)
