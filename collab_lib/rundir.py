"""The run directory: what the trainer writes, and the checks that keep one run from spoiling another.

    run_dir, checkpoint = prepare_run_dir(config)   # refuses to overwrite a run by accident; last.pt to resume
    restore(checkpoint, parts, dist, state)         # a resumed run's weights, optimisers, RNG and step
    files = RunFiles.open(run_dir, main, info, step, resumed)   # config.json written, history.jsonl opened
    files.record(entry); files.save_last(config, parts, state); files.save_weights(path, ...); files.close()

The files (rank 0 writes them; the other ranks call the same methods, which then write nothing):
  config.json     the full TrainConfig, command line, library versions, git commit and whether the
                  checkout had uncommitted changes, device, precision, the machine (collab_lib/runinfo.py)
                  of this session; after a resume "earlier_sessions" keeps those of the earlier ones
                  (a resume on another machine says so: its numbers can drift from an uninterrupted run's)
  history.jsonl   one JSON object per line: {"kind": "train", "step", every loss term, "lr_cnn",
                  "lr_vit", "images_per_s"} at log intervals, {"kind": "eval", "step", "split",
                  "cnn_miou", "vit_miou", ...} at evaluations (split "val", and split "train" with
                  "samples" for the training subset), {"kind": "test", ...} once at the end
  metrics.json    final and best val mIoU, the training subset's ("final_train"), per-class IoU of
                  both students, the test split's numbers
  last.pt         written every `checkpoint_interval` steps, at the end and on SIGINT/SIGTERM
  best.pt         weights only, at the evaluation with the best mean val mIoU of the two students
  step_<n>.pt     weights only, after each step of `snapshot_steps` (collab_lib.course loads them)
Checkpoint files: collab_lib/checkpoint.py (atomic writes, weights_only loads).

A folder holding last.pt is continued with resume=True (with the settings it was trained with) or
started again with overwrite=True; a finished run without its last.pt (a committed run, which keeps
only its text files) is never trained over unless overwrite=True.
"""
import json
import os
import sys
from pathlib import Path

from . import distributed
from .checkpoint import (atomic_write_bytes, get_rng_state, load_checkpoint, read_history, save_checkpoint,
                         set_rng_state, write_json)
from .config import changed_settings, describe_changes
from .errors import SetupError
from .runinfo import earlier_sessions, other_machine

# What last.pt must hold to resume; best.pt and step_*.pt hold weights only.
RESUME_KEYS = ("step", "epoch", "position", "cnn", "vit", "loss", "opt_cnn", "opt_vit", "scaler", "rng", "best",
               "last_eval", "train_time_s", "wall_time_s", "config")


def default_run_dir(config) -> Path:
    return Path("runs") / f"{config.dataset}-{config.method}-seed{config.seed}"


def check_run_dir_writable(run_dir: Path) -> None:
    """A run folder that is a file, or lies under a file or a folder this process cannot write: SetupError now,
    before the data and the students are built (the folder itself is created later, when the run starts)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise SetupError(f"run_dir {run_dir} is a file; expected a folder (it is created when missing)")
    parent = next(p for p in (run_dir, *run_dir.parents) if p.exists())
    if not parent.is_dir():
        raise SetupError(f"run_dir {run_dir}: {parent} is a file, not a folder; choose another run_dir")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SetupError(f"run_dir {run_dir}: cannot write into {parent} (permission denied); choose a writable folder")


def read_last_checkpoint(path: Path) -> dict:
    """last.pt for a resume; a damaged file or one that is not a trainer's last.pt is a SetupError naming it."""
    try:
        checkpoint = load_checkpoint(path)
    except Exception as error:  # torch raises RuntimeError, pickle.UnpicklingError, EOFError, ... by damage
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SetupError(f"resume: cannot read {path} ({reason}); the file is damaged or not a checkpoint. "
                         f"Start the run again with overwrite=True (--overwrite), or put back a good copy") from error
    missing = [key for key in RESUME_KEYS if key not in checkpoint] if isinstance(checkpoint, dict) else list(RESUME_KEYS)
    if missing:
        raise SetupError(f"resume: {path} is not a last.pt of this kit's trainer (missing {', '.join(missing)}); "
                         f"best.pt and step_*.pt hold weights only and cannot be resumed")
    return checkpoint


def prepare_run_dir(config) -> tuple[Path, dict | None]:
    """(run directory, last.pt's contents when resuming else None) for a TrainConfig. Refuses to overwrite a
    run by accident and to resume one with settings that change the maths (RUNTIME_FIELDS may change).

    Without last.pt there is nothing to resume: an unfinished run (stopped before its first checkpoint)
    starts again from step 0, but a finished one (metrics.json, e.g. a committed run, which keeps only its
    text files) is never trained over unless overwrite is set."""
    run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(config)
    check_run_dir_writable(run_dir)
    last_path = run_dir / "last.pt"
    if last_path.exists() and config.resume:
        checkpoint = read_last_checkpoint(last_path)
        changed = changed_settings(checkpoint["config"], config)
        if changed:
            raise SetupError(f"resume: {last_path} was trained with different settings ({describe_changes(changed)}); "
                             f"use the original settings, or another run_dir")
        if config.stop_at_step is not None and config.stop_at_step <= checkpoint["step"] < config.steps:
            raise SetupError(f"stop_at_step={config.stop_at_step} is not after the step {last_path} holds "
                             f"({checkpoint['step']}); give a later step, or none to train to the end")
        return run_dir, checkpoint
    if last_path.exists() and not config.overwrite:
        raise FileExistsError(f"{run_dir} already holds a run (last.pt). Pass resume=True (--resume) to continue it, "
                              f"overwrite=True (--overwrite) to start it again, or choose another run_dir")
    if (run_dir / "metrics.json").exists() and not config.overwrite:
        raise FileExistsError(f"{run_dir} holds a finished run (metrics.json) without its last.pt, so there is "
                              f"nothing to {'resume' if config.resume else 'continue'} (a committed run keeps only its "
                              f"text files). Pass overwrite=True (--overwrite) to train it again from step 0, "
                              f"replacing its files, or choose another run_dir")
    return run_dir, None


def truncate_history(path: Path, step: int) -> None:
    """Keep only the history records up to `step` (atomically), dropping what a killed run wrote after its
    checkpoint, and the test record (written after the last checkpoint; the end of the run writes it again)."""
    if not path.exists():
        return
    try:
        records = read_history(path)  # a torn last line (a kill mid-write) is dropped with a warning
    except ValueError as error:
        message = f"resume: {error}; remove the bad line, or start again with overwrite=True (--overwrite)"
        raise SetupError(message) from error
    kept = "".join(json.dumps(r) + "\n" for r in records if r["step"] <= step and r["kind"] != "test")
    atomic_write_bytes(path, lambda f: f.write(kept.encode()))


def restore(checkpoint: dict, parts, dist: distributed.DistInfo, state) -> None:
    """Load last.pt's weights, optimiser and RNG states into `parts` (the trainer's Parts), and where the run
    stood into `state` (its RunState): what RunFiles.save_last wrote, read back."""
    parts.cnn.load_state_dict(checkpoint["cnn"])
    parts.vit.load_state_dict(checkpoint["vit"])
    parts.loss_fn.load_state_dict(checkpoint["loss"])
    parts.opt_cnn.load_state_dict(checkpoint["opt_cnn"])
    parts.opt_vit.load_state_dict(checkpoint["opt_vit"])
    if checkpoint["scaler"]:
        parts.scaler.load_state_dict(checkpoint["scaler"])
    rng = checkpoint["rng"]
    if len(rng) != dist.world_size and dist.is_main:
        print(f"resume: the run was trained with {len(rng)} process(es), this session has {dist.world_size}: "
              f"each process's data share and random draws differ from an uninterrupted run", file=sys.stderr)
    set_rng_state(rng[dist.rank] if len(rng) == dist.world_size else rng[0])
    state.step, state.epoch, state.position = checkpoint["step"], checkpoint["epoch"], checkpoint["position"]
    state.train_time, state.wall_before = checkpoint["train_time_s"], checkpoint["wall_time_s"]
    state.best, state.last_eval = checkpoint["best"], checkpoint["last_eval"]
    state.last_train_eval = checkpoint.get("last_train_eval")  # absent in runs from before it existed
    state.last_saved_step = checkpoint["step"]


class RunFiles:
    """The run directory's files. Only rank 0 writes (`self.main`); the others call the same methods."""

    def __init__(self, run_dir: Path, main: bool):
        self.dir, self.main = run_dir, main
        self.last, self.best = run_dir / "last.pt", run_dir / "best.pt"
        self.history_path = run_dir / "history.jsonl"
        self.history = None

    @classmethod
    def open(cls, run_dir: Path, main: bool, info: dict, step: int, resumed: bool) -> "RunFiles":
        """Write `info` (collab_lib.runinfo.run_info and the trainer's additions) as config.json, cut
        history.jsonl back to `step` (the resumed checkpoint's) and open it for appending."""
        files = cls(run_dir, main)
        if files.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            if resumed:  # who ran the earlier sessions, with which code (config.json describes this one)
                info["earlier_sessions"] = earlier_sessions(run_dir / "config.json")
                other = other_machine(info["earlier_sessions"], info["machine"])
                if other:
                    print(f"resume: the session before this one ran on another machine ({other}); its processor "
                          f"may round differently, so this run's numbers can differ from an uninterrupted run's "
                          f"(bit-identical only on one machine)", file=sys.stderr)
            write_json(run_dir / "config.json", info)
            truncate_history(files.history_path, step)  # records after the resumed checkpoint are void
            if not resumed:  # a fresh (or overwritten) run: nothing of an earlier one may survive
                for stale in ["metrics.json", "best.pt", "last.pt", *(p.name for p in run_dir.glob("step_*.pt"))]:
                    (run_dir / stale).unlink(missing_ok=True)
            files.history = open(files.history_path, "a")
        return files

    def record(self, entry: dict) -> None:
        if self.history is not None:
            self.history.write(json.dumps(entry) + "\n")
            self.history.flush()

    def sync_history(self) -> None:
        """Force history.jsonl to disk, so that it holds every record up to a checkpoint written after it."""
        if self.history is not None:
            self.history.flush()
            os.fsync(self.history.fileno())

    def kept_checkpoint(self, step: int | None) -> str:
        """The last good checkpoint, for an error message: last.pt and the step it holds (None: none yet)."""
        return f"{self.last} (step {step})" if step is not None else "none yet"

    def save_last(self, config, parts, state) -> None:
        """last.pt: everything a resume needs (collective under DDP: every rank must call it).
        parts: the trainer's Parts (modules, optimisers, scaler); state: its RunState."""
        snapshot = {
            "step": state.step, "epoch": state.epoch, "position": state.position,
            "train_time_s": state.train_time, "wall_time_s": state.wall_time(),
            "cnn": parts.cnn.state_dict(), "vit": parts.vit.state_dict(), "loss": parts.loss_fn.state_dict(),
            "opt_cnn": parts.opt_cnn.state_dict(), "opt_vit": parts.opt_vit.state_dict(),
            "scaler": parts.scaler.state_dict() if parts.scaler.is_enabled() else {},
            "rng": distributed.all_gather_objects(get_rng_state()),
            "best": state.best, "last_eval": state.last_eval, "last_train_eval": state.last_train_eval,
            "config": config.to_dict(),
        }
        if self.main:
            self.sync_history()
            save_checkpoint(self.last, snapshot)
        state.last_saved_step = state.step

    def save_weights(self, path: Path, config, parts, step: int, **extra) -> None:
        """Weights only (best.pt, step_<n>.pt), for evaluation and notebooks: half the size of last.pt."""
        if self.main:
            save_checkpoint(path, {"step": step, "cnn": parts.cnn.state_dict(), "vit": parts.vit.state_dict(),
                                   "loss": parts.loss_fn.state_dict(), **extra, "config": config.to_dict()})

    def close(self) -> None:
        if self.history is not None:
            self.history.close()
            self.history = None
