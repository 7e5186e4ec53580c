"""Atomic files and everything an exact resume needs.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so
`torch.load(path, weights_only=True)` reads it (the default since torch 2.6,
and safe: no pickled code runs). Its keys:

    step, epoch, position     optimizer steps done; data epoch; batches of it consumed (per process)
    cnn, vit, loss            state_dicts of the UNWRAPPED modules (no "module." / "_orig_mod.")
    opt_cnn, opt_vit, scaler  optimizer and GradScaler state_dicts (scaler: {} when unused)
    rng                       list, one entry per process: python, numpy, torch CPU and CUDA states
    best                      {"miou": mean of the two students' val mIoU, "step", "cnn_miou", "vit_miou"}
    last_eval                 the latest evaluation (as in metrics.json's "final_val"), or None
    last_train_eval           the latest evaluation of the training subset ("final_train"), or None
                              (absent in checkpoints written before it existed)
    train_time_s, wall_time_s seconds so far, over every session of the run
    config                    TrainConfig.to_dict()

best.pt holds only step, cnn, vit, loss, best and config: it is for evaluating
and showing the best students, last.pt is for resuming. The snapshots
step_<n>.pt (TrainConfig.snapshot_steps) hold step, cnn, vit, loss and config:
the weights alone, for pictures of how training went.

There is no learning-rate scheduler state: the schedule is a function of `step`
(collab_lib/optim.py).

Files are written to a temporary name in the same folder and then renamed
with os.replace, which is atomic on POSIX and Windows: a crash mid-write
leaves the previous file intact, never a half-written one.
"""
import json
import os
import random
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch


def atomic_write_bytes(path, write) -> None:
    """Call write(file_object) on a temp file next to `path`, fsync, then rename it onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path, data) -> None:
    """JSON file written atomically (indent 2, keys in insertion order)."""
    text = json.dumps(data, indent=2, allow_nan=True) + "\n"
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def read_history(path) -> list:
    """history.jsonl -> its records (dicts), in file order.

    The trainer appends one line per record; a process killed mid-write can leave
    the last line torn. That line is dropped with a warning naming the file (the
    resume then cuts the history back to its checkpoint anyway). A bad line
    anywhere else is damage the kit did not make: ValueError naming file and line.
    """
    path = Path(path)
    lines = [(number, line) for number, line in enumerate(path.read_text().splitlines(), start=1) if line.strip()]
    records = []
    for index, (number, line) in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if index == len(lines) - 1:
                warnings.warn(f"{path}: line {number}, the last, is cut off ({error}); it is left out", stacklevel=2)
                break
            raise ValueError(f"{path}, line {number}: not a JSON record ({error}); the history is damaged") from None
    return records


def save_checkpoint(path, state: dict) -> None:
    atomic_write_bytes(path, lambda f: torch.save(state, f))


def load_checkpoint(path, map_location="cpu") -> dict:
    return torch.load(path, map_location=map_location, weights_only=True)


def snapshot_path(run_dir, step: int) -> Path:
    """A run's weights-only snapshot after `step`: step_<n>.pt, n zero-padded to 6 digits (names sort by step)."""
    return Path(run_dir) / f"step_{step:06d}.pt"


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP (`.module`) and torch.compile (`._orig_mod`) wrappers."""
    while True:
        if isinstance(module, torch.nn.parallel.DistributedDataParallel):
            module = module.module
        elif hasattr(module, "_orig_mod"):
            module = module._orig_mod
        else:
            return module


# ---- random number generators -------------------------------------------------------------
# Stored as tensors and lists of ints (weights_only-safe) rather than the tuples and numpy
# arrays the libraries hand out.

def get_rng_state() -> dict:
    """Every RNG this process draws from: python `random`, numpy's legacy global, torch CPU, CUDA."""
    version, internal, gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [np_kind, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
        "cuda": [],
    }
    if torch.cuda.is_available():  # never touch CUDA otherwise (nanoGPT #293 crashed CPU machines that way)
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_kind, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        if len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        else:  # another machine: seed what we can, the run is no longer bit-exact
            torch.cuda.set_rng_state(state["cuda"][0])
