"""Small helpers the course notebooks need that are not plotting.

- `smoke_mode()`: the CI convention (`CI` in the environment -> tiny, fast runs).
- `course_config(smoke, **changes)`: the training the notebooks use: in smoke
  mode a tiny one (seconds on a CPU), otherwise what `make train` runs.
- `load_or_train(run_dir, config)`: "load the checkpoint if it exists,
  otherwise train" (as in the UvA deep-learning notebooks): use a finished run
  that matches, else train one with the library's `train()` and say how long it took.
- `load_students(run_dir)`: the two students (and the loss module with its
  projectors) as they were at a checkpoint, in eval mode on the CPU.
- `read_history`, `read_metrics`, `list_checkpoints`: the run directory's files.
- `first_items`, `forward_pair`: a fixed batch and both students' outputs on it.
- `teaching_by_class`: which student teaches how much of each class.
- `hfd_projections`: HFD's loss and its projectors' outputs, for pictures.
- `linear_cka`: how alike two students' features are, without any projector.
- `seconds_per_image`: a student's forward time.
"""
import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path

import torch

from .checkpoint import read_history as read_history_file
from .checkpoint import snapshot_path  # noqa: F401  (the notebooks call course.snapshot_path)
from .config import RUNTIME_FIELDS, TrainConfig, convert_setting, plain
from .losses.common import channels_last
from .students import load_students  # noqa: F401  (the notebooks call course.load_students)
from .students import make_dataset
from .train import train

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNS = REPO_ROOT / "runs"
MAKE_TRAIN_RUN = RUNS / "make-train"  # what `make train` writes
COURSE_RUNS = RUNS / "course"  # where the notebooks train when they must

# The fields that decide what a trained run's pictures mean. A run that differs only in
# others (steps, batch, learning rates, ...) is still good enough for the notebooks to load.
MATCH_FIELDS = ("dataset", "image_size", "cnn", "vit", "method", "use_hfd", "use_region", "use_pixel", "region_size")


def smoke_mode() -> bool:
    """True when the notebooks should run tiny versions of everything (seconds instead of minutes).

    `COURSE_SMOKE` decides when it is set (true/false, yes/no, 1/0): `make test` sets it to 1, `make
    test-full` to 0. Unset, the `CI` variable decides (set = smoke), the convention of most CI services
    (Pyro, GPyTorch)."""
    chosen = os.environ.get("COURSE_SMOKE", "").strip()
    if chosen:
        return convert_setting("COURSE_SMOKE", chosen, bool)
    return "CI" in os.environ


def course_config(smoke: bool, **changes) -> TrainConfig:
    """The training behind notebooks 02-04 (and 01's independent run, with method="independent").

    smoke: TrainConfig's students and scene size, but 16 training scenes, 8 val
    and 8 test scenes, 30 steps of batch 4, no loader workers: about 20 s of
    CPU. Otherwise: TrainConfig's defaults, i.e. exactly what `make train` runs.
    The run directory defaults to runs/course/<method>-<a hash of the settings>.
    """
    if smoke:
        base = dict(train_samples=16, val_samples=8, test_samples=8, steps=30, batch_size=4, eval_interval=15,
                    log_interval=5, checkpoint_interval=15, workers=0, progress="none")
    else:
        base = {}
    config = TrainConfig(**{**base, **changes})
    if config.run_dir is None:
        config = dataclasses.replace(config, run_dir=str(COURSE_RUNS / f"{config.method}-{config_hash(config)}"))
    return config


def config_hash(config: TrainConfig) -> str:
    """8 hex digits that change whenever a setting that changes the maths changes."""
    settings = {k: v for k, v in config.to_dict().items() if k not in RUNTIME_FIELDS}
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]


def finished(run_dir) -> bool:
    """A run that reached its end: metrics.json and last.pt are there."""
    run_dir = Path(run_dir)
    return (run_dir / "metrics.json").is_file() and (run_dir / "last.pt").is_file()


def run_config(run_dir) -> dict:
    """The TrainConfig fields a run was trained with (config.json's "config")."""
    info = json.loads((Path(run_dir) / "config.json").read_text())
    return info.get("config", info)


def mismatches(run_dir, config: TrainConfig, fields=MATCH_FIELDS) -> dict:
    """{field: (run's value, wanted value)} for the `fields` where the run differs from `config`."""
    trained = run_config(run_dir)
    wanted = config.to_dict()
    return {f: (trained.get(f), wanted[f]) for f in fields if plain(trained.get(f)) != plain(wanted[f])}


def load_or_train(run_dir, config: TrainConfig, snapshot_steps=(), verbose: bool = True) -> Path:
    """Return a finished run directory for `config`: load if one exists, otherwise train.

    1. `run_dir` (e.g. runs/make-train) when it holds a finished run whose
       MATCH_FIELDS equal `config`'s;
    2. else `config.run_dir` (the notebook's own cache) when it holds a finished run;
    3. else train `config` into `config.run_dir` with `collab_lib.train.train`,
       printing how long it took. `snapshot_steps` (e.g. (10, 20)): the trainer
       also writes the weights at those steps as step_<n>.pt, for pictures of
       how the students change during training.
    """
    candidates = [Path(run_dir)] if run_dir is not None else []
    for candidate in candidates:
        if finished(candidate):
            differ = mismatches(candidate, config)
            if not differ:
                _say(verbose, f"loading the finished run in {candidate}")
                return candidate
            _say(verbose, f"{candidate} holds a run with other settings ({_describe(differ)}): not using it")
        else:
            _say(verbose, f"no finished run in {candidate}")
    cache = Path(config.run_dir)
    if finished(cache) and not mismatches(cache, config, fields=[f for f in config.to_dict() if f not in RUNTIME_FIELDS]):
        _say(verbose, f"loading the notebook's own earlier run in {cache}")
        return cache
    _say(verbose, f"training {config.cnn} + {config.vit} ({config.method}) for {config.steps} steps of batch "
                  f"{config.batch_size} at {config.image_size[0]}x{config.image_size[1]} into {cache} ...")
    start = time.perf_counter()
    train_with_snapshots(config, snapshot_steps)
    _say(verbose, f"trained in {time.perf_counter() - start:.1f} s")
    return cache


def train_with_snapshots(config: TrainConfig, snapshot_steps=()) -> Path:
    """Train `config` from scratch into config.run_dir, with the weights at each of `snapshot_steps`
    (between 0 and config.steps) kept as step_<n>.pt (the trainer's snapshot_steps: weights only;
    the run is the same one `train(config)` would produce without them)."""
    steps = tuple(sorted(s for s in set(snapshot_steps) if 0 < s < config.steps))
    # overwrite: a fresh run, which also removes an earlier run's snapshots (they would show other weights)
    return train(dataclasses.replace(config, snapshot_steps=steps, resume=False, overwrite=True))


def list_checkpoints(run_dir) -> dict:
    """{label: path or None} in training order: "step 0 (untrained)" -> None, each step_<n>.pt, then last.pt."""
    run_dir = Path(run_dir)
    found = {"step 0 (untrained)": None}
    for path in sorted(run_dir.glob("step_*.pt")):
        found[f"step {int(path.stem.split('_')[1])}"] = path
    if (run_dir / "last.pt").is_file():
        step = read_metrics(run_dir).get("steps") if (run_dir / "metrics.json").is_file() else None
        found[f"step {step} (last)" if step is not None else "last"] = run_dir / "last.pt"
    return found


def eval_dataset(config: TrainConfig, split: str = "val"):
    """The run's `split` as the trainer evaluates it (no augmentation, full image_size)."""
    return make_dataset(config, split, train=False)


def first_items(dataset, count: int):
    """The first `count` items stacked: images float32 (N, 3, H, W), labels int64 (N, H, W)."""
    items = [dataset[i] for i in range(min(count, len(dataset)))]
    return torch.stack([image for image, _ in items]), torch.stack([label for _, label in items])


@torch.no_grad()
def forward_pair(cnn, vit, images):
    """Both students' StudentOutputs for a batch, without gradients (modules as they are: call .eval() first)."""
    return cnn(images), vit(images)


def read_history(run_dir) -> list:
    """history.jsonl as a list of dicts, in file order (a torn last line is left out, with a warning)."""
    return read_history_file(Path(run_dir) / "history.jsonl")


def read_metrics(run_dir) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text())


def iou_list(split_metrics: dict, class_names) -> list:
    """metrics.json's {"iou": {class: IoU | None}} of one student -> a list in class order."""
    return [split_metrics["iou"].get(name) for name in class_names]


@torch.no_grad()
def teaching_by_class(teacher_map, target, num_classes: int, ignore_index: int = 255):
    """Share of each class's valid pixels taught by each student.

    teacher_map: int (B, H, W) at label resolution, 1 = CNN teaches, -1 = ViT
    teaches, 0 = none (for region-wise BSD paint the region directions onto the
    pixels with `collab_lib.losses.regions_to_pixels`; for pixel-wise BSD use
    cnn_teaches - vit_teaches). target: int (B, H, W).
    Returns (cnn_share, vit_share), float tensors (num_classes,) in [0, 1],
    NaN for a class with no valid pixel.
    """
    valid = target != ignore_index
    classes = target[valid].long()
    teacher = teacher_map[valid]
    total = torch.bincount(classes, minlength=num_classes).double()
    cnn = torch.bincount(classes[teacher == 1], minlength=num_classes).double()
    vit = torch.bincount(classes[teacher == -1], minlength=num_classes).double()
    nan = torch.full_like(total, float("nan"))
    return torch.where(total > 0, cnn / total.clamp(min=1), nan), torch.where(total > 0, vit / total.clamp(min=1), nan)


@torch.no_grad()
def hfd_projections(hfd, low_cnn, low_vit):
    """Run an HFDLoss and also return what its two projectors produce.

    Returns (loss, info, attn_cnn, mlp_vit): attn_cnn = Attn(low_cnn) in the
    ViT's channels (B, C_vit, h, w), mlp_vit = MLP(low_vit) in the CNN's
    channels (B, C_cnn, h', w'), channels-first, before any resize to the
    target's grid. The projectors are called again here, explicitly, on the
    channels-last maps the loss gives them (a second, gradient-free pass).
    """
    loss, info = hfd(low_cnn, low_vit)
    attn_cnn = hfd.attn(channels_last(low_cnn).contiguous()).permute(0, 3, 1, 2).contiguous()
    mlp_vit = hfd.mlp(channels_last(low_vit).contiguous()).permute(0, 3, 1, 2).contiguous()
    return loss, info, attn_cnn, mlp_vit


@torch.no_grad()
def linear_cka(features_a, features_b) -> float:
    """Linear CKA (Kornblith et al., 2019) between two feature maps of the same images, in [0, 1].

    features_a (B, C_a, h, w), features_b (B, C_b, h', w'): b is resized
    bilinearly to a's grid; every location of every image is one sample.
    1 = the two representations are the same up to a rotation and scale,
    0 = unrelated. No projector is involved, unlike the HFD distance.
    """
    if features_b.shape[-2:] != features_a.shape[-2:]:
        features_b = torch.nn.functional.interpolate(features_b.float(), size=features_a.shape[-2:],
                                                     mode="bilinear", align_corners=False)
    x = features_a.double().permute(0, 2, 3, 1).reshape(-1, features_a.shape[1])
    y = features_b.double().permute(0, 2, 3, 1).reshape(-1, features_b.shape[1])
    x, y = x - x.mean(0), y - y.mean(0)
    cross = (y.T @ x).square().sum()
    norm = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    return float(cross / norm) if norm > 0 else 0.0


@torch.no_grad()
def seconds_per_image(model, image_size=(128, 256), batch_size: int = 2, repeats: int = 3) -> float:
    """Mean forward time of `model` (eval mode, CPU threads as set) per image, after one warm-up pass."""
    model.eval()
    images = torch.randn(batch_size, 3, *image_size)
    model(images)
    start = time.perf_counter()
    for _ in range(repeats):
        model(images)
    return (time.perf_counter() - start) / (repeats * batch_size)


def _describe(differ: dict) -> str:
    return ", ".join(f"{k}: {old!r} vs wanted {new!r}" for k, (old, new) in differ.items())


def _say(verbose: bool, message: str) -> None:
    if verbose:
        print(message, flush=True)
