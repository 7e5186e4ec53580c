"""Reading image and label files, with errors that name the file.

read_image -> uint8 (H, W, 3); read_label -> integer (H, W) holding the stored
index values. A palette ("P" mode) PNG is read as its indices, never as the
colours the palette maps them to (PASCAL VOC stores labels that way).
"""

import os

import numpy as np
from PIL import Image


class DatasetError(ValueError):
    """A problem with the files of a dataset; the message names the file."""


def read_image(path):
    """RGB image file -> uint8 numpy (H, W, 3). Grey or RGBA files are converted to RGB."""
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"), dtype=np.uint8)  # a writable copy: torch warns on read-only arrays
    except FileNotFoundError:
        raise DatasetError(f"{path}: image file not found") from None
    except Exception as err:  # PIL raises several types for corrupt files
        raise DatasetError(f"{path}: cannot read image ({type(err).__name__}: {err})") from None


def read_label(path):
    """Label file -> numpy (H, W) of stored index values (uint8, or int32 for 16-bit PNGs).

    An RGB label comes back as (H, W, 3) unchanged, so that the caller's check
    can say "RGB colour label" instead of silently converting colours to grey.
    """
    try:
        with Image.open(path) as im:
            if im.mode in ("P", "L"):
                return np.array(im, dtype=np.uint8)  # P: the palette indices themselves
            if im.mode in ("I", "I;16", "I;16B", "I;16L"):
                return np.asarray(im).astype(np.int32)
            if im.mode == "1":
                return np.array(im, dtype=np.uint8)
            return np.array(im.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise DatasetError(f"{path}: label file not found") from None
    except Exception as err:
        raise DatasetError(f"{path}: cannot read label ({type(err).__name__}: {err})") from None


def write_png_atomically(array, path, palette=None):
    """Write a uint8 array as PNG so that a reader never sees half a file.

    The file is written beside its target and renamed into place (os.replace is
    atomic on one file system), so DataLoader workers rendering the same cache
    at the same time cannot corrupt it.
    """
    im = Image.fromarray(np.ascontiguousarray(array))
    if palette is not None:
        flat = np.zeros((256, 3), np.uint8)
        flat[: len(palette)] = palette
        im.putpalette(flat.reshape(-1).tolist())  # an "L" image becomes "P", indices unchanged
    tmp = f"{path}.tmp{os.getpid()}"
    im.save(tmp, format="PNG")
    os.replace(tmp, path)
