"""A user's own dataset: images, index-PNG masks with the same names, and a class list.

    ROOT/images/<name>.png|.jpg     ROOT/masks/<name>.png
    ROOT/classes.txt                one class name per line: line 1 names label value 0, line 2 value 1, ...
    ROOT/palette.txt                optional: one colour per class, "R G B" or "#rrggbb"
or, with one sub-folder per split (recommended: without them every split reads the same files):
    ROOT/images/<split>/<name>.png  ROOT/masks/<split>/<name>.png     (split: train, val, test)
Masks hold one class index per pixel (0 .. number of classes - 1, 255 = ignore) in a
grey or palette PNG (palette indices are read, not colours); any other value is an
error naming the mask. class_names=[...] (the trainer's --class-names) replaces classes.txt.
"""

import os

import numpy as np

from .base import SegmentationDataset
from .files import pair_by_name, require_folder
from .io import DatasetError

CLASSES_FILE = "classes.txt"
PALETTE_FILE = "palette.txt"
LAYOUT = ("  ROOT/images/<name>.png (or .jpg)  and  ROOT/masks/<name>.png (index PNG, 255 = ignore)\n"
          "  or ROOT/images/{split}/... and ROOT/masks/{split}/...\n"
          "  ROOT/classes.txt (one class name per line, line 1 = label value 0), optional ROOT/palette.txt")
SOURCE = "your own data (the folder dataset reads any images with index masks)"


def no_class_names_message(root):
    """The one paragraph a user reads when the folder dataset has no class names."""
    classes = os.path.join(root, CLASSES_FILE)
    return (f"folder dataset: no class names: {classes} not found. Write it with one class name per line "
            f"(line 1 names label value 0, line 2 value 1, ...), or give the names instead: "
            f"--class-names road \"traffic sign\" (or road,car) on the command line, --set class_names=road,car for "
            f"the grid runner, -p class_names \"[road, car]\" with papermill, class_names=[...] in Python. Expected layout: ROOT/images/ and ROOT/masks/ "
            f"(masks: PNGs with the images' names, one class index per pixel, 255 = ignore), ROOT/classes.txt, "
            f"optional ROOT/palette.txt (one 'R G B' or '#rrggbb' per class), optional split sub-folders "
            f"ROOT/images/<split>/ and ROOT/masks/<split>/ (train, val, test).")


def _lines(path):
    """(line number, text stripped) of a text file, without the blank lines at its end."""
    try:
        with open(path, encoding="utf-8-sig") as f:  # -sig: a byte-order mark written by some editors is not a name
            lines = [line.strip() for line in f.read().splitlines()]
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8, "
                           f"one entry per line") from None
    while lines and not lines[-1]:
        lines.pop()
    return list(enumerate(lines, start=1))


def check_class_names(names, place):
    """Names as a list of str; an empty or repeated name is a DatasetError naming place(i), where name i came from."""
    names = [str(n).strip() for n in names]
    if not names:
        raise DatasetError(f"{place(0)}: no class names")
    for index, name in enumerate(names):
        if not name:
            raise DatasetError(f"{place(index)}: empty class name (it would name label value {index})")
        if name in names[:index]:
            first = names.index(name)
            raise DatasetError(f"{place(index)}: class name {name!r} repeats {place(first)} "
                               f"(label values {first} and {index})")
    return names


def read_class_names(path):
    """ROOT/classes.txt -> names; line i (from 1) names label value i - 1. Errors name the file and line."""
    return check_class_names([text for _, text in _lines(path)], lambda index: f"{path}, line {index + 1}")


def read_palette(path, count):
    """ROOT/palette.txt -> uint8 (count, 3); each line "R G B" (0..255, spaces or commas) or "#rrggbb"."""
    colours = []
    for number, text in _lines(path):
        try:
            if text.startswith("#") and len(text) == 7:
                colour = [int(text[i:i + 2], 16) for i in (1, 3, 5)]
            else:
                colour = [int(v) for v in text.replace(",", " ").split()]
            if len(colour) != 3 or not all(0 <= v <= 255 for v in colour):
                raise ValueError
        except ValueError:
            raise DatasetError(f"{path}, line {number}: {text!r} is not a colour; "
                               f"write 'R G B' (three integers 0..255) or '#rrggbb'") from None
        colours.append(colour)
    if len(colours) != count:
        raise DatasetError(f"{path}: {len(colours)} colours for {count} classes; write one colour per class, "
                           f"in the order of the class names")
    return np.array(colours, np.uint8)


def default_palette(count):
    """Distinct colours for `count` classes: (count, 3) uint8, deterministic."""
    rng = np.random.default_rng(0)
    return rng.integers(40, 256, (count, 3)).astype(np.uint8)


class FolderDataset(SegmentationDataset):
    """images/ + masks/ + classes.txt. Options: class_names, palette (both read from ROOT when not given),
    and SegmentationDataset's."""

    def __init__(self, root=None, split="train", class_names=None, palette=None, strict=True, **options):
        super().__init__(split=split, **options)
        layout = LAYOUT.format(split=split)
        root = require_folder(root, "folder", layout, SOURCE)
        if isinstance(class_names, str):
            class_names = class_names.split(",")
        if class_names is not None:
            self.class_names = check_class_names(class_names, lambda index: f"class_names[{index}]")
        elif os.path.isfile(os.path.join(root, CLASSES_FILE)):
            self.class_names = read_class_names(os.path.join(root, CLASSES_FILE))
        else:
            raise DatasetError(no_class_names_message(root))
        if palette is not None:
            self.palette = np.asarray(palette, np.uint8)
            if self.palette.shape != (len(self.class_names), 3):
                raise DatasetError(f"palette: {len(self.palette)} colours for {len(self.class_names)} classes")
        elif os.path.isfile(os.path.join(root, PALETTE_FILE)):
            self.palette = read_palette(os.path.join(root, PALETTE_FILE), len(self.class_names))
        else:
            self.palette = default_palette(len(self.class_names))
        image_folder = require_folder(os.path.join(root, "images"), "folder", layout, SOURCE)
        mask_folder = require_folder(os.path.join(root, "masks"), "folder", layout, SOURCE)
        splits = sorted(n for n in os.listdir(image_folder) if os.path.isdir(os.path.join(image_folder, n)))
        if split in splits:
            image_folder = os.path.join(image_folder, split)
            mask_folder = require_folder(os.path.join(mask_folder, split), "folder", layout, SOURCE)
        elif splits:
            hint = " (a run that has no test split: --test-split none)" if split == "test" else ""
            raise DatasetError(f"folder dataset: {os.path.join(image_folder, split)} not found; the split "
                               f"sub-folders under {image_folder} are {', '.join(splits)}{hint}")
        self.flat = not splits  # every split reads the same files (the trainer warns)
        self.use_files(*pair_by_name(image_folder, mask_folder, "mask"), strict, layout)
