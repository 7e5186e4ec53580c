"""Using a trained run: `python -m collab_lib.evaluate` and `python -m collab_lib.predict`, and the same from Python.

Two tiny runs trained here (3 steps of 2 images at 64x64, 16-wide decoders): one on the embedded SYNTHETIC
streets, one on an own folder dataset with classes.txt and palette.txt. What must hold:
- the run's eval split with last.pt reproduces metrics.json's final_val exactly (and its test split `test`);
- a prediction is the image's own size whatever that size (97x161, 33x50), holds class indices, its colour
  mask is the palette's colours and the command line writes what Python returns;
- every bad input is one `error:` line naming it, exit status 2 and nothing written.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_data_own import OWN_CLASSES, own_tree, stripes
from test_data_real import write_index, write_rgb
from test_train import one_thread  # noqa: F401  (autouse: one thread here, as OMP_NUM_THREADS=1 in the commands)

from collab_lib import evaluate as evaluate_module
from collab_lib import load_run, predict_image
from collab_lib import predict as predict_module
from collab_lib.config import TrainConfig
from collab_lib.errors import SetupError
from collab_lib.evaluate import evaluate_run
from collab_lib.metrics import ConfusionMatrix
from collab_lib.predict import colourise, overlay
from collab_lib.train import named_iou, train
from hang_guard import HUNG_AFTER_S

REPO = Path(__file__).resolve().parents[1]
PALETTE = [[0, 0, 0], [255, 128, 0], [10, 20, 30]]
SMALL = dict(image_size=(64, 64), crop_size=(64, 64), steps=3, batch_size=2, eval_interval=3, log_interval=1,
             checkpoint_interval=3, cnn_decoder_channels=16, vit_decoder_channels=16, workers=0, progress="none",
             device="cpu")


@pytest.fixture(scope="module")
def streets_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("streets") / "run"
    return train(TrainConfig(**SMALL, train_samples=4, val_samples=3, test_samples=3, run_dir=str(run_dir)))


@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
    """Own data: three classes (classes.txt) with their colours (palette.txt), 64x64 images."""
    root = tmp_path_factory.mktemp("own")
    own_tree(root / "data")
    (root / "data" / "palette.txt").write_text("0 0 0\n#ff8000\n10 20 30\n")
    return train(TrainConfig(**SMALL, dataset="folder", data_root=str(root / "data"), run_dir=str(root / "run")))


def cli(module, *args):
    return subprocess.run([sys.executable, "-m", f"collab_lib.{module}", *map(str, args)], cwd=REPO,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=HUNG_AFTER_S)


def user_error(main, argv, capsys) -> str:
    """main(argv) must exit with 2 after one `error:` line on stderr, no traceback; returns that line."""
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in argv])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def students_numbers(numbers):
    return {name: numbers[name] for name in ("cnn", "vit")}


# ---------------------------------------------------------------- evaluate

@pytest.mark.slow  # a fresh interpreter: the command line as a user types it
def test_evaluate_cli_reproduces_final_val_exactly(streets_run):
    metrics_before = (streets_run / "metrics.json").read_bytes()
    result = cli("evaluate", "--run-dir", streets_run, "--checkpoint", "last")
    assert result.returncode == 0, result.stderr
    written = json.loads((streets_run / "eval-last-val.json").read_text())
    metrics = json.loads(metrics_before)
    assert students_numbers(written) == students_numbers(metrics["final_val"])  # every IoU, to the last bit
    assert written["step"] == metrics["steps"] == 3 and written["split"] == "val" and written["items"] == 3
    assert written["synthetic"] is True and written["class_names"] == metrics["class_names"]
    assert "metrics.json final_val (step 3): the same numbers, exactly" in result.stdout
    assert "3 SYNTHETIC scenes at 64x64" in result.stdout
    for name in metrics["class_names"] + ["mIoU", "pixel accuracy"]:
        assert any(line.startswith(name + " ") for line in result.stdout.splitlines()), name
    assert (streets_run / "metrics.json").read_bytes() == metrics_before


def test_evaluate_any_split_and_checkpoint_from_python(streets_run):
    metrics = json.loads((streets_run / "metrics.json").read_text())
    test = evaluate_run(streets_run, "last", split="test")
    assert students_numbers(test) == students_numbers(metrics["test"])
    best = evaluate_run(streets_run, "best", split="train")
    assert best["step"] == metrics["best_val"]["step"] and best["items"] == 4 and best["run_data"] is True
    assert best["checkpoint"] == str(streets_run / "best.pt")
    assert evaluate_module.default_output(streets_run, "best", best) == streets_run / "eval-best-train.json"


def test_evaluate_own_data_and_another_folder(own_run, tmp_path, capsys):
    result = evaluate_run(own_run, "best", split="test")
    assert result["class_names"] == OWN_CLASSES and list(result["cnn"]["iou"]) == OWN_CLASSES
    assert result["synthetic"] is False and result["items"] == 2
    # another folder labelled with the same three classes (no classes.txt: the run's names are used)
    other = tmp_path / "other"
    own_tree(other, splits=("val",), classes_txt=None)
    evaluate_module.main(["--run-dir", str(own_run), "--data-root", str(other), "--out", str(tmp_path / "o.json")])
    written = json.loads((tmp_path / "o.json").read_text())
    assert written["run_data"] is False and written["data_root"] == str(other) and written["items"] == 2
    assert "metrics.json" not in capsys.readouterr().out  # other data: no comparison with the training's numbers
    assert evaluate_module.default_output(own_run, "best", written) == own_run / "eval-best-folder-other-val.json"
    # two classes where the students know three: refused, naming both lists, nothing written
    two = tmp_path / "two"
    write_rgb(f"{two}/images/val/a.png", 64, 64)
    write_index(f"{two}/masks/val/a.png", stripes([0, 1]))
    (two / "classes.txt").write_text("sea\nsky\n")
    err = user_error(evaluate_module.main, ["--run-dir", own_run, "--data-root", two, "--out", tmp_path / "t.json"],
                     capsys)
    assert "has 2 classes (sea, sky), the run's students 3 (background, road, traffic sign)" in err
    assert not (tmp_path / "t.json").exists()


def test_evaluate_refuses_to_write_over_the_trainers_files(streets_run, capsys):
    before = (streets_run / "metrics.json").read_bytes()
    err = user_error(evaluate_module.main, ["--run-dir", streets_run, "--out", streets_run / "metrics.json"], capsys)
    assert "metrics.json: the trainer's own file" in err
    assert (streets_run / "metrics.json").read_bytes() == before


# ---------------------------------------------------------------- predict from Python

def test_predict_image_scores_as_the_evaluation(streets_run):
    """Each val scene through predict_image, scored with one confusion matrix: metrics.json's final_val exactly."""
    from collab_lib.students import make_dataset

    run = load_run(streets_run, "last")
    val = make_dataset(run.config, "val", train=False)
    metrics = json.loads((streets_run / "metrics.json").read_text())
    for name in ("cnn", "vit"):
        matrix = ConfusionMatrix(val.num_classes)
        for index in range(len(val)):
            image, label = val.load(index)  # uint8 (64, 64, 3), the scene as the trainer drew it
            labels = predict_image(run.student(name), image, size=run.config.image_size)
            assert labels.shape == label.shape and labels.dtype == np.int64
            matrix.update(torch.from_numpy(labels)[None], torch.from_numpy(label.astype(np.int64))[None])
        assert named_iou(matrix.compute(), run.class_names) == metrics["final_val"][name]


def test_predict_image_keeps_any_size(own_run):
    run = load_run(own_run, "best")
    rng = np.random.default_rng(0)
    odd = rng.integers(0, 256, (97, 161, 3)).astype(np.uint8)
    for fit in ("resize", "pad"):
        labels = run.predict(odd, "vit", fit)
        assert labels.shape == (97, 161) and labels.min() >= 0 and labels.max() < 3
    # at the run's own size there is nothing to resize or pad: both fits are the students' argmax itself
    square = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
    assert np.array_equal(run.predict(square, "cnn", "resize"), run.predict(square, "cnn", "pad"))
    # a path, a PIL image, a grey array: the same picture, the same labels
    path = own_run / "square.png"
    Image.fromarray(square).save(path)
    assert np.array_equal(predict_image(run.cnn, path, (64, 64)), predict_image(run.cnn, square, (64, 64)))
    assert np.array_equal(predict_image(run.cnn, Image.fromarray(square), (64, 64)),
                          predict_image(run.cnn, square, (64, 64)))
    grey = square[:, :, 0]
    assert np.array_equal(predict_image(run.cnn, grey, (64, 64)),
                          predict_image(run.cnn, np.dstack([grey] * 3), (64, 64)))
    with pytest.raises(ValueError, match=r"image: expected uint8 \(H, W, 3\).*float64"):
        predict_image(run.cnn, square / 255.0)


def test_colours_and_overlay():
    labels = np.array([[0, 1], [2, 1]])
    assert colourise(labels, PALETTE).tolist() == [[PALETTE[0], PALETTE[1]], [PALETTE[2], PALETTE[1]]]
    image = np.full((2, 2, 3), 100, np.uint8)
    assert overlay(image, labels, PALETTE, alpha=0.5)[0, 1].tolist() == [178, 114, 50]  # (100 + 255) / 2 ...
    assert np.array_equal(overlay(image, labels, PALETTE, alpha=0.0), image)


def test_chelsea_loads_from_the_scikit_image_wheel(monkeypatch):
    """Notebook 05 segments skimage.data.chelsea(): it ships inside the wheel, no download (no pooch either)."""
    from skimage.data import _fetchers

    monkeypatch.setattr(_fetchers, "_image_fetcher", None)  # what a machine without pooch (or network) has
    from skimage.data import chelsea

    assert chelsea().shape == (300, 451, 3)


# ---------------------------------------------------------------- python -m collab_lib.predict

@pytest.mark.slow  # a fresh interpreter: the command line as a user types it
def test_predict_cli_writes_masks_colours_and_overlays_at_each_images_size(own_run, tmp_path):
    folder = tmp_path / "photos"
    odd = write_rgb(f"{folder}/odd.png", 97, 161, seed=1)
    write_rgb(f"{folder}/square.jpg", 64, 64, seed=2, fmt="JPEG")
    (folder / "notes.txt").write_text("not an image: a folder's other files are passed over")
    small = write_rgb(f"{tmp_path}/small.png", 33, 50, seed=3)
    out = tmp_path / "out"
    result = cli("predict", "--run-dir", own_run, "--out", out, folder, tmp_path / "small.png")
    assert result.returncode == 0, result.stderr
    assert "3 image(s), each resized to the run's image_size 64x64" in result.stdout
    assert (out / "classes.txt").read_text().splitlines() == OWN_CLASSES
    assert (out / "palette.txt").read_text().splitlines() == ["0 0 0", "255 128 0", "10 20 30"]
    run = load_run(own_run, "best")
    for name, image in (("odd", odd), ("small", small)):
        for student in ("cnn", "vit"):
            mask = Image.open(out / student / "masks" / f"{name}.png")
            assert mask.mode == "L" and mask.size == (image.shape[1], image.shape[0])
            mask = np.array(mask)
            assert np.array_equal(mask, run.predict(image, student))  # the command line writes what Python returns
            assert np.array_equal(np.array(Image.open(out / student / "colour" / f"{name}.png")),
                                  np.array(PALETTE, np.uint8)[mask])
            assert np.array_equal(np.array(Image.open(out / student / "overlay" / f"{name}.png")),
                                  overlay(image, mask, PALETTE))
        assert Image.open(out / "both" / f"{name}.png").size == (3 * image.shape[1], image.shape[0])
    assert Image.open(out / "cnn" / "masks" / "square.png").size == (64, 64)
    assert sorted(p.name for p in (out / "vit" / "masks").iterdir()) == ["odd.png", "small.png", "square.png"]


def test_predict_one_student_padded(own_run, tmp_path, capsys):
    image = write_rgb(f"{tmp_path}/odd.png", 97, 161, seed=1)
    predict_module.main(["--run-dir", str(own_run), "--student", "vit", "--fit", "pad", "--checkpoint", "last",
                         "--out", str(tmp_path / "out"), str(tmp_path / "odd.png")])
    assert "at its own size, padded to multiples of 32" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["classes.txt", "palette.txt", "vit"]
    mask = np.array(Image.open(tmp_path / "out" / "vit" / "masks" / "odd.png"))
    assert np.array_equal(mask, load_run(own_run, "last").predict(image, "vit", fit="pad"))


def test_bad_inputs_are_one_error_line_and_nothing_written(streets_run, own_run, tmp_path, capsys, monkeypatch):
    good = tmp_path / "good.png"
    write_rgb(str(good), 40, 40)
    out = tmp_path / "out"

    def refused(*argv, run=own_run):
        err = user_error(predict_module.main, ["--run-dir", run, "--out", out, *argv], capsys)
        assert not out.exists(), "nothing may be written"
        return err

    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert refused(good, text).startswith(f"error: {text}: not an image this kit can read")
    broken = tmp_path / "broken.png"
    broken.write_bytes(good.read_bytes()[:60])  # a PNG cut short
    assert refused(good, broken).startswith(f"error: {broken}: not an image")
    assert refused(good, tmp_path / "missing.png") == f"error: {tmp_path / 'missing.png'}: no such file or folder"
    (tmp_path / "empty").mkdir()
    assert "no image files" in refused(tmp_path / "empty")
    write_rgb(f"{tmp_path}/other/good.jpg", 40, 40, fmt="JPEG")
    assert "have the same name" in refused(good, tmp_path / "other")

    committed = tmp_path / "committed"  # a run as a repository keeps it: its text files, no checkpoint
    committed.mkdir()
    for name in ("config.json", "metrics.json", "history.jsonl"):
        shutil.copy(streets_run / name, committed / name)
    err = refused(good, run=committed)
    assert f"{committed / 'best.pt'} not found" in err and "no checkpoint (*.pt) at all" in err
    assert "checkpoint step_000002.pt: no such file (neither as given nor in" in \
        refused("--checkpoint", "step_000002.pt", good, run=streets_run)
    err = refused("--checkpoint", streets_run / "last.pt", good)  # an 11-class checkpoint for a 3-class run
    assert "its students predict 11 (CNN) and 11 (ViT) classes, but the run names 3" in err
    assert "no config.json" in refused(good, run=tmp_path)
    (tmp_path / "fake.pt").write_text("not a checkpoint")
    assert f"checkpoint {tmp_path / 'fake.pt'}: not a checkpoint" in refused("--checkpoint", tmp_path / "fake.pt", good)
    (tmp_path / "fake.pt").rename(tmp_path / "best.pt")  # "best" is the run's best.pt, not one where the user stands
    monkeypatch.chdir(tmp_path)
    assert load_run(streets_run).checkpoint == streets_run / "best.pt"

    data = Path(json.loads((own_run / "config.json").read_text())["config"]["data_root"])
    palette = (data / "palette.txt").read_text()
    try:
        (data / "palette.txt").write_text("0 0 0\n1 2 3\n")  # two colours for three classes
        assert "palette.txt: 2 colours for 3 classes" in refused(good)
    finally:
        (data / "palette.txt").write_text(palette)

    with pytest.raises(SetupError, match="run folder .* no config.json"):
        load_run(tmp_path)
