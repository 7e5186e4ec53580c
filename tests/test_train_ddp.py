"""DDP on CPU: torchrun, 2 processes, the gloo backend, a couple of steps."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hang_guard import HUNG_AFTER_S

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # two fresh interpreters training: make test runs it, make test-fast does not
def test_torchrun_two_processes_on_cpu(tmp_path):
    run_dir = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "collab_lib.train",
               "--image-size", "64", "64", "--crop-size", "64", "64", "--train-samples", "8", "--val-samples", "3",
               "--test-samples", "2", "--batch-size", "2", "--steps", "2", "--eval-interval", "2",
               "--log-interval", "1", "--workers", "0", "--device", "cpu", "--progress", "log",
               "--method", "collab", "--run-dir", str(run_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=HUNG_AFTER_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == 2
    # 3 val scenes over 2 ranks (2 + 1): the all-reduced confusion matrices score every scene once, so one
    # process scoring all 3 with the final weights finds the same per-class IoU.
    from collab_lib.analysis import load_trained_students
    from collab_lib.train import evaluate

    cnn, vit, _, val_set = load_trained_students(run_dir, "last.pt", split="val")
    assert len(val_set) == 3
    loader = torch.utils.data.DataLoader(val_set, batch_size=3)
    alone = evaluate({"cnn": cnn, "vit": vit}, loader, val_set.num_classes, val_set.ignore_index,
                     torch.device("cpu"), None, False)
    for student in ("cnn", "vit"):
        assert metrics["final_val"][student]["miou"] == pytest.approx(alone[student]["miou"], abs=1e-6)
        ious, expected = list(metrics["final_val"][student]["iou"].values()), alone[student]["iou"]
        assert len(ious) == len(expected) and all((a is None and b is None) or (None not in (a, b) and abs(a - b) < 1e-6)
                                                  for a, b in zip(ious, expected)), (ious, expected)
    ckpt = torch.load(run_dir / "last.pt", weights_only=True)
    assert len(ckpt["rng"]) == 2  # one RNG state per rank
    assert not any(k.startswith("module.") for k in ckpt["cnn"])
    # Only rank 0 wrote: one line per logged step, not two.
    steps = [json.loads(line)["step"] for line in (run_dir / "history.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "train"]
    assert steps == [1, 2]
