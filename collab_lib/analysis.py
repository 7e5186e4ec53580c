"""After training: which classes each student teaches, and the evidence report.

`teaching_by_class_counts` runs a trained pair over a whole split and counts,
per class, the labelled pixels where the CNN or the ViT would teach under
region-wise BSD (the region's direction painted onto its pixels) and under
pixel-wise BSD. Counts are summed over the split before dividing, like the
confusion matrix of the metric: a dataset-level share, not a mean of images.

`pixel_transfer_breakdown` splits what pixel-wise BSD transfers into
corrections (the learner is wrong there) and polishing (both students are
right, the teacher is only more confident), and measures how hard each pulls
down the learner's logit of every class at pixels of other classes.

`write_report(root)` turns a grid folder (collab_lib.experiments) into
SUMMARY.md and summary.png: mean ± std of each student's test mIoU per
configuration, per-class IoU side by side, and the teaching shares per class.

`paired_gain_table(runs)` compares configurations run with the same seeds
(e.g. the 1200-step study in results/sweeps): each student's mIoU, its gain
over a baseline paired by seed, and the CNN's IoU on chosen classes;
`replication_verdict` applies the rule fixed before a replication round
(results/sweeps/README.md items 9-16) to such runs.
"""
import json
import math
import statistics
from pathlib import Path

import torch

from .losses import PixelBSDLoss, RegionBSDLoss, regions_to_pixels
from .losses._common import upsample_logits
from .losses.pixel_bsd import is_correct


@torch.no_grad()
def teaching_by_class_counts(cnn, vit, loader, num_classes: int, region_size: int = 8, temperature: float = 1.0,
                             require_correct: bool = True, ignore_index: int = 255,
                             require_learner_wrong: bool = False) -> dict:
    """{"pixels", "region_cnn", "region_vit", "pixel_cnn", "pixel_vit"}: int64 tensors (num_classes,).

    cnn, vit: students in eval mode; loader yields (images (B,3,H,W), labels (B,H,W)).
    The region decision needs no connector weights (it reads only the logits), so
    fresh RegionBSDLoss / PixelBSDLoss modules are used.
    """
    region = RegionBSDLoss(cnn.embed_channels, vit.embed_channels, region_size, ignore_index)
    pixel = PixelBSDLoss(temperature, require_correct, ignore_index, require_learner_wrong)
    counts = {k: torch.zeros(num_classes, dtype=torch.int64) for k in ("pixels", "region_cnn", "region_vit", "pixel_cnn", "pixel_vit")}
    for images, labels in loader:
        out_c, out_v = cnn(images), vit(images)
        _, region_info = region(out_c.embed, out_v.embed, out_c.logits, out_v.logits, labels)
        _, pixel_info = pixel(out_c.logits, out_v.logits, labels)
        painted = regions_to_pixels(region_info["direction"], region.region_pixels, labels.shape[-2:])
        valid = labels != ignore_index
        classes = labels[valid].long()

        def count(mask):
            return torch.bincount(classes[mask[valid]], minlength=num_classes)

        counts["pixels"] += torch.bincount(classes, minlength=num_classes)
        counts["region_cnn"] += count(painted == 1)
        counts["region_vit"] += count(painted == -1)
        counts["pixel_cnn"] += count(pixel_info["cnn_teaches"])
        counts["pixel_vit"] += count(pixel_info["vit_teaches"])
    return counts


@torch.no_grad()
def pixel_transfer_breakdown(cnn, vit, loader, num_classes: int, temperature: float = 1.0,
                             require_correct: bool = True, ignore_index: int = 255) -> dict:
    """Where pixel-wise BSD (the spec's rule) moves knowledge, and what it pulls down, summed over a split.

    cnn, vit: students in eval mode; loader yields (images (B,3,H,W), labels (B,H,W)).
    Returns {"cnn": {...}, "vit": {...}}, keyed by the *learner*, each with
      "correction_pixels", "polishing_pixels": int, transferred pixels where the learner's
          argmax is wrong / right (polishing: both right, the teacher only more confident);
      "correction_push", "polishing_push": float64 (num_classes,): for each class k, the
          downward pull on the learner's class-k logit at transferred pixels *not labelled k*,
          summed over them: the positive part of dL/dz_learner[k] = T * (p_learner^T[k] - p_teacher^T[k])
          for L = T^2 * KL(sg(p_teacher^T) || p_learner^T), per pixel (before the mean over pixels).
    The split says how much of the pull on class k comes from pixels where the learner was already
    right (polishing); it does not say which part changes the learner's predictions (README, "Longer
    training": on this data the cost followed the corrections).
    """
    pixel = PixelBSDLoss(temperature, require_correct, ignore_index)
    result = {learner: {"correction_pixels": 0, "polishing_pixels": 0,
                        "correction_push": torch.zeros(num_classes, dtype=torch.float64),
                        "polishing_push": torch.zeros(num_classes, dtype=torch.float64)}
              for learner in ("cnn", "vit")}
    for images, labels in loader:
        z_c = upsample_logits(cnn(images).logits.float(), labels.shape[-2:])
        z_v = upsample_logits(vit(images).logits.float(), labels.shape[-2:])
        _, info = pixel(z_c, z_v, labels)
        valid = labels != ignore_index
        p_c, p_v = torch.softmax(z_c / temperature, dim=1), torch.softmax(z_v / temperature, dim=1)
        other_class = torch.ones_like(p_c, dtype=torch.bool).scatter_(
            1, torch.where(valid, labels, 0).long().unsqueeze(1), False)  # (B, K, H, W): k is not the pixel's label
        for learner, moves, p_learner, p_teacher, z_learner in (
                ("cnn", info["vit_teaches"], p_c, p_v, z_c), ("vit", info["cnn_teaches"], p_v, p_c, z_v)):
            pull = (temperature * (p_learner - p_teacher)).clamp(min=0) * other_class
            right = is_correct(z_learner, labels, valid)
            for kind, where in (("correction", moves & ~right), ("polishing", moves & right)):
                result[learner][f"{kind}_pixels"] += int(where.sum())
                result[learner][f"{kind}_push"] += (pull * where.unsqueeze(1)).sum(dim=(0, 2, 3)).double()
    return result


def pixel_transfer_table(run_dir, split: str = "val", checkpoint: str = "last.pt", batch_size: int = 16):
    """pixel_transfer_breakdown of a finished run as a pandas DataFrame indexed by class name, columns
    "<learner>_<correction|polishing>_push" (the pull summed over the split, divided by its transferred
    pixels of both kinds, so the four columns share a scale per learner), and `.attrs["pixels"]`:
    {learner: {"correction": n, "polishing": n}}. Uses the run's own temperature and require_correct."""
    import pandas as pd

    from .course import eval_dataset, load_students

    cnn, vit, _, config = load_students(run_dir, checkpoint)
    dataset = eval_dataset(config, split)
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


def teaching_table(run_dir, split: str = "test", checkpoint: str = "last.pt", batch_size: int = 16):
    """Per-class teaching shares of a finished run, as a pandas DataFrame indexed by class name
    with columns region_cnn, region_vit, pixel_cnn, pixel_vit (shares of the class's labelled pixels)."""
    import pandas as pd

    from .course import eval_dataset, load_students

    cnn, vit, _, config = load_students(run_dir, checkpoint)
    dataset = eval_dataset(config, split)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    counts = teaching_by_class_counts(cnn, vit, loader, dataset.num_classes, config.region_size,
                                      config.temperature, config.require_correct, dataset.ignore_index,
                                      config.require_learner_wrong)
    total = counts["pixels"].double().clamp(min=1)
    table = {k: (counts[k].double() / total).tolist() for k in ("region_cnn", "region_vit", "pixel_cnn", "pixel_vit")}
    return pd.DataFrame(table, index=list(dataset.class_names))


def _fmt(value, scale=100.0, sign=False):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{scale * value:+.1f}" if sign else f"{scale * value:.1f}"


def per_class_table(df, configurations=("independent", "dml", "kdcl", "collab")):
    """Mean per-class test IoU of each student per configuration: DataFrame (class x 'config/student')."""
    import pandas as pd

    classes = [c.split("/", 1)[1] for c in df.columns if c.startswith("cnn_iou/")]
    columns = {}
    for name in configurations:
        rows = df[df.configuration == name]
        if rows.empty:
            continue
        for student in ("cnn", "vit"):
            columns[f"{name}/{student}"] = [rows[f"{student}_iou/{c}"].astype(float).mean() for c in classes]
    return pd.DataFrame(columns, index=classes)


def complementarity_table(df, configuration: str = "independent"):
    """Per class, each student's test IoU under `configuration` (mean and sample std over seeds) and who leads.

    DataFrame indexed by class: cnn_mean, cnn_std, vit_mean, vit_std, gap (cnn - vit), lead: "cnn" or
    "vit" when the gap is larger than the two spreads together (std_cnn + std_vit), "-" otherwise
    (a tie within the seed noise, or a class neither student learns). method.md: the data earns its
    place only if the independently trained students differ per class in both directions.
    """
    import pandas as pd

    rows = df[df.configuration == configuration]
    classes = [c.split("/", 1)[1] for c in df.columns if c.startswith("cnn_iou/")]
    table = {}
    for name in classes:
        cnn, vit = rows[f"cnn_iou/{name}"].astype(float), rows[f"vit_iou/{name}"].astype(float)
        spread = (cnn.std() if len(cnn) > 1 else 0.0) + (vit.std() if len(vit) > 1 else 0.0)
        gap = cnn.mean() - vit.mean()
        lead = "cnn" if gap > spread else "vit" if -gap > spread else "-"
        table[name] = dict(cnn_mean=cnn.mean(), cnn_std=cnn.std(), vit_mean=vit.mean(), vit_std=vit.std(), gap=gap, lead=lead)
    return pd.DataFrame.from_dict(table, orient="index")


def write_report(root, teaching_split: str = "test") -> Path:
    """Write root/SUMMARY.md and root/summary.png from the finished runs below root; returns the .md path."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .experiments import collect_results, markdown_table, summarize

    root = Path(root)
    df = collect_results(root)
    if df.empty:
        raise FileNotFoundError(f"no finished run (metrics.json) below {root}")
    summary = summarize(df)
    lines = [f"# Evidence: {root}", "",
             "Synthetic street scenes (collab_lib.data, 'streets'). Test split, read once at the end of each run; "
             "settings were not chosen on it. mIoU in points (x100), mean ± sample std over seeds; "
             "gains against `independent`.", "", markdown_table(summary), ""]

    per_class = per_class_table(df)
    if not per_class.empty:
        lines += ["## Per-class test IoU (mean over seeds)", "",
                  "| class | " + " | ".join(per_class.columns) + " |", "|---|" + "---|" * len(per_class.columns)]
        for name, row in per_class.iterrows():
            lines.append(f"| {name} | " + " | ".join(_fmt(v) for v in row) + " |")
        lines.append("")
        gains = {f"{c}/{st}": per_class[f"{c}/{st}"] - per_class[f"independent/{st}"]
                 for c in ("dml", "kdcl", "collab") for st in ("cnn", "vit")
                 if f"{c}/{st}" in per_class.columns and f"independent/{st}" in per_class.columns}
        if gains:
            lines += ["## Per-class gain over independent (test IoU points, mean over seeds)", "",
                      "| class | " + " | ".join(gains) + " |", "|---|" + "---|" * len(gains)]
            for name in per_class.index:
                lines.append(f"| {name} | " + " | ".join(_fmt(g[name], sign=True) for g in gains.values()) + " |")
            lines.append("")
    if (df.configuration == "independent").any():
        table = complementarity_table(df)
        runs = int((df.configuration == "independent").sum())
        lines += [f"## Complementarity: independently trained students, per class (test IoU, {runs} runs)", "",
                  "A student leads on a class only when the gap is larger than the two seed spreads together.", "",
                  "| class | CNN | ViT | CNN - ViT | leads |", "|---|---|---|---|---|"]
        for name, row in table.iterrows():
            cell = lambda m, s: _fmt(m) + ("" if math.isnan(s) else f" ± {_fmt(s)}")  # noqa: E731
            lines.append(f"| {name} | {cell(row.cnn_mean, row.cnn_std)} | {cell(row.vit_mean, row.vit_std)} | "
                         f"{_fmt(row.gap, sign=True)} | {row.lead} |")
        cnn_leads, vit_leads = list(table.index[table.lead == "cnn"]), list(table.index[table.lead == "vit"])
        lines += ["", f"The CNN leads on {len(cnn_leads)} classes ({', '.join(cnn_leads) or 'none'}), "
                      f"the ViT on {len(vit_leads)} ({', '.join(vit_leads) or 'none'}).", ""]

    collab_runs = df[df.configuration == "collab"]["run_dir"].tolist()
    if collab_runs:
        import pandas as pd

        shares = pd.concat([teaching_table(r, teaching_split) for r in collab_runs]).groupby(level=0, sort=False).mean()
        lines += [f"## Which classes each student teaches (collab, {teaching_split} split, mean over {len(collab_runs)} runs)", "",
                  "Share of each class's labelled pixels where the CNN / the ViT teaches, region-wise (the region's "
                  "direction painted on its pixels) and pixel-wise.", "",
                  "| class | region: CNN teaches | region: ViT teaches | pixel: CNN teaches | pixel: ViT teaches |",
                  "|---|---|---|---|---|"]
        for name, row in shares.iterrows():
            lines.append(f"| {name} | {_fmt(row.region_cnn)} | {_fmt(row.region_vit)} | {_fmt(row.pixel_cnn)} | {_fmt(row.pixel_vit)} |")
        lines.append("")

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=False)
    for axis, student, title in ((axes[0], "cnn", "CNN student (DeepLabV3+)"), (axes[1], "vit", "ViT student (SegFormer)")):
        names = list(summary.index)
        means = [100 * summary.loc[n, f"{student}_mean"] for n in names]
        stds = [0 if math.isnan(summary.loc[n, f"{student}_std"]) else 100 * summary.loc[n, f"{student}_std"] for n in names]
        axis.bar(range(len(names)), means, yerr=stds, capsize=3,
                 color=["#888888" if n == "independent" else "#1f77b4" if n in ("dml", "kdcl") else "#d62728" for n in names])
        for i, name in enumerate(names):
            seeds = df[df.configuration == name][f"{student}_miou"].astype(float) * 100
            axis.scatter([i] * len(seeds), seeds, color="black", s=8, zorder=3)
        axis.set_xticks(range(len(names)), names, rotation=35, ha="right")
        axis.set_ylabel("test mIoU (x100)")
        axis.set_title(title)
        low = min(means) - 3 * max(stds + [1])
        axis.set_ylim(max(0, low), max(means) + 3 * max(stds + [1]))
    figure.suptitle(f"{root.name}: synthetic street scenes, test split (bars: mean ± std; dots: seeds)", fontsize=10)
    figure.tight_layout()
    figure.savefig(root / "summary.png", dpi=90)
    plt.close(figure)
    lines.append("![summary](summary.png)")
    path = root / "SUMMARY.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path


# The 1200-step study of README "Longer training" and results/sweeps/README.md items 6-8: name -> folder of seed runs.
LONG_STUDY = {
    "independent": "results/sweeps/long1200/independent",
    # round 4: the same training in channels-last memory: float rounding differs, and which elements the
    # CNN's ASPP dropout drops (same rate); its paired "gains" are what a change of no expected effect does (sweeps item 8)
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
    "collab, require_correct=False": "results/sweeps/long1200-anypixel/collab",
    "collab, warmup=0.5": "results/sweeps/long1200-warmup0.5/collab",
    "collab, require_learner_wrong": "results/sweeps/long1200-learnerwrong/collab",
    "collab, require_learner_wrong, w_pixel=0.03": "results/sweeps/long1200-learnerwrong-pixel0.03/collab",
    "collab_no_pixel, w_hfd=w_region=0.3": "results/sweeps/long1200-feat0.3/collab_no_pixel",
    # round 4, last: a second draw of hfd_only (channels-last, as the placebo), to see whether its ViT gain survives its own noise
    "hfd_only, channels_last=True (placebo)": "results/sweeps/long1200-placebo-nhwc/hfd_only",
}

# Round 5 (results/sweeps/README.md item 9): the pre-registered replication of hfd_only on fresh seeds 7-13,
# and the same two configurations pooled over all 14 seeds (0-6 from LONG_STUDY's rounds, 7-13 from round 5).
FRESH_SEEDS = "results/sweeps/long1200-confirm"  # rounds 5-7: every configuration on seeds 7-13 (dml 7-12)
CONFIRM_STUDY = {name: f"{FRESH_SEEDS}/{name}" for name in ("independent", "hfd_only")}
POOLED_HFD_STUDY = {name: (LONG_STUDY[name], CONFIRM_STUDY[name]) for name in CONFIRM_STUDY}

# Round 6 (results/sweeps/README.md item 10): the full objective and collab without the pixel-wise term on the
# same fresh seeds 7-13, paired with round 5's independent runs; and the three pooled over every seed run
# (0-4 or 0-6 from LONG_STUDY, 7-13 from round 6).
ROUND6_STUDY = {name: f"{FRESH_SEEDS}/{name}" for name in ("independent", "collab", "collab_no_pixel")}
POOLED_ROUND6_STUDY = {name: (LONG_STUDY[name], ROUND6_STUDY[name]) for name in ROUND6_STUDY}

# Round 7 (item 11): DML on fresh seeds 7-12, paired with round 5's independent runs; pooled with DML's seeds 0-2.
ROUND7_STUDY = {name: f"{FRESH_SEEDS}/{name}" for name in ("independent", "dml")}
POOLED_ROUND7_STUDY = {name: (LONG_STUDY[name], ROUND7_STUDY[name]) for name in ROUND7_STUDY}

# Round 8 (item 12, exploratory): the capacity-matched pair, DeepLabV3+ on MobileNetV2 (3.44 M parameters as the
# recipe builds it) with SegFormer-B0 (3.45 M), the same recipe and seeds 0-2; its own independent runs are the baseline.
MNV2_STUDY = {name: f"results/sweeps/long1200-mnv2/{name}" for name in ("independent", "collab", "collab_no_pixel", "dml")}
# Round 9 (item 13): that pair's independent and collab on fresh seeds 7-12, and both pooled with seeds 0-2.
MNV2_CONFIRM_STUDY = {name: f"results/sweeps/long1200-mnv2-confirm/{name}" for name in ("independent", "collab")}
POOLED_MNV2_STUDY = {name: (MNV2_STUDY[name], MNV2_CONFIRM_STUDY[name]) for name in MNV2_CONFIRM_STUDY}
# Round 10 (item 15): that pair again with the CNN's own learning rate (lr_cnn 0.1, item 14), seeds 1-9, CPU.
MNV2_LR01_STUDY = {name: f"results/sweeps/long1200-mnv2-lr01/{name}" for name in ("independent", "collab")}
# Round 11 (item 16): the same on an H100 with the trainer's GPU defaults (bf16, channels-last), seeds 1-6:
# other arithmetic than round 10's, so a separate study, never pooled with it.
GPU_MNV2_LR01_STUDY = {name: f"results/sweeps/gpu-mnv2-lr01/{name}" for name in ("independent", "collab")}
# Round 12 (item 17): KDCL on fresh seeds 7-13, paired with round 5's independent runs; pooled with KDCL's seeds 0-2.
ROUND12_STUDY = {name: f"{FRESH_SEEDS}/{name}" for name in ("independent", "kdcl")}
POOLED_ROUND12_STUDY = {name: (LONG_STUDY[name], ROUND12_STUDY[name]) for name in ROUND12_STUDY}
# Round 13 (item 18): collab with w_pixel 0.03 on fresh seeds 7-13, paired the same way; pooled with its seeds 0-6.
ROUND13_STUDY = {"independent": f"{FRESH_SEEDS}/independent",
                 "collab, w_pixel=0.03": "results/sweeps/long1200-pixel0.03-confirm/collab"}
POOLED_ROUND13_STUDY = {name: (LONG_STUDY[name], ROUND13_STUDY[name]) for name in ROUND13_STUDY}


def _as_folders(folders) -> tuple:
    return (folders,) if isinstance(folders, (str, Path)) else tuple(folders)


def _where(folders, root) -> str:
    """The folders of a configuration, for error messages."""
    return ", ".join(str(Path(root, f)) for f in _as_folders(folders))


def _seed_metrics(folders, split: str, root) -> dict:
    """{seed: metrics.json[split]} over seed<N>/ under one folder or a tuple of folders pooled (a seed in one only)."""
    results = {}
    for folder in _as_folders(folders):
        for q in sorted(Path(root, folder).glob("seed*/metrics.json"), key=lambda q: int(q.parent.name[4:])):
            seed = int(q.parent.name[4:])
            if seed in results:
                raise ValueError(f"seed {seed} is in more than one of the folders {folders!r}: pool only distinct seeds")
            results[seed] = json.loads(q.read_text())[split]
    return dict(sorted(results.items()))


def paired_gain_table(runs: dict = LONG_STUDY, baseline: str | tuple = "independent", split: str = "test",
                      classes=("traffic sign", "person"), root=".") -> str:
    """A markdown table comparing configurations run with the same seeds.

    runs: {name: folder holding seed<N>/metrics.json, or a tuple of folders whose seeds are pooled
    (each seed in one folder only)}; baseline: the name the gains are measured
    against, or a tuple of names: then a seed's baseline is the mean of their runs of that seed (every
    name must have it), e.g. two draws of the same training that differ only in noise; split: "test"
    or "final_val" (the metrics.json entry). Per configuration: the number of
    seeds, each student's mIoU x100 (mean ± sample std), each student's mIoU minus the baseline's of
    the same seed (x100: with two seeds or more, their mean ± its standard error, sample std / sqrt(n),
    then the per-seed values in brackets), and the CNN's IoU x100 on `classes` (mean over seeds). A
    seed that the baseline lacks is an error: a gain is only read against the same seed.
    """
    names = (baseline,) if isinstance(baseline, str) else tuple(baseline)
    draws = []
    for name in names:
        draws.append(_seed_metrics(runs[name], split, root))
        if not draws[-1]:
            raise ValueError(f"baseline {name!r}: no seed*/metrics.json under {_where(runs[name], root)}")
    seeds = sorted(draws[0])
    if any(sorted(d) != seeds for d in draws):
        raise ValueError(f"baseline {names}: the runs do not have the same seeds ({[sorted(d) for d in draws]})")
    # a seed's baseline mIoU: the mean over the baseline's draws of that seed
    base = {seed: {student: {"miou": statistics.mean(d[seed][student]["miou"] for d in draws)} for student in ("cnn", "vit")}
            for seed in seeds}
    label = names[0] if len(names) == 1 else "mean of " + " and ".join(names)
    head = ("| configuration | seeds | CNN mIoU | ViT mIoU | CNN minus independent: mean ± s.e. (per seed) | "
            "ViT minus independent: mean ± s.e. (per seed) | "
            f"CNN IoU: {' / '.join(classes)} |").replace("independent", label)
    lines = [head, "|---|---|---|---|---|---|---|"]
    for name, folder in runs.items():
        results = draws[names.index(name)] if name in names else _seed_metrics(folder, split, root)
        if not results:
            continue
        missing = sorted(set(results) - set(base))
        if missing:
            raise ValueError(f"{name}: seeds {missing} have no {label!r} run to pair with (under {_where(runs[names[0]], root)})")
        cells = []
        for student in ("cnn", "vit"):
            values = [100 * r[student]["miou"] for r in results.values()]
            cells.append(f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}" if len(values) > 1 else f"{values[0]:.1f}")
        for student in ("cnn", "vit"):
            gains = [100 * (results[seed][student]["miou"] - base[seed][student]["miou"]) for seed in sorted(results)]
            per_seed = ", ".join(f"{g:+.1f}" for g in gains)
            if name == baseline:
                cells.append("-")
            elif len(gains) == 1:
                cells.append(per_seed)
            else:
                se = statistics.stdev(gains) / math.sqrt(len(gains))
                cells.append(f"{statistics.mean(gains):+.1f} ± {se:.1f} ({per_seed})")
        thin = [100 * statistics.mean(r["cnn"]["iou"][c] for r in results.values()) for c in classes]
        lines.append(f"| {name} | {len(results)} | " + " | ".join(cells) + " | " + " / ".join(f"{t:.1f}" for t in thin) + " |")
    return "\n".join(lines)


def paired_gains(runs: dict, name: str, student: str, baseline: str = "independent", split: str = "test",
                 root=".") -> dict:
    """{seed: student's mIoU x100 under `name` minus under `baseline`, same seed} (runs as in paired_gain_table).

    student: "cnn" or "vit". A seed of `name` that the baseline lacks is an error.
    """
    if student not in ("cnn", "vit"):
        raise ValueError(f"student must be 'cnn' or 'vit', got {student!r}")
    results, base = _seed_metrics(runs[name], split, root), _seed_metrics(runs[baseline], split, root)
    if not results:
        raise ValueError(f"{name!r}: no seed*/metrics.json under {_where(runs[name], root)}")
    missing = sorted(set(results) - set(base))
    if missing:
        raise ValueError(f"{name}: seeds {missing} have no {baseline!r} run to pair with (under {_where(runs[baseline], root)})")
    return {seed: 100 * (results[seed][student]["miou"] - base[seed][student]["miou"]) for seed in results}


def replication_verdict(runs: dict, name: str, student: str, expected_sign: int, min_agreeing: int = 5,
                        baseline: str = "independent", root=".") -> dict:
    """Apply the rule that results/sweeps/README.md items 9-18 fixed before their runs.

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
