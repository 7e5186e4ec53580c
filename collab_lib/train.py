"""Train a CNN student and a ViT student together: `train(config)` and its command line.

    python -m collab_lib.train --method collab --steps 2000
    torchrun --nproc_per_node=4 -m collab_lib.train --dataset cityscapes --data-root /data/cityscapes ...

One step (`train_step`, called by the loop in `train`):
  1. the same batch goes through both students (one forward each);
  2. `CollaborativeLoss` turns both outputs and the labels into one scalar
     (CE of each student + the distillation terms of the chosen method);
  3. one backward; the CNN's SGD and the ViT's AdamW (which also holds the
     loss module's projectors/connectors, see collab_lib/optim.py) both step.

The run directory (rank 0 writes it):
  config.json     the full TrainConfig, library versions, git commit, device, precision
  history.jsonl   one JSON object per line: {"kind": "train", "step", every loss term, "lr_cnn",
                  "lr_vit", "images_per_s"} at log intervals, {"kind": "eval", "step", "split",
                  "cnn_miou", "vit_miou", ...} at evaluations; {"kind": "test", ...} once at the end
  metrics.json    final and best val mIoU, per-class IoU of both students, the test split's numbers
  last.pt         written every `checkpoint_interval` steps, at the end and on SIGINT/SIGTERM
  best.pt         weights only, at the evaluation with the best mean val mIoU of the two students
Checkpoints: see collab_lib/checkpoint.py. Multi-process: collab_lib/distributed.py.

Stopping: Ctrl-C (SIGINT) or SIGTERM finishes the current step, writes last.pt
and raises TrainingInterrupted (the command line exits with 130 / 143, the
shell's "ended by a signal" codes); `resume=True` (--resume) continues exactly.
A NaN/inf loss raises FloatingPointError naming the step and the term; last.pt
then still holds the last good step (the check runs before every checkpoint).

Speed without surprises: the loss values stay on the device and are read only
at log intervals (reading a GPU value waits for the GPU to finish: doing it
every step would stall the pipeline); CUDA is only asked anything after
torch.cuda.is_available() said yes.
"""
import json
import os
import platform
import random
import signal
import subprocess
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Subset

from . import __version__
from . import distributed
from .checkpoint import get_rng_state, load_checkpoint, save_checkpoint, set_rng_state, write_json
from .config import RUNTIME_FIELDS, TrainConfig, parse_args
from .data import build_dataset
from .losses import CollaborativeLoss
from .metrics import ConfusionMatrix
from .models import build_student, check_input_size, count_parameters
from .optim import build_optimizers, set_lr


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived; a checkpoint was written. `resume=True` continues from it."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


# ---- device and precision -----------------------------------------------------------------

def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """"auto" -> cuda:<local_rank> when CUDA is available, else cpu. Asking for cuda without one is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device='cuda' but torch.cuda.is_available() is False; use device='auto' or 'cpu'")
        return torch.device("cuda", local_rank)
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise RuntimeError("device='mps' but this torch build or machine has no MPS; use device='auto' or 'cpu'")
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


# ---- data ---------------------------------------------------------------------------------

def build_students(config: TrainConfig, num_classes: int):
    """The two students a config describes: (cnn, vit), freshly initialised (or from local/timm weights)."""
    cnn = build_student(config.cnn, num_classes, pretrained=config.pretrained, backbone_weights=config.cnn_weights,
                        aspp_channels=config.cnn_decoder_channels, decoder_channels=config.cnn_decoder_channels)
    vit = build_student(config.vit, num_classes, pretrained=config.pretrained, backbone_weights=config.vit_weights,
                        decoder_channels=config.vit_decoder_channels)
    return cnn, vit


def make_dataset(config: TrainConfig, split: str, train: bool):
    """The dataset for `split`. Training items are augmented and cropped to `crop_size`;
    evaluation items are not augmented and come at `image_size`."""
    options = {}
    if config.dataset == "streets":
        count = {"train": config.train_samples, "val": config.val_samples, "test": config.test_samples}.get(split)
        options = dict(size=config.image_size, endless=config.endless and train)
        if count is not None:
            options["num_samples"] = count
        eval_crop = None  # scenes are generated at image_size already: score labels at full resolution
    else:
        eval_crop = config.image_size  # real images of varied sizes: resize to one batchable size
    return build_dataset(
        config.dataset, root=config.data_root, split=split, seed=config.data_seed,
        crop_size=config.crop_size if train else eval_crop,
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


# ---- logging ------------------------------------------------------------------------------

class Progress:
    """tqdm bar (notebook flavour inside Jupyter) on a terminal, plain log lines otherwise."""

    def __init__(self, mode: str, total: int, initial: int, enabled: bool):
        if mode == "auto":
            in_notebook = "ipykernel" in sys.modules
            mode = "bar" if in_notebook or (sys.stdout.isatty() and sys.stderr.isatty()) else "log"
        self.mode = mode if enabled else "none"
        self.bar = None
        if self.mode == "bar":
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def show(self, summary: str, line: str) -> None:
        """summary: short, for the bar's postfix; line: the full plain log line."""
        if self.bar is not None:
            self.bar.set_postfix_str(summary, refresh=False)
        elif self.mode == "log":
            print(line, flush=True)

    def write(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message)
        elif self.mode != "none":
            print(message, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def format_seconds(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def git_head() -> str | None:
    """The commit checked out where this file lies (None outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).resolve().parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# Read once, when the library is imported: a long-lived process (a grid worker training run after run)
# keeps executing the code it imported even after the checkout moves on to later commits.
CODE_COMMIT = git_head()


def run_info(config: TrainConfig, device, precision, world_size) -> dict:
    """config.json: everything needed to know what produced a run.

    "git_commit" is the commit of the code this process imported (CODE_COMMIT); "git_head_at_start"
    the checkout's commit when the run started, which differs when the checkout moved on meanwhile.
    """
    import timm
    return {
        "config": config.to_dict(),
        "seed": config.seed,
        "versions": {"collab_lib": __version__, "python": platform.python_version(), "torch": torch.__version__,
                     "timm": timm.__version__, "numpy": np.__version__},
        "git_commit": CODE_COMMIT, "git_head_at_start": git_head(),
        "device": str(device), "precision": precision, "world_size": world_size,
        "host": platform.node(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


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


# ---- the training run ---------------------------------------------------------------------

def default_run_dir(config: TrainConfig) -> Path:
    return Path("runs") / f"{config.dataset}-{config.method}-seed{config.seed}"


def train(config: TrainConfig) -> Path:
    """Train both students as `config` says; returns the run directory.

    Raises TrainingInterrupted after writing a checkpoint when SIGINT/SIGTERM
    arrives, and FloatingPointError naming the step and the loss term when a
    loss becomes NaN/inf (the last good checkpoint is kept)."""
    dist = distributed.init_distributed()
    try:
        return _train(config, dist)
    finally:
        distributed.cleanup()


def _train(config: TrainConfig, dist: distributed.DistInfo) -> Path:
    wall_start = time.perf_counter()
    device = resolve_device(config.device, dist.local_rank)
    precision = resolve_precision(config.precision, device)
    amp_dtype = AMP_DTYPES[precision]
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels once
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls/convs on tensor cores (Ampere+)
        torch.backends.cudnn.allow_tf32 = True
    for size in (config.image_size, config.crop_size):
        if size is not None:
            check_input_size(*size)  # fail now with the nearest valid size, not after building everything

    run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(config)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    checkpoint = None
    if last_path.exists() and config.resume:
        checkpoint = load_checkpoint(last_path)
        changed = {k: (v, getattr(config, k)) for k, v in checkpoint["config"].items()
                   if k not in RUNTIME_FIELDS and hasattr(config, k) and _plain(getattr(config, k)) != _plain(v)}
        if changed:
            detail = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
            raise ValueError(f"resume: {last_path} was trained with different settings ({detail}); "
                             f"use the original settings, or another run_dir")
    elif last_path.exists() and not config.overwrite:
        raise FileExistsError(f"{run_dir} already holds a run (last.pt). Pass resume=True (--resume) to continue it, "
                              f"overwrite=True (--overwrite) to start it again, or choose another run_dir")

    # ---- data -----------------------------------------------------------------------------
    train_set = make_dataset(config, "train", train=True)
    eval_set = make_dataset(config, config.eval_split, train=False)
    num_classes, ignore_index = train_set.num_classes, train_set.ignore_index
    class_names = list(train_set.class_names)
    sampler = distributed.ResumableSampler(train_set, dist.world_size, dist.rank, seed=config.seed)
    train_loader = make_loader(train_set, config, sampler, config.seed, device, drop_last=True)
    steps_per_epoch = len(train_loader)  # now, while the sampler starts at 0 (after a resume it starts later)
    if steps_per_epoch == 0:
        raise ValueError(f"the training split has {len(train_set)} items: fewer than one batch of "
                         f"{config.batch_size} per process x {dist.world_size} processes")
    # Evaluation: rank r scores items r, r+N, r+2N, ...: every item exactly once, no padding duplicates.
    shard = lambda ds: Subset(ds, range(dist.rank, len(ds), dist.world_size))  # noqa: E731
    eval_loader = make_loader(shard(eval_set), config, device=device)

    # ---- students, loss, optimizers (same seed on every rank: identical initial weights) ----
    seed_everything(config.seed)
    cnn, vit = build_students(config, num_classes)
    loss_fn = CollaborativeLoss(
        cnn, vit, method=config.method, w_hfd=config.w_hfd, w_region=config.w_region, w_pixel=config.w_pixel,
        use_hfd=config.use_hfd, use_region=config.use_region, use_pixel=config.use_pixel,
        region_size=config.region_size, temperature=config.temperature, require_correct=config.require_correct,
        require_learner_wrong=config.require_learner_wrong,
        warmup=config.warmup, ignore_index=ignore_index,
    )
    # Channels-last (NHWC) suits tensor cores. On CPU it is opt-in: an early measurement found it ~1.6x slower;
    # with torch 2.14.1 on a 2-core CPU the step was ~11 % faster (benchmarks/RESULTS.md, Run 5), but switching
    # the default would change every committed CPU run (float rounding, and which elements the CNN's dropout drops).
    channels_last = device.type == "cuda" if config.channels_last is None else config.channels_last
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    for module in (cnn, vit, loss_fn):
        module.to(device=device, memory_format=memory_format)
    opt_cnn, opt_vit = build_optimizers(cnn, vit, loss_fn, config, device)
    # fp16 needs loss scaling (its small exponent range underflows gradients); bf16 and fp32 do not.
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    # Dropout must differ between ranks (they see different images anyway); rank 0 keeps `seed`.
    seed_everything(config.seed + 1_000_003 * dist.rank)

    step, epoch, position, train_time, wall_before = 0, 0, 0, 0.0, 0.0
    best = {"miou": -1.0, "step": None}
    last_eval = None
    if checkpoint is not None:
        cnn.load_state_dict(checkpoint["cnn"])
        vit.load_state_dict(checkpoint["vit"])
        loss_fn.load_state_dict(checkpoint["loss"])
        opt_cnn.load_state_dict(checkpoint["opt_cnn"])
        opt_vit.load_state_dict(checkpoint["opt_vit"])
        if checkpoint["scaler"]:
            scaler.load_state_dict(checkpoint["scaler"])
        step, epoch, position = checkpoint["step"], checkpoint["epoch"], checkpoint["position"]
        train_time, best, last_eval = checkpoint["train_time_s"], checkpoint["best"], checkpoint["last_eval"]
        wall_before = checkpoint["wall_time_s"]  # earlier sessions of this run
        rng = checkpoint["rng"]
        set_rng_state(rng[dist.rank] if len(rng) == dist.world_size else rng[0])

    # ---- wrappers: compile, then DDP (their state_dicts are never saved; `cnn` etc. are) ------
    cnn_step, vit_step, loss_step = cnn, vit, loss_fn
    if config.compile:
        cnn_step, vit_step = torch.compile(cnn), torch.compile(vit)
        loss_fn.compile_terms()
    if dist.enabled:
        device_ids = [device.index] if device.type == "cuda" else None
        cnn_step = DDP(cnn_step, device_ids=device_ids)
        vit_step = DDP(vit_step, device_ids=device_ids)
        if any(p.requires_grad for p in loss_fn.parameters()):  # projectors/connectors: average their gradients too
            loss_step = DDP(loss_fn, device_ids=device_ids)

    # ---- the run directory (rank 0) ----------------------------------------------------------
    history_path = run_dir / "history.jsonl"
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        info = run_info(config, device, precision, dist.world_size)
        info["channels_last"] = channels_last
        info["resumed_from_step"] = step if checkpoint is not None else None
        info["parameters"] = {"cnn": count_parameters(cnn), "vit": count_parameters(vit), "loss": count_parameters(loss_fn)}
        write_json(run_dir / "config.json", info)
        _truncate_history(history_path, step)  # records written after the checkpoint we resume from are void
        if checkpoint is None:  # a fresh (or overwritten) run: nothing of an earlier one may survive
            for stale in ("metrics.json", "best.pt"):
                (run_dir / stale).unlink(missing_ok=True)
    history = open(history_path, "a") if dist.is_main else None

    def record(entry: dict) -> None:
        if history is not None:
            history.write(json.dumps(entry) + "\n")
            history.flush()

    def state() -> dict:
        """Everything a resume needs (collective under DDP: every rank must call it)."""
        return {
            "step": step, "epoch": epoch, "position": position, "train_time_s": train_time,
            "wall_time_s": wall_before + time.perf_counter() - wall_start,
            "cnn": cnn.state_dict(), "vit": vit.state_dict(), "loss": loss_fn.state_dict(),
            "opt_cnn": opt_cnn.state_dict(), "opt_vit": opt_vit.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else {},
            "rng": distributed.all_gather_objects(get_rng_state()),
            "best": best, "last_eval": last_eval, "config": config.to_dict(),
        }

    def save(path) -> None:
        snapshot = state()
        if dist.is_main:
            save_checkpoint(path, snapshot)

    def save_best() -> None:
        """best.pt: the weights only (for evaluation and notebooks), half the size of last.pt."""
        if dist.is_main:
            save_checkpoint(best_path, {"step": step, "cnn": cnn.state_dict(), "vit": vit.state_dict(),
                                        "loss": loss_fn.state_dict(), "best": best, "config": config.to_dict()})

    def run_eval() -> dict:
        results = evaluate({"cnn": cnn, "vit": vit}, eval_loader, num_classes, ignore_index, device,
                           amp_dtype, channels_last)
        out = {"step": step, "split": config.eval_split,
               "cnn": named_iou(results["cnn"], class_names), "vit": named_iou(results["vit"], class_names)}
        record({"kind": "eval", "step": step, "split": config.eval_split,
                "cnn_miou": out["cnn"]["miou"], "vit_miou": out["vit"]["miou"],
                "cnn_pixel_accuracy": out["cnn"]["pixel_accuracy"], "vit_pixel_accuracy": out["vit"]["pixel_accuracy"]})
        return out

    # ---- the loop ---------------------------------------------------------------------------
    warmup_steps = round(config.lr_warmup * config.steps)
    images_per_step = config.batch_size * dist.world_size
    progress = Progress(config.progress, config.steps, step, dist.is_main)
    if dist.is_main and checkpoint is not None:
        progress.write(f"resuming {run_dir} at step {step}/{config.steps}")
    last_saved_step = step if checkpoint is not None else None
    pending = []          # per step: a device tensor of the loss terms, read at the next log
    term_names = None
    interval_start, interval_steps = time.perf_counter(), 0

    def flush() -> None:
        """Read the pending loss terms (one host-device sync), check them, log their means."""
        nonlocal pending, interval_start, interval_steps
        if not pending:
            return
        values = torch.stack(pending).cpu()  # (steps since last flush, terms)
        first_step = step - len(pending) + 1
        bad = ~torch.isfinite(values)
        if bad.any():
            row = int(bad.any(dim=1).nonzero()[0])
            names = [n for n, b in zip(term_names, bad[row]) if b]
            kept = f"{last_path} (step {last_saved_step})" if last_saved_step is not None else "none yet"
            raise FloatingPointError(
                f"loss is not finite at step {first_step + row}: {', '.join(names)} = "
                f"{', '.join(str(float(values[row, term_names.index(n)])) for n in names)}. Training stopped; "
                f"last good checkpoint: {kept}. Try a lower learning rate, smaller loss weights or precision='fp32'.")
        elapsed = time.perf_counter() - interval_start
        means = dict(zip(term_names, values.mean(dim=0).tolist()))
        speed = interval_steps * images_per_step / max(elapsed, 1e-9)
        entry = {"kind": "train", "step": step, "epoch": epoch, **means,
                 "lr_cnn": opt_cnn.param_groups[0]["lr"], "lr_vit": opt_vit.param_groups[0]["lr"], "images_per_s": speed}
        record(entry)
        eta = (config.steps - step) * images_per_step / max(speed, 1e-9)
        shown = {k: v for k, v in means.items() if not k.endswith("teaches") and k != "ramp"}
        progress.show(" ".join(f"{k} {v:.3f}" for k, v in shown.items()),
                      f"step {step}/{config.steps} | " + " ".join(f"{k} {v:.4f}" for k, v in means.items())
                      + f" | lr {entry['lr_cnn']:.2e}/{entry['lr_vit']:.2e} | {speed:.1f} img/s | eta {format_seconds(eta)}")
        pending = []
        interval_start, interval_steps = time.perf_counter(), 0

    sampler.set_position(epoch, position * config.batch_size)
    train_set.set_epoch(epoch)  # augmentation of epoch e; set before the loader's workers fetch anything
    batches = iter(train_loader)
    for module in (cnn, vit, loss_fn):
        module.train()
    try:
        with StopOnSignal() as stop:
            while step < config.steps:
                t0 = time.perf_counter()
                try:
                    images, labels = next(batches)
                except StopIteration:  # next epoch: a new order, new augmentation
                    epoch, position = epoch + 1, 0
                    sampler.set_position(epoch, 0)
                    train_set.set_epoch(epoch)
                    batches = iter(train_loader)
                    continue
                images, labels = to_device(images, labels, device, channels_last)
                set_lr(opt_cnn, step, config.steps, config.poly_power)
                set_lr(opt_vit, step, config.steps, config.poly_power, warmup_steps)
                terms = train_step(cnn_step, vit_step, loss_step, opt_cnn, opt_vit, scaler, images, labels,
                                   step / config.steps, amp_dtype)
                step, position, interval_steps = step + 1, position + 1, interval_steps + 1
                if term_names is None:
                    term_names = list(terms)
                pending.append(torch.stack([terms[n].float() for n in term_names]))  # stays on the device
                # Host time (data wait included); on a GPU the device catches up at the next flush,
                # so over many steps this is the true training time.
                train_time += time.perf_counter() - t0
                progress.step()

                if step % config.log_interval == 0 or step == config.steps:
                    flush()
                if step % config.eval_interval == 0 or step == config.steps:
                    flush()
                    last_eval = run_eval()
                    mean_miou = (last_eval["cnn"]["miou"] + last_eval["vit"]["miou"]) / 2
                    if mean_miou > best["miou"]:
                        best = {"miou": mean_miou, "step": step,
                                "cnn_miou": last_eval["cnn"]["miou"], "vit_miou": last_eval["vit"]["miou"]}
                        save_best()
                    progress.write(f"step {step}: {config.eval_split} mIoU cnn {last_eval['cnn']['miou']:.4f} "
                                   f"vit {last_eval['vit']['miou']:.4f}")
                    interval_start = time.perf_counter()  # throughput counts training, not evaluation
                # A signal reaches one rank only: under DDP the ranks agree at log steps (one tiny all-reduce).
                signalled = stop.signum is not None
                if dist.enabled:
                    signalled = step % config.log_interval == 0 and distributed.any_rank(signalled, device)
                stop_here = config.stop_at_step is not None and step == config.stop_at_step and step < config.steps
                if step % config.checkpoint_interval == 0 or step == config.steps or signalled or stop_here:
                    flush()  # never checkpoint weights that came from a non-finite loss
                    save(last_path)
                    last_saved_step = step
                    interval_start = time.perf_counter()
                if signalled:
                    signum = stop.signum or signal.SIGTERM
                    message = (f"{signal.Signals(signum).name} at step {step}: checkpoint written to {last_path}; "
                               f"continue with resume=True (--resume)")
                    progress.write(message)
                    raise TrainingInterrupted(message, signum)
                if stop_here:
                    progress.write(f"stopped at step {step} (stop_at_step); checkpoint {last_path}")
                    return run_dir
        progress.close()

        # ---- the end: final val numbers (unless just done), the test split once, metrics.json ----
        if last_eval is None or last_eval["step"] != step:
            last_eval = run_eval()
        test = None
        if config.test_split:
            test_set = make_dataset(config, config.test_split, train=False)
            test_results = evaluate({"cnn": cnn, "vit": vit}, make_loader(shard(test_set), config, device=device),
                                    num_classes, ignore_index, device, amp_dtype, channels_last)
            test = {"split": config.test_split, "step": step,
                    **{name: named_iou(result, class_names) for name, result in test_results.items()}}
            record({"kind": "test", "step": step, "split": config.test_split,
                    "cnn_miou": test["cnn"]["miou"], "vit_miou": test["vit"]["miou"]})
    finally:
        progress.close()
        if history is not None:
            history.close()
    if dist.is_main:
        write_json(run_dir / "metrics.json", {
            "method": config.method, "dataset": config.dataset, "synthetic": bool(getattr(train_set, "synthetic", False)),
            "cnn": config.cnn, "vit": config.vit, "seed": config.seed,
            "steps": step, "epochs": epoch + position / steps_per_epoch, "world_size": dist.world_size,
            "device": str(device), "precision": precision,
            "train_time_s": train_time, "wall_time_s": wall_before + time.perf_counter() - wall_start,
            "images_per_s": step * images_per_step / max(train_time, 1e-9),
            "class_names": class_names,
            "final_val": last_eval,   # the weights at the last step, on the eval split
            "best_val": best,         # the step with the best mean of both students' eval-split mIoU (best.pt)
            "test": test,             # the last step's weights on the test split, evaluated once, here
        })
    return run_dir


def _plain(value):
    """Tuples and lists compare equal (a checkpoint's config went through a list-making round trip)."""
    return list(value) if isinstance(value, (tuple, list)) else value


def _truncate_history(path: Path, step: int) -> None:
    """Keep only the history records up to `step` (atomically), dropping what a killed run wrote after its
    checkpoint, and the test record (written after the last checkpoint; the end of the run writes it again)."""
    if not path.exists():
        return
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    kept = [json.dumps(r) for r in records if r["step"] <= step and r["kind"] != "test"]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)


def main(argv=None) -> None:
    config = parse_args(argv)
    try:
        run_dir = train(config)
    except TrainingInterrupted as stop:
        sys.exit(128 + stop.signum)  # the shell convention for "ended by a signal"; the checkpoint is safe
    except FileExistsError as error:  # an earlier run is in the way: say what to do, no traceback
        sys.exit(f"error: {error}")
    print(f"run directory: {run_dir}")


if __name__ == "__main__":
    main()
