"""The kit's embedded default dataset: SYNTHETIC street scenes, rendered on the fly.

These are procedural pictures, not photographs: no real street, camera or
person is in them (see street_scene.py for how one is drawn and why). They
exist so a course runs anywhere in minutes with no download, and they are
built so that a CNN student and a ViT student each have something to be good
at: context classes that only layout separates (road and sidewalk share one
appearance in most scenes) and thin, small classes (poles, signs, far people).
Measured on the kit's CPU recipe (64x128, 50 scenes, 400 steps, from scratch,
3 seeds; README "Data"): independently trained, the ViT leads on road, sidewalk
and vegetation, the CNN on car and sky; poles, signs and people are learned by
neither at that budget (at 1200 steps the CNN learns signs, the ViT does not).

Splits are fixed and finite by default (train 200, val 100, test 250 scenes),
the regime where online distillation has something to give (docs/method.md, the
protocol). Scene i of a split is a pure function of (seed, split, i); train,
val and test use different seed streams and never share a scene.
"""

import hashlib
import os

import numpy as np

from .base import SegmentationDataset
from .io import DatasetError, read_image, read_label, write_png_atomically
from .street_classes import CLASS_NAMES, PALETTE
from .street_scene import draw_street, render_street
from .textures import TEXTURE_LICENCES  # noqa: F401  (re-exported for the README)

SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
DEFAULT_NUM_SAMPLES = {"train": 200, "val": 100, "test": 250}
ENDLESS_LENGTH = 10**9
GENERATOR_VERSION = 1  # bump when the scenes change: cached PNGs of an older version are not reused


def check_size(size):
    """(H, W) -> (H, W) as ints; ValueError naming the nearest valid size unless both are multiples of 32."""
    height, width = (int(size[0]), int(size[1]))
    if height % 32 or width % 32 or height <= 0 or width <= 0:
        nearest = (max(32, 32 * round(height / 32)), max(32, 32 * round(width / 32)))
        raise ValueError(f"streets: size {(height, width)} must be a multiple of 32 in both height and width "
                         f"(the students downsample by 32); nearest valid size: {nearest}")
    return height, width


def scene_rng(seed, split, index):
    """The numpy Generator that draws scene `index` of `split`: a pure function of (seed, split, index)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLIT_CODE[split], int(index)]))


def render_item(seed, split, index, size=(128, 256)):
    """Scene `index` of `split` -> (image uint8 (H, W, 3), label uint8 (H, W)). Synthetic."""
    return render_street(draw_street(scene_rng(seed, split, index)), check_size(size))


class StreetsDataset(SegmentationDataset):
    """SYNTHETIC street scenes (procedural, not photographs); 11 Cityscapes-like classes, 255 = ignore.

    Args:
        root: unused (the scenes are generated); accepted so every dataset builds alike.
        split: "train", "val" or "test".
        size: (H, W) of the rendered scenes, multiples of 32 (default (128, 256)).
        num_samples: scenes in the split (default train 200, val 100, test 250).
        seed: picks the scenes (and the augmentation stream).
        endless: True gives a fresh scene for every index (length 10**9); no cache.
        cache_dir: render each scene once to PNGs in this folder and read it back later
            (for large sizes, and to share the rendering between DataLoader workers and runs).
        crop_size, augment, scale_range, jitter, flip: see augment.py.
    Items: (image float32 (3, H, W) normalised, label int64 (H, W)).
    Finite splits keep each rendered scene in memory after its first use, so
    epoch 2 onwards costs only augmentation. Each DataLoader worker keeps its
    own copy: use persistent_workers=True, or call prerender() first so that
    forked workers inherit the scenes.
    """

    class_names = CLASS_NAMES
    palette = PALETTE
    synthetic = True

    def __init__(self, root=None, split="train", size=(128, 256), num_samples=None, seed=0, endless=False,
                 cache_dir=None, **options):
        if split not in SPLIT_CODE:
            raise ValueError(f"streets: unknown split {split!r}; choose from {sorted(SPLIT_CODE)}")
        if endless and cache_dir is not None:
            raise ValueError("streets: endless=True makes a fresh scene for every index; it cannot use cache_dir")
        super().__init__(split=split, seed=seed, **options)
        self.size = check_size(size)
        self.endless = bool(endless)
        self.num_samples = ENDLESS_LENGTH if endless else int(num_samples or DEFAULT_NUM_SAMPLES[split])
        self.cache_folder = None
        if cache_dir is not None:
            self.cache_folder = os.path.join(
                os.fspath(cache_dir), f"streets_v{GENERATOR_VERSION}_{split}_seed{self.seed}_{self.size[0]}x{self.size[1]}")
            os.makedirs(self.cache_folder, exist_ok=True)
        self._memory = {}

    def __len__(self):
        return self.num_samples

    def cache_paths(self, index):
        """(image PNG, label PNG) paths of scene `index` in the cache folder."""
        stem = os.path.join(self.cache_folder, f"{index:06d}")
        return stem + "_image.png", stem + "_label.png"

    def load(self, index):
        if index in self._memory:
            return self._memory[index]
        if self.cache_folder is not None:
            image_path, label_path = self.cache_paths(index)
            if os.path.exists(image_path) and os.path.exists(label_path):
                image, label = read_image(image_path), read_label(label_path)
                if image.shape[:2] != self.size or label.shape != self.size:
                    raise DatasetError(f"{image_path}: cached scene has size {image.shape[:2]}, expected {self.size}; "
                                       f"delete {self.cache_folder}")
            else:
                image, label = render_item(self.seed, self.split, index, self.size)
                write_png_atomically(image, image_path)
                write_png_atomically(label, label_path, palette=PALETTE)  # palette PNG: viewable and exact
        else:
            image, label = render_item(self.seed, self.split, index, self.size)
        if not self.endless:
            self._memory[index] = (image, label)
        return image, label

    def prerender(self):
        """Render (or read from cache_dir) every scene now, into memory; returns self.

        Call it before building a DataLoader whose workers are not persistent:
        forked workers then inherit the rendered scenes instead of rendering
        them again every epoch (each worker's own cache dies with the worker).
        """
        if self.endless:
            raise ValueError("streets: an endless split cannot be pre-rendered")
        for index in range(len(self)):
            self.load(index)
        return self

    def fingerprint(self, count=4):
        """Short hash of the first `count` scenes: lets a run record exactly which data it saw."""
        digest = hashlib.sha1()
        for index in range(min(count, len(self))):
            image, label = self.load(index)
            digest.update(image.tobytes())
            digest.update(label.tobytes())
        return digest.hexdigest()[:12]
