"""A user's own data through every entry point: classes.txt / palette.txt, --class-names, the check
command, and 3-step trainings through `python -m collab_lib.train` on tiny trees in the folder,
Cityscapes, CamVid and VOC layouts, each written by the test (64x64, a few files).

The trainings are subprocesses, as a user types them: the run must end with exit code 0 and a
metrics.json that lists the dataset's own class names; a user error must end without a traceback.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_data_real import write_index, write_rgb  # the tiny-tree writers of the real-dataset loader tests

from collab_lib.config import parse_args
from collab_lib.data import DatasetError, build_dataset, check_dataset
from collab_lib.data.check import main as check_main
from collab_lib.data.folder import default_palette
from collab_lib.data.voc import voc_palette
from hang_guard import HUNG_AFTER_S

REPO = Path(__file__).resolve().parents[1]
SIZE = 64
OWN_CLASSES = ["background", "road", "traffic sign"]


def stripes(values, size=SIZE):
    """A (size, size) label whose 16-pixel-wide column stripes cycle through `values`."""
    return np.tile(np.resize(np.repeat(np.asarray(values), 16), size), (size, 1))


def own_tree(root, splits=("train", "val", "test"), classes_txt="background\nroad  \ntraffic sign\n\n"):
    """ROOT/images/<split>/, ROOT/masks/<split>/ (two 64x64 images each) and classes.txt (a trailing space and a
    blank last line, as editors leave them). Returns the mask of the first image."""
    mask = stripes([0, 1, 2, 255])
    for split in splits:
        for k in range(2):
            write_rgb(f"{root}/images/{split}/{split}{k}.png", SIZE, SIZE, seed=k)
            write_index(f"{root}/masks/{split}/{split}{k}.png", mask if k == 0 else stripes([2, 0]))
    if classes_txt is not None:
        Path(root, "classes.txt").write_text(classes_txt)
    return mask


# ---------------------------------------------------------------- classes.txt and palette.txt

def test_classes_txt_names_the_label_values(tmp_path):
    mask = own_tree(tmp_path)
    ds = build_dataset("folder", tmp_path, split="val", augment=False)
    assert ds.class_names == OWN_CLASSES and ds.num_classes == 3
    assert np.array_equal(ds.load(0)[1], mask)
    assert np.array_equal(ds.palette, default_palette(3))
    # a byte-order mark (some Windows editors write one) is not part of the first name
    Path(tmp_path, "classes.txt").write_bytes("\ufeffsky\nsea\ncar\n".encode("utf-8"))
    assert build_dataset("folder", tmp_path).class_names == ["sky", "sea", "car"]
    # given names win over the file
    assert build_dataset("folder", tmp_path, class_names=["a", "b", "c", "d"]).class_names == ["a", "b", "c", "d"]
    assert build_dataset("folder", tmp_path, class_names="x,y,z").class_names == ["x", "y", "z"]


def test_palette_txt_takes_rgb_or_hex(tmp_path):
    own_tree(tmp_path)
    Path(tmp_path, "palette.txt").write_text("0 0 0\n#ff8000\n 10, 20 ,30 \n\n")
    ds = build_dataset("folder", tmp_path)
    assert ds.palette.tolist() == [[0, 0, 0], [255, 128, 0], [10, 20, 30]] and ds.palette.dtype == np.uint8


@pytest.mark.parametrize("classes_txt, message", [
    ("background\n\nroad\n", r"classes.txt, line 2: empty class name \(it would name label value 1\)"),
    ("road\ncar\nroad\n", r"classes.txt, line 3: class name 'road' repeats .*classes.txt, line 1"),
    ("\n\n", r"classes.txt, line 1: no class names"),
])
def test_bad_classes_txt_names_file_and_line(tmp_path, classes_txt, message):
    own_tree(tmp_path, classes_txt=classes_txt)
    with pytest.raises(DatasetError, match=message):
        build_dataset("folder", tmp_path)


def test_a_classes_txt_that_is_not_utf8_is_named(tmp_path):
    own_tree(tmp_path, classes_txt=None)
    Path(tmp_path, "classes.txt").write_bytes("stra\xdfe\nauto\n".encode("latin-1"))  # what a Latin-1 editor saves
    with pytest.raises(DatasetError, match=r"classes.txt: not UTF-8 text .*save it as UTF-8"):
        build_dataset("folder", tmp_path)


def test_bad_class_names_argument_and_palette_are_named(tmp_path):
    own_tree(tmp_path)
    with pytest.raises(DatasetError, match=r"class_names\[2\]: class name 'a' repeats class_names\[0\]"):
        build_dataset("folder", tmp_path, class_names=["a", "b", "a"])
    with pytest.raises(DatasetError, match=r"class_names\[1\]: empty class name"):
        build_dataset("folder", tmp_path, class_names=["a", " "])
    Path(tmp_path, "palette.txt").write_text("0 0 0\n1 2\n3 4 5\n")
    with pytest.raises(DatasetError, match=r"palette.txt, line 2: '1 2' is not a colour"):
        build_dataset("folder", tmp_path)
    Path(tmp_path, "palette.txt").write_text("0 0 0\n1 2 300\n")
    with pytest.raises(DatasetError, match=r"palette.txt, line 2: '1 2 300' is not a colour"):
        build_dataset("folder", tmp_path)
    Path(tmp_path, "palette.txt").write_text("0 0 0\n#00ff00\n")
    with pytest.raises(DatasetError, match=r"palette.txt: 2 colours for 3 classes"):
        build_dataset("folder", tmp_path)


def test_without_class_names_one_paragraph_names_classes_txt_and_the_layout(tmp_path):
    own_tree(tmp_path, classes_txt=None)
    with pytest.raises(DatasetError) as error:
        build_dataset("folder", tmp_path)
    message = str(error.value)
    assert "\n" not in message, "one paragraph"
    for part in (str(tmp_path / "classes.txt"), "one class name per line", "ROOT/images/", "ROOT/masks/",
                 "palette.txt", "ROOT/images/<split>/", "--class-names", "--set class_names", "-p class_names"):
        assert part in message, part


def test_no_data_root_names_the_argument():
    with pytest.raises(DatasetError, match=r"folder: no data folder given: pass data_root \(--data-root DIR"):
        build_dataset("folder", None)


def test_missing_test_split_one_class_and_flat_layout_are_found_before_training(tmp_path, capsys):
    """The trainer checks the test split before it trains (it is read only at the end), refuses one class
    without a traceback, and warns when a flat folder makes val and test the training images."""
    import torch

    from collab_lib.config import TrainConfig
    from collab_lib.distributed import DistInfo
    from collab_lib.errors import SetupError
    from collab_lib.loaders import build_data
    from collab_lib.train import train

    own_tree(tmp_path / "no-test", splits=("train", "val"))
    config = TrainConfig(dataset="folder", data_root=str(tmp_path / "no-test"), image_size=(64, 64), batch_size=2,
                         workers=0, run_dir=str(tmp_path / "run"))
    with pytest.raises(SetupError, match=r"test_split='test': .*images/test not found.*\n.*--test-split none"):
        build_data(config, DistInfo(), torch.device("cpu"))
    assert not (tmp_path / "run").exists()
    build_data(TrainConfig(**{**config.to_dict(), "test_split": None}), DistInfo(), torch.device("cpu"))

    flat = tmp_path / "flat"
    for name in ("a", "b"):
        write_rgb(f"{flat}/images/{name}.png", SIZE, SIZE)
        write_index(f"{flat}/masks/{name}.png", stripes([0, 1]))
    (flat / "classes.txt").write_text("a\nb\n")
    capsys.readouterr()
    build_data(TrainConfig(**{**config.to_dict(), "data_root": str(flat)}), DistInfo(), torch.device("cpu"))
    assert "has no split sub-folders under images/: the val and test numbers are measured on the training" in \
        capsys.readouterr().err
    build_data(TrainConfig(**{**config.to_dict(), "test_split": None}), DistInfo(), torch.device("cpu"))
    assert "sub-folders" not in capsys.readouterr().err  # split folders: no warning

    (flat / "classes.txt").write_text("only\n")
    write_index(f"{flat}/masks/a.png", np.zeros((SIZE, SIZE)))
    write_index(f"{flat}/masks/b.png", np.zeros((SIZE, SIZE)))
    with pytest.raises(SetupError, match=r"building the students for 1 classes \(only\): num_classes must be an int >= 2"):
        train(TrainConfig(**{**config.to_dict(), "data_root": str(flat), "steps": 1}))


def test_a_bad_mask_found_in_a_loader_worker_reads_as_the_original_message(tmp_path):
    """torch wraps an exception from a DataLoader worker in the worker's traceback; the command line prints only
    the original message (collab_lib.errors.user_message)."""
    import torch

    from collab_lib.errors import user_message

    own_tree(tmp_path)
    write_index(f"{tmp_path}/masks/train/train1.png", stripes([0, 9]))
    loader = torch.utils.data.DataLoader(build_dataset("folder", tmp_path), batch_size=2, num_workers=1)
    with pytest.raises(DatasetError) as error:
        next(iter(loader))
    assert "Original Traceback" in str(error.value)
    message = user_message(error.value)
    assert message.startswith(str(tmp_path / "masks" / "train" / "train1.png")) and "label values 9" in message
    assert "Traceback" not in message and "\n" not in message
    assert user_message(DatasetError("plain")) == "plain"


def test_mask_values_beyond_the_classes_name_the_mask(tmp_path):
    own_tree(tmp_path)
    write_index(f"{tmp_path}/masks/train/train0.png", stripes([0, 3, 255, 7]))
    with pytest.raises(DatasetError, match=r"masks/train/train0.png: label values 3, 7 are outside the class ids 0..2"):
        build_dataset("folder", tmp_path).load(0)


def test_a_missing_split_folder_names_the_ones_there(tmp_path):
    own_tree(tmp_path, splits=("train", "val"))
    with pytest.raises(DatasetError, match=r"images/test not found; the split sub-folders .* are train, val .*--test-split none"):
        build_dataset("folder", tmp_path, split="test")
    own_tree(tmp_path / "no-val", splits=("train", "test"))
    with pytest.raises(DatasetError, match=r"images/val not found; .* are test, train$"):  # --test-split none won't help
        build_dataset("folder", tmp_path / "no-val", split="val")
    # without split sub-folders every split reads the same files
    flat = tmp_path / "flat"
    write_rgb(f"{flat}/images/a.png", SIZE, SIZE)
    write_index(f"{flat}/masks/a.png", stripes([0, 1]))
    (flat / "classes.txt").write_text("a\nb\n")
    assert len(build_dataset("folder", flat, split="test")) == 1


def test_class_names_flag_reaches_the_folder_dataset(tmp_path):
    """--class-names as words or as one comma-separated list, through the trainer's own dataset helper."""
    from collab_lib.students import make_dataset

    own_tree(tmp_path, classes_txt=None)
    for flags in (["--class-names", "background", "road", "traffic sign"], ["--class-names", "background,road,traffic sign"]):
        config = parse_args(["--dataset", "folder", "--data-root", str(tmp_path), *flags])
        assert make_dataset(config, "train", train=True).class_names == OWN_CLASSES


# ---------------------------------------------------------------- python -m collab_lib.data.check

def test_check_prints_class_names_and_pixel_counts(tmp_path, capsys):
    own_tree(tmp_path)
    assert check_main(["folder", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # train: stripes [0, 1, 2, 255] (16 columns each) and [2, 0, 2, 0]: class 0 = 3 stripes, 1 = 1, 2 = 3, ignore 1
    stripe = 16 * SIZE
    assert "folder train: 2 items, 3 classes" in out
    for value, name, count in ((0, "background", 3), (1, "road", 1), (2, "traffic sign", 3)):
        line = next(l for l in out.splitlines() if l.split()[:1] == [str(value)] and name in l)
        assert f"{count * stripe:,d}" in line and f"{100 * count / 7:.1f} %" in line, line
    assert f"{stripe:,d}" in next(l for l in out.splitlines() if "(ignore)" in l)
    assert "folder train: 0 problem(s)" in out
    assert check_main(["folder", str(tmp_path), "--class-names", "a", "b"]) == 1  # 2 classes: value 2 is outside
    assert "outside the class ids 0..1" in capsys.readouterr().out
    os.remove(tmp_path / "classes.txt")
    assert check_main(["folder", str(tmp_path)]) == 1
    assert "classes.txt not found" in capsys.readouterr().out
    assert check_dataset("folder", tmp_path, class_names=["a", "b", "c"]) == []


def test_images_of_any_size_train_at_the_evaluation_size(tmp_path):
    """Without crop_size, a user's images of different sizes are resized to image_size for training too
    (one scale for training and evaluation; batchable), labels by nearest neighbour."""
    from collab_lib.config import TrainConfig
    from collab_lib.students import make_dataset

    own_tree(tmp_path, splits=("train",))
    write_rgb(f"{tmp_path}/images/train/wide.png", 40, 100, seed=3)
    write_index(f"{tmp_path}/masks/train/wide.png", np.tile(np.repeat([0, 1], 50), (40, 1)))
    for augment in (True, False):
        config = TrainConfig(dataset="folder", data_root=str(tmp_path), image_size=(32, 96), augment=augment)
        train_set = make_dataset(config, "train", train=True)
        assert len(train_set) == 3 and train_set.augment == augment
        for index in range(len(train_set)):
            image, label = train_set[index]
            assert image.shape == (3, 32, 96) and label.shape == (32, 96)
            assert set(label.unique().tolist()) <= {0, 1, 2, 255}
    left, right = label[:, :40], label[:, 56:]  # the wide image, unaugmented: its halves keep their labels
    assert label.shape == (32, 96) and (left == 0).all() and (right == 1).all()
    cropped = make_dataset(TrainConfig(dataset="folder", data_root=str(tmp_path), image_size=(32, 96),
                                       crop_size=(32, 32)), "train", train=True)
    assert cropped[2][0].shape == (3, 32, 32)


# ---------------------------------------------------------------- 3 training steps through the command line

def cityscapes_tree(root):
    """train and val labelled; test as the official download has it, every labelId 0 (unlabeled: ignore)."""
    for split in ("train", "val", "test"):
        for k, city in enumerate(("aachen", "bochum")):
            name = f"{city}_00000{k}_000019"
            write_rgb(f"{root}/leftImg8bit/{split}/{city}/{name}_leftImg8bit.png", SIZE, SIZE, seed=k)
            ids = stripes([7, 26, 0, 24]) if split != "test" else np.zeros((SIZE, SIZE))
            write_index(f"{root}/gtFine/{split}/{city}/{name}_gtFine_labelIds.png", ids)


def camvid_tree(root):
    for split in ("train", "val", "test"):
        for k in range(2):
            write_rgb(f"{root}/{split}/0001TP_00{k}.png", SIZE, SIZE, seed=k)
            write_index(f"{root}/{split}annot/0001TP_00{k}.png", stripes([0, 3, 8, 11]))


def voc_tree(root):
    os.makedirs(f"{root}/ImageSets/Segmentation")
    for split in ("train", "val"):
        ids = [f"2007_{split}{k}" for k in range(2)]
        for k, image_id in enumerate(ids):
            write_rgb(f"{root}/JPEGImages/{image_id}.jpg", SIZE, SIZE, seed=k, fmt="JPEG")
            write_index(f"{root}/SegmentationClass/{image_id}.png", stripes([0, 15, 255, 7]), palette=voc_palette())
        Path(f"{root}/ImageSets/Segmentation/{split}.txt").write_text("\n".join(ids) + "\n")


def train_cli(run_dir, *flags):
    """`python -m collab_lib.train` with everything small: 3 steps of 2 images at 64x64, 16-wide decoders."""
    command = [sys.executable, "-m", "collab_lib.train", "--steps", "3", "--image-size", str(SIZE), str(SIZE),
               "--crop-size", str(SIZE), str(SIZE), "--batch-size", "2", "--eval-interval", "3",
               "--log-interval", "1", "--checkpoint-interval", "3", "--workers", "0", "--device", "cpu",
               "--cnn-decoder-channels", "16", "--vit-decoder-channels", "16", "--progress", "log",
               "--run-dir", str(run_dir), *flags]
    return subprocess.run(command, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=HUNG_AFTER_S)


CLI_CASES = {  # dataset: (tree writer, extra flags, its class names, has a test split)
    "folder": (own_tree, [], OWN_CLASSES, True),
    "cityscapes": (cityscapes_tree, ["--test-split", "none"], None, False),
    "camvid": (camvid_tree, [], None, True),
    "voc": (voc_tree, ["--test-split", "none"], None, False),
}


@pytest.mark.slow
@pytest.mark.parametrize("dataset", list(CLI_CASES))
def test_three_steps_through_the_cli(tmp_path, dataset):
    write_tree, flags, class_names, has_test = CLI_CASES[dataset]
    write_tree(tmp_path / "data")
    class_names = class_names or build_dataset(dataset, tmp_path / "data", split="val").class_names
    result = train_cli(tmp_path / "run", "--dataset", dataset, "--data-root", str(tmp_path / "data"), *flags)
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["dataset"] == dataset and metrics["steps"] == 3 and metrics["synthetic"] is False
    assert metrics["class_names"] == list(class_names)
    parts = ("final_val", "test") if has_test else ("final_val",)
    assert (metrics["test"] is not None) == has_test
    for part in parts:
        for student in ("cnn", "vit"):
            assert list(metrics[part][student]["iou"]) == list(class_names)


@pytest.mark.slow
def test_cli_without_class_names_says_what_to_write(tmp_path):
    own_tree(tmp_path / "data", classes_txt=None)
    result = train_cli(tmp_path / "run", "--dataset", "folder", "--data-root", str(tmp_path / "data"))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert str(tmp_path / "data" / "classes.txt") in result.stderr and "--class-names" in result.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.slow
def test_the_grid_runner_trains_a_folder_dataset(tmp_path):
    """A recipe with --set dataset=folder data_root=DIR: class names from classes.txt reach every run."""
    own_tree(tmp_path / "data")
    command = [sys.executable, "-m", "collab_lib.experiments", "--recipe", "smoke", "--configurations", "independent",
               "--seeds", "0", "--out", str(tmp_path / "grid"), "--set", "dataset=folder",
               f"data_root={tmp_path / 'data'}", "cnn_decoder_channels=16", "vit_decoder_channels=16", "device=cpu"]
    result = subprocess.run(command, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                            text=True, timeout=HUNG_AFTER_S)
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = json.loads((tmp_path / "grid" / "independent" / "seed0" / "metrics.json").read_text())
    assert metrics["dataset"] == "folder" and metrics["class_names"] == OWN_CLASSES
    assert list(metrics["test"]["cnn"]["iou"]) == OWN_CLASSES


def test_the_grid_runner_without_class_names_says_what_to_write(tmp_path, capsys):
    """The grid runner reports a dataset problem as the trainer does: one paragraph on stderr, exit 2."""
    from collab_lib import experiments

    own_tree(tmp_path / "data", classes_txt=None)
    with pytest.raises(SystemExit) as exit_info:
        experiments.main(["--recipe", "smoke", "--configurations", "independent", "--out", str(tmp_path / "grid"),
                          "--set", "dataset=folder", f"data_root={tmp_path / 'data'}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(tmp_path / "data" / "classes.txt") in err and "--class-names" in err
    assert not (tmp_path / "grid" / "independent" / "seed0" / "metrics.json").exists()
