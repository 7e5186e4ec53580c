"""Train a CNN student and a ViT student together: `train(config)` and its command line.

    python -m collab_lib.train --method collab --steps 2000
    torchrun --nproc_per_node=4 -m collab_lib.train --dataset cityscapes --data-root /data/cityscapes ...

`train(config)` reads top to bottom as the steps of a run:
  choose_hardware     device, precision, memory format
  prepare_run_dir     refuse to overwrite a run by accident; load last.pt when resuming
  build_data          the training set and its resumable sampler, the eval split, a fixed
                      training subset scored unaugmented (the generalisation gap)
  build_parts         both students, the loss (collab_lib.students), both optimisers
  restore, wrap       a resumed run's state; torch.compile and DDP wrappers
  RunFiles.open       config.json (collab_lib.runinfo), history.jsonl
  train_loop          the steps, with logging, evaluation, checkpoints, snapshots, signals
  evaluate_at_end     the last step's val numbers (unless just taken), the test split once
  write_metrics       metrics.json

One step (`train_step`):
  1. the same batch goes through both students (one forward each);
  2. `CollaborativeLoss` turns both outputs and the labels into one scalar
     (CE of each student + the distillation terms of the chosen method);
  3. one backward; the CNN's SGD and the ViT's AdamW (which also holds the
     loss module's projectors/connectors, see collab_lib/optim.py) both step.

The run directory (rank 0 writes it):
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
Checkpoints: see collab_lib/checkpoint.py. Multi-process: collab_lib/distributed.py.

Stopping: Ctrl-C (SIGINT) or SIGTERM finishes the current step, writes last.pt
and raises TrainingInterrupted (the command line exits with 130 / 143, the
shell's "ended by a signal" codes); `resume=True` (--resume) continues exactly,
and leaves a finished run as it is. A folder holding a finished run without its
last.pt (a committed run) is refused unless `overwrite=True`, which starts it again.
A NaN/inf loss raises FloatingPointError naming the step and the term; last.pt
then still holds the last good step (the check runs before every checkpoint).

Speed without surprises: the loss values stay on the device and are read only
at log intervals (reading a GPU value waits for the GPU to finish: doing it
every step would stall the pipeline); CUDA is only asked anything after
torch.cuda.is_available() said yes.
"""
import json
import os
import random
import signal
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Subset

from . import distributed
from .checkpoint import (atomic_write_bytes, get_rng_state, load_checkpoint, read_history, save_checkpoint,
                         set_rng_state, snapshot_path, write_json)
from .config import TrainConfig, changed_settings, describe_changes, parse_args
from .data import DatasetError, build_dataset
from .errors import SetupError, TrainingInterrupted, user_message  # noqa: F401  (also imported from here)
from .metrics import ConfusionMatrix
from .models import check_input_size, count_parameters
from .optim import build_optimizers, set_lr
from .progress import Progress, format_seconds
from .runinfo import machine_differences, run_info
from .students import build_loss, build_students  # noqa: F401  (build_students: also imported from here)


# ---- device and precision -----------------------------------------------------------------

def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """"auto" -> cuda:<local_rank> when CUDA is available, else cpu. Asking for cuda without one is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise SetupError("device='cuda' but torch.cuda.is_available() is False; use device='auto' or 'cpu'")
        return torch.device("cuda", local_rank)
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise SetupError("device='mps' but this torch build or machine has no MPS; use device='auto' or 'cpu'")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    """"auto" -> "bf16" on a CUDA GPU that supports it, else "fp32" (CPU autocast is rarely faster).

    Only touches CUDA when `device` is a CUDA device (nanoGPT #293 crashed CPU
    machines by asking for bf16 support unconditionally)."""
    if name != "auto":
        return name
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


AMP_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds every CUDA device too, without initialising CUDA


@dataclass
class Hardware:
    device: torch.device
    precision: str             # "fp32" / "bf16" / "fp16"
    amp_dtype: torch.dtype | None
    channels_last: bool


def choose_hardware(config: TrainConfig, dist: distributed.DistInfo) -> Hardware:
    """Device, precision and memory format; input sizes checked before anything is built."""
    device = resolve_device(config.device, dist.local_rank)
    precision = resolve_precision(config.precision, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels once
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls/convs on tensor cores (Ampere+)
        torch.backends.cudnn.allow_tf32 = True
    for name in ("image_size", "crop_size"):
        size = getattr(config, name)
        if size is not None:
            try:
                check_input_size(*size)  # fail now with the nearest valid size, not after building everything
            except ValueError as error:
                raise SetupError(f"{name}: {error}") from None
    # Channels-last (NHWC) suits tensor cores. On a CPU it is opt-in: it is not bit-identical to NCHW, so
    # switching the default would change every committed CPU run (benchmarks/RESULTS.md measures its speed).
    channels_last = device.type == "cuda" if config.channels_last is None else config.channels_last
    return Hardware(device, precision, AMP_DTYPES[precision], channels_last)


# ---- data ---------------------------------------------------------------------------------

def make_dataset(config: TrainConfig, split: str, train: bool):
    """The dataset for `split`. Evaluation items are not augmented and come at `image_size`. Training items
    are augmented and cropped to `crop_size` (none: the whole item); real images are first resized to
    `image_size`, so images of any size train at the scale they are evaluated at."""
    options = {}
    if config.dataset == "streets":
        count = {"train": config.train_samples, "val": config.val_samples, "test": config.test_samples}.get(split)
        options = dict(size=config.image_size, endless=config.endless and train)
        if count is not None:
            options["num_samples"] = count
    else:  # real images of varied sizes: one batchable size, the same for training (before its crop) and evaluation
        options["resize_to"] = config.image_size
    if config.dataset == "folder":
        options["class_names"] = config.class_names  # None: the dataset reads ROOT/classes.txt
    return build_dataset(
        config.dataset, root=config.data_root, split=split, seed=config.data_seed,
        crop_size=config.crop_size if train else None,
        augment=config.augment if train else False, **options,
    )


def make_loader(dataset, config, sampler=None, shuffle_seed=0, device=torch.device("cpu"), drop_last=False):
    return DataLoader(
        dataset, batch_size=config.batch_size, sampler=sampler, drop_last=drop_last,
        num_workers=config.workers, persistent_workers=config.workers > 0,
        pin_memory=device.type == "cuda",  # page-locked host memory lets .to(device, non_blocking=True) overlap
        # Its own generator: creating a DataLoader iterator must not draw from the global torch RNG,
        # or a resumed run (which creates one more iterator) would see different dropout.
        generator=torch.Generator().manual_seed(shuffle_seed),
    )


def to_device(images, labels, device, channels_last):
    """(B,3,H,W) float32 and (B,H,W) int64 -> on `device`, images channels-last if asked."""
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, labels.to(device, non_blocking=True)


@dataclass
class Data:
    train_set: object
    sampler: distributed.ResumableSampler
    train_loader: DataLoader
    steps_per_epoch: int
    eval_loader: DataLoader                # config.eval_split, this rank's share
    train_eval_loader: DataLoader | None   # the first train_eval_samples training items, unaugmented
    train_eval_samples: int                # how many (0 = off)
    num_classes: int
    ignore_index: int
    class_names: list
    test_set: object | None                # config.test_split (None: no test split), scored once at the end


def build_data(config: TrainConfig, dist: distributed.DistInfo, device: torch.device) -> Data:
    """Datasets and loaders. Evaluation: rank r scores items r, r+N, r+2N, ... (every item exactly once)."""
    train_set = make_dataset(config, "train", train=True)
    eval_set = make_dataset(config, config.eval_split, train=False)
    test_set = None
    if config.test_split:
        # The test split is read once, at the very end: built now, a missing one is found before the training.
        try:
            test_set = make_dataset(config, config.test_split, train=False)
        except DatasetError as error:
            raise SetupError(f"test_split={config.test_split!r}: {error}\nA run without a test split: --test-split none "
                             f"(test_split=None in Python, -p test_split none with papermill)") from None
    if getattr(train_set, "flat", False) and dist.is_main:
        print(f"warning: {config.data_root} has no split sub-folders under images/: the {config.eval_split} and "
              f"test numbers are measured on the training images (fit, not generalisation); give it "
              f"images/train, images/{config.eval_split}, ... and the same under masks/", file=sys.stderr)
    sampler = distributed.ResumableSampler(train_set, dist.world_size, dist.rank, seed=config.seed)
    train_loader = make_loader(train_set, config, sampler, config.seed, device, drop_last=True)
    steps_per_epoch = len(train_loader)  # now, while the sampler starts at 0 (after a resume it starts later)
    if steps_per_epoch == 0:
        raise SetupError(f"the training split has {len(train_set)} items: fewer than one batch of "
                         f"{config.batch_size} per process x {dist.world_size} processes; lower batch_size")
    shard = lambda ds: Subset(ds, range(dist.rank, len(ds), dist.world_size))  # noqa: E731
    eval_loader = make_loader(shard(eval_set), config, device=device)
    # The generalisation gap: the same first N training items at every evaluation, without augmentation.
    # Evaluation draws no random number (eval mode; the loader has its own generator): training is unchanged.
    train_eval_loader, count = None, 0
    if config.train_eval_samples != 0:
        unaugmented = make_dataset(config, "train", train=False)
        count = len(unaugmented) if config.train_eval_samples is None else min(config.train_eval_samples,
                                                                                  len(unaugmented))
        train_eval_loader = make_loader(shard(Subset(unaugmented, range(count))), config, device=device)
    return Data(train_set, sampler, train_loader, steps_per_epoch, eval_loader, train_eval_loader, count,
                train_set.num_classes, train_set.ignore_index, list(train_set.class_names), test_set)


# ---- one step ---------------------------------------------------------------------------

def train_step(cnn, vit, loss_fn, opt_cnn, opt_vit, scaler, images, labels, progress: float, amp_dtype=None) -> dict:
    """Both students learn from the same batch: one forward each, one loss, one backward, both optimizers step.

    images (B, 3, H, W) float32, labels (B, H, W) int64 on the device; progress = fraction of
    training done (ramps distillation in). Returns the loss terms: detached 0-dim device tensors
    (not read here: reading them would wait for the device)."""
    autocast = torch.autocast(images.device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
    with autocast:  # bf16/fp16 for the students' convs and matmuls; the losses compute CE/KL in fp32
        out_cnn, out_vit = cnn(images), vit(images)
        total, terms = loss_fn(out_cnn, out_vit, labels, progress)
    opt_cnn.zero_grad(set_to_none=True)
    opt_vit.zero_grad(set_to_none=True)
    scaler.scale(total).backward()  # scaler: identity unless fp16
    scaler.step(opt_cnn)
    scaler.step(opt_vit)
    scaler.update()
    return terms


# ---- evaluation ---------------------------------------------------------------------------

@torch.no_grad()
def evaluate(students: dict, loader, num_classes, ignore_index, device, amp_dtype, channels_last) -> dict:
    """{"cnn": metrics, "vit": metrics}, metrics = ConfusionMatrix.compute() over the whole split
    (dataset-level confusion matrix, summed over DDP ranks)."""
    matrices = {name: ConfusionMatrix(num_classes, ignore_index=ignore_index, device=device) for name in students}
    modes = {name: model.training for name, model in students.items()}
    for model in students.values():  # every rank scores with the BatchNorm statistics last.pt keeps (rank 0's)
        distributed.broadcast_buffers(model)
    for model in students.values():
        model.eval()
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
    for images, labels in loader:
        images, labels = to_device(images, labels, device, channels_last)
        with autocast:
            for name, model in students.items():
                matrices[name].update(model(images).logits.float(), labels)
    results = {}
    for name, matrix in matrices.items():
        matrix.all_reduce()
        results[name] = matrix.compute()
    for name, model in students.items():
        model.train(modes[name])
    return results


def named_iou(result: dict, class_names) -> dict:
    """ConfusionMatrix.compute() -> {"miou", "pixel_accuracy", "iou": {class name: IoU or None}}."""
    return {"miou": result["miou"], "pixel_accuracy": result["pixel_accuracy"],
            "iou": dict(zip(class_names, result["iou"]))}


# ---- stopping on a signal -----------------------------------------------------------------

class StopOnSignal:
    """While active, SIGINT/SIGTERM only set `.signum`; the loop then writes a checkpoint and stops.

    A second signal acts as usual (the previous handlers are back after the
    first), so pressing Ctrl-C twice still stops at once. Outside the main
    thread signal handlers cannot be installed; then this does nothing."""

    def __enter__(self):
        self.signum = None
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum
        self._restore()

    def _restore(self):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def __exit__(self, *exc):
        self._restore()
        return False


# ---- what learns, and where the run stands --------------------------------------------------

@dataclass
class Parts:
    """Everything that learns. cnn/vit/loss_fn are the plain modules (their state_dicts are saved);
    *_step are what a step calls: the same modules, or their torch.compile / DDP wrappers."""
    cnn: torch.nn.Module
    vit: torch.nn.Module
    loss_fn: torch.nn.Module
    opt_cnn: torch.optim.Optimizer
    opt_vit: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    cnn_step: torch.nn.Module = None
    vit_step: torch.nn.Module = None
    loss_step: torch.nn.Module = None


@dataclass
class RunState:
    """Where the run stands; all but session_start go into last.pt."""
    step: int = 0                 # optimizer steps done
    epoch: int = 0                # data epoch
    position: int = 0             # batches of this epoch consumed (per process)
    train_time: float = 0.0       # seconds inside training steps, every session of the run
    wall_before: float = 0.0      # wall-clock seconds of earlier sessions
    best: dict = field(default_factory=lambda: {"miou": -1.0, "step": None})
    last_eval: dict | None = None        # the latest evaluation of the eval split (metrics.json "final_val")
    last_train_eval: dict | None = None  # ... of the training subset ("final_train")
    last_saved_step: int | None = None   # the step last.pt holds
    session_start: float = field(default_factory=time.perf_counter)

    def wall_time(self) -> float:
        return self.wall_before + time.perf_counter() - self.session_start


# What last.pt must hold to resume (checkpoint.py); best.pt and step_*.pt hold weights only.
RESUME_KEYS = ("step", "epoch", "position", "cnn", "vit", "loss", "opt_cnn", "opt_vit", "scaler", "rng", "best",
               "last_eval", "train_time_s", "wall_time_s", "config")


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


def prepare_run_dir(config: TrainConfig) -> tuple[Path, dict | None]:
    """(run directory, last.pt's contents when resuming else None). Refuses to overwrite a run by accident
    and to resume one with settings that change the maths (RUNTIME_FIELDS may change).

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


def default_run_dir(config: TrainConfig) -> Path:
    return Path("runs") / f"{config.dataset}-{config.method}-seed{config.seed}"


def build_parts(config: TrainConfig, dist: distributed.DistInfo, hw: Hardware, data: Data) -> Parts:
    """Students, loss and optimisers, the same seed on every rank (identical initial weights)."""
    seed_everything(config.seed)
    try:  # what can fail here comes from the settings or the data: too few classes, a weights file, no network
        cnn, vit = build_students(config, data.num_classes)
        loss_fn = build_loss(config, cnn, vit, data.ignore_index)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        raise SetupError(f"building the students for {data.num_classes} classes ({', '.join(data.class_names)}): "
                         f"{error}") from error
    memory_format = torch.channels_last if hw.channels_last else torch.contiguous_format
    for module in (cnn, vit, loss_fn):
        module.to(device=hw.device, memory_format=memory_format)
    opt_cnn, opt_vit = build_optimizers(cnn, vit, loss_fn, config, hw.device)
    # fp16 needs loss scaling (its small exponent range underflows gradients); bf16 and fp32 do not.
    scaler = torch.amp.GradScaler(hw.device.type, enabled=hw.precision == "fp16")
    # Dropout must differ between ranks (they see different images anyway); rank 0 keeps `seed`.
    seed_everything(config.seed + 1_000_003 * dist.rank)
    return Parts(cnn, vit, loss_fn, opt_cnn, opt_vit, scaler)


def restore(checkpoint: dict, parts: Parts, dist: distributed.DistInfo, state: RunState) -> None:
    """Load last.pt's weights, optimiser and RNG states into `parts`, and where the run stood into `state`."""
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


def wrap_for_speed(config: TrainConfig, dist: distributed.DistInfo, hw: Hardware, parts: Parts) -> None:
    """torch.compile, then DDP: set parts.*_step (their state_dicts are never saved; the plain modules' are)."""
    parts.cnn_step, parts.vit_step, parts.loss_step = parts.cnn, parts.vit, parts.loss_fn
    if config.compile:
        parts.cnn_step, parts.vit_step = torch.compile(parts.cnn), torch.compile(parts.vit)
        parts.loss_fn.compile_terms()
    if dist.enabled:
        device_ids = [hw.device.index] if hw.device.type == "cuda" else None
        parts.cnn_step = DDP(parts.cnn_step, device_ids=device_ids)
        parts.vit_step = DDP(parts.vit_step, device_ids=device_ids)
        if any(p.requires_grad for p in parts.loss_fn.parameters()):  # projectors/connectors: average them too
            parts.loss_step = DDP(parts.loss_fn, device_ids=device_ids)


# ---- the run directory --------------------------------------------------------------------

class RunFiles:
    """The run directory's files. Only rank 0 writes (`self.main`); the others call the same methods."""

    def __init__(self, run_dir: Path, main: bool):
        self.dir, self.main = run_dir, main
        self.last, self.best = run_dir / "last.pt", run_dir / "best.pt"
        self.history_path = run_dir / "history.jsonl"
        self.history = None

    @classmethod
    def open(cls, config, run_dir, dist, hw: Hardware, parts: Parts, state: RunState, resumed: bool) -> "RunFiles":
        """config.json written, history.jsonl cut back to the resumed step and opened for appending."""
        files = cls(run_dir, dist.is_main)
        if files.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            info = run_info(config, hw.device, hw.precision, dist.world_size)
            info["channels_last"] = hw.channels_last
            info["resumed_from_step"] = state.step if resumed else None
            info["parameters"] = {name: count_parameters(getattr(parts, name)) for name in ("cnn", "vit")}
            info["parameters"]["loss"] = count_parameters(parts.loss_fn)
            if resumed:  # who ran the earlier sessions, with which code (config.json describes this one)
                info["earlier_sessions"] = earlier_sessions(run_dir / "config.json")
                other = other_machine(info["earlier_sessions"], info["machine"])
                if other:
                    print(f"resume: the session before this one ran on another machine ({other}); its processor "
                          f"may round differently, so this run's numbers can differ from an uninterrupted run's "
                          f"(bit-identical only on one machine)", file=sys.stderr)
            write_json(run_dir / "config.json", info)
            _truncate_history(files.history_path, state.step)  # records after the resumed checkpoint are void
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

    def save_last(self, config, parts: Parts, state: RunState) -> None:
        """last.pt: everything a resume needs (collective under DDP: every rank must call it)."""
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

    def save_weights(self, path: Path, config, parts: Parts, step: int, **extra) -> None:
        """Weights only (best.pt, step_<n>.pt), for evaluation and notebooks: half the size of last.pt."""
        if self.main:
            save_checkpoint(path, {"step": step, "cnn": parts.cnn.state_dict(), "vit": parts.vit.state_dict(),
                                   "loss": parts.loss_fn.state_dict(), **extra, "config": config.to_dict()})

    def close(self) -> None:
        if self.history is not None:
            self.history.close()
            self.history = None


SESSION_FIELDS = ("started", "git_commit", "git_head_at_start", "git_dirty", "git_diff_sha1", "command", "host",
                  "device", "precision", "world_size", "machine", "resumed_from_step")


def earlier_sessions(config_json: Path) -> list:
    """The sessions before this one, oldest first, from the config.json about to be rewritten: the fields that
    say who ran each and with which code (SESSION_FIELDS). [] when there is none or it cannot be read."""
    try:
        old = json.loads(config_json.read_text())
    except (OSError, ValueError):
        return []
    return [*old.get("earlier_sessions", []), {k: old[k] for k in SESSION_FIELDS if k in old}]


def other_machine(sessions: list, machine: dict) -> str:
    """runinfo.machine_differences between the last of the earlier `sessions` and this one's `machine`."""
    return machine_differences((sessions[-1] if sessions else {}).get("machine"), machine)


def _truncate_history(path: Path, step: int) -> None:
    """Keep only the history records up to `step` (atomically), dropping what a killed run wrote after its
    checkpoint, and the test record (written after the last checkpoint; the end of the run writes it again)."""
    if not path.exists():
        return
    try:
        records = read_history(path)  # a torn last line (a kill mid-write) is dropped with a warning
    except ValueError as error:
        raise SetupError(f"resume: {error}; remove the bad line, or start again with overwrite=True (--overwrite)") \
            from error
    kept = "".join(json.dumps(r) + "\n" for r in records if r["step"] <= step and r["kind"] != "test")
    atomic_write_bytes(path, lambda f: f.write(kept.encode()))


# ---- logging and evaluating during the loop -------------------------------------------------

class LossMeter:
    """The loss terms of the steps since the last log, kept on the device until `read` (one sync)."""

    def __init__(self):
        self.pending, self.names, self.steps = [], None, 0
        self.restart_clock()

    def add(self, terms: dict) -> None:
        if self.names is None:
            self.names = list(terms)
        self.pending.append(torch.stack([terms[n].float() for n in self.names]))  # stays on the device
        self.steps += 1

    def restart_clock(self) -> None:
        """Throughput counts training only: restart after evaluations and checkpoints."""
        self.start = time.perf_counter()

    def check_finite(self, step: int, kept: str) -> torch.Tensor:
        """The pending values (steps, terms) on the host; FloatingPointError naming the first bad step and term."""
        values = torch.stack(self.pending).cpu()
        bad = ~torch.isfinite(values)
        if bad.any():
            row = int(bad.any(dim=1).nonzero()[0])
            names = [n for n, b in zip(self.names, bad[row]) if b]
            raise FloatingPointError(
                f"loss is not finite at step {step - len(self.pending) + 1 + row}: {', '.join(names)} = "
                f"{', '.join(str(float(values[row, self.names.index(n)])) for n in names)}. Training stopped; "
                f"last good checkpoint: {kept}. Try a lower learning rate, smaller loss weights or precision='fp32'.")
        return values

    def read(self, step: int, kept: str) -> tuple[dict, float]:
        """(mean of each term, seconds since the clock started); empties the meter."""
        means = dict(zip(self.names, self.check_finite(step, kept).mean(dim=0).tolist()))
        elapsed = time.perf_counter() - self.start
        self.pending, self.steps = [], 0
        self.restart_clock()
        return means, elapsed


def kept_checkpoint(files: RunFiles, state: RunState) -> str:
    return f"{files.last} (step {state.last_saved_step})" if state.last_saved_step is not None else "none yet"


def log_losses(config, dist, parts: Parts, state: RunState, meter: LossMeter, files: RunFiles, progress) -> None:
    """Read the pending loss terms (one host-device sync), check them, log their means."""
    if not meter.pending:
        return
    steps = meter.steps
    means, elapsed = meter.read(state.step, kept_checkpoint(files, state))
    images_per_step = config.batch_size * dist.world_size
    speed = steps * images_per_step / max(elapsed, 1e-9)
    entry = {"kind": "train", "step": state.step, "epoch": state.epoch, **means,
             "lr_cnn": parts.opt_cnn.param_groups[0]["lr"], "lr_vit": parts.opt_vit.param_groups[0]["lr"],
             "images_per_s": speed}
    files.record(entry)
    eta = (config.steps - state.step) * images_per_step / max(speed, 1e-9)
    shown = {k: v for k, v in means.items() if not k.endswith("teaches") and k != "ramp"}
    progress.show(" ".join(f"{k} {v:.3f}" for k, v in shown.items()),
                  f"step {state.step}/{config.steps} | " + " ".join(f"{k} {v:.4f}" for k, v in means.items())
                  + f" | lr {entry['lr_cnn']:.2e}/{entry['lr_vit']:.2e} | {speed:.1f} img/s | eta {format_seconds(eta)}")


def evaluate_now(config, hw: Hardware, data: Data, parts: Parts, state: RunState, files: RunFiles) -> None:
    """Both students on the eval split and on the training subset: history records, state.last_*eval."""
    for split, loader in ((config.eval_split, data.eval_loader), ("train", data.train_eval_loader)):
        if loader is None:
            continue
        results = evaluate({"cnn": parts.cnn, "vit": parts.vit}, loader, data.num_classes, data.ignore_index,
                           hw.device, hw.amp_dtype, hw.channels_last)
        out = {"step": state.step, "split": split,
               "cnn": named_iou(results["cnn"], data.class_names), "vit": named_iou(results["vit"], data.class_names)}
        entry = {"kind": "eval", "step": state.step, "split": split,
                 "cnn_miou": out["cnn"]["miou"], "vit_miou": out["vit"]["miou"],
                 "cnn_pixel_accuracy": out["cnn"]["pixel_accuracy"], "vit_pixel_accuracy": out["vit"]["pixel_accuracy"]}
        if loader is data.train_eval_loader:
            out["samples"] = entry["samples"] = data.train_eval_samples
            state.last_train_eval = out
        else:
            state.last_eval = out
        files.record(entry)


def evaluate_and_keep_best(config, hw, data: Data, parts: Parts, state: RunState, files: RunFiles, progress) -> None:
    """An evaluation during training; best.pt when the mean of both students' eval-split mIoU improved."""
    evaluate_now(config, hw, data, parts, state, files)
    val = state.last_eval
    mean_miou = (val["cnn"]["miou"] + val["vit"]["miou"]) / 2
    if mean_miou > state.best["miou"]:
        state.best = {"miou": mean_miou, "step": state.step,
                      "cnn_miou": val["cnn"]["miou"], "vit_miou": val["vit"]["miou"]}
        files.save_weights(files.best, config, parts, state.step, best=state.best)
    message = f"step {state.step}: {config.eval_split} mIoU cnn {val['cnn']['miou']:.4f} vit {val['vit']['miou']:.4f}"
    if state.last_train_eval is not None and state.last_train_eval["step"] == state.step:
        train = state.last_train_eval
        message += (f" | train (first {train['samples']}, unaugmented) cnn {train['cnn']['miou']:.4f} "
                    f"vit {train['vit']['miou']:.4f}")
    progress.write(message)


# ---- the loop -----------------------------------------------------------------------------

def train_loop(config, dist, hw: Hardware, data: Data, parts: Parts, state: RunState, files: RunFiles,
               progress) -> bool:
    """Step until config.steps (returns True) or stop_at_step (returns False, last.pt written)."""
    meter = LossMeter()
    warmup_steps = round(config.lr_warmup * config.steps)
    data.sampler.set_position(state.epoch, state.position * config.batch_size)
    data.train_set.set_epoch(state.epoch)  # augmentation of epoch e; set before the loader's workers fetch anything
    batches = iter(data.train_loader)
    for module in (parts.cnn, parts.vit, parts.loss_fn):
        module.train()
    with StopOnSignal() as stop:
        while state.step < config.steps:
            t0 = time.perf_counter()
            try:
                images, labels = next(batches)
            except StopIteration:  # next epoch: a new order, new augmentation
                state.epoch, state.position = state.epoch + 1, 0
                data.sampler.set_position(state.epoch, 0)
                data.train_set.set_epoch(state.epoch)
                batches = iter(data.train_loader)
                continue
            images, labels = to_device(images, labels, hw.device, hw.channels_last)
            set_lr(parts.opt_cnn, state.step, config.steps, config.poly_power)
            set_lr(parts.opt_vit, state.step, config.steps, config.poly_power, warmup_steps)
            terms = train_step(parts.cnn_step, parts.vit_step, parts.loss_step, parts.opt_cnn, parts.opt_vit,
                               parts.scaler, images, labels, state.step / config.steps, hw.amp_dtype)
            state.step, state.position = state.step + 1, state.position + 1
            step = state.step
            meter.add(terms)
            # Host time (data wait included); on a GPU the device catches up at the next log,
            # so over many steps this is the true training time.
            state.train_time += time.perf_counter() - t0
            progress.step()

            if step % config.log_interval == 0 or step == config.steps:
                log_losses(config, dist, parts, state, meter, files, progress)
            if step % config.eval_interval == 0 or step == config.steps:
                log_losses(config, dist, parts, state, meter, files, progress)
                evaluate_and_keep_best(config, hw, data, parts, state, files, progress)
                meter.restart_clock()
            # A signal reaches one rank only: under DDP the ranks agree at log steps (one tiny all-reduce).
            signalled = stop.signum is not None
            if dist.enabled:
                signalled = step % config.log_interval == 0 and distributed.any_rank(signalled, hw.device)
            stop_here = config.stop_at_step is not None and step == config.stop_at_step and step < config.steps
            if step % config.checkpoint_interval == 0 or step == config.steps or signalled or stop_here:
                log_losses(config, dist, parts, state, meter, files, progress)  # never save weights of a NaN loss
                files.save_last(config, parts, state)
                meter.restart_clock()
            if step in config.snapshot_steps:
                if meter.pending:  # the same check, without logging (a log record here would change history)
                    meter.check_finite(step, kept_checkpoint(files, state))
                files.save_weights(snapshot_path(files.dir, step), config, parts, step)
            if signalled:
                signum = stop.signum or signal.SIGTERM
                message = (f"{signal.Signals(signum).name} at step {step}: checkpoint written to {files.last}; "
                           f"continue with resume=True (--resume)")
                progress.write(message)
                raise TrainingInterrupted(message, signum)
            if stop_here:
                progress.write(f"stopped at step {step} (stop_at_step); checkpoint {files.last}")
                return False
    return True


# ---- the end ------------------------------------------------------------------------------

def evaluate_at_end(config, dist, hw: Hardware, data: Data, parts: Parts, state: RunState, files: RunFiles):
    """The last step's eval-split (and training-subset) numbers unless just taken; the test split once.
    Returns the test split's numbers (None when config.test_split is None)."""
    if state.last_eval is None or state.last_eval["step"] != state.step:
        evaluate_now(config, hw, data, parts, state, files)
    if data.test_set is None:
        return None
    test_set = data.test_set
    loader = make_loader(Subset(test_set, range(dist.rank, len(test_set), dist.world_size)), config, device=hw.device)
    results = evaluate({"cnn": parts.cnn, "vit": parts.vit}, loader, data.num_classes, data.ignore_index,
                       hw.device, hw.amp_dtype, hw.channels_last)
    test = {"split": config.test_split, "step": state.step,
            **{name: named_iou(result, data.class_names) for name, result in results.items()}}
    files.record({"kind": "test", "step": state.step, "split": config.test_split,
                  "cnn_miou": test["cnn"]["miou"], "vit_miou": test["vit"]["miou"]})
    return test


def write_metrics(config, dist, hw: Hardware, data: Data, state: RunState, files: RunFiles, test) -> None:
    """metrics.json (rank 0)."""
    if not files.main:
        return
    images_per_step = config.batch_size * dist.world_size
    write_json(files.dir / "metrics.json", {
        "method": config.method, "dataset": config.dataset,
        "synthetic": bool(getattr(data.train_set, "synthetic", False)),
        "cnn": config.cnn, "vit": config.vit, "seed": config.seed,
        "steps": state.step, "epochs": state.epoch + state.position / data.steps_per_epoch,
        "world_size": dist.world_size, "device": str(hw.device), "precision": hw.precision,
        "train_time_s": state.train_time, "wall_time_s": state.wall_time(),
        "images_per_s": state.step * images_per_step / max(state.train_time, 1e-9),
        "class_names": data.class_names,
        "final_val": state.last_eval,    # the weights at the last step, on the eval split
        "best_val": state.best,          # the step with the best mean of both students' eval-split mIoU (best.pt)
        "test": test,                    # the last step's weights on the test split, evaluated once, here
        "final_train": state.last_train_eval,  # the last step's weights on the first N training items, unaugmented
    })


# ---- the training run ---------------------------------------------------------------------

def train(config: TrainConfig) -> Path:
    """Train both students as `config` says; returns the run directory.

    Raises TrainingInterrupted after writing a checkpoint when SIGINT/SIGTERM
    arrives, FloatingPointError naming the step and the loss term when a loss
    becomes NaN/inf (the last good checkpoint is kept), FileExistsError when
    run_dir holds a run and neither resume nor overwrite is set, SetupError
    (a ValueError) for settings that cannot run."""
    dist = distributed.init_distributed()
    try:
        state = RunState()  # its clock starts now
        hw = choose_hardware(config, dist)
        run_dir, checkpoint = prepare_run_dir(config)
        if checkpoint is not None and checkpoint["step"] >= config.steps and (run_dir / "metrics.json").exists():
            if dist.is_main:  # a finished run is left as it is: nothing is rebuilt, re-scored or rewritten
                print(f"{run_dir} is finished (step {checkpoint['step']}, metrics.json); nothing to do",
                      file=sys.stderr)
            return run_dir
        data = build_data(config, dist, hw.device)
        parts = build_parts(config, dist, hw, data)
        if checkpoint is not None:
            restore(checkpoint, parts, dist, state)
        wrap_for_speed(config, dist, hw, parts)
        files = RunFiles.open(config, run_dir, dist, hw, parts, state, resumed=checkpoint is not None)
        progress = Progress(config.progress, config.steps, state.step, dist.is_main)
        try:
            if checkpoint is not None:
                progress.write(f"resuming {run_dir} at step {state.step}/{config.steps}")
            if not train_loop(config, dist, hw, data, parts, state, files, progress):
                return run_dir  # stopped at stop_at_step: no final numbers
            progress.close()
            test = evaluate_at_end(config, dist, hw, data, parts, state, files)
        finally:
            progress.close()
            files.close()
        write_metrics(config, dist, hw, data, state, files, test)
        return run_dir
    finally:
        distributed.cleanup()


def main(argv=None) -> None:
    """The command line. A user error (a run in the way, a dataset problem, settings that cannot run)
    prints one paragraph and exits with 2, without a traceback; a signal exits with 128 + its number."""
    config = parse_args(argv)
    try:
        run_dir = train(config)
    except TrainingInterrupted as stop:
        sys.exit(128 + stop.signum)  # the shell convention for "ended by a signal"; the checkpoint is safe
    except (FileExistsError, DatasetError, SetupError) as error:
        print(f"error: {user_message(error)}", file=sys.stderr)
        sys.exit(2)
    except FloatingPointError as error:  # a loss became NaN/inf: the message names the step, the term, the checkpoint
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"run directory: {run_dir}")


if __name__ == "__main__":
    main()
