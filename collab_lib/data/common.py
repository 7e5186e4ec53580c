"""Constants and small helpers shared by every dataset.

Images travel through the pipeline as uint8 numpy arrays (H, W, 3) until the
last step, where they become normalised float32 tensors (3, H, W). Labels are
integer numpy arrays (H, W) that become int64 tensors (H, W); 255 = ignore.
"""

import numpy as np

IGNORE_INDEX = 255

# ImageNet statistics: every timm backbone the kit uses was pre-trained with them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def denormalize(image):
    """Normalised image tensor (3, H, W) (or numpy array) -> uint8 numpy (H, W, 3) for plotting."""
    if hasattr(image, "detach"):
        image = image.detach().float().cpu().numpy()
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"denormalize expects a (3, H, W) image, got shape {image.shape}")
    mean = np.array(IMAGENET_MEAN, np.float32)[:, None, None]
    std = np.array(IMAGENET_STD, np.float32)[:, None, None]
    rgb = (image * std + mean).transpose(1, 2, 0)
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def label_problem(label, num_classes, ignore_index=IGNORE_INDEX):
    """Why `label` (an integer array (H, W)) cannot be right, or None if it looks fine.

    Cheap (one np.unique), so every item is checked when it is loaded, before a
    wrong value silently becomes a wrong loss. Two mistakes are caught:
    - values that are neither a class id nor the ignore index (RGB colour
      labels, 0/1/2/... ids from another convention, a 0/255 mask with 1 class);
    - a 0/255 binary mask: only class 0 and ignore, with ignore covering much of
      the image. 255 is the ignore index, so the foreground would silently get
      no loss and score nothing (mmsegmentation #1609).
    """
    if label.ndim != 2:
        return f"label must be one index per pixel (H, W), got shape {label.shape} (an RGB colour label?)"
    if label.dtype == np.uint8:  # the usual case: a histogram is O(pixels), np.unique would sort
        counts = np.bincount(label.ravel(), minlength=256)
        values = np.flatnonzero(counts)
        counts = counts[values]
    else:
        values, counts = np.unique(label, return_counts=True)
    bad = [int(v) for v in values if (v < 0 or v >= num_classes) and v != ignore_index]
    if bad:
        shown = ", ".join(str(v) for v in bad[:12]) + (" ..." if len(bad) > 12 else "")
        return (f"label values {shown} are outside the class ids 0..{num_classes - 1} "
                f"and the ignore index {ignore_index}")
    present = set(int(v) for v in values)
    if present == {0, ignore_index} and counts[-1] > 0.05 * label.size:
        share = 100.0 * counts[-1] / label.size
        return (f"label holds only 0 and {ignore_index} ({share:.0f}% of pixels): a 0/255 binary mask? "
                f"{ignore_index} means ignore, so store the foreground as 1")
    return None
