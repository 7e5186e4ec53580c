"""PASCAL VOC 2012 segmentation (real photographs), 21 classes.

    root/JPEGImages/<id>.jpg
    root/SegmentationClass/<id>.png          palette PNGs: the pixel values ARE the class ids, 255 = boundary
    root/ImageSets/Segmentation/<split>.txt  one id per line (train, val, trainval)
Optional SBD augmentation: split "train_aug" reads ImageSets/Segmentation/train_aug.txt and its
labels from root/SegmentationClassAug/<id>.png (grey index PNGs). `root` may be VOC2012 itself
or a folder holding VOCdevkit/VOC2012.
"""

import os

import numpy as np

from .base import SegmentationDataset
from .files import require_folder
from .io import DatasetError

LAYOUT = ("  ROOT/JPEGImages/<id>.jpg\n  ROOT/SegmentationClass/<id>.png (palette PNG of class indices)\n"
          "  ROOT/ImageSets/Segmentation/{split}.txt\n"
          "  optional: ROOT/SegmentationClassAug/<id>.png with ImageSets/Segmentation/train_aug.txt")
SOURCE = ("http://host.robots.ox.ac.uk/pascal/VOC/voc2012/ (VOCtrainval_11-May-2012.tar); "
          "SBD augmentation: http://home.bharathh.info/pubs/codes/SBD/download.html")

CLASS_NAMES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor"]


def voc_palette(count=256):
    """The VOC colour map: the bits of each class id spread over the R, G, B high bits. (count, 3) uint8."""
    palette = np.zeros((count, 3), np.uint8)
    for index in range(count):
        value, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= ((value >> 0) & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette[index] = (r, g, b)
    return palette


class VOCDataset(SegmentationDataset):
    """VOC 2012, 21 classes, 255 = boundary/ignore. Splits: train, val, trainval, train_aug."""

    class_names = CLASS_NAMES
    palette = voc_palette(21)

    def __init__(self, root=None, split="train", strict=True, **options):
        super().__init__(split=split, **options)
        if root is not None and os.path.isdir(os.path.join(root, "VOCdevkit", "VOC2012")):
            root = os.path.join(root, "VOCdevkit", "VOC2012")
        layout = LAYOUT.format(split=split)
        require_folder(root, "voc", layout, SOURCE)
        image_folder = require_folder(os.path.join(root, "JPEGImages"), "voc", layout, SOURCE)
        label_name = "SegmentationClassAug" if split == "train_aug" else "SegmentationClass"
        label_folder = require_folder(os.path.join(root, label_name), "voc", layout, SOURCE)
        list_file = os.path.join(root, "ImageSets", "Segmentation", split + ".txt")
        if not os.path.isfile(list_file):
            raise DatasetError(f"voc: split list {list_file} not found. Expected layout:\n{layout}\nOfficial data: {SOURCE}")
        with open(list_file) as f:
            ids = [line.split()[0] for line in f if line.strip()]
        pairs, problems = [], []
        for image_id in ids:
            image = os.path.join(image_folder, image_id + ".jpg")
            label = os.path.join(label_folder, image_id + ".png")
            if not os.path.exists(image):
                problems.append(f"{image}: listed in {list_file} but missing")
            elif not os.path.exists(label):
                problems.append(f"{image}: no label (expected {label})")
            else:
                pairs.append((image, label))
        self.use_files(pairs, problems, strict, layout)
