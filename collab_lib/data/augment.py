"""Joint image/label transform: training augmentation and evaluation resizing.

Input: image uint8 numpy (H, W, 3), label integer numpy (H, W).
Output: image float32 tensor (3, h, w) normalised with ImageNet mean/std,
label int64 tensor (h, w) with 255 = ignore.

`resize_to` (H, W), when given, first resizes every item to that size (image
bilinear, label nearest), before anything else: the trainer passes its
`image_size` for real images, so images of varied sizes train at the size they
are evaluated at and batch together.

Training (augment=True), in this order:
  1. photometric jitter on the image only (brightness, contrast, saturation,
     each a factor in [1 - jitter, 1 + jitter]);
  2. normalise;
  3. random scale in `scale_range` (image bilinear, label nearest);
  4. pad to at least `crop_size` (image with 0, which after normalising is the
     mean colour; label with 255 so padding never counts), then a random crop;
  5. horizontal flip with probability 0.5.
  Image and label always go through the same geometry. Without `crop_size` the
  crop has the input's own size, so a batch keeps one shape.
Evaluation (augment=False): no randomness. With `crop_size` the image is
resized to exactly that size (bilinear) and the label too (nearest); without
it the item keeps its native size. Prefer leaving `crop_size` unset for
evaluation when the native sizes already match, so labels are scored at full
resolution.

All randomness comes from the numpy Generator passed in, which the dataset
derives from (seed, epoch, index): the same item in the same epoch always gets
the same augmentation, which an exact resume needs.
"""

import numpy as np
import torch
import torch.nn.functional as F

from .common import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD

_MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)
_GREY = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)  # luma weights for saturation/contrast


def _resize(image, label, size):
    """image float (3, H, W), label int64 (H, W) -> both at `size` = (h, w)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image, label
    image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
    # nearest-exact samples pixel centres like bilinear does; plain "nearest" would shift labels by half a pixel
    label = F.interpolate(label[None, None].float(), size=size, mode="nearest-exact")[0, 0].long()
    return image, label


def _jitter(image, rng, strength):
    """image float (3, H, W) in [0, 1] -> same, with mild brightness/contrast/saturation changes."""
    brightness, contrast, saturation = rng.uniform(1.0 - strength, 1.0 + strength, size=3)
    image = image * float(brightness)
    grey = (image * _GREY).sum(0, keepdim=True)
    image = (image - grey.mean()) * float(contrast) + grey.mean()
    grey = (image * _GREY).sum(0, keepdim=True)
    image = (image - grey) * float(saturation) + grey
    return image.clamp_(0.0, 1.0)


def _size(name, value):
    """None or a positive (H, W) of ints."""
    if value is None:
        return None
    value = (int(value[0]), int(value[1]))
    if min(value) <= 0:
        raise ValueError(f"{name} must be positive (H, W), got {value}")
    return value


class SegmentationTransform:
    """Callable (image_u8, label, rng) -> (image tensor, label tensor); see the module docstring."""

    def __init__(self, crop_size=None, augment=False, scale_range=(0.5, 2.0), flip=True, jitter=0.2, resize_to=None):
        crop_size, resize_to = (_size(name, value) for name, value in (("crop_size", crop_size), ("resize_to", resize_to)))
        self.crop_size = crop_size
        self.resize_to = resize_to
        self.augment = bool(augment)
        self.scale_range = scale_range
        self.flip = flip
        self.jitter = jitter

    def __call__(self, image_u8, label, rng):
        image = torch.from_numpy(np.ascontiguousarray(image_u8)).permute(2, 0, 1).float().div_(255.0)
        label = torch.from_numpy(np.ascontiguousarray(label).astype(np.int64))
        if self.resize_to is not None:
            image, label = _resize(image, label, self.resize_to)
        if not self.augment:
            image = (image - _MEAN) / _STD
            if self.crop_size is not None:
                image, label = _resize(image, label, self.crop_size)
            return image.contiguous(), label.contiguous()

        height, width = label.shape
        crop_h, crop_w = self.crop_size or (height, width)
        # Draw every random number up front, in a fixed order, so the stream never depends on the data.
        scale = float(rng.uniform(*self.scale_range))
        offset_fractions = rng.uniform(0.0, 1.0, size=2)
        do_flip = bool(rng.uniform() < 0.5) and self.flip
        if self.jitter:
            image = _jitter(image, rng, self.jitter)
        image = (image - _MEAN) / _STD

        new_size = (max(1, round(height * scale)), max(1, round(width * scale)))
        image, label = _resize(image, label, new_size)

        pad_h, pad_w = max(0, crop_h - new_size[0]), max(0, crop_w - new_size[1])
        if pad_h or pad_w:  # pad bottom/right; the random crop below moves the padding around
            image = F.pad(image, (0, pad_w, 0, pad_h), value=0.0)
            label = F.pad(label, (0, pad_w, 0, pad_h), value=IGNORE_INDEX)
        top = int(offset_fractions[0] * (image.shape[1] - crop_h + 1))
        left = int(offset_fractions[1] * (image.shape[2] - crop_w + 1))
        image = image[:, top:top + crop_h, left:left + crop_w]
        label = label[top:top + crop_h, left:left + crop_w]
        if do_flip:
            image, label = image.flip(-1), label.flip(-1)
        return image.contiguous(), label.contiguous()
