"""The selectivity study (research/selectivity.md, rounds 16-17): does BSD's selection, at matched weights, help?

- `scan` and `selectivity_pick`: round 16, the rule written down before the scan (which cell has students that
  each lead on classes, and the largest generalisation gap);
- `STUDY_ARMS`, `study_runs`: round 17's five arms on fresh seeds 20-27 in the picked cell;
- `min_effect_verdict`: H1's rule (an effect of at least 0.3 points, beyond the seeds' spread, or ruled out);
- `HYPOTHESES` and `verdict_table`: H1-H4 as the write-ups quote them.

Folders are relative to the repository root; pass root= to read them elsewhere.
"""
import json
import math
import statistics
from pathlib import Path

from collab_lib.analysis import paired_gain_table, paired_gains
from research.ledger import OVERFIT_SCAN, REPO_ROOT, replication_verdict

# ---- round 16: the scan ------------------------------------------------------------------------------------
# cell -> its independent run (seed 0, 1200 steps). The four R18 cells are round 14's committed runs.
SCAN_RUNS = {
    "augoff-n50": f"{OVERFIT_SCAN}/augoff-n50/independent/seed0",
    "augoff-n200": f"{OVERFIT_SCAN}/augoff-n200/independent/seed0",
    "augon-n50": f"{OVERFIT_SCAN}/augon-n50/independent/seed0",
    "augon-n200": f"{OVERFIT_SCAN}/augon-n200/independent/seed0",
    "mnv2-augoff-n50": "results/sweeps/selectivity-scan/mnv2-augoff-n50/independent/seed0",
}
# cell -> the settings (besides the cpu recipe at 1200 steps) its runs use: what round 17 passes with --set.
CELL_SETTINGS = {
    "augoff-n50": dict(augment=False, train_samples=50),
    "augoff-n200": dict(augment=False, train_samples=200),
    "augon-n50": dict(augment=True, train_samples=50),
    "augon-n200": dict(augment=True, train_samples=200),
    "mnv2-augoff-n50": dict(augment=False, train_samples=50, cnn="deeplabv3plus_mobilenetv2", lr_cnn=0.1),
}
LEAD_MARGIN = 2.0  # points of IoU by which a student must beat the other on a class to "lead" it
MIN_LEADS = 2      # classes each student must lead for a cell to be eligible


def class_leads(metrics: dict, margin: float = LEAD_MARGIN) -> dict:
    """{"cnn": [classes the CNN leads], "vit": [...]} on a metrics.json's final_val: per class with both IoUs
    defined, a student leads if its IoU x100 exceeds the other's by at least `margin` points."""
    iou_c, iou_v = metrics["final_val"]["cnn"]["iou"], metrics["final_val"]["vit"]["iou"]
    leads = {"cnn": [], "vit": []}
    for name, c in iou_c.items():
        v = iou_v.get(name)
        if c is None or v is None:
            continue
        if 100 * (c - v) >= margin:
            leads["cnn"].append(name)
        elif 100 * (v - c) >= margin:
            leads["vit"].append(name)
    return leads


def scan(root=REPO_ROOT, runs=SCAN_RUNS) -> dict:
    """{cell: {"leads": class_leads, "val": {student: mIoU x100}, "gap": {student: train - val x100}, "mean_gap"}}
    for each cell whose run is finished (metrics.json with final_train)."""
    cells = {}
    for cell, folder in runs.items():
        path = Path(root, folder, "metrics.json")
        if not path.exists():
            continue
        metrics = json.loads(path.read_text())
        if not metrics.get("final_train"):
            raise ValueError(f"{path} has no final_train: the scan needs the generalisation gap")
        val = {s: 100 * metrics["final_val"][s]["miou"] for s in ("cnn", "vit")}
        gap = {s: 100 * metrics["final_train"][s]["miou"] - val[s] for s in ("cnn", "vit")}
        cells[cell] = {"leads": class_leads(metrics), "val": val, "gap": gap, "mean_gap": statistics.mean(gap.values())}
    return cells


def selectivity_pick(cells: dict, expected=tuple(SCAN_RUNS)) -> tuple[str, bool]:
    """(the picked cell, whether it is eligible), by research/selectivity.md's rule.

    Eligible: each student leads on at least MIN_LEADS classes; the pick is the eligible cell with the largest
    mean gap. With none eligible: the cell with the largest min(CNN leads, ViT leads), ties by the larger gap.
    Every cell of `expected` must be in `cells` (the pick is made once the scan is complete).
    """
    missing = [c for c in expected if c not in cells]
    if missing:
        raise ValueError(f"the scan is not complete: no finished run in {missing}")
    fewest = {c: min(len(cells[c]["leads"]["cnn"]), len(cells[c]["leads"]["vit"])) for c in cells}
    eligible = [c for c in cells if fewest[c] >= MIN_LEADS]
    if eligible:
        return max(eligible, key=lambda c: cells[c]["mean_gap"]), True
    return max(cells, key=lambda c: (fewest[c], cells[c]["mean_gap"])), False


def scan_table(cells: dict) -> str:
    """Round 16 as research/selectivity.md reports it: per cell, val mIoU, gaps and the classes each student leads."""
    lines = ["| cell | val CNN / ViT | gap CNN / ViT (mean) | CNN leads (by >= 2 points) | ViT leads | eligible |",
             "|---|---|---|---|---|---|"]
    for cell, e in cells.items():
        leads = e["leads"]
        ok = min(len(leads["cnn"]), len(leads["vit"])) >= MIN_LEADS
        lines.append(f"| {cell} | {e['val']['cnn']:.1f} / {e['val']['vit']:.1f} | {e['gap']['cnn']:.1f} / "
                     f"{e['gap']['vit']:.1f} ({e['mean_gap']:.1f}) | {len(leads['cnn'])}: {', '.join(leads['cnn']) or '-'} | "
                     f"{len(leads['vit'])}: {', '.join(leads['vit']) or '-'} | {'yes' if ok else 'no'} |")
    return "\n".join(lines)


# ---- round 17: the arms ------------------------------------------------------------------------------------
STUDY_ARMS = ("independent", "collab", "collab_nonselective", "dml_w0.3", "dml")
STUDY_SEEDS = tuple(range(20, 28))
STUDY_FOLDER = "results/sweeps/selectivity"


def study_runs(cell: str) -> dict:
    """{arm: folder of its seed<N>/ runs} in the picked cell."""
    return {arm: f"{STUDY_FOLDER}/{cell}/{arm}" for arm in STUDY_ARMS}


MIN_EFFECT = 0.3  # points of mIoU x100: H1's minimum effect
MIN_AGREEING = 6  # of the 8 seeds, on test


def _summary(gains: dict) -> dict:
    values = list(gains.values())
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return {"gains": gains, "mean": statistics.mean(values), "se": se, "seeds": len(values),
            "agreeing": sum(g > 0 for g in values)}


def min_effect_verdict(runs: dict, name: str, student: str, baseline: str, min_effect: float = MIN_EFFECT,
                       min_agreeing: int = MIN_AGREEING, root=REPO_ROOT) -> dict:
    """H1's rule (research/selectivity.md): `name` beats `baseline` for `student` by at least `min_effect`.

    holds: on test mean >= min_effect and mean > 2 s.e., at least `min_agreeing` seeds positive, and the
    final-val mean positive; fails: on test mean + 2 s.e. < min_effect (an effect of that size is ruled out);
    otherwise "not settled". A failing verdict also says whether the difference is "level" (the 2-s.e.
    interval holds 0) or a "cost" (mean + 2 s.e. < 0) or a smaller gain (mean - 2 s.e. > 0).
    Returns {"final_val": summary, "test": summary, "verdict": str}; gains in points x100.
    """
    report = {split: _summary(paired_gains(runs, name, student, baseline, split, root))
              for split in ("final_val", "test")}
    test = report["test"]
    low, high = test["mean"] - 2 * test["se"], test["mean"] + 2 * test["se"]
    if (test["mean"] >= min_effect and low > 0 and test["agreeing"] >= min_agreeing
            and report["final_val"]["mean"] > 0):
        report["verdict"] = "holds"
    elif high < min_effect:
        reading = "a cost" if high < 0 else "a smaller gain" if low > 0 else "level"
        report["verdict"] = f"fails ({reading})"
    else:
        report["verdict"] = "not settled"
    return report


# (code, reading, configuration, baseline, the rule: "min_effect" for H1, else replication_verdict's)
HYPOTHESES = (
    ("H1", "the selection helps (collab vs collab_nonselective, >= 0.3)", "collab", "collab_nonselective", "min_effect"),
    ("H2", "collab beats DML at the same pixel weight", "collab", "dml_w0.3", "sign"),
    ("H3", "collab beats independent training", "collab", "independent", "sign"),
    ("H4", "DML at weight 0.3 beats DML at weight 1", "dml_w0.3", "dml", "sign"),
)


def verdict(cell: str, code: str, student: str, root=REPO_ROOT) -> dict:
    """One hypothesis of HYPOTHESES for one student in the picked cell: the report of its rule."""
    _, _, name, baseline, rule = next(h for h in HYPOTHESES if h[0] == code)
    runs = study_runs(cell)
    if rule == "min_effect":
        return min_effect_verdict(runs, name, student, baseline, root=root)
    report = replication_verdict(runs, name, student, +1, MIN_AGREEING, baseline=baseline, root=root)
    if report["verdict"] == "holds":
        beyond = report["test"]["mean"] > 2 * report["test"]["se"]
        report["verdict"] += ", beyond the spread" if beyond else ", within the spread"
    return report


def verdict_table(cell: str, root=REPO_ROOT) -> str:
    """H1-H4 for both students, as docs/evidence.md and research/selectivity.md quote them."""
    lines = ["| hypothesis | student | baseline | seeds | val gain | test gain | test seeds positive (needed) | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for code, reading, _, baseline, _ in HYPOTHESES:
        for student, label in (("cnn", "CNN"), ("vit", "ViT")):
            r = verdict(cell, code, student, root)
            cell_text = lambda s: f"{r[s]['mean']:+.2f} ± {r[s]['se']:.2f}"  # noqa: E731
            lines.append(f"| ({code}) {reading} | {label} | {baseline} | {r['test']['seeds']} | {cell_text('final_val')} | "
                         f"{cell_text('test')} | {r['test']['agreeing']} ({MIN_AGREEING}) | {r['verdict']} |")
    return "\n".join(lines)


# ---- descriptive, no hypothesis (research/selectivity.md) --------------------------------------------------
SHARE_KEYS = ("region_frac_cnn_teaches", "region_frac_vit_teaches", "pixel_frac_cnn_teaches", "pixel_frac_vit_teaches")


def arms_table(cell: str, root=REPO_ROOT) -> str:
    """Every arm against `independent` (test, paired by seed): analysis.paired_gain_table of the five arms."""
    return paired_gain_table(study_runs(cell), baseline="independent", split="test", root=root)


def teaching_shares(folder, last_steps: int = 300, root=REPO_ROOT) -> dict:
    """{key of SHARE_KEYS: (mean, s.e.) over seeds} of the training log's teaching shares, as fractions.

    folder: an arm's folder of seed<N>/history.jsonl; per seed, the mean of the logged "train" rows in the
    last `last_steps` steps (the warm-up r(t) is over by then), then the mean and standard error over seeds.
    Shares are of the valid regions / pixels. With the selection (collab) each region has one teacher, so the
    region shares sum to 1, and a pixel where both are wrong (or tie) has none; without it (collab_nonselective)
    every valid region and pixel teaches both ways, so each share is 1.
    """
    per_seed = {key: [] for key in SHARE_KEYS}
    runs = sorted((Path(root) / folder).glob("seed*/history.jsonl"))
    if not runs:
        raise ValueError(f"no seed*/history.jsonl under {Path(root) / folder}")
    for history in runs:
        rows = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
        train = [row for row in rows if row.get("kind") == "train" and all(key in row for key in SHARE_KEYS)]
        if not train:
            raise ValueError(f"{history}: no train rows with the teaching shares {SHARE_KEYS}")
        last = max(row["step"] for row in train)
        tail = [row for row in train if row["step"] > last - last_steps]
        for key in SHARE_KEYS:
            per_seed[key].append(statistics.mean(row[key] for row in tail))
    return {key: (statistics.mean(values),
                  statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan"))
            for key, values in per_seed.items()}


def teaching_share_table(cell: str, arms=("collab", "collab_nonselective"), root=REPO_ROOT) -> str:
    """Who teaches how much at the end of training, per arm: the shares of teaching_shares, in %."""
    lines = ["| arm | seeds | regions the CNN teaches | regions the ViT teaches | pixels the CNN teaches | "
             "pixels the ViT teaches |", "|---|---|---|---|---|---|"]
    for arm in arms:
        folder = study_runs(cell)[arm]
        shares = teaching_shares(folder, root=root)
        seeds = len(list((Path(root) / folder).glob("seed*/history.jsonl")))
        cells = " | ".join(f"{100 * mean:.0f} ± {100 * se:.0f} %" for mean, se in (shares[k] for k in SHARE_KEYS))
        lines.append(f"| {arm} | {seeds} | {cells} |")
    return "\n".join(lines)


# (name, baseline, reading): the descriptive contrasts the pre-registration lists beside the hypotheses
CONTRASTS = (
    ("collab_nonselective", "dml_w0.3", "HFD and the unselective region term, on top of DML at weight 0.3"),
)


def contrast_table(cell: str, contrasts=CONTRASTS, root=REPO_ROOT) -> str:
    """Descriptive paired gains (no verdict): mean ± s.e. on val and test, seeds positive on test."""
    lines = ["| contrast | student | seeds | val gain | test gain | test seeds positive |", "|---|---|---|---|---|---|"]
    runs = study_runs(cell)
    for name, baseline, reading in contrasts:
        for student, label in (("cnn", "CNN"), ("vit", "ViT")):
            s = {split: _summary(paired_gains(runs, name, student, baseline, split, root))
                 for split in ("final_val", "test")}
            lines.append(f"| {name} minus {baseline} ({reading}) | {label} | {s['test']['seeds']} | "
                         f"{s['final_val']['mean']:+.2f} ± {s['final_val']['se']:.2f} | "
                         f"{s['test']['mean']:+.2f} ± {s['test']['se']:.2f} | {s['test']['agreeing']} |")
    return "\n".join(lines)
