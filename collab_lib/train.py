"""Train a CNN student and a ViT student together: `train(config)` and its command line.

    python -m collab_lib.train --method collab --steps 2000
    torchrun --nproc_per_node=4 -m collab_lib.train --dataset cityscapes --data-root /data/cityscapes ...

`train(config)` reads top to bottom as the steps of a run:
  choose_hardware     device, precision, memory format (collab_lib/hardware.py)
  prepare_run_dir     refuse to overwrite a run by accident; load last.pt when resuming (collab_lib/rundir.py)
  build_data          the training set and its resumable sampler, the eval split, a fixed
                      training subset scored unaugmented (the generalisation gap) (collab_lib/loaders.py)
  build_parts         both students, the loss (collab_lib/students.py), both optimisers (collab_lib/optim.py)
  restore, wrap       a resumed run's state (rundir.restore); torch.compile and DDP wrappers
  RunFiles.open       config.json (collab_lib/runinfo.py), history.jsonl: the run directory (collab_lib/rundir.py)
  train_loop          the steps, with logging, evaluation, checkpoints, snapshots, signals
  evaluate_at_end     the last step's val numbers (unless just taken), the test split once
  write_metrics       metrics.json

One step (`train_step`):
  1. the same batch goes through both students (one forward each);
  2. `CollaborativeLoss` turns both outputs and the labels into one scalar
     (CE of each student + the distillation terms of the chosen method);
  3. one backward; the CNN's SGD and the ViT's AdamW (which also holds the
     loss module's projectors/connectors, see collab_lib/optim.py) both step.

Stopping: Ctrl-C (SIGINT) or SIGTERM finishes the current step, writes last.pt
and raises TrainingInterrupted (the command line exits with 130 / 143, the
shell's "ended by a signal" codes); `resume=True` (--resume) continues exactly,
and leaves a finished run as it is. A NaN/inf loss raises FloatingPointError
naming the step and the term; last.pt then still holds the last good step (the
check runs before every evaluation and checkpoint). Multi-process: collab_lib/distributed.py.

Speed without surprises: the loss values stay on the device and are read only
at log intervals (collab_lib/loss_meter.py: reading a GPU value waits for the
GPU to finish, so doing it every step would stall the pipeline).
"""
import random
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import Subset

from . import distributed
from .checkpoint import snapshot_path, write_json
from .config import TrainConfig, parse_args
from .data import DatasetError
from .errors import SetupError, TrainingInterrupted, user_message
from .hardware import Hardware, choose_hardware
from .loaders import Data, build_data, make_loader, to_device
from .loss_meter import LossMeter
from .metrics import ConfusionMatrix
from .models import count_parameters
from .optim import build_optimizers, set_lr
from .progress import Progress, loss_text
from .rundir import RunFiles, prepare_run_dir, restore
from .runinfo import run_info
from .signals import StopOnSignal
from .students import build_loss, build_students


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds every CUDA device too, without initialising CUDA


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


def session_info(config: TrainConfig, dist: distributed.DistInfo, hw: Hardware, parts: Parts, state: RunState,
                resumed: bool) -> dict:
    """What config.json records of this session: collab_lib.runinfo.run_info, the memory format, the
    step it resumed from and the parameter counts."""
    info = run_info(config, hw.device, hw.precision, dist.world_size)
    info["channels_last"] = hw.channels_last
    info["resumed_from_step"] = state.step if resumed else None
    info["parameters"] = {name: count_parameters(getattr(parts, name)) for name in ("cnn", "vit")}
    info["parameters"]["loss"] = count_parameters(parts.loss_fn)
    return info


# ---- the loop -----------------------------------------------------------------------------

@dataclass
class Run:
    """What the loop works with, built once by `train`: the settings, this process, the data, what learns,
    where the run stands, its files and what it shows."""
    config: TrainConfig
    dist: distributed.DistInfo
    hw: Hardware
    data: Data
    parts: Parts
    state: RunState
    files: RunFiles
    progress: Progress


def log_losses(run: Run, meter: LossMeter) -> None:
    """Read the pending loss terms (one host-device sync), check them, log their means."""
    if not meter.pending:
        return
    config, state, parts = run.config, run.state, run.parts
    steps = meter.steps
    means, elapsed = meter.read(state.step, run.files.kept_checkpoint(state.last_saved_step))
    images_per_step = config.batch_size * run.dist.world_size
    speed = steps * images_per_step / max(elapsed, 1e-9)
    entry = {"kind": "train", "step": state.step, "epoch": state.epoch, **means,
             "lr_cnn": parts.opt_cnn.param_groups[0]["lr"], "lr_vit": parts.opt_vit.param_groups[0]["lr"],
             "images_per_s": speed}
    run.files.record(entry)
    eta = (config.steps - state.step) * images_per_step / max(speed, 1e-9)
    run.progress.show(*loss_text(state.step, config.steps, means, entry["lr_cnn"], entry["lr_vit"], speed, eta))


def evaluate_now(run: Run) -> None:
    """Both students on the eval split and on the training subset: history records, state.last_*eval."""
    data, hw, state = run.data, run.hw, run.state
    for split, loader in ((run.config.eval_split, data.eval_loader), ("train", data.train_eval_loader)):
        if loader is None:
            continue
        results = evaluate({"cnn": run.parts.cnn, "vit": run.parts.vit}, loader, data.num_classes, data.ignore_index,
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
        run.files.record(entry)


def evaluate_and_keep_best(run: Run) -> None:
    """An evaluation during training; best.pt when the mean of both students' eval-split mIoU improved."""
    evaluate_now(run)
    state, val = run.state, run.state.last_eval
    mean_miou = (val["cnn"]["miou"] + val["vit"]["miou"]) / 2
    if mean_miou > state.best["miou"]:
        state.best = {"miou": mean_miou, "step": state.step, "cnn_miou": val["cnn"]["miou"], "vit_miou": val["vit"]["miou"]}
        run.files.save_weights(run.files.best, run.config, run.parts, state.step, best=state.best)
    message = f"step {state.step}: {run.config.eval_split} mIoU cnn {val['cnn']['miou']:.4f} vit {val['vit']['miou']:.4f}"
    if state.last_train_eval is not None and state.last_train_eval["step"] == state.step:
        train = state.last_train_eval
        message += (f" | train (first {train['samples']}, unaugmented) cnn {train['cnn']['miou']:.4f} "
                    f"vit {train['vit']['miou']:.4f}")
    run.progress.write(message)


def train_loop(run: Run) -> bool:
    """Step until config.steps (returns True) or stop_at_step (returns False, last.pt written)."""
    config, data, parts, state, files = run.config, run.data, run.parts, run.state, run.files
    meter = LossMeter()
    warmup_steps = round(config.lr_warmup * config.steps)
    batches = data.batches(state.epoch, state.position)
    for module in (parts.cnn, parts.vit, parts.loss_fn):
        module.train()
    with StopOnSignal() as stop:
        while state.step < config.steps:
            t0 = time.perf_counter()
            try:
                images, labels = next(batches)
            except StopIteration:  # next epoch: a new order, new augmentation
                state.epoch, state.position = state.epoch + 1, 0
                batches = data.batches(state.epoch, 0)
                continue
            images, labels = to_device(images, labels, run.hw.device, run.hw.channels_last)
            set_lr(parts.opt_cnn, state.step, config.steps, config.poly_power)
            set_lr(parts.opt_vit, state.step, config.steps, config.poly_power, warmup_steps)
            terms = train_step(parts.cnn_step, parts.vit_step, parts.loss_step, parts.opt_cnn, parts.opt_vit,
                               parts.scaler, images, labels, state.step / config.steps, run.hw.amp_dtype)
            state.step, state.position = state.step + 1, state.position + 1
            step = state.step
            meter.add(terms)
            # Host time (data wait included); on a GPU the device catches up at the next log,
            # so over many steps this is the true training time.
            state.train_time += time.perf_counter() - t0
            run.progress.step()

            # A signal reaches one rank only: under DDP the ranks agree at log steps (one tiny all-reduce).
            signalled = stop.signum is not None
            if run.dist.enabled:
                signalled = step % config.log_interval == 0 and distributed.any_rank(signalled, run.hw.device)
            stop_here = config.stop_at_step is not None and step == config.stop_at_step and step < config.steps
            evaluate_here = step % config.eval_interval == 0 or step == config.steps
            save_here = step % config.checkpoint_interval == 0 or step == config.steps or signalled or stop_here
            if step % config.log_interval == 0 or evaluate_here or save_here:
                log_losses(run, meter)  # first: never evaluate or keep the weights of a NaN loss
            if evaluate_here:
                evaluate_and_keep_best(run)
                meter.restart_clock()
            if save_here:
                files.save_last(config, parts, state)
                meter.restart_clock()
            if step in config.snapshot_steps:
                if meter.pending:  # the same check, without logging (a log record here would change history)
                    meter.check_finite(step, files.kept_checkpoint(state.last_saved_step))
                files.save_weights(snapshot_path(files.dir, step), config, parts, step)
            if signalled:
                signum = stop.signum or signal.SIGTERM
                message = (f"{signal.Signals(signum).name} at step {step}: checkpoint written to {files.last}; "
                           f"continue with resume=True (--resume)")
                run.progress.write(message)
                raise TrainingInterrupted(message, signum)
            if stop_here:
                run.progress.write(f"stopped at step {step} (stop_at_step); checkpoint {files.last}")
                return False
    return True


# ---- the end ------------------------------------------------------------------------------

def evaluate_at_end(run: Run) -> dict | None:
    """The last step's eval-split (and training-subset) numbers unless just taken; the test split once.
    Returns the test split's numbers (None when config.test_split is None)."""
    config, data, hw, state = run.config, run.data, run.hw, run.state
    if state.last_eval is None or state.last_eval["step"] != state.step:
        evaluate_now(run)
    if data.test_set is None:
        return None
    shard = Subset(data.test_set, range(run.dist.rank, len(data.test_set), run.dist.world_size))
    results = evaluate({"cnn": run.parts.cnn, "vit": run.parts.vit}, make_loader(shard, config, device=hw.device),
                       data.num_classes, data.ignore_index, hw.device, hw.amp_dtype, hw.channels_last)
    test = {"split": config.test_split, "step": state.step,
            **{name: named_iou(result, data.class_names) for name, result in results.items()}}
    run.files.record({"kind": "test", "step": state.step, "split": config.test_split,
                      "cnn_miou": test["cnn"]["miou"], "vit_miou": test["vit"]["miou"]})
    return test


def write_metrics(run: Run, test: dict | None) -> None:
    """metrics.json (rank 0)."""
    if not run.files.main:
        return
    config, data, state = run.config, run.data, run.state
    images_per_step = config.batch_size * run.dist.world_size
    write_json(run.files.dir / "metrics.json", {
        "method": config.method, "dataset": config.dataset,
        "synthetic": bool(getattr(data.train_set, "synthetic", False)),
        "cnn": config.cnn, "vit": config.vit, "seed": config.seed,
        "steps": state.step, "epochs": state.epoch + state.position / data.steps_per_epoch,
        "world_size": run.dist.world_size, "device": str(run.hw.device), "precision": run.hw.precision,
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
        resumed = checkpoint is not None
        if resumed and checkpoint["step"] >= config.steps and (run_dir / "metrics.json").exists():
            if dist.is_main:  # a finished run is left as it is: nothing is rebuilt, re-scored or rewritten
                print(f"{run_dir} is finished (step {checkpoint['step']}, metrics.json); nothing to do", file=sys.stderr)
            return run_dir
        data = build_data(config, dist, hw.device)
        parts = build_parts(config, dist, hw, data)
        if resumed:
            restore(checkpoint, parts, dist, state)
        wrap_for_speed(config, dist, hw, parts)
        info = session_info(config, dist, hw, parts, state, resumed) if dist.is_main else {}
        files = RunFiles.open(run_dir, dist.is_main, info, state.step, resumed)
        run = Run(config, dist, hw, data, parts, state, files,
                  Progress(config.progress, config.steps, state.step, dist.is_main))
        try:
            if resumed:
                run.progress.write(f"resuming {run_dir} at step {state.step}/{config.steps}")
            if not train_loop(run):
                return run_dir  # stopped at stop_at_step: no final numbers
            test = evaluate_at_end(run)
        finally:
            run.progress.close()
            files.close()
        write_metrics(run, test)
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
