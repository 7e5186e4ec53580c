"""End-to-end training on the embedded streets data at toy size (64x64, batch 2, a few steps, CPU).

What must never break: the run directory's files, exact resume, a clean stop
on SIGTERM, and a clear stop on a non-finite loss with the last good
checkpoint kept.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import collab_lib.train as train_module
from collab_lib.config import TrainConfig
from collab_lib.train import train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a small shared CPU, two threads per process measured 3x slower here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(run_dir, **overrides) -> TrainConfig:
    """6 training scenes in batches of 2 = 3 steps per epoch, so 4 steps cross an epoch boundary."""
    settings = dict(image_size=(64, 64), crop_size=(64, 64), train_samples=6, val_samples=2, test_samples=2,
                    steps=4, batch_size=2, eval_interval=2, log_interval=1, checkpoint_interval=100,
                    workers=0, progress="none", device="cpu", run_dir=str(run_dir))
    settings.update(overrides)
    return TrainConfig(**settings)


def read_history(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "history.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """4 steps straight through (evaluations at steps 2 and 4); shared by the tests below."""
    return train(tiny(tmp_path_factory.mktemp("straight") / "run"))


def test_run_directory(straight):
    run_dir = straight
    assert sorted(p.name for p in run_dir.iterdir()) == ["best.pt", "config.json", "history.jsonl", "last.pt", "metrics.json"]

    info = json.loads((run_dir / "config.json").read_text())
    assert info["config"]["method"] == "collab" and info["seed"] == 0 and info["precision"] == "fp32"
    assert {"torch", "timm", "numpy", "python"} <= set(info["versions"])

    history = read_history(run_dir)
    steps = [h for h in history if h["kind"] == "train"]
    assert [h["step"] for h in steps] == [1, 2, 3, 4]
    for key in ("loss", "ce_cnn", "ce_vit", "hfd", "region", "pixel", "lr_cnn", "lr_vit", "images_per_s",
                "region_frac_cnn_teaches", "pixel_frac_vit_teaches"):
        assert key in steps[0], key
    evals = [h for h in history if h["kind"] in ("eval", "test")]
    assert [(h["step"], h["split"]) for h in evals] == [(2, "val"), (4, "val"), (4, "test")]

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["steps"] == 4 and metrics["synthetic"] is True and metrics["method"] == "collab"
    for block in (metrics["final_val"], metrics["test"]):
        for student in ("cnn", "vit"):
            assert 0.0 <= block[student]["miou"] <= 1.0
            assert list(block[student]["iou"]) == metrics["class_names"]
    assert metrics["best_val"]["step"] in (2, 4) and metrics["images_per_s"] > 0

    # Checkpoints: plain tensors and values (weights_only), unwrapped module names.
    ckpt = torch.load(run_dir / "last.pt", weights_only=True)
    assert ckpt["step"] == 4 and ckpt["epoch"] == 1 and ckpt["position"] == 1
    for key in ("cnn", "vit", "loss"):
        assert not any(k.startswith(("module.", "_orig_mod.")) for k in ckpt[key]), key
    assert ckpt["loss"], "collab's projectors and connectors are saved"

    # Resuming a finished run changes nothing (and does not log the test split twice).
    before = (run_dir / "history.jsonl").read_text()
    train(tiny(run_dir, resume=True))
    assert (run_dir / "history.jsonl").read_text() == before

    # The same run directory is not silently reused.
    with pytest.raises(FileExistsError, match="resume"):
        train(tiny(run_dir))
    with pytest.raises(SystemExit, match="--resume.*--overwrite"):  # the command line: a message, no traceback
        train_module.main(["--run-dir", str(run_dir), "--device", "cpu"])


def test_resume_is_exact(straight, tmp_path):
    """4 steps straight == 2 steps, stop, resume, 2 more: same weights, optimizer state and metrics.

    The stop falls mid-epoch (3 steps per epoch) and after an evaluation, the
    resumed part crosses an epoch boundary, and dropout and augmentation are on."""
    split = train(tiny(tmp_path / "split", stop_at_step=2))
    assert not (split / "metrics.json").exists()
    assert torch.load(split / "last.pt", weights_only=True)["step"] == 2
    train(tiny(split, resume=True))

    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(split / "last.pt", weights_only=True)
    for key in ("cnn", "vit", "loss"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs after resume"
    for key in ("opt_cnn", "opt_vit"):
        for index, slot in a[key]["state"].items():
            for name, value in slot.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(b[key]["state"][index][name])), f"{key} {name}"
    metrics_a = json.loads((straight / "metrics.json").read_text())
    metrics_b = json.loads((split / "metrics.json").read_text())
    for key in ("final_val", "best_val", "test", "steps", "epochs"):
        assert metrics_a[key] == metrics_b[key], key
    losses = lambda run: [(h["step"], h["loss"]) for h in read_history(run) if h["kind"] == "train"]  # noqa: E731
    assert losses(straight) == losses(split)

    # Changing the maths of a run on resume is refused, naming the setting.
    with pytest.raises(ValueError, match="lr_cnn"):
        train(tiny(split, resume=True, lr_cnn=0.5))


def test_nan_loss_stops_naming_step_and_term(tmp_path, monkeypatch):
    class PoisonedLoss(train_module.CollaborativeLoss):
        calls = 0

        def forward(self, *args, **kwargs):
            total, terms = super().forward(*args, **kwargs)
            PoisonedLoss.calls += 1
            if PoisonedLoss.calls == 3:  # step 3
                terms = {**terms, "hfd": torch.tensor(float("nan")), "loss": torch.tensor(float("nan"))}
                total = total * float("nan")
            return total, terms

    monkeypatch.setattr(train_module, "CollaborativeLoss", PoisonedLoss)
    config = tiny(tmp_path / "run", steps=6, eval_interval=10, checkpoint_interval=2)
    with pytest.raises(FloatingPointError, match=r"step 3: .*hfd.*last good checkpoint.*step 2") as error:
        train(config)
    assert "loss" in str(error.value)
    assert torch.load(Path(config.run_dir) / "last.pt", weights_only=True)["step"] == 2


def test_sigterm_writes_a_checkpoint_and_resume_continues(tmp_path):
    run_dir = tmp_path / "run"
    flags = ["--image-size", "64", "64", "--crop-size", "64", "64", "--train-samples", "6", "--val-samples", "2",
             "--test-samples", "2", "--batch-size", "2", "--steps", "1000", "--eval-interval", "1000",
             "--log-interval", "1", "--checkpoint-interval", "1000", "--workers", "0", "--device", "cpu",
             "--progress", "log", "--method", "dml", "--run-dir", str(run_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "collab_lib.train", *flags], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        history = run_dir / "history.jsonl"
        while not (history.exists() and len(history.read_text().splitlines()) >= 2):
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "training did not start in time"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "SIGTERM at step" in output and "Traceback" not in output
    step = torch.load(run_dir / "last.pt", weights_only=True)["step"]
    assert step >= 2

    config = TrainConfig(image_size=(64, 64), crop_size=(64, 64), train_samples=6, val_samples=2, test_samples=2,
                         batch_size=2, steps=1000, eval_interval=1000, log_interval=1, checkpoint_interval=1000,
                         workers=0, device="cpu", progress="none", method="dml", run_dir=str(run_dir),
                         resume=True, stop_at_step=step + 1)
    train(config)
    assert torch.load(run_dir / "last.pt", weights_only=True)["step"] == step + 1
    assert [h["step"] for h in read_history(run_dir)][-1] == step + 1


def test_config_json_names_the_commit_of_the_code_that_ran(monkeypatch):
    """A grid worker trains run after run with the code it imported; the checkout may move on meanwhile.
    config.json's "git_commit" is the commit read when the library was imported, "git_head_at_start"
    the checkout's commit when the run started (they differed in results/sweeps/long1200-mnv2-lr01)."""
    from collab_lib.config import TrainConfig

    if (REPO / ".git").exists():
        assert train_module.CODE_COMMIT == train_module.git_head()  # nothing was committed during this test
    monkeypatch.setattr(train_module, "CODE_COMMIT", "a" * 40)
    monkeypatch.setattr(train_module, "git_head", lambda: "b" * 40)
    info = train_module.run_info(TrainConfig(run_dir="x"), torch.device("cpu"), "fp32", 1)
    assert info["git_commit"] == "a" * 40 and info["git_head_at_start"] == "b" * 40
