"""Run a grid of configurations x seeds with the library's trainer, and summarise it.

    python -m collab_lib.experiments --recipe cpu              # the whole CPU grid
    python -m collab_lib.experiments --recipe cpu-mini         # one seed, the four methods
    python -m collab_lib.experiments --recipe cpu --configurations independent collab --seeds 0

Every run of a grid shares students, initialisation seed (per seed), data,
augmentation, schedule and number of steps: only the loss differs (docs/method.md, protocol:
baselines reproduced under another recipe make gains look larger or vanish).
A run whose directory already holds metrics.json is skipped, so an interrupted
grid continues where it stopped; an unfinished run resumes from its last.pt. Either
way its saved settings must be the planned ones (RUNTIME_FIELDS aside): a grid asked
for other settings than its folder holds stops before training, naming each field.
Several workers may share one grid: each run is locked (flock on grid.lock) while it trains.

Model selection is on the val split; the reported numbers are the test split's,
which is read once at the end of each run and never used to choose anything.
"""
import argparse
import dataclasses
import json
import math
import os
import sys
from pathlib import Path

from .config import TrainConfig, changed_settings, describe_changes, plain
from .errors import SetupError, TrainingInterrupted, user_message

try:
    import fcntl
except ImportError:  # Windows has no flock: there runs are not locked, so give a grid folder one worker at a time
    fcntl = None

# Each configuration changes only the loss.
CONFIGURATIONS = {
    "independent": dict(method="independent"),
    "dml": dict(method="dml"),
    "kdcl": dict(method="kdcl"),
    "collab": dict(method="collab"),
    "collab_no_hfd": dict(method="collab", use_hfd=False),
    "collab_no_region": dict(method="collab", use_region=False),
    "collab_no_pixel": dict(method="collab", use_pixel=False),
    "hfd_only": dict(method="collab", use_region=False, use_pixel=False),
    # The selectivity study (research/selectivity.md): collab without its selection, and DML at collab's pixel weight.
    "collab_nonselective": dict(method="collab", selective=False),
    "dml_w0.3": dict(method="dml", w_dml=0.3),
}
METHODS_ONLY = ["independent", "dml", "kdcl", "collab"]
# The CPU grid of results/cpu: the four methods and collab's ablations (not the later study's configurations).
CPU_GRID = ("independent", "dml", "kdcl", "collab", "collab_no_hfd", "collab_no_region", "collab_no_pixel", "hfd_only")

# Settings the grid chooses for each run itself, with the option that chooses them. An override of one would be
# overwritten (the loss switches: overwritten for some configurations only), so run_grid and --set refuse them.
_RETRAIN = ("the grid resumes unfinished runs and skips finished ones; to train a run again, delete its folder "
            "or choose another --out")
GRID_FIELDS = {
    **{key: "the configurations choose the loss: use --configurations"
       for values in CONFIGURATIONS.values() for key in values},
    "seed": "use --seeds",
    "run_dir": "each run goes to <--out>/<configuration>/seed<k>: use --out",
    "resume": _RETRAIN,
    "overwrite": _RETRAIN,
    "recipe": "it records the recipe: use --recipe",
}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A grid: the shared base settings, the configurations and the seeds."""

    base: dict
    configurations: tuple
    seeds: tuple
    about: str


# The CPU recipes: DeepLabV3+-R18 and SegFormer-B0 with both decoders narrowed to
# 128 channels, 64x128 synthetic scenes, a small finite training set, 400 steps of batch 8, one thread
# per run: about 3-5 minutes a run on a quiet core, so two runs side by side do
# the 8 x 3 grid in about 40 minutes on a 2-core machine (37 minutes measured, 2026-11-26).
# cpu-v1 (2026-11-22): the students' usual learning rates (SGD 0.01, AdamW 6e-4); both ended
#   undertrained and the ViT led on no class (results/cpu-v1).
# cpu (v2, 2026-11-26): chosen on the val split, one seed each (results/sweeps/README.md):
#   learning rates for these from-scratch students (SGD 0.03 for the CNN, AdamW 3e-3 for the ViT),
#   w_pixel 0.3 (1.0 cost both students), 50 training scenes (of 25 / 50 / 100, the one where collab
#   was closest to or above independent for both students). Every value is spelled out here, so a
#   later change of TrainConfig's defaults does not change a recipe.
_CPU_V1_BASE = dict(
    dataset="streets", image_size=(64, 128), crop_size=None, train_samples=100, val_samples=100,
    test_samples=250, cnn="deeplabv3plus_resnet18", vit="segformer_b0", cnn_decoder_channels=128,
    vit_decoder_channels=128, steps=400, batch_size=8, eval_interval=100, log_interval=50,
    checkpoint_interval=100, workers=0, progress="log", lr_cnn=0.01, lr_vit=6e-4,
    w_hfd=0.1, w_region=0.1, w_pixel=1.0, warmup=0.2, temperature=1.0,
)
_CPU_BASE = dict(_CPU_V1_BASE, lr_cnn=0.03, lr_vit=3e-3, w_pixel=0.3, train_samples=50)
RECIPES = {
    "cpu": Recipe(_CPU_BASE, CPU_GRID, (0, 1, 2),
                  "whole grid on a 2-core CPU: 64x128 synthetic scenes, 50 train scenes, 400 steps, 128-wide decoders"),
    "cpu-v1": Recipe(_CPU_V1_BASE, CPU_GRID, (0, 1, 2),
                     "the first CPU grid (2026-11-22), the students' usual learning rates: kept to reproduce results/cpu-v1"),
    "cpu-mini": Recipe(_CPU_BASE, tuple(METHODS_ONLY), (0,),
                       "the four methods, one seed: what a learner runs from notebook 06"),
    "smoke": Recipe(dict(_CPU_BASE, image_size=(64, 64), train_samples=8, val_samples=4, test_samples=4, steps=3,
                         batch_size=2, eval_interval=3, log_interval=1, checkpoint_interval=3),
                    ("independent", "collab"), (0,), "seconds: for tests"),
    "gpu": Recipe(dict(dataset="streets", image_size=(256, 512), crop_size=(256, 256), train_samples=200,
                       val_samples=100, test_samples=250, steps=4000, batch_size=16, eval_interval=500,
                       log_interval=50, checkpoint_interval=500, workers=8, progress="log"),
                  CPU_GRID, (0, 1, 2), "one GPU: 256x512 scenes, 4000 steps"),
}


def run_grid(recipe="cpu", out_dir=None, configurations=None, seeds=None, overrides=None, dry_run=False):
    """Train every (configuration, seed) of a recipe that is not finished yet.

    Returns the list of run directories (out_dir/<configuration>/seed<k>), finished or skipped.
    Raises SetupError, before anything trains, when a finished run there was trained with other settings.
    """
    check_overrides(overrides or {})
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; valid: {', '.join(RECIPES)}")
    plan = RECIPES[recipe]
    configurations = list(configurations or plan.configurations)
    unknown = [c for c in configurations if c not in CONFIGURATIONS]
    if unknown:
        raise ValueError(f"unknown configurations {unknown}; valid: {', '.join(CONFIGURATIONS)}")
    seeds = list(plan.seeds if seeds is None else seeds)
    out = Path(out_dir or f"results/{recipe}")
    from .train import train  # imported here so that summarising (main --summary-only) needs neither torch nor timm

    planned = []
    for seed in seeds:  # seed-major: an interrupted grid still has complete method comparisons for the first seeds
        for name in configurations:
            run_dir = out / name / f"seed{seed}"
            values = {**plan.base, **(overrides or {}), **CONFIGURATIONS[name], "seed": seed,
                      "run_dir": str(run_dir), "resume": True, "recipe": recipe}  # recipe: provenance only
            planned.append((run_dir, TrainConfig.from_dict(values)))
    for run_dir, config in planned:  # all of them first: a grid that cannot be completed as asked trains nothing
        if _finished(run_dir):
            check_finished_run(run_dir, config)

    for run_dir, config in planned:
        if _finished(run_dir):
            print(f"[grid] skip {run_dir} (finished)")
            continue
        if dry_run:
            print(f"[grid] would run {run_dir}")
            continue
        lock = _claim(run_dir)
        if lock is None:
            print(f"[grid] skip {run_dir} (being trained by another live process)")
            continue
        try:
            if _finished(run_dir):  # another worker finished it since the first look: its settings are checked again
                check_finished_run(run_dir, config)
                print(f"[grid] skip {run_dir} (finished)")
                continue
            print(f"[grid] run  {run_dir}")
            train(config)
        finally:
            _release(run_dir, lock)
    return [run_dir for run_dir, _ in planned]


def check_overrides(overrides: dict) -> None:
    """ValueError naming each override of a setting the grid chooses per run (GRID_FIELDS) and the option to use."""
    refused = [key for key in overrides if key in GRID_FIELDS]
    if refused:
        raise ValueError("; ".join(f"{key} is set by the grid for each run, so an override would be ignored: "
                                   f"{GRID_FIELDS[key]}" for key in refused))


def _finished(run_dir: Path) -> bool:
    return (run_dir / "metrics.json").exists()


def check_finished_run(run_dir: Path, config: TrainConfig) -> None:
    """SetupError naming each changed field when the finished run in run_dir was trained with other settings than
    `config`: skipping it would report its numbers as those of the planned settings (e.g. 400 steps for 800)."""
    saved_path = run_dir / "config.json"
    if not saved_path.exists():
        return  # nothing to compare: the trainer writes config.json as a run starts, so only hand-made folders lack it
    changed = changed_settings(_read_json(saved_path).get("config", {}), config)
    if changed:
        raise SetupError(f"{run_dir} holds a finished run (metrics.json) trained with different settings "
                         f"({describe_changes(changed)}); "
                         f"use its settings (--recipe, --set), or another --out for the new ones")


def _claim(run_dir: Path):
    """run_dir/grid.lock opened and locked for this process (hold it while the run trains, then `_release` it),
    or None when another live process holds it: so that several grid workers can share one grid.

    The lock is flock's, on the open file: the OS drops it when its process ends (killed, machine restarted),
    so a grid.lock left behind, empty or naming a dead pid, blocks nobody, and the test-and-take is one
    atomic call, so two workers cannot both take a lock. The pid written into it is for people; nothing reads it.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "grid.lock"
    while True:
        lock = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT), "r+")
        if fcntl is None:
            break
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return None
        try:
            if os.path.samestat(os.fstat(lock.fileno()), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        # _release removed this file while we waited for it: a lock on a file no longer at the path guards
        # nothing (a third worker may hold the new one), so open the path again.
        lock.close()
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def _release(run_dir: Path, lock) -> None:
    """Remove run_dir/grid.lock, then unlock it. Removed while still held, so that no one can lock this file
    and believe it holds the run (see _claim); a finished grid leaves no lock files in its results."""
    if fcntl is not None:
        (run_dir / "grid.lock").unlink(missing_ok=True)
    lock.close()
    if fcntl is None:  # Windows cannot remove an open file
        (run_dir / "grid.lock").unlink(missing_ok=True)


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def collect_results(root) -> "pandas.DataFrame":
    """One row per finished run below `root` (a folder of run directories holding metrics.json).

    Columns: configuration, seed, method, cnn, vit, steps, cnn_miou, vit_miou (the test split when
    it was evaluated, else the final val numbers; column `split` says which), cnn_val_miou,
    vit_val_miou (last step, val split), and per-class IoU as `cnn_iou/<class>`, `vit_iou/<class>`
    (None for a class absent from labels and predictions).
    """
    import pandas as pd

    rows = []
    for metrics_path in sorted(Path(root).rglob("metrics.json")):
        run_dir = metrics_path.parent
        metrics = _read_json(metrics_path)
        config = _read_json(run_dir / "config.json").get("config", {}) if (run_dir / "config.json").exists() else {}
        configuration = run_dir.parent.name if run_dir.name.startswith("seed") else run_dir.name
        row = dict(configuration=configuration, run_dir=str(run_dir), seed=config.get("seed"),
                   method=config.get("method"), cnn=config.get("cnn"), vit=config.get("vit"), steps=config.get("steps"))
        test = metrics.get("test") or {}
        final = metrics.get("final_val") or {}
        row["split"] = "test" if test else "val"
        for student in ("cnn", "vit"):
            chosen = test.get(student) or final.get(student) or {}
            row[f"{student}_miou"] = chosen.get("miou")
            row[f"{student}_val_miou"] = (final.get(student) or {}).get("miou")
            for class_name, iou in (chosen.get("iou") or {}).items():
                row[f"{student}_iou/{class_name}"] = iou
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(df) -> "pandas.DataFrame":
    """Mean and standard deviation (over seeds) of each student's mIoU per configuration,
    with the gain of each student over `independent` when that configuration is present."""
    import pandas as pd

    if df.empty:
        return pd.DataFrame()
    table = df.groupby("configuration").agg(
        runs=("seed", "count"),
        cnn_mean=("cnn_miou", "mean"), cnn_std=("cnn_miou", "std"),
        vit_mean=("vit_miou", "mean"), vit_std=("vit_miou", "std"),
    )
    if "independent" in table.index:
        table["cnn_gain"] = table["cnn_mean"] - table.loc["independent", "cnn_mean"]
        table["vit_gain"] = table["vit_mean"] - table.loc["independent", "vit_mean"]
    order = [c for c in CONFIGURATIONS if c in table.index] + [c for c in table.index if c not in CONFIGURATIONS]
    return table.loc[order]


def markdown_table(summary) -> str:
    """The summary as a Markdown table (mean ± std, in mIoU points x100)."""
    def cell(mean, std):
        if mean is None or (isinstance(mean, float) and math.isnan(mean)):
            return "-"
        return f"{100 * mean:.1f}" + ("" if std is None or math.isnan(std) else f" ± {100 * std:.1f}")

    lines = ["| configuration | runs | CNN mIoU | ViT mIoU | CNN gain | ViT gain |", "|---|---|---|---|---|---|"]
    for name, r in summary.iterrows():
        gain = lambda v: "-" if v is None or math.isnan(v) else f"{100 * v:+.1f}"  # noqa: E731
        lines.append(f"| {name} | {int(r['runs'])} | {cell(r['cnn_mean'], r['cnn_std'])} | {cell(r['vit_mean'], r['vit_std'])} | "
                     f"{gain(r.get('cnn_gain', float('nan')))} | {gain(r.get('vit_gain', float('nan')))} |")
    return "\n".join(lines)


def describe_runs(root, recipe: str = "cpu") -> str:
    """A Markdown table of every finished run below `root`, for sweeps: what each run changed
    against `recipe`'s base settings, and both students' final mIoU on the val split (the split
    settings are chosen on; the test numbers are deliberately not shown here)."""
    base = TrainConfig.from_dict({**RECIPES[recipe].base, "run_dir": "x"}).to_dict()
    lines = [f"| run | differs from recipe {recipe!r} | CNN val mIoU | ViT val mIoU |", "|---|---|---|---|"]
    for metrics_path in sorted(Path(root).rglob("metrics.json")):
        run_dir = metrics_path.parent
        metrics = _read_json(metrics_path)
        if (run_dir / "config.json").exists():
            config = _read_json(run_dir / "config.json")["config"]
            changed = ", ".join(f"{key}={plain(value)}" for key, value in config.items()
                                if key not in ("run_dir", "resume", "overwrite", "seed", "recipe")
                                and plain(value) != plain(base.get(key))) or "-"
        else:  # a hand-made folder: what it changed cannot be told, the row says so
            config, changed = {"seed": metrics.get("seed")}, "unknown (no config.json)"
        final = metrics.get("final_val") or {}
        scores = [f"{100 * final[s]['miou']:.1f}" if final.get(s) else "-" for s in ("cnn", "vit")]
        name = run_dir.relative_to(root).as_posix()
        lines.append(f"| {name} (seed {config.get('seed')}) | {changed} | {scores[0]} | {scores[1]} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m collab_lib.experiments", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="cpu", choices=list(RECIPES))
    parser.add_argument("--out", default=None, help="output folder (default results/<recipe>)")
    parser.add_argument("--configurations", nargs="+", choices=list(CONFIGURATIONS))
    parser.add_argument("--seeds", nargs="+", type=int)
    parser.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE",
                        help="override a TrainConfig field for every run, e.g. --set steps=800 device=cuda")
    parser.add_argument("--dry-run", action="store_true", help="list the runs, train nothing")
    parser.add_argument("--summary-only", action="store_true", help="summarise what is there, train nothing")
    parser.add_argument("--describe", action="store_true",
                        help="list every finished run below --out with what it changed against the recipe and its val mIoU "
                             "(for sweeps), train nothing")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set takes FIELD=VALUE, got {item!r}")
        overrides[key] = value  # text: TrainConfig converts and checks it (booleans, numbers, sizes, none)
    try:  # a bad --set fails here, naming the field and value, before any run starts
        check_overrides(overrides)
        TrainConfig.from_dict({**RECIPES[args.recipe].base, **overrides})
    except ValueError as error:
        parser.error(f"--set: {error}")
    out = Path(args.out or f"results/{args.recipe}")
    if (args.describe or args.summary_only) and not any(out.rglob("metrics.json")):
        # Reading modes: an empty answer would look like a summary of nothing rather than a wrong folder.
        where = "" if out.is_dir() else " (the folder does not exist)"
        print(f"error: no finished run (metrics.json) was found under {out}{where}; --out names a folder of run "
              f"directories (default results/<recipe>)", file=sys.stderr)
        sys.exit(2)
    if args.describe:
        print(describe_runs(out, args.recipe))
        return
    if not args.summary_only:
        from .data import DatasetError  # the scene generator and the trainer load only when a grid trains

        try:
            run_grid(args.recipe, out, args.configurations, args.seeds, overrides, dry_run=args.dry_run)
        except (DatasetError, SetupError, FileExistsError) as error:  # a user error: one paragraph, no traceback
            print(f"error: {user_message(error)}", file=sys.stderr)
            sys.exit(2)
        except TrainingInterrupted as stop:  # the run's checkpoint is written; the same command resumes the grid
            print(f"{stop}; the same command continues the grid", file=sys.stderr)
            sys.exit(128 + stop.signum)
        except FloatingPointError as error:  # a NaN/inf loss: the message names the run's step, term and checkpoint
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)
    summary = summarize(collect_results(out))
    if not summary.empty:
        print(markdown_table(summary))


if __name__ == "__main__":
    main()
