"""After training: which classes each student teaches, per-class tables and the evidence report.

`teaching_by_class_counts` runs a trained pair over a whole split and counts,
per class, the labelled pixels where the CNN or the ViT would teach under
region-wise BSD (the region's direction painted onto its pixels) and under
pixel-wise BSD. Counts are summed over the split before dividing, like the
confusion matrix of the metric: a dataset-level share, not a mean of images.

`write_report(root)` turns a grid folder (collab_lib.experiments) into
SUMMARY.md and summary.png: mean ± std of each student's test mIoU per
configuration, per-class IoU side by side, and the teaching shares per class.

`paired_gain_table(runs)` compares configurations run with the same seeds:
each student's mIoU, its gain over a baseline paired by seed, and the CNN's
IoU on chosen classes; `paired_gains` gives the per-seed gains behind it.
The kit's own studies and the rules that read them live outside the library,
in the repository's research/ledger.py (docs/evidence.md).
"""
import json
import math
import statistics
import warnings
from pathlib import Path

import torch

from .checkpoint import atomic_write_bytes
from .runinfo import machine_differences
from .losses import PixelBSDLoss, RegionBSDLoss, regions_to_pixels


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


def load_trained_students(run_dir, checkpoint="last.pt", split: str = "test"):
    """(cnn, vit, config, dataset) of a finished run: the students rebuilt from its config.json with the
    weights of `checkpoint` (a file in run_dir, or a path), in eval mode on the CPU, and its `split` as
    the trainer evaluates it (no augmentation, full image_size)."""
    from .students import load_students, make_dataset

    run_dir = Path(run_dir)
    path = Path(checkpoint) if Path(checkpoint).is_absolute() else run_dir / checkpoint
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint (committed runs keep no weights; train the run again "
                                f"or pass checkpoint= a file that exists)")
    cnn, vit, _, config = load_students(run_dir, path)
    return cnn, vit, config, make_dataset(config, split, train=False)


def teaching_table(run_dir, split: str = "test", checkpoint: str = "last.pt", batch_size: int = 16):
    """Per-class teaching shares of a finished run, as a pandas DataFrame indexed by class name
    with columns region_cnn, region_vit, pixel_cnn, pixel_vit (shares of the class's labelled pixels)."""
    import pandas as pd

    cnn, vit, config, dataset = load_trained_students(run_dir, checkpoint, split)
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
    (a tie within the seed noise, or a class neither student learns). docs/method.md: the data earns its
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
    """Write root/SUMMARY.md and root/summary.png from the finished runs below root; returns the .md path.

    The teaching shares are the mean over the collab runs that still have their last.pt; the report names the
    ones without (a fresh clone's committed runs have none, and then says the shares were not computed)."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .experiments import collect_results, markdown_table, summarize
    from .viz.results import plot_miou_by_configuration

    root = Path(root)
    df = collect_results(root)
    if df.empty:
        raise FileNotFoundError(f"no finished run (metrics.json) below {root}")
    summary = summarize(df)
    lines = [f"# Evidence: {root}", "",
             "Synthetic street scenes (collab_lib.data, 'streets'). Test split, read once at the end of each run; "
             "settings were not chosen on it. mIoU in points (x100), mean ± sample std over seeds; "
             "gains against `independent`.", "", markdown_table(summary), ""]
    lines += _per_class_sections(df) + _complementarity_section(df) + _teaching_section(df, teaching_split)
    figure = plot_miou_by_configuration(df, order=list(summary.index),
                                        title=f"{root.name}: synthetic street scenes, test split (dots: seeds, bars: mean)")
    # Both files atomically (a temp file renamed): an interrupted report leaves the previous one whole.
    atomic_write_bytes(root / "summary.png", lambda f: figure.savefig(f, format="png", dpi=90))
    plt.close(figure)
    lines.append("![summary](summary.png)")
    path = root / "SUMMARY.md"
    text = "\n".join(lines) + "\n"
    atomic_write_bytes(path, lambda f: f.write(text.encode()))
    return path


def _markdown_rows(header: list, rows) -> list:
    """A Markdown table: the header line, its rule, one line per row (each a list of cells)."""
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])


def _per_class_sections(df) -> list:
    """SUMMARY.md: per-class test IoU of each configuration and student, and the gain over independent."""
    per_class = per_class_table(df)
    if per_class.empty:
        return []
    lines = ["## Per-class test IoU (mean over seeds)", ""]
    lines += _markdown_rows(["class", *per_class.columns],
                            ([name, *(_fmt(v) for v in row)] for name, row in per_class.iterrows())) + [""]
    gains = {f"{c}/{st}": per_class[f"{c}/{st}"] - per_class[f"independent/{st}"]
             for c in ("dml", "kdcl", "collab") for st in ("cnn", "vit")
             if f"{c}/{st}" in per_class.columns and f"independent/{st}" in per_class.columns}
    if gains:
        lines += ["## Per-class gain over independent (test IoU points, mean over seeds)", ""]
        lines += _markdown_rows(["class", *gains], ([name, *(_fmt(g[name], sign=True) for g in gains.values())]
                                                    for name in per_class.index)) + [""]
    return lines


def _complementarity_section(df) -> list:
    """SUMMARY.md: where each independently trained student leads (complementarity_table)."""
    if not (df.configuration == "independent").any():
        return []
    table = complementarity_table(df)
    runs = int((df.configuration == "independent").sum())
    cell = lambda m, s: _fmt(m) + ("" if math.isnan(s) else f" ± {_fmt(s)}")  # noqa: E731
    lines = [f"## Complementarity: independently trained students, per class (test IoU, {runs} runs)", "",
             "A student leads on a class only when the gap is larger than the two seed spreads together.", ""]
    lines += _markdown_rows(["class", "CNN", "ViT", "CNN - ViT", "leads"],
                            ([name, cell(row.cnn_mean, row.cnn_std), cell(row.vit_mean, row.vit_std),
                              _fmt(row.gap, sign=True), row.lead] for name, row in table.iterrows()))
    cnn_leads, vit_leads = list(table.index[table.lead == "cnn"]), list(table.index[table.lead == "vit"])
    return lines + ["", f"The CNN leads on {len(cnn_leads)} classes ({', '.join(cnn_leads) or 'none'}), "
                        f"the ViT on {len(vit_leads)} ({', '.join(vit_leads) or 'none'}).", ""]


def _teaching_section(df, split: str) -> list:
    """SUMMARY.md: which classes each student teaches, over the collab runs that still have their last.pt."""
    collab_runs = df[df.configuration == "collab"]["run_dir"].tolist()
    # The shares need each run's weights; a committed run keeps only its text files (results/**/*.pt is ignored).
    weighed = [r for r in collab_runs if (Path(r) / "last.pt").is_file()]
    without = [Path(r).name for r in collab_runs if r not in weighed]
    if not weighed:
        return [] if not collab_runs else [
            "## Which classes each student teaches (collab)", "",
            f"Not computed: none of the {len(collab_runs)} collab runs here has its last.pt (committed runs keep "
            "only their text files). Train a run again with the same settings to see its shares.", ""]
    import pandas as pd

    shares = pd.concat([teaching_table(r, split) for r in weighed]).groupby(level=0, sort=False).mean()
    missing = f" ({len(without)} of the {len(collab_runs)} collab runs have no last.pt: {', '.join(without)})" if without else ""
    lines = [f"## Which classes each student teaches (collab, {split} split, mean over {len(weighed)} runs)", "",
             "Share of each class's labelled pixels where the CNN / the ViT teaches, region-wise (the region's "
             f"direction painted on its pixels) and pixel-wise{missing}.", ""]
    lines += _markdown_rows(["class", "region: CNN teaches", "region: ViT teaches", "pixel: CNN teaches",
                             "pixel: ViT teaches"],
                            ([name, _fmt(row.region_cnn), _fmt(row.region_vit), _fmt(row.pixel_cnn), _fmt(row.pixel_vit)]
                             for name, row in shares.iterrows()))
    return lines + [""]


def _as_folders(folders) -> tuple:
    return (folders,) if isinstance(folders, (str, Path)) else tuple(folders)


def _where(folders, root) -> str:
    """The folders of a configuration, for error messages."""
    return ", ".join(str(Path(root, f)) for f in _as_folders(folders))


def _seed_runs(folders, root) -> dict:
    """{seed: run directory} of the finished runs (seed<N>/metrics.json) under one folder or a tuple of folders
    pooled; a seed in more than one of them is an error."""
    runs = {}
    for folder in _as_folders(folders):
        for q in sorted(Path(root, folder).glob("seed*/metrics.json"), key=lambda q: int(q.parent.name[4:])):
            seed = int(q.parent.name[4:])
            if seed in runs:
                raise ValueError(f"seed {seed} is in more than one of the folders {folders!r}: pool only distinct seeds")
            runs[seed] = q.parent
    return dict(sorted(runs.items()))


def seed_metrics(folders, split: str, root) -> dict:
    """{seed: metrics.json[split]} over seed<N>/ under one folder or a tuple of folders pooled (a seed in one only)."""
    return {seed: json.loads((run / "metrics.json").read_text())[split] for seed, run in _seed_runs(folders, root).items()}


def _seed_machines(folders, root) -> dict:
    """{seed: its run's config.json "machine" record, None for a run made before the record existed or without a
    readable config.json} (folders as in seed_metrics)."""
    machines = {}
    for seed, run in _seed_runs(folders, root).items():
        try:
            machines[seed] = json.loads((run / "config.json").read_text()).get("machine")
        except (OSError, ValueError):
            machines[seed] = None  # an unreadable config.json says nothing about its machine
    return machines


def _warn_other_machines(labels: list, machines: list, seeds) -> None:
    """Warn when the runs paired on a seed were made on different machines (their config.json "machine" records
    differ): a machine change moves a run by about the seeds' spread (docs/evidence.md, round 15), so such a
    "gain" mixes the method with the machine. labels: the folders, as the warning names them; machines: one
    _seed_machines per folder, in the same order. Runs made before the record existed are not compared."""
    mixed = []
    for seed in seeds:
        records = [m.get(seed) for m in machines]
        first = next((r for r in records if r), None)
        changes = {machine_differences(first, r) for r in records if r} - {""}
        if changes:
            mixed.append(f"seed {seed} ({'; '.join(sorted(changes))})")
    if mixed:
        warnings.warn(f"paired runs made on different machines (the run under {labels[0]} -> the one it is paired "
                      f"with under {', '.join(map(str, labels[1:]))}): {', '.join(mixed)}; a machine change moves a "
                      "run by about the seeds' spread: pair runs of one machine", stacklevel=3)


def _gains_against(results: dict, draws: list, student: str) -> dict:
    """{seed: `student`'s mIoU x100 in `results` minus the mean of the `draws`' mIoU of the same seed}
    (each a {seed: metrics.json split} of seed_metrics; every draw must hold every seed of `results`)."""
    return {seed: 100 * (r[student]["miou"] - statistics.mean(d[seed][student]["miou"] for d in draws))
            for seed, r in results.items()}


def paired_gain_table(runs: dict, baseline: str | tuple = "independent", split: str = "test",
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
    seed that the baseline lacks is an error: a gain is only read against the same seed. Runs paired on a
    seed whose config.json machine records differ give a warning (a machine change moves a run too).
    """
    names = (baseline,) if isinstance(baseline, str) else tuple(baseline)
    draws = []
    for name in names:
        draws.append(seed_metrics(runs[name], split, root))
        if not draws[-1]:
            raise ValueError(f"baseline {name!r}: no seed*/metrics.json under {_where(runs[name], root)}")
    seeds = sorted(draws[0])
    if any(sorted(d) != seeds for d in draws):
        raise ValueError(f"baseline {names}: the runs do not have the same seeds ({[sorted(d) for d in draws]})")
    base_machines = [_seed_machines(runs[b], root) for b in names]
    label = names[0] if len(names) == 1 else "mean of " + " and ".join(names)
    head = ("| configuration | seeds | CNN mIoU | ViT mIoU | CNN minus independent: mean ± s.e. (per seed) | "
            "ViT minus independent: mean ± s.e. (per seed) | "
            f"CNN IoU: {' / '.join(classes)} |").replace("independent", label)
    lines = [head, "|---|---|---|---|---|---|---|"]
    for name, folder in runs.items():
        results = draws[names.index(name)] if name in names else seed_metrics(folder, split, root)
        if not results:
            continue
        missing = sorted(set(results) - set(seeds))
        if missing:
            raise ValueError(f"{name}: seeds {missing} have no {label!r} run to pair with (under {_where(runs[names[0]], root)})")
        if name not in names:
            _warn_other_machines([folder, *(runs[b] for b in names)], [_seed_machines(folder, root), *base_machines],
                                 results)
        cells = []
        for student in ("cnn", "vit"):
            values = [100 * r[student]["miou"] for r in results.values()]
            cells.append(f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}" if len(values) > 1 else f"{values[0]:.1f}")
        for student in ("cnn", "vit"):
            # a seed's baseline: the mean over the baseline's draws of that seed
            gains = [g for _, g in sorted(_gains_against(results, draws, student).items())]
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


def paired_gains(runs: dict, name: str, student: str, baseline: str | tuple = "independent", split: str = "test",
                 root=".") -> dict:
    """{seed: student's mIoU x100 under `name` minus under `baseline`, same seed} (runs as in paired_gain_table).

    student: "cnn" or "vit"; baseline: a name, or a tuple of names whose runs of a seed are averaged (as in
    paired_gain_table). A seed of `name` that a baseline lacks is an error; runs paired across machines warn.
    """
    if student not in ("cnn", "vit"):
        raise ValueError(f"student must be 'cnn' or 'vit', got {student!r}")
    names = (baseline,) if isinstance(baseline, str) else tuple(baseline)
    results, draws = seed_metrics(runs[name], split, root), [seed_metrics(runs[b], split, root) for b in names]
    if not results:
        raise ValueError(f"{name!r}: no seed*/metrics.json under {_where(runs[name], root)}")
    missing = sorted(seed for seed in results if any(seed not in d for d in draws))
    if missing:
        raise ValueError(f"{name}: seeds {missing} have no {baseline!r} run to pair with "
                         f"(under {', '.join(_where(runs[b], root) for b in names)})")
    _warn_other_machines([runs[name], *(runs[b] for b in names)],
                         [_seed_machines(runs[n], root) for n in (name, *names)], results)
    return _gains_against(results, draws, student)


def generalisation_gaps(folders, student: str, root=".") -> dict:
    """{seed: the student's final mIoU on its (unaugmented) training scenes minus its final val mIoU, x100}.

    folders: as in paired_gain_table. Needs metrics.json "final_train", which the trainer writes when
    train_eval_samples > 0 (the default); a run made before that evaluation existed is an error naming it.
    """
    if student not in ("cnn", "vit"):
        raise ValueError(f"student must be 'cnn' or 'vit', got {student!r}")
    try:
        train = seed_metrics(folders, "final_train", root)
    except KeyError:
        raise ValueError(f"a run under {_where(folders, root)} has no final_train in its metrics.json: it was made "
                         "before the trainer evaluated the training split (train_eval_samples)") from None
    val = seed_metrics(folders, "final_val", root)
    return {seed: 100 * (train[seed][student]["miou"] - val[seed][student]["miou"]) for seed in train}


def gain_against_gap(cells: dict, name: str = "collab", baseline: str = "independent", split: str = "test",
                     root="."):
    """Does distillation pay where the students overfit? One row per (cell, student), as a DataFrame:

    cell, student ("cnn"/"vit"), gap (the baseline's generalisation gap, mean over its seeds, points),
    gain (`name` minus `baseline` on `split`, paired by seed, mean, points), gain_se (its standard error;
    NaN on one seed) and seeds. cells: {label: runs dict as in paired_gain_table}, one per training regime
    (e.g. augmentation on/off x training-set size); `viz.results.plot_gain_against_gap` draws it.
    """
    import pandas as pd

    rows = []
    for label, runs in cells.items():
        for student in ("cnn", "vit"):
            gains = list(paired_gains(runs, name, student, baseline, split, root).values())
            # never empty: paired_gains has just found the baseline's seeds
            gaps = list(generalisation_gaps(runs[baseline], student, root).values())
            rows.append({"cell": label, "student": student, "gap": statistics.mean(gaps),
                         "gain": statistics.mean(gains),
                         "gain_se": statistics.stdev(gains) / math.sqrt(len(gains)) if len(gains) > 1 else float("nan"),
                         "seeds": len(gains)})
    return pd.DataFrame(rows)
