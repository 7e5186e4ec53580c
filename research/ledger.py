"""The research ledger: the studies run on the kit's synthetic street scenes, and how they are read.

docs/evidence.md tells the story; this module holds what it rests on, so that every table there can
be regenerated from the committed runs (results/sweeps, results/cpu) and checked by a test:

- the studies: {configuration name: folder of seed<N>/ runs, or a tuple of folders pooled};
- HYPOTHESES and `replication_verdict`, the rule written down before each replication round
  (results/sweeps/README.md items 9-18; docs/method.md, "Protocol");
- QUOTED_TABLES: which study's paired-gain table docs/evidence.md (test split) and
  results/sweeps/README.md (val split) quote, and `tables_in` to find them there;
- `pixel_transfer_breakdown`, the measurement behind "polishing or corrections?" (round 2);
- `stale_commits`: committed runs whose recorded `git_commit` cannot be the code they ran (from their
  config.json, and a one-time check of the oldest runs kept as data).

Folders are relative to the repository root; pass root= to read them elsewhere.
"""
import json
import math
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from collab_lib.analysis import load_trained_students, paired_gain_table, paired_gains, seed_metrics
from collab_lib.losses import PixelBSDLoss

REPO_ROOT = Path(__file__).resolve().parents[1]

# ---- the studies ------------------------------------------------------------------------------------------
# The 1200-step study (docs/evidence.md "Longer training", results/sweeps/README.md items 6-8), seeds 0-6.
LONG_STUDY = {
    "independent": "results/sweeps/long1200/independent",
    # round 4: the same training in channels-last memory: float rounding differs, and which elements the
    # CNN's ASPP dropout drops (same rate); its paired "gains" are what a change of no expected effect does (item 8)
    "independent, channels_last=True (placebo)": "results/sweeps/long1200-placebo-nhwc/independent",
    "dml": "results/sweeps/long1200/dml",
    "kdcl": "results/sweeps/long1200/kdcl", "collab": "results/sweeps/long1200/collab",
    "collab_no_hfd": "results/sweeps/long1200/collab_no_hfd", "collab_no_region": "results/sweeps/long1200/collab_no_region",
    "collab_no_pixel": "results/sweeps/long1200/collab_no_pixel", "hfd_only": "results/sweeps/long1200/hfd_only",
    "collab, w_pixel=0.1": "results/sweeps/long1200-pixel0.1/collab",
    "collab, w_pixel=0.03": "results/sweeps/long1200-pixel0.03/collab",
    "collab, region_size=4": "results/sweeps/long1200-region4/collab",
    # round 2 (the pixel term's settings, and the kit's learner-wrong variant)
    "collab, T=2": "results/sweeps/long1200-T2/collab",
    # rerun 2026-11-30 with the setting as meant (the first draw had stored the text "False": see below)
    "collab, require_correct=False": "results/sweeps/long1200-anypixel/collab",
    "collab, warmup=0.5": "results/sweeps/long1200-warmup0.5/collab",
    "collab, require_learner_wrong": "results/sweeps/long1200-learnerwrong/collab",
    "collab, require_learner_wrong, w_pixel=0.03": "results/sweeps/long1200-learnerwrong-pixel0.03/collab",
    "collab_no_pixel, w_hfd=w_region=0.3": "results/sweeps/long1200-feat0.3/collab_no_pixel",
    # round 4, last: a second draw of hfd_only (channels-last, as the placebo), to see whether its ViT gain survives its own noise
    "hfd_only, channels_last=True (placebo)": "results/sweeps/long1200-placebo-nhwc/hfd_only",
}
# Round 2's require_correct=False runs were first MISLABELLED: `--set require_correct=False` stored the text
# "False", which is true, so they were a second draw of plain collab (their seed 0 equalled long1200-rerun's in
# every logged number). Rerun on 2026-11-30 (commit f3848ce, typed settings) with the setting as meant; no run of
# the ledger is mislabelled now. Rows named here are left out of the quoted-table checks.
MISLABELLED = {}

# Round 5 (item 9): hfd_only on fresh seeds 7-13, and both configurations pooled over 14 seeds.
FRESH_SEEDS = "results/sweeps/long1200-confirm"  # rounds 5-7 and 12: every configuration on seeds 7-13 (dml 7-12)
CONFIRM_STUDY = {name: f"{FRESH_SEEDS}/{name}" for name in ("independent", "hfd_only")}
POOLED_HFD_STUDY = {name: (LONG_STUDY[name], CONFIRM_STUDY[name]) for name in CONFIRM_STUDY}
# Round 6 (item 10): collab and collab_no_pixel on seeds 7-13, paired with round 5's independent runs; pooled.
ROUND6_STUDY = {name: f"{FRESH_SEEDS}/{name}" for name in ("independent", "collab", "collab_no_pixel")}
POOLED_ROUND6_STUDY = {name: (LONG_STUDY[name], ROUND6_STUDY[name]) for name in ROUND6_STUDY}
# Round 7 (item 11): DML on fresh seeds 7-12; pooled with DML's seeds 0-2.
ROUND7_STUDY = {name: f"{FRESH_SEEDS}/{name}" for name in ("independent", "dml")}
POOLED_ROUND7_STUDY = {name: (LONG_STUDY[name], ROUND7_STUDY[name]) for name in ROUND7_STUDY}
# Round 8 (item 12, exploratory): the capacity-matched pair, DeepLabV3+ on MobileNetV2 (3.44 M parameters as the
# recipe builds it) with SegFormer-B0 (3.45 M), seeds 0-2; its own independent runs are the baseline.
MNV2_STUDY = {name: f"results/sweeps/long1200-mnv2/{name}" for name in ("independent", "collab", "collab_no_pixel", "dml")}
# Round 9 (item 13): that pair's independent and collab on fresh seeds 7-12, and both pooled with seeds 0-2.
MNV2_CONFIRM_STUDY = {name: f"results/sweeps/long1200-mnv2-confirm/{name}" for name in ("independent", "collab")}
POOLED_MNV2_STUDY = {name: (MNV2_STUDY[name], MNV2_CONFIRM_STUDY[name]) for name in MNV2_CONFIRM_STUDY}
# Round 10 (item 15): that pair with the CNN's own learning rate (lr_cnn 0.1, item 14), seeds 1-9, CPU.
MNV2_LR01_STUDY = {name: f"results/sweeps/long1200-mnv2-lr01/{name}" for name in ("independent", "collab")}
# Round 11 (item 16): the same on an H100 with the trainer's GPU defaults (bf16, channels-last), seeds 1-6:
# other arithmetic than round 10's, so a separate study, never pooled with it.
GPU_MNV2_LR01_STUDY = {name: f"results/sweeps/gpu-mnv2-lr01/{name}" for name in ("independent", "collab")}
# Round 12 (item 17): KDCL on fresh seeds 7-13; pooled with KDCL's seeds 0-2.
ROUND12_STUDY = {name: f"{FRESH_SEEDS}/{name}" for name in ("independent", "kdcl")}
POOLED_ROUND12_STUDY = {name: (LONG_STUDY[name], ROUND12_STUDY[name]) for name in ROUND12_STUDY}
# Round 13 (item 18): collab with w_pixel 0.03 on fresh seeds 7-13; pooled with its seeds 0-6.
ROUND13_STUDY = {"independent": f"{FRESH_SEEDS}/independent",
                 "collab, w_pixel=0.03": "results/sweeps/long1200-pixel0.03-confirm/collab"}
POOLED_ROUND13_STUDY = {name: (LONG_STUDY[name], ROUND13_STUDY[name]) for name in ROUND13_STUDY}
# Round 17 (item 20, research/selectivity.md): five arms on fresh seeds 20-27 in the picked cell, the MobileNetV2
# pair without augmentation on 50 scenes; its verdicts are research.selectivity.verdict_table's.
SELECTIVITY_STUDY = {arm: f"results/sweeps/selectivity/mnv2-augoff-n50/{arm}"
                     for arm in ("independent", "collab", "collab_nonselective", "dml_w0.3", "dml")}

STUDIES = {name: value for name, value in globals().items() if name.endswith("_STUDY")}

# Which paired-gain tables the write-ups quote: study name -> the documents that quote it (test split in
# docs/evidence.md, final-val split in results/sweeps/README.md). The seed-0-6 table quoted in the sweeps
# README still carries the mislabelled row, which `tables_in` is told to skip.
EVIDENCE, SWEEPS = "docs/evidence.md", "results/sweeps/README.md"
QUOTED_TABLES = {
    "LONG_STUDY": (EVIDENCE, SWEEPS), "CONFIRM_STUDY": (EVIDENCE, SWEEPS), "POOLED_HFD_STUDY": (EVIDENCE, SWEEPS),
    "ROUND6_STUDY": (EVIDENCE, SWEEPS), "POOLED_ROUND6_STUDY": (EVIDENCE, SWEEPS),
    "ROUND7_STUDY": (EVIDENCE, SWEEPS), "POOLED_ROUND7_STUDY": (SWEEPS,),
    "MNV2_STUDY": (EVIDENCE, SWEEPS), "MNV2_CONFIRM_STUDY": (EVIDENCE, SWEEPS), "POOLED_MNV2_STUDY": (EVIDENCE, SWEEPS),
    "MNV2_LR01_STUDY": (EVIDENCE, SWEEPS), "GPU_MNV2_LR01_STUDY": (EVIDENCE, SWEEPS),
    "ROUND12_STUDY": (EVIDENCE, SWEEPS), "POOLED_ROUND12_STUDY": (SWEEPS,),
    "ROUND13_STUDY": (EVIDENCE, SWEEPS), "POOLED_ROUND13_STUDY": (SWEEPS,),
}

# ---- the replication rule ---------------------------------------------------------------------------------
# Every hypothesis the rounds read: (reading, study, configuration, student, expected sign, seeds that must
# agree on test). Rows on seeds 0-6 apply the rule to the seeds that suggested a reading (easy to pass);
# "fresh" rows are the pre-registered replications; on round 8's three seeds "holds" means only "suggested".
HYPOTHESES = [
    ("hfd_only lifts the ViT, seeds 0-6", "LONG_STUDY", "hfd_only", "vit", +1, 5),
    ("collab costs the CNN, seeds 0-4", "LONG_STUDY", "collab", "cnn", -1, 5),
    ("collab_no_pixel lifts the ViT, seeds 0-4", "LONG_STUDY", "collab_no_pixel", "vit", +1, 5),
    ("hfd_only lifts the ViT, fresh seeds 7-13 (round 5)", "CONFIRM_STUDY", "hfd_only", "vit", +1, 5),
    ("collab costs the CNN, fresh seeds 7-13 (round 6)", "ROUND6_STUDY", "collab", "cnn", -1, 5),
    ("collab_no_pixel lifts the ViT, fresh seeds 7-13 (round 6)", "ROUND6_STUDY", "collab_no_pixel", "vit", +1, 5),
    ("dml costs the CNN, fresh seeds 7-12 (round 7)", "ROUND7_STUDY", "dml", "cnn", -1, 5),
    ("dml lifts the ViT, fresh seeds 7-12 (round 7)", "ROUND7_STUDY", "dml", "vit", +1, 5),
    ("MobileNetV2 pair: collab lifts the CNN, seeds 0-2 (round 8)", "MNV2_STUDY", "collab", "cnn", +1, 3),
    ("MobileNetV2 pair: collab lifts the ViT, seeds 0-2 (round 8)", "MNV2_STUDY", "collab", "vit", +1, 3),
    ("MobileNetV2 pair: collab_no_pixel lifts the CNN, seeds 0-2 (round 8)", "MNV2_STUDY", "collab_no_pixel", "cnn", +1, 3),
    ("MobileNetV2 pair: collab_no_pixel lifts the ViT, seeds 0-2 (round 8)", "MNV2_STUDY", "collab_no_pixel", "vit", +1, 3),
    ("MobileNetV2 pair: dml costs the ViT, seeds 0-2 (round 8)", "MNV2_STUDY", "dml", "vit", -1, 3),
    ("MobileNetV2 pair: collab lifts the CNN, fresh seeds 7-12 (round 9)", "MNV2_CONFIRM_STUDY", "collab", "cnn", +1, 5),
    ("MobileNetV2 pair at lr 0.1: collab lifts the CNN, seeds 1-9, CPU (round 10)", "MNV2_LR01_STUDY", "collab", "cnn", +1, 7),
    ("MobileNetV2 pair at lr 0.1: collab lifts the ViT, seeds 1-9, CPU (round 10)", "MNV2_LR01_STUDY", "collab", "vit", +1, 7),
    ("MobileNetV2 pair at lr 0.1: collab lifts the CNN, seeds 1-6, GPU (round 11)", "GPU_MNV2_LR01_STUDY", "collab", "cnn", +1, 5),
    ("MobileNetV2 pair at lr 0.1: collab lifts the ViT, seeds 1-6, GPU (round 11)", "GPU_MNV2_LR01_STUDY", "collab", "vit", +1, 5),
    ("kdcl costs the CNN, fresh seeds 7-13 (round 12)", "ROUND12_STUDY", "kdcl", "cnn", -1, 6),
    ("kdcl lifts the ViT, fresh seeds 7-13 (round 12)", "ROUND12_STUDY", "kdcl", "vit", +1, 6),
    ("collab at w_pixel 0.03 costs the CNN, fresh seeds 7-13 (round 13)", "ROUND13_STUDY", "collab, w_pixel=0.03", "cnn", -1, 6),
    ("collab at w_pixel 0.03 lifts the ViT, fresh seeds 7-13 (round 13)", "ROUND13_STUDY", "collab, w_pixel=0.03", "vit", +1, 6),
]


def replication_verdict(runs: dict, name: str, student: str, expected_sign: int, min_agreeing: int = 5,
                        baseline: str = "independent", root=REPO_ROOT) -> dict:
    """Apply the rule that results/sweeps/README.md items 9-18 fixed before their runs (docs/method.md, "Protocol").

    A hypothesis "`name` moves `student` in the direction `expected_sign` (+1 gain, -1 cost) against
    `baseline`" **holds** if the mean paired gain has that sign on final val and on test and at least
    `min_agreeing` seeds have it on test; it **fails** if the mean is at or on the wrong side of 0 on
    either split; anything between is "not settled". On an exploratory round of three seeds (item 12)
    `min_agreeing=3`, and "holds" means only "suggested": a hypothesis for fresh seeds.
    Returns {"final_val": {...}, "test": {...}, "verdict": str}, each split's dict holding the per-seed
    gains (x100), their mean, standard error and the count of seeds with the expected sign.
    """
    if expected_sign not in (1, -1):
        raise ValueError(f"expected_sign must be +1 (a gain) or -1 (a cost), got {expected_sign!r}")
    report = {}
    for split in ("final_val", "test"):
        gains = paired_gains(runs, name, student, baseline, split, root)
        values = list(gains.values())
        report[split] = {
            "gains": gains, "mean": statistics.mean(values),
            "se": statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan"),
            "agreeing": sum(expected_sign * g > 0 for g in values), "seeds": len(values),
        }
    if any(expected_sign * report[split]["mean"] <= 0 for split in ("final_val", "test")):
        report["verdict"] = "fails"
    elif report["test"]["agreeing"] >= min_agreeing:
        report["verdict"] = "holds"
    else:
        report["verdict"] = "not settled"
    return report


def verdict_table(hypotheses=HYPOTHESES, root=REPO_ROOT) -> str:
    """Every hypothesis with its paired gains (x100, mean ± s.e.) on val and test, the seeds agreeing on
    test and the verdict, as a Markdown table (docs/evidence.md quotes it)."""
    lines = ["| reading | seeds | val gain | test gain | test seeds agreeing (needed) | verdict |",
             "|---|---|---|---|---|---|"]
    for reading, study, name, student, sign, agreeing in hypotheses:
        r = replication_verdict(STUDIES[study], name, student, sign, agreeing, root=root)
        cell = lambda s: f"{r[s]['mean']:+.1f} ± {r[s]['se']:.1f}"  # noqa: E731
        lines.append(f"| {reading} | {r['test']['seeds']} | {cell('final_val')} | {cell('test')} | "
                     f"{r['test']['agreeing']} ({agreeing}) | {r['verdict']} |")
    return "\n".join(lines)


# ---- the quoted tables ------------------------------------------------------------------------------------
def tables_in(text: str, skip_rows=tuple(MISLABELLED)) -> list:
    """The Markdown tables in `text` (runs of lines starting with "|", leading spaces ignored), each as one
    string, with the rows whose first cell starts with a name in `skip_rows` left out (rows awaiting a
    rerun, which the write-ups mark after the name)."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        line = line.strip()
        if line.startswith("|"):
            first_cell = line.strip("| ").split(" |")[0].strip()
            if not any(first_cell.startswith(name) for name in skip_rows):
                current.append(line)
        elif current:
            tables.append("\n".join(current))
            current = []
    return tables


def unquoted_tables(root=REPO_ROOT) -> list:
    """[(study, document, split)] of every QUOTED_TABLES entry whose regenerated paired-gain table is not one
    of the document's tables (empty when the write-ups and the committed runs agree)."""
    missing = []
    for study, documents in QUOTED_TABLES.items():
        for document in documents:
            split = "test" if document == EVIDENCE else "final_val"
            table = "\n".join(tables_in(paired_gain_table(STUDIES[study], split=split, root=root)))
            if table not in tables_in(Path(root, document).read_text()):
                missing.append((study, document, split))
    return missing


# ---- pixel-wise BSD: corrections or polishing? ------------------------------------------------------------
@torch.no_grad()
def pixel_transfer_breakdown(cnn, vit, loader, num_classes: int, temperature: float = 1.0,
                             require_correct: bool = True, ignore_index: int = 255) -> dict:
    """Where pixel-wise BSD (the paper's rule, as the kit implements it) moves knowledge, and what it pulls
    down, summed over a split.

    cnn, vit: students in eval mode; loader yields (images (B,3,H,W), labels (B,H,W)).
    Returns {"cnn": {...}, "vit": {...}}, keyed by the *learner*, each with
      "correction_pixels", "polishing_pixels": int, transferred pixels where the learner's argmax is
          wrong / right (polishing: both right, the teacher only more confident);
      "correction_push", "polishing_push": float64 (num_classes,): for each class k, the downward pull on
          the learner's class-k logit at transferred pixels *not labelled k*, summed over them: the
          positive part of dL/dz_learner[k] = T * (p_learner^T[k] - p_teacher^T[k]) for
          L = T^2 * KL(sg(p_teacher^T) || p_learner^T), per pixel (before the mean over pixels).
    Which pixels move is PixelBSDLoss's decision (its "cnn_teaches" / "vit_teaches" masks). The split says how much of the pull on class k comes from pixels where the learner was
    already right; it does not say which part changes the learner's predictions.
    """
    pixel = PixelBSDLoss(temperature=temperature, require_correct=require_correct, ignore_index=ignore_index)
    result = {learner: {"correction_pixels": 0, "polishing_pixels": 0,
                        "correction_push": torch.zeros(num_classes, dtype=torch.float64),
                        "polishing_push": torch.zeros(num_classes, dtype=torch.float64)}
              for learner in ("cnn", "vit")}
    for images, labels in loader:
        size = labels.shape[-2:]
        z_c = F.interpolate(cnn(images).logits.float(), size=size, mode="bilinear", align_corners=False)
        z_v = F.interpolate(vit(images).logits.float(), size=size, mode="bilinear", align_corners=False)
        _, info = pixel(z_c, z_v, labels)
        valid = labels != ignore_index
        target = torch.where(valid, labels, 0).long()
        right_c = valid & (z_c.argmax(dim=1) == target)
        right_v = valid & (z_v.argmax(dim=1) == target)
        p_c, p_v = torch.softmax(z_c / temperature, dim=1), torch.softmax(z_v / temperature, dim=1)
        other_class = torch.ones_like(p_c, dtype=torch.bool).scatter_(1, target.unsqueeze(1), False)
        for learner, moves, p_learner, p_teacher, right in (
                ("cnn", info["vit_teaches"], p_c, p_v, right_c), ("vit", info["cnn_teaches"], p_v, p_c, right_v)):
            pull = (temperature * (p_learner - p_teacher)).clamp(min=0) * other_class
            for kind, where in (("correction", moves & ~right), ("polishing", moves & right)):
                result[learner][f"{kind}_pixels"] += int(where.sum())
                result[learner][f"{kind}_push"] += (pull * where.unsqueeze(1)).sum(dim=(0, 2, 3)).double()
    return result


def pixel_transfer_table(run_dir, split: str = "val", checkpoint: str = "last.pt", batch_size: int = 16):
    """pixel_transfer_breakdown of a finished run (it needs its checkpoint) as a pandas DataFrame indexed by
    class name, columns "<learner>_<correction|polishing>_push" (the pull summed over the split, divided by
    its transferred pixels of both kinds, so the four columns share a scale per learner), and
    `.attrs["pixels"]`: {learner: {"correction": n, "polishing": n}}. Uses the run's temperature and
    require_correct."""
    import pandas as pd

    cnn, vit, config, dataset = load_trained_students(run_dir, checkpoint, split)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    out = pixel_transfer_breakdown(cnn, vit, loader, dataset.num_classes, config.temperature,
                                   config.require_correct, dataset.ignore_index)
    columns = {}
    for learner, parts in out.items():
        moved = max(1, parts["correction_pixels"] + parts["polishing_pixels"])
        for kind in ("correction", "polishing"):
            columns[f"{learner}_{kind}_push"] = (parts[f"{kind}_push"] / moved).tolist()
    table = pd.DataFrame(columns, index=list(dataset.class_names))
    table.attrs["pixels"] = {learner: {kind: parts[f"{kind}_pixels"] for kind in ("correction", "polishing")}
                             for learner, parts in out.items()}
    return table


# ---- provenance: which recorded commits are stale ---------------------------------------------------------
# Decided from what each run's config.json records, never from the library's source at past commits.
#
# Runs made since the trainer records the checkout's state ("git_dirty", "git_changes"; every run since
# 2026-11-30) say themselves whether their `git_commit` holds the code that ran: it does unless the
# checkout had uncommitted changes in the library (collab_lib/, all that a run imports from the checkout).
#
# The 237 committed runs from before record only `git_commit` (some also `git_head_at_start`). They were
# checked once, on 2026-12-07 at commit 1a87dae, against the `cpu` recipe each of their 27 recorded commits
# held in git history (TrainConfig's defaults overlaid with experiments' _CPU_BASE): only runs naming 0ab0615
# were stale; they ran the recipe of the next commits (7a8bf80 and later). That finding is kept here as data,
# and the trainer can no longer write a run without "git_dirty".
RECORDS_WITHOUT_CHECKOUT_STATE = 237
RECIPE_STALE_COMMITS = {  # recorded commit -> its `cpu` recipe, and the recipe the runs naming it ran
    "0ab0615": {"at_commit": {"lr_cnn": 0.01, "lr_vit": 0.0006, "train_samples": 100, "w_pixel": 1.0},
                "ran": {"lr_cnn": 0.03, "lr_vit": 0.003, "train_samples": 50, "w_pixel": 0.3}},
}
CODE = "collab_lib/"  # the checkout's code a run executes; docs, tests and other runs' files change nothing
GIT_CHANGES_KEPT = 50  # config.json keeps at most this many `git status` lines (collab_lib.runinfo)


def _committed_runs(root, results: str) -> list:
    """[(run folder relative to root, config.json's contents)] of every run below root/results, by folder."""
    paths = sorted(Path(root, results).rglob("config.json"))
    return [(path.parent.relative_to(root).as_posix(), json.loads(path.read_text())) for path in paths]


def _recipe_moved(info: dict) -> dict:
    """{field: (the run's value, its recorded commit's)} for a run that ran a recipe its commit did not hold."""
    known = RECIPE_STALE_COMMITS.get(info["git_commit"][:7])
    if known is None:
        return {}
    config = info.get("config", {})
    return {key: (config[key], then) for key, then in sorted(known["at_commit"].items())
            if config.get(key) == known["ran"][key] != then}


def _uncommitted_code(info: dict) -> list:
    """The `git status` lines of a run's checkout that name a file of the library (porcelain: "XY path")."""
    changes = info.get("git_changes") or []
    code = [line for line in changes if line[3:].startswith(CODE) or f" -> {CODE}" in line]
    if len(changes) >= GIT_CHANGES_KEPT:  # the list was cut: what it does not show may be code
        code.append(f"(more than {GIT_CHANGES_KEPT} changes; the rest not recorded)")
    return code


def stale_commits(root=REPO_ROOT, results: str = "results") -> list:
    """Committed runs whose config.json `git_commit` cannot be the code they ran, read from config.json alone.

    A run that records its checkout's state ("git_dirty") is stale when that checkout had uncommitted
    changes in collab_lib/ ("changes": those `git status` lines). A run from before that record
    is stale when its commit is one RECIPE_STALE_COMMITS lists and the run carries a value of the recipe
    those runs ran that the commit's recipe did not have ("fields": {field: (run's value, the commit's)}).
    Returns [{"run": folder relative to root, "commit": short hash, "fields", "changes"}], sorted by folder.
    """
    stale = []
    for run, info in _committed_runs(root, results):
        if not info.get("git_commit"):
            continue
        fields, changes = {}, []
        if "git_dirty" in info:
            changes = _uncommitted_code(info) if info["git_dirty"] else []
        else:
            fields = _recipe_moved(info)
        if fields or changes:
            stale.append({"run": run, "commit": info["git_commit"][:7], "fields": fields, "changes": changes})
    return stale


def stale_commit_table(root=REPO_ROOT) -> str:
    """stale_commits grouped by folder of seeds, as a Markdown table (docs/evidence.md quotes it; its header
    names the recipe check, the only one that finds committed runs: a run with uncommitted library code would
    show as "uncommitted: <git status line>", and the evidence's header would want rewording)."""
    groups = {}
    for entry in stale_commits(root):
        folder, seed = entry["run"].rsplit("/", 1)
        reason = ", ".join([*(f"{k}={v[0]} (recipe at the commit: {v[1]})" for k, v in entry["fields"].items()),
                            *(f"uncommitted: {line.strip()}" for line in entry["changes"])])
        groups.setdefault((folder, entry["commit"], reason), []).append(seed.removeprefix("seed"))
    lines = ["| runs | seeds | recorded commit | the run's value that its commit's `cpu` recipe did not have |",
             "|---|---|---|---|"]
    for (folder, commit, reason), seeds in groups.items():
        lines.append(f"| {folder} | {', '.join(sorted(seeds, key=int))} | {commit} | {reason} |")
    return "\n".join(lines)


# ---- rounds 14-15: augmentation, training-set size and the generalisation gap (research/overfitting.md) ------
OVERFIT_SCAN = "results/sweeps/overfit-scan"
OVERFIT_CELLS = {  # cell folder -> (augment, train_samples), in the order research/overfitting.md lists them
    "augoff-n50": (False, 50), "augoff-n200": (False, 200), "augon-n50": (True, 50), "augon-n200": (True, 200)}
RECIPE_CELL = "augon-n50"  # the cpu recipe's own cell: augmentation on, 50 training scenes


def _final(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if "final_train" not in metrics:
        raise ValueError(f"{run_dir / 'metrics.json'} has no final_train: the run was made before the trainer "
                         "evaluated the training split; the scan needs its generalisation gap")
    return metrics


def overfit_scan(root=REPO_ROOT, scan=OVERFIT_SCAN, seed: int = 0) -> dict:
    """Round 14's numbers per cell: {cell: {"independent"|"collab": {student: {"train", "val", "gap"}}, "g"}}.

    train: final mIoU x100 on the first train_eval_samples training scenes, unaugmented; val: final val mIoU
    x100; gap = train - val (the generalisation gap); g = the mean over the two students of collab - independent
    final val (x100). A cell whose two runs are not both finished is left out.
    """
    cells = {}
    for cell in OVERFIT_CELLS:
        runs = {m: Path(root, scan, cell, m, f"seed{seed}") for m in ("independent", "collab")}
        if not all((r / "metrics.json").exists() for r in runs.values()):
            continue
        entry = {}
        for method, run_dir in runs.items():
            m = _final(run_dir)
            entry[method] = {s: {"train": 100 * m["final_train"][s]["miou"], "val": 100 * m["final_val"][s]["miou"]}
                             for s in ("cnn", "vit")}
            for s in ("cnn", "vit"):
                entry[method][s]["gap"] = entry[method][s]["train"] - entry[method][s]["val"]
        entry["g"] = statistics.mean(entry["collab"][s]["val"] - entry["independent"][s]["val"] for s in ("cnn", "vit"))
        cells[cell] = entry
    return cells


def overfit_pick(cells: dict, tie_points: float = 0.5) -> str:
    """The cell round 15 confirms in, by the rule research/overfitting.md fixed before the scan.

    The cell with the largest g; if the runner-up's g is within `tie_points` of it, the one of the two whose
    independent students have the larger generalisation gap (mean over the two students). `cells`: all four
    cells of `overfit_scan`; fewer is an error (the pick is made once the scan is complete).
    """
    missing = [c for c in OVERFIT_CELLS if c not in cells]
    if missing:
        raise ValueError(f"the scan is not complete: no finished independent and collab runs in {missing}")
    ranked = sorted(cells, key=lambda c: cells[c]["g"], reverse=True)
    best, runner_up = ranked[0], ranked[1]
    if cells[best]["g"] - cells[runner_up]["g"] > tie_points:
        return best
    gap = lambda c: statistics.mean(cells[c]["independent"][s]["gap"] for s in ("cnn", "vit"))  # noqa: E731
    return max((best, runner_up), key=gap)


def overfit_scan_table(cells: dict) -> str:
    """Round 14 as research/overfitting.md reports it: per cell and method, train / val / gap per student, and g."""
    lines = ["| cell | augmentation | training scenes | method | train CNN / ViT | val CNN / ViT | gap CNN / ViT | g |",
             "|---|---|---|---|---|---|---|---|"]
    for cell, entry in cells.items():
        augment, n = OVERFIT_CELLS[cell]
        for method in ("independent", "collab"):
            e = entry[method]
            pair = lambda k: f"{e['cnn'][k]:.1f} / {e['vit'][k]:.1f}"  # noqa: E731
            g = f"{entry['g']:+.1f}" if method == "collab" else ""
            lines.append(f"| {cell} | {'on' if augment else 'off'} | {n} | {method} | {pair('train')} | {pair('val')} | "
                         f"{pair('gap')} | {g} |")
    return "\n".join(lines)


# Round 15: the confirmation on fresh seeds 14-18, in the cell round 14 picked and in the recipe's cell.
OVERFIT_CONFIRM = "results/sweeps/overfit-confirm"
ROUND15_CELL = "augoff-n50"  # overfit_pick(overfit_scan()) once round 14 was complete; a test checks it still is
ROUND15_STUDY = {m: f"{OVERFIT_CONFIRM}/{ROUND15_CELL}/{m}" for m in ("independent", "dml", "kdcl", "collab")}
ROUND15_RECIPE_STUDY = {m: f"{OVERFIT_CONFIRM}/{RECIPE_CELL}/{m}" for m in ("independent", "collab")}
# (reading, runs, configuration, student, expected sign, seeds that must agree on test, baseline): the hypotheses
# P, Q, Q', R, R' and S of research/overfitting.md, each for the CNN and for the ViT.
ROUND15_HYPOTHESES = [
    (f"({code}) {text}, {label}", runs, name, student, +1, 4, baseline)
    for code, text, runs, name, baseline in (
        ("P", "collab lifts", ROUND15_STUDY, "collab", "independent"),
        ("Q", "dml lifts", ROUND15_STUDY, "dml", "independent"),
        ("Q'", "kdcl lifts", ROUND15_STUDY, "kdcl", "independent"),
        ("R", "collab beats dml for", ROUND15_STUDY, "collab", "dml"),
        ("R'", "collab beats kdcl for", ROUND15_STUDY, "collab", "kdcl"),
        ("S", "in the recipe's cell collab lifts", ROUND15_RECIPE_STUDY, "collab", "independent"))
    for student, label in (("cnn", "the CNN"), ("vit", "the ViT"))]


def round15_verdict_table(root=REPO_ROOT) -> str:
    """Round 15's hypotheses by the rule of rounds 5-13 (replication_verdict, 4 of 5 seeds on test), with
    whether a holding gain is beyond the seeds' spread (test mean above twice its standard error)."""
    lines = ["| hypothesis | baseline | seeds | val gain | test gain | test seeds agreeing (needed) | verdict |",
             "|---|---|---|---|---|---|---|"]
    for reading, runs, name, student, sign, agreeing, baseline in ROUND15_HYPOTHESES:
        r = replication_verdict(runs, name, student, sign, agreeing, baseline=baseline, root=root)
        cell = lambda s: f"{r[s]['mean']:+.1f} ± {r[s]['se']:.1f}"  # noqa: E731
        verdict = r["verdict"]
        if verdict == "holds":
            verdict += ", beyond the spread" if r["test"]["mean"] > 2 * r["test"]["se"] else ", within the spread"
        lines.append(f"| {reading} | {baseline} | {r['test']['seeds']} | {cell('final_val')} | {cell('test')} | "
                     f"{r['test']['agreeing']} ({agreeing}) | {verdict} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m research.ledger pick: round 15's cell, or exit 1 while the scan runs
    import sys
    if sys.argv[1:] == ["pick"]:
        try:
            print(overfit_pick(overfit_scan()))
        except ValueError as error:
            print(error, file=sys.stderr)
            sys.exit(1)
    else:
        sys.exit("usage: python -m research.ledger pick")


# ---- the numbers the write-ups quote in prose (research/tests/test_quotes.py) -------------------------------
def paired_gain_summary(runs: dict, name: str, student: str, baseline: str | tuple = "independent",
                        split: str = "test", root=REPO_ROOT) -> dict:
    """The numbers behind one cell of `paired_gain_table(runs, baseline, split)`: analysis.paired_gains (a
    tuple baseline: a seed's baseline is the mean of their runs of that seed) and their summary.

    Returns {"gains": {seed: gain}, "mean", "se" (sample std / sqrt(n); NaN on one seed), "sd" (sample std
    over seeds; NaN on one seed), "seeds", "positive", "negative" (seeds with a gain above / below 0)}.
    """
    gains = dict(sorted(paired_gains(runs, name, student, baseline, split, root).items()))
    values = list(gains.values())
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return {"gains": gains, "mean": statistics.mean(values), "se": sd / math.sqrt(len(values)), "sd": sd,
            "seeds": len(values), "positive": sum(g > 0 for g in values), "negative": sum(g < 0 for g in values)}


def class_gains(runs: dict, name: str, student: str, baseline: str = "independent", split: str = "test",
                root=REPO_ROOT) -> dict:
    """{class: `student`'s IoU x100 on the class under `name` minus under `baseline`, paired by seed, mean over
    the seeds} (runs as in paired_gain_table; a seed where either run has no IoU for the class, None, is left
    out of that class's mean; a class with no such pair is NaN). With the same seeds on both sides this is
    also the difference of the per-class means that results/*/SUMMARY.md prints."""
    results, base = seed_metrics(runs[name], split, root), seed_metrics(runs[baseline], split, root)
    missing = sorted(set(results) - set(base))
    if not results or missing:
        raise ValueError(f"{name}: no runs, or seeds {missing} without a {baseline!r} run to pair with")
    classes = next(iter(results.values()))[student]["iou"]
    out = {}
    for c in classes:
        pairs = [(r[student]["iou"].get(c), base[seed][student]["iou"].get(c)) for seed, r in results.items()]
        pairs = [100 * (a - b) for a, b in pairs if a is not None and b is not None]
        out[c] = statistics.mean(pairs) if pairs else float("nan")
    return out
