"""The base class every dataset builds on: loading, checking, augmenting.

A subclass fills `self.files` with (image_path, label_path) pairs and may
override `map_label` (e.g. Cityscapes labelIds -> trainIds), or overrides
`load(index)` entirely (the synthetic streets). Items are
(image float32 (3, H, W) normalised, label int64 (H, W), 255 = ignore).
"""

import numpy as np
import torch
from torch.utils.data import Dataset

from .augment import SegmentationTransform
from .common import IGNORE_INDEX, label_problem
from .io import DatasetError, read_image, read_label

AUGMENT_STREAM = 0xA0C  # keeps augmentation random numbers apart from scene-generation ones


class SegmentationDataset(Dataset):
    """Base class. Attributes: class_names, palette (uint8 (C, 3)), num_classes, ignore_index, synthetic.

    Augmentation randomness is a function of (seed, epoch, index) only, so a
    resumed run that calls set_epoch(epoch) sees exactly the same augmented
    items. The epoch lives in a shared-memory tensor, so set_epoch also
    reaches DataLoader workers started with persistent_workers=True (call it
    before iterating the loader for that epoch).
    """

    class_names = []
    palette = np.zeros((0, 3), np.uint8)
    ignore_index = IGNORE_INDEX
    synthetic = False

    def __init__(self, split="train", crop_size=None, augment=None, seed=0,
                 scale_range=(0.5, 2.0), jitter=0.2, flip=True, resize_to=None):
        self.split = split
        self.seed = int(seed)
        self.augment = (split == "train") if augment is None else bool(augment)
        self.transform = SegmentationTransform(crop_size, self.augment, scale_range, flip, jitter, resize_to)
        self._epoch = torch.zeros(1, dtype=torch.long).share_memory_()
        self.files = []
        self.problems = []  # filled by scanning when strict=False; see use_files

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def epoch(self):
        return int(self._epoch.item())

    def set_epoch(self, epoch):
        """Choose the epoch whose augmentation the next items get."""
        self._epoch.fill_(int(epoch))

    def __len__(self):
        return len(self.files)

    def use_files(self, pairs, problems, strict, layout):
        """Adopt the scanned (image, label) pairs. strict: raise on any problem found while scanning.

        With strict=False (check_dataset) the problems are kept in self.problems instead.
        """
        self.files, self.problems = list(pairs), list(problems)
        if strict and self.problems:
            shown = "\n  ".join(self.problems[:10])
            more = f"\n  ... and {len(self.problems) - 10} more" if len(self.problems) > 10 else ""
            raise DatasetError(f"{type(self).__name__} ({self.split}): {len(self.problems)} problem(s):\n  {shown}{more}\n"
                               f"(python -m collab_lib.data.check lists them all)")
        if strict and not self.files:
            raise DatasetError(f"{type(self).__name__}: no image found for split {self.split!r}. Expected layout:\n{layout}")

    def augment_rng(self, index):
        """numpy Generator for item `index` in the current epoch: same (seed, epoch, index) -> same numbers."""
        return np.random.default_rng(np.random.SeedSequence([self.seed, AUGMENT_STREAM, self.epoch, int(index)]))

    def map_label(self, label, label_path):
        """Stored label values -> training ids. Default: stored values are training ids already."""
        return label

    def load(self, index):
        """Raw item: (image uint8 (H, W, 3), label integer (H, W)), checked, before augmentation."""
        image_path, label_path = self.files[index]
        image = read_image(image_path)
        label = read_label(label_path)
        if label.ndim == 3:
            raise DatasetError(f"{label_path}: label has 3 channels (an RGB colour label?); "
                               f"store one class index per pixel (a grey or palette PNG)")
        if image.shape[:2] != label.shape:
            raise DatasetError(f"{image_path} is {image.shape[1]}x{image.shape[0]} (WxH) but its label "
                               f"{label_path} is {label.shape[1]}x{label.shape[0]}")
        label = self.map_label(label, label_path)
        problem = label_problem(label, self.num_classes, self.ignore_index)
        if problem:
            raise DatasetError(f"{label_path}: {problem}")
        return image, label

    def __getitem__(self, index):
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        image, label = self.load(index)
        return self.transform(image, label, self.augment_rng(index))

    def __repr__(self):
        kind = "synthetic" if self.synthetic else "real"
        return (f"{type(self).__name__}(split={self.split!r}, {len(self)} items, {self.num_classes} classes, "
                f"{kind}, augment={self.augment}, crop_size={self.transform.crop_size})")
