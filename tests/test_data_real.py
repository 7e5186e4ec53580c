"""Tests for the real-dataset loaders on tiny fixture trees in each official layout.

Each fixture writes a few generated PNG/JPEG files to tmp_path; the tests
check the mapped label values pixel by pixel and that every bad input
raises an error naming the file.
"""

import os

import numpy as np
import pytest
from PIL import Image

from collab_lib.data import DatasetError, build_dataset, check_dataset
from collab_lib.data.check import main as check_main  # the command-line entry point
from collab_lib.data.voc import voc_palette

H, W = 8, 12


def write_rgb(path, height=H, width=W, seed=0, fmt=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3)).astype(np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)
    return pixels


def write_index(path, values, palette=None):
    """Write a (H, W) index array as a grey PNG, or as a palette PNG when `palette` is given."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = Image.fromarray(np.asarray(values, np.uint8))
    if palette is not None:
        flat = np.zeros((256, 3), np.uint8)
        flat[: len(palette)] = palette
        image.putpalette(flat.ravel().tolist())
    image.save(path)


def label_grid(values):
    """A (H, W) label whose columns cycle through `values`."""
    return np.tile(np.resize(np.asarray(values), W), (H, 1))


# ---------------------------------------------------------------- Cityscapes

def cityscapes_tree(root):
    ids = label_grid([7, 8, 26, 0, 33, 24, 11, 1, 20, 17, 6, 23])
    for city, name in (("aachen", "aachen_000000_000019"), ("bochum", "bochum_000000_000313")):
        write_rgb(f"{root}/leftImg8bit/train/{city}/{name}_leftImg8bit.png")
        write_index(f"{root}/gtFine/train/{city}/{name}_gtFine_labelIds.png", ids)
    # bochum also has trainIds: those must win over labelIds
    write_index(f"{root}/gtFine/train/bochum/bochum_000000_000313_gtFine_labelTrainIds.png", label_grid([18, 255, 3]))
    return ids


def test_cityscapes_maps_label_ids_to_train_ids(tmp_path):
    ids = cityscapes_tree(tmp_path)
    ds = build_dataset("cityscapes", tmp_path, split="train", augment=False)
    assert len(ds) == 2 and ds.num_classes == 19 and ds.class_names[13] == "car" and not ds.synthetic
    image, label = ds[0]
    expected = {7: 0, 8: 1, 26: 13, 0: 255, 33: 18, 24: 11, 11: 2, 1: 255, 20: 7, 17: 5, 6: 255, 23: 10}
    assert np.array_equal(label.numpy(), np.vectorize(expected.get)(ids))
    assert image.shape == (3, H, W)
    _, train_ids = ds.load(1)
    assert np.array_equal(train_ids, label_grid([18, 255, 3]))


def test_cityscapes_errors_name_the_file(tmp_path):
    with pytest.raises(DatasetError, match="(?s)leftImg8bit.*cityscapes-dataset.com"):
        build_dataset("cityscapes", tmp_path / "nowhere")
    cityscapes_tree(tmp_path)
    orphan = f"{tmp_path}/leftImg8bit/train/aachen/aachen_000001_000019_leftImg8bit.png"
    write_rgb(orphan)
    with pytest.raises(DatasetError, match="aachen_000001_000019_leftImg8bit.png: no label"):
        build_dataset("cityscapes", tmp_path)
    os.remove(orphan)
    bad = f"{tmp_path}/gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png"
    write_index(bad, label_grid([7, 40]))
    with pytest.raises(DatasetError, match=r"aachen_000000_000019_gtFine_labelIds.png: values \[40\]"):
        build_dataset("cityscapes", tmp_path).load(0)


# ---------------------------------------------------------------- CamVid

def test_camvid_void_becomes_ignore(tmp_path):
    for split in ("train", "val", "test"):
        write_rgb(f"{tmp_path}/{split}/0001TP_006690.png")
        write_index(f"{tmp_path}/{split}annot/0001TP_006690.png", label_grid([0, 3, 10, 11, 5]))
    ds = build_dataset("camvid", tmp_path, split="val")
    assert ds.num_classes == 11 and ds.class_names[3] == "road"
    image, label = ds[0]
    assert np.array_equal(label.numpy(), label_grid([0, 3, 10, 255, 5]))
    write_index(f"{tmp_path}/testannot/0001TP_006690.png", label_grid([0, 12, 13]))
    with pytest.raises(DatasetError, match=r"testannot/0001TP_006690.png: label values 12, 13"):
        build_dataset("camvid", tmp_path, split="test")[0]
    with pytest.raises(DatasetError, match="trainannot"):
        build_dataset("camvid", tmp_path / "missing")


# ---------------------------------------------------------------- VOC

def voc_tree(root, values):
    write_rgb(f"{root}/JPEGImages/2007_000032.jpg", fmt="JPEG")
    write_rgb(f"{root}/JPEGImages/2007_000039.jpg", fmt="JPEG", seed=1)
    write_index(f"{root}/SegmentationClass/2007_000032.png", values, palette=voc_palette())
    write_index(f"{root}/SegmentationClass/2007_000039.png", np.zeros((H, W)), palette=voc_palette())
    os.makedirs(f"{root}/ImageSets/Segmentation", exist_ok=True)
    with open(f"{root}/ImageSets/Segmentation/train.txt", "w") as f:
        f.write("2007_000032\n2007_000039\n")


def test_voc_reads_palette_indices_not_colours(tmp_path):
    values = label_grid([0, 15, 255, 20, 1])
    voc_tree(tmp_path, values)
    assert Image.open(f"{tmp_path}/SegmentationClass/2007_000032.png").mode == "P"
    ds = build_dataset("voc", tmp_path)
    assert ds.num_classes == 21 and ds.class_names[15] == "person"
    assert np.array_equal(ds.load(0)[1], values)
    assert np.array_equal(build_dataset("voc", tmp_path, augment=False)[0][1].numpy(), values)
    # root may also be the folder that holds VOCdevkit/VOC2012
    voc_tree(tmp_path / "outer" / "VOCdevkit" / "VOC2012", values)
    assert len(build_dataset("voc", tmp_path / "outer", split="train")) == 2


def test_voc_train_aug_reads_segmentation_class_aug(tmp_path):
    voc_tree(tmp_path, label_grid([0, 1]))
    write_index(f"{tmp_path}/SegmentationClassAug/2007_000032.png", label_grid([3, 4, 255]))
    with open(f"{tmp_path}/ImageSets/Segmentation/train_aug.txt", "w") as f:
        f.write("2007_000032\n")
    ds = build_dataset("voc", tmp_path, split="train_aug")
    assert np.array_equal(ds.load(0)[1], label_grid([3, 4, 255]))


def test_voc_errors_name_the_file(tmp_path):
    voc_tree(tmp_path, label_grid([0, 1]))
    with pytest.raises(DatasetError, match="(?s)val.txt not found.*JPEGImages"):
        build_dataset("voc", tmp_path, split="val")
    os.remove(f"{tmp_path}/SegmentationClass/2007_000039.png")
    with pytest.raises(DatasetError, match="2007_000039.jpg: no label"):
        build_dataset("voc", tmp_path)


# ---------------------------------------------------------------- folder (your own data)

def folder_tree(root):
    write_rgb(f"{root}/images/a.png")
    write_index(f"{root}/masks/a.png", label_grid([0, 1, 2, 255]))
    write_rgb(f"{root}/images/b.jpg", fmt="JPEG")
    write_index(f"{root}/masks/b.png", label_grid([2, 0]))


def test_folder_reads_index_masks(tmp_path):
    folder_tree(tmp_path)
    ds = build_dataset("folder", tmp_path, class_names=["background", "cat", "dog"], crop_size=(6, 10))
    assert len(ds) == 2 and ds.num_classes == 3 and ds.palette.shape == (3, 3)
    assert np.array_equal(ds.load(0)[1], label_grid([0, 1, 2, 255]))
    image, label = ds[1]  # training augmentation on a real dataset: crop size, valid values
    assert image.shape == (3, 6, 10) and set(label.unique().tolist()) <= {0, 2, 255}
    with pytest.raises(DatasetError, match="classes.txt not found"):  # no classes.txt, no class_names: tests/test_data_own.py
        build_dataset("folder", tmp_path)


def test_folder_errors_name_file_and_values(tmp_path):
    folder_tree(tmp_path)
    classes = ["background", "cat", "dog"]
    write_index(f"{tmp_path}/masks/a.png", np.where(label_grid([0, 1]) == 1, 255, 0))  # a 0/255 binary mask
    with pytest.raises(DatasetError, match=r"masks/a.png: label holds only 0 and 255.*binary mask"):
        build_dataset("folder", tmp_path, class_names=classes).load(0)
    write_index(f"{tmp_path}/masks/a.png", label_grid([0, 1, 2, 3, 7]))  # class list does not match
    with pytest.raises(DatasetError, match=r"masks/a.png: label values 3, 7 are outside the class ids 0..2"):
        build_dataset("folder", tmp_path, class_names=classes).load(0)
    write_rgb(f"{tmp_path}/masks/a.png")  # RGB colour label
    with pytest.raises(DatasetError, match=r"masks/a.png: label has 3 channels"):
        build_dataset("folder", tmp_path, class_names=classes).load(0)
    write_index(f"{tmp_path}/masks/a.png", np.zeros((H + 1, W)))  # size mismatch
    with pytest.raises(DatasetError, match=r"images/a.png is 12x8 .*masks/a.png is 12x9"):
        build_dataset("folder", tmp_path, class_names=classes).load(0)
    with open(f"{tmp_path}/images/b.jpg", "wb") as f:
        f.write(b"not a picture")
    with pytest.raises(DatasetError, match=r"images/b.jpg: cannot read image"):
        build_dataset("folder", tmp_path, class_names=classes).load(1)
    with pytest.raises(DatasetError, match=r"(?s)images/.*masks/"):
        build_dataset("folder", tmp_path / "missing", class_names=classes)


def test_check_dataset_reports_every_problem_in_one_pass(tmp_path, capsys):
    folder_tree(tmp_path)
    classes = ["background", "cat", "dog"]
    assert check_dataset("folder", tmp_path, class_names=classes) == []
    write_index(f"{tmp_path}/masks/a.png", label_grid([0, 9]))
    with open(f"{tmp_path}/images/b.jpg", "wb") as f:
        f.write(b"broken")
    write_rgb(f"{tmp_path}/images/c.png")  # no mask
    problems = check_dataset("folder", tmp_path, class_names=classes)
    assert len(problems) == 3
    assert any("c.png: no mask" in p for p in problems)
    assert any("masks/a.png" in p and "9" in p for p in problems)
    assert any("images/b.jpg: cannot read image" in p for p in problems)
    assert check_main(["folder", str(tmp_path), "--class-names", "background,cat,dog"]) == 1
    out = capsys.readouterr().out
    assert "3 problem(s)" in out and "c.png" in out
    assert len(check_dataset("cityscapes", tmp_path / "nowhere")) == 1
