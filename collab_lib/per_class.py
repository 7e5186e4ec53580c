"""Per-class gains paired by seed, with their spread: which classes a configuration lifts for each student.

`paired_class_gains(runs, name, student)` gives, per class, each seed's IoU gain of `name` over the baseline
of the same seed; `class_gain_table(runs, names, student)` puts several configurations side by side as
mean ± standard error over seeds (notebook 06: collab, DML and KDCL on the classes each student leads).
runs: {name: folder of seed<N>/metrics.json} as in `collab_lib.analysis.paired_gain_table`.
"""
import math
import statistics

from .analysis import seed_metrics


def paired_class_gains(runs: dict, name: str, student: str, baseline: str = "independent", split: str = "test",
                       root=".") -> dict:
    """{class: {seed: `student`'s IoU x100 on the class under `name` minus under `baseline`, same seed}}.

    A seed where either run has no IoU for the class (None: the class was in neither labels nor predictions)
    is left out of that class. A seed of `name` that the baseline lacks is an error."""
    if student not in ("cnn", "vit"):
        raise ValueError(f"student must be 'cnn' or 'vit', got {student!r}")
    results, base = seed_metrics(runs[name], split, root), seed_metrics(runs[baseline], split, root)
    unpaired = sorted(set(results) - set(base))
    if not results or unpaired:
        raise ValueError(f"{name}: no runs, or seeds {unpaired} without a {baseline!r} run to pair with")
    gains = {}
    for seed, metrics in results.items():
        for cls, iou in metrics[student]["iou"].items():
            before = base[seed][student]["iou"].get(cls)
            if iou is not None and before is not None:
                gains.setdefault(cls, {})[seed] = 100 * (iou - before)
            else:
                gains.setdefault(cls, {})
    return gains


def class_gain_table(runs: dict, names, student: str, baseline: str = "independent", split: str = "test", root=".",
                     classes=None):
    """A DataFrame, one row per class: for each configuration in `names`, `<name>` (the mean paired gain, IoU
    points), `<name> se` (its standard error, sample std / sqrt(seeds); NaN on one seed) and `<name> seeds`.

    classes: the rows to keep, in that order (default: every class, in the runs' order)."""
    import pandas as pd

    table = {}
    for name in names:
        for cls, by_seed in paired_class_gains(runs, name, student, baseline, split, root).items():
            values = list(by_seed.values())
            row = table.setdefault(cls, {})
            row[name] = statistics.mean(values) if values else math.nan
            row[f"{name} se"] = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
            row[f"{name} seeds"] = len(values)
    frame = pd.DataFrame.from_dict(table, orient="index")
    return frame.loc[list(classes)] if classes is not None else frame
