"""Comparing runs: methods, ablations and seeds (input: `collab_lib.experiments.collect_results`).

`df` has one row per run: configuration, seed, cnn_miou, vit_miou (0..1, test
split when evaluated) and per-class IoU columns `cnn_iou/<class>`, `vit_iou/<class>`.
"""
import matplotlib.pyplot as plt
import numpy as np

from ._arrays import figure_size
from .bars import select_classes
from .maps import CNN_COLOR, VIT_COLOR

STUDENTS = (("cnn", "CNN", CNN_COLOR), ("vit", "ViT", VIT_COLOR))


def long_miou(df):
    """df -> long table with columns configuration, seed, student ("CNN"/"ViT"), miou."""
    import pandas as pd

    parts = [pd.DataFrame({"configuration": df["configuration"], "seed": df["seed"], "student": name,
                           "miou": df[f"{key}_miou"].astype(float)}) for key, name, _ in STUDENTS]
    return pd.concat(parts, ignore_index=True)


def plot_miou_by_configuration(df, order=None, title=None) -> plt.Figure:
    """Each run as a dot, the mean over seeds as a bar, per configuration and student (seaborn)."""
    import seaborn as sns

    data = long_miou(df)
    order = order or list(dict.fromkeys(df["configuration"]))
    palette = {name: color for _, name, color in STUDENTS}
    fig, ax = plt.subplots(figsize=figure_size(max(5.0, 1.1 * len(order) + 2), 3.6))
    sns.barplot(data=data, x="configuration", y="miou", hue="student", order=order, palette=palette,
                errorbar=None, alpha=0.45, ax=ax)
    sns.stripplot(data=data, x="configuration", y="miou", hue="student", order=order, palette=palette,
                  dodge=True, size=5, edgecolor="black", linewidth=0.5, ax=ax, legend=False)
    ax.set_ylabel("mIoU")
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=30)
    finite = data["miou"].dropna()
    if len(finite):
        ax.set_ylim(max(0.0, finite.min() - 0.05), min(1.0, finite.max() + 0.05))
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title or "mIoU per configuration (dots: seeds, bars: mean)")
    fig.tight_layout()
    return fig


def per_class_gain(df, student: str, class_names, reference: str = "independent"):
    """Mean per-class IoU of each configuration minus `reference`'s, for one student ("cnn"/"vit").

    Returns a DataFrame (configurations other than the reference x classes); NaN where a class has no IoU.
    """
    columns = [f"{student}_iou/{name}" for name in class_names]
    means = df.groupby("configuration")[columns].mean(numeric_only=False).astype(float)
    if reference not in means.index:
        raise ValueError(f"no {reference!r} runs to compare with; configurations: {', '.join(means.index)}")
    gains = means.drop(index=reference) - means.loc[reference]
    gains.columns = list(class_names)
    return gains


def plot_per_class_gain(df, student: str, class_names, reference: str = "independent", classes=None,
                        title=None) -> plt.Figure:
    """Heat map of per-class IoU gains over `reference` (points of IoU x100), red = better, blue = worse."""
    import seaborn as sns

    gains = per_class_gain(df, student, class_names, reference)
    gains = gains[[class_names[i] for i in select_classes(list(class_names), classes)]] * 100
    limit = float(np.nanmax(np.abs(gains.values))) if np.isfinite(gains.values).any() else 1.0
    fig, ax = plt.subplots(figsize=figure_size(0.65 * gains.shape[1] + 3, 0.45 * max(len(gains), 1) + 1.6))
    sns.heatmap(gains, cmap="RdBu_r", center=0.0, vmin=-limit, vmax=limit, annot=True, fmt=".1f",
                cbar_kws={"label": "IoU gain (points)"}, ax=ax)
    ax.set_title(title or f"{student.upper()} per-class IoU gain over {reference}")
    ax.set_ylabel("")
    fig.tight_layout()
    return fig


def plot_paired_gains(gains: dict, student_label: str = "", title=None, ax=None) -> plt.Figure:
    """Paired gains per configuration: one dot per seed, the mean with its standard error, a line at 0.

    gains: {configuration: {seed: gain}}, e.g. `collab_lib.analysis.paired_gains` (points of mIoU x100,
    a seed's run minus the baseline's run of the same seed). Configurations run top to bottom in the
    dict's order. A gain read on n seeds is believable only where the mean's bar clears 0 and the dots
    agree; compare it with a placebo row (the same training with a change of no expected effect).
    """
    if not gains or not any(gains.values()):
        raise ValueError("gains: expected {configuration: {seed: gain}} with at least one seed, got nothing")
    names = list(gains)
    if ax is None:
        fig, ax = plt.subplots(figsize=(8.5, 0.5 * len(names) + 1.5))
    else:
        fig = ax.figure
    ax.axvline(0.0, color="0.3", linewidth=1)
    for row, name in enumerate(names):
        values = np.array(list(gains[name].values()), dtype=float)
        if len(values) == 0:
            continue
        ax.scatter(values, np.full(len(values), row), s=28, color="0.55", edgecolor="black", linewidth=0.4, zorder=2)
        se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
        ax.errorbar([values.mean()], [row], xerr=[se], fmt="D", color="black", markersize=6, capsize=4, zorder=3)
    ax.set_yticks(range(len(names)), [f"{name} ({len(gains[name])})" for name in names])
    ax.invert_yaxis()
    ax.set_xlabel(f"{student_label} gain over the baseline, same seed (mIoU points)".strip())
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or "paired gains")
    ax.text(1.0, -0.14 - 0.6 / (len(names) + 3), "dots: seeds; diamond: mean ± standard error", transform=ax.transAxes,
            ha="right", va="top", fontsize=8, color="0.35")
    fig.tight_layout()
    return fig


def plot_class_heatmap(table, value_label: str, title=None, cmap="rocket_r", center=None, vmin=None, vmax=None,
                       fmt=".2f") -> plt.Figure:
    """A per-class table as a seaborn heat map with the numbers written in: rows x classes (a DataFrame).

    E.g. each student's IoU per class (rows: students), or the share of each class a student teaches
    at each checkpoint (rows: checkpoints). NaN cells stay blank. `center` makes a diverging map
    (pass cmap="RdBu_r" for gains).
    """
    import seaborn as sns

    width, height = figure_size(0.62 * table.shape[1] + 2.6, 0.42 * max(len(table), 1) + 1.7)
    fig, ax = plt.subplots(figsize=(width, height))
    sns.heatmap(table.astype(float), cmap=cmap, center=center, vmin=vmin, vmax=vmax, annot=True, fmt=fmt,
                annot_kws={"fontsize": "x-small"}, cbar_kws={"label": value_label}, ax=ax)
    ax.set_ylabel("")
    ax.tick_params(axis="x", rotation=35)
    for tick in ax.get_xticklabels():
        tick.set_horizontalalignment("right")
    ax.set_title(title or value_label, fontsize="medium")
    fig.tight_layout()
    return fig


def plot_gain_against_gap(table, title=None, ax=None) -> plt.Figure:
    """Each training regime's paired gain against how much its baseline students overfit.

    table: `collab_lib.analysis.gain_against_gap` (columns cell, student, gap, gain, gain_se; points of
    mIoU). x: the baseline's generalisation gap (train minus val mIoU); y: the gain of distillation over
    the baseline, same seed, with its standard error where there are several seeds. One colour per
    student (the course's convention), each point labelled with its cell. If distillation works as a
    regulariser, the points rise to the right.
    """
    if table is None or len(table) == 0:
        raise ValueError("table: expected rows of (cell, student, gap, gain, gain_se), got none")
    if ax is None:
        fig, ax = plt.subplots(figsize=figure_size(6.0, 4.0))
    else:
        fig = ax.figure
    ax.axhline(0.0, color="0.3", linewidth=1)
    for key, name, color in STUDENTS:
        rows = table[table["student"] == key]
        if len(rows) == 0:
            continue
        se = rows["gain_se"].fillna(0.0).to_numpy(dtype=float)
        ax.errorbar(rows["gap"].to_numpy(dtype=float), rows["gain"].to_numpy(dtype=float), yerr=se, fmt="o",
                    color=color, markersize=7, capsize=4, label=name, markeredgecolor="black", markeredgewidth=0.5)
        for row in rows.itertuples():
            ax.annotate(str(row.cell), (row.gap, row.gain), textcoords="offset points", xytext=(6, 4), fontsize=8,
                        color=color)
    ax.margins(x=0.2, y=0.2)  # room for the cell labels beside the points
    ax.set_xlabel("generalisation gap of the baseline: train minus val mIoU (points)")
    ax.set_ylabel("gain over the baseline, same seed (mIoU points)")
    ax.grid(alpha=0.3)
    ax.legend(title="student", loc="best")
    ax.set_title(title or "does distillation pay where the students overfit?")
    fig.tight_layout()
    return fig
