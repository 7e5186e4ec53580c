"""Per-class bars: each student's IoU side by side, and which student teaches each class.

Class filters take class names or ids (`classes=None` shows every class).
"""
import matplotlib.pyplot as plt
import numpy as np

from ._arrays import figure_size
from .maps import CNN_COLOR, NONE_COLOR, NONE_HATCH, TRANSFER_NAMES, VIT_COLOR

EXTRA_COLORS = ["#009E73", "#CC79A7", "#F0E442", "#56B4E9", "#D55E00", "#000000"]


def select_classes(class_names, classes=None):
    """Class ids to show: all (None), or the given names / ids in the given order."""
    if classes is None:
        return list(range(len(class_names)))
    ids = []
    for item in classes:
        if isinstance(item, str):
            if item not in class_names:
                raise ValueError(f"unknown class {item!r}; classes: {', '.join(class_names)}")
            ids.append(class_names.index(item))
        else:
            ids.append(int(item))
    return ids


def student_colors(names):
    """Orange for a name mentioning the CNN, blue for the ViT, distinct colours otherwise."""
    colors, extra = [], iter(EXTRA_COLORS * 4)
    for name in names:
        lowered = name.lower()
        if "cnn" in lowered or "deeplab" in lowered:
            colors.append(CNN_COLOR)
        elif "vit" in lowered or "segformer" in lowered:
            colors.append(VIT_COLOR)
        else:
            colors.append(next(extra))
    return colors


def plot_per_class_iou(iou_by_model, class_names, classes=None, colors=None, title=None) -> plt.Figure:
    """Grouped bars: per-class IoU (0..1) of each model; `iou_by_model` maps a name to a list (C,) of float | None.

    A None (class absent from labels and predictions) draws no bar and an
    "n/a" mark; the legend gives each model's mIoU over the classes shown.
    """
    ids = select_classes(class_names, classes)
    names = list(iou_by_model)
    colors = colors or student_colors(names)
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=figure_size(max(4.0, 0.75 * len(ids) * max(len(names), 2) / 2 + 2), 3.4))
    positions = np.arange(len(ids))
    for k, (name, color) in enumerate(zip(names, colors)):
        values = [iou_by_model[name][i] for i in ids]
        heights = [np.nan if v is None else float(v) for v in values]
        offsets = positions + (k - (len(names) - 1) / 2) * width
        finite = [h for h in heights if np.isfinite(h)]
        mean = f"{np.mean(finite):.3f}" if finite else "n/a"
        ax.bar(offsets, np.nan_to_num(heights, nan=0.0), width=width, color=color, label=f"{name} (mean {mean})")
        for x, h in zip(offsets, heights):
            if not np.isfinite(h):
                ax.text(x, 0.02, "n/a", ha="center", va="bottom", fontsize="x-small", rotation=90)
    ax.set_xticks(positions, [class_names[i] for i in ids], rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("IoU")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(frameon=False, fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title or "per-class IoU")
    fig.tight_layout()
    return fig


def plot_iou_gap(iou_a, iou_b, class_names, name_a="CNN", name_b="ViT", classes=None, title=None) -> plt.Figure:
    """Per-class IoU difference a - b as horizontal bars: where each model is stronger.

    Bars to the right (coloured as model a) mean a is better on that class.
    Classes where either IoU is None are left out.
    """
    ids = [i for i in select_classes(class_names, classes) if iou_a[i] is not None and iou_b[i] is not None]
    gaps = np.array([float(iou_a[i]) - float(iou_b[i]) for i in ids])
    color_a, color_b = student_colors([name_a, name_b])
    fig, ax = plt.subplots(figsize=(5.0, 0.32 * len(ids) + 1.2))
    ax.barh(np.arange(len(ids)), gaps, color=[color_a if g >= 0 else color_b for g in gaps])
    ax.set_yticks(np.arange(len(ids)), [class_names[i] for i in ids])
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"IoU {name_a} - IoU {name_b}")
    ax.set_title(title or f"right: {name_a} better, left: {name_b} better", fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_teaching_by_class(cnn_fraction, vit_fraction, class_names, classes=None, unit="pixels",
                           title=None) -> plt.Figure:
    """Stacked bars per class: share of the class's valid `unit` where the CNN teaches, the ViT teaches, nothing.

    cnn_fraction, vit_fraction: (C,) in [0, 1] (NaN for a class never seen);
    their sum per class is at most 1, the rest is "no transfer".
    """
    ids = select_classes(class_names, classes)
    cnn = np.array([cnn_fraction[i] for i in ids], dtype=np.float64)
    vit = np.array([vit_fraction[i] for i in ids], dtype=np.float64)
    seen = np.isfinite(cnn) & np.isfinite(vit)
    if np.any(cnn[seen] + vit[seen] > 1 + 1e-6):
        raise ValueError("cnn_fraction + vit_fraction exceeds 1 for some class")
    cnn, vit = np.where(seen, cnn, 0.0), np.where(seen, vit, 0.0)
    rest = np.where(seen, 1.0 - cnn - vit, 0.0)
    positions = np.arange(len(ids))
    fig, ax = plt.subplots(figsize=figure_size(max(4.0, 0.6 * len(ids) + 2.5), 3.4))
    # the course's convention (collab_lib.viz.maps): orange / blue fill, grey hatching for no transfer
    ax.bar(positions, cnn, color=CNN_COLOR, edgecolor="white", label=TRANSFER_NAMES[1])
    ax.bar(positions, vit, bottom=cnn, color=VIT_COLOR, edgecolor="white", label=TRANSFER_NAMES[-1])
    ax.bar(positions, rest, bottom=cnn + vit, color="white", edgecolor=NONE_COLOR, hatch=NONE_HATCH,
           label=TRANSFER_NAMES[0])
    for x, ok in zip(positions, seen):
        if not ok:
            ax.text(x, 0.02, "not seen", ha="center", va="bottom", fontsize="x-small", rotation=90)
    ax.set_xticks(positions, [class_names[i] for i in ids], rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"share of the class's {unit}")
    ax.legend(frameon=False, fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title or f"who teaches each class ({unit})")
    fig.tight_layout()
    return fig
