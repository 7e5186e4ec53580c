"""Training curves from a run's history.jsonl (see collab_lib/train.py).

`history` is the list of records (dicts) of one run, as `collab_lib.course.read_history`
returns them: {"kind": "train", "step", <loss terms>, "lr_cnn", ...} at log
steps and {"kind": "eval", "step", "split", "cnn_miou", "vit_miou", ...} at
evaluations. Steps are optimizer steps; losses are in nats.
"""
import matplotlib.pyplot as plt
import numpy as np

from .maps import CNN_COLOR, VIT_COLOR

# Loss terms worth a curve, in the order they are drawn (only those a run logged appear).
LOSS_TERMS = ("ce_cnn", "ce_vit", "hfd", "hfd_cnn_learns", "hfd_vit_learns", "region", "pixel", "dml", "kdcl")
# A student's own curve takes its colour; a transfer takes its teacher's (the course's rule: orange = the
# CNN teaches), so hfd_cnn_learns, where the ViT teaches, is blue.
TERM_STYLES = {
    "ce_cnn": dict(color=CNN_COLOR, linewidth=2), "ce_vit": dict(color=VIT_COLOR, linewidth=2),
    "hfd_cnn_learns": dict(color=VIT_COLOR, linestyle=":"), "hfd_vit_learns": dict(color=CNN_COLOR, linestyle=":"),
}
TERM_LABELS = {"hfd_cnn_learns": "hfd_cnn_learns (ViT teaches)", "hfd_vit_learns": "hfd_vit_learns (CNN teaches)"}
FRACTIONS = (
    ("region_frac_cnn_teaches", "regions: CNN teaches", dict(color=CNN_COLOR)),
    ("region_frac_vit_teaches", "regions: ViT teaches", dict(color=VIT_COLOR)),
    ("pixel_frac_cnn_teaches", "pixels: CNN teaches", dict(color=CNN_COLOR, linestyle="--")),
    ("pixel_frac_vit_teaches", "pixels: ViT teaches", dict(color=VIT_COLOR, linestyle="--")),
)


def records(history, kind: str, split=None):
    """The records of one kind ("train" / "eval"), of one split for evals, in step order."""
    chosen = [r for r in history if r.get("kind") == kind and (split is None or r.get("split") == split)]
    return sorted(chosen, key=lambda r: r["step"])


def series(chosen, key):
    """(steps, values) of `key` over the records that have it (NaN kept: a gap in the line)."""
    pairs = [(r["step"], r[key]) for r in chosen if key in r and r[key] is not None]
    if not pairs:
        return np.zeros(0), np.zeros(0)
    steps, values = zip(*pairs)
    return np.asarray(steps), np.asarray(values, dtype=np.float64)


def draw_miou(ax, history, split="val", until=None):
    """Both students' mIoU over steps on `ax`; returns the number of evaluations drawn."""
    evals = [r for r in records(history, "eval", split) if until is None or r["step"] <= until]
    for key, name, color in (("cnn_miou", "CNN", CNN_COLOR), ("vit_miou", "ViT", VIT_COLOR)):
        steps, values = series(evals, key)
        ax.plot(steps, values, marker="o", color=color, label=f"{name} ({split})")
    ax.set_xlabel("step")
    ax.set_ylabel("mIoU")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize="small")
    return len(evals)


def draw_loss_terms(ax, history, terms=None, until=None):
    """One line per logged loss term (raw, unweighted); returns the names drawn."""
    train = [r for r in records(history, "train") if until is None or r["step"] <= until]
    drawn = []
    for term in terms or LOSS_TERMS:
        steps, values = series(train, term)
        if steps.size:
            ax.plot(steps, values, label=TERM_LABELS.get(term, term), **TERM_STYLES.get(term, {}))
            drawn.append(term)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats, unweighted)")
    if drawn and all(np.nanmin(series(train, t)[1]) > 0 for t in drawn):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(frameon=False, fontsize="x-small", ncol=2)
    return drawn


def draw_teaching_fractions(ax, history, until=None):
    """Share of valid regions / pixels each student teaches, over steps; returns the keys drawn."""
    train = [r for r in records(history, "train") if until is None or r["step"] <= until]
    drawn = []
    for key, name, style in FRACTIONS:
        steps, values = series(train, key)
        if steps.size:
            ax.plot(steps, values, label=name, **style)
            drawn.append(key)
    ax.set_xlabel("step")
    ax.set_ylabel("share of valid regions / pixels")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(frameon=False, fontsize="x-small")
    else:
        ax.text(0.5, 0.5, "no selective distillation in this run", ha="center", va="center", transform=ax.transAxes)
    return drawn


def plot_miou_curves(history, split="val", title=None) -> plt.Figure:
    """Both students' mIoU at each evaluation of `split`."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    draw_miou(ax, history, split)
    ax.set_title(title or f"{split} mIoU during training")
    fig.tight_layout()
    return fig


def plot_loss_terms(history, terms=None, title=None) -> plt.Figure:
    """Each logged loss term over steps (log scale when all are positive)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    draw_loss_terms(ax, history, terms)
    ax.set_title(title or "loss terms")
    fig.tight_layout()
    return fig


def plot_teaching_fractions(history, title=None) -> plt.Figure:
    """Region- and pixel-wise BSD: how much each student teaches as training goes on."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    draw_teaching_fractions(ax, history)
    ax.set_title(title or "who teaches, over training")
    fig.tight_layout()
    return fig


def plot_training_overview(history, split="val", until=None, title=None) -> plt.Figure:
    """mIoU | loss terms | teaching fractions side by side; `until` cuts every panel at that step."""
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))  # at most 10 in wide (collab_lib.viz._arrays)
    draw_miou(axes[0], history, split, until)
    axes[0].set_title(f"{split} mIoU")
    draw_loss_terms(axes[1], history, until=until)
    axes[1].set_title("loss terms (unweighted)")
    draw_teaching_fractions(axes[2], history, until)
    axes[2].set_title("who teaches")
    if until is not None:
        for ax in axes:
            ax.axvline(until, color="black", linewidth=0.8, linestyle=":")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_generalisation_gap(history, split="val", title=None) -> plt.Figure:
    """Train vs `split` mIoU of both students over training: the generalisation gap.

    The train curve is the trainer's unaugmented evaluation of the first N training
    items (history records {"kind": "eval", "split": "train"}; TrainConfig.train_eval_samples).
    Solid lines: training items; dashed: `split`; the shaded band between them is each
    student's gap. Runs from before that evaluation existed say so in the panel.
    """
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
    train_evals, held_out = records(history, "eval", "train"), records(history, "eval", split)
    for ax, (key, name, color) in zip(axes, (("cnn_miou", "CNN", CNN_COLOR), ("vit_miou", "ViT", VIT_COLOR))):
        train_steps, train_values = series(train_evals, key)
        held_steps, held_values = series(held_out, key)
        ax.plot(train_steps, train_values, marker="o", color=color, label="train (unaugmented)")
        ax.plot(held_steps, held_values, marker="o", color=color, linestyle="--", label=split)
        common, in_train, in_held = np.intersect1d(train_steps, held_steps, return_indices=True)
        if common.size:
            ax.fill_between(common, held_values[in_held], train_values[in_train], color=color, alpha=0.15)
            gap = train_values[in_train][-1] - held_values[in_held][-1]
            ax.set_title(f"{name}: gap {100 * gap:+.1f} points at step {int(common[-1])}")
        else:
            ax.set_title(name)
        if not train_steps.size:
            ax.text(0.5, 0.5, "no train-split evaluations in this run", ha="center", va="center",
                    transform=ax.transAxes)
        ax.set_xlabel("step")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize="small")
    axes[0].set_ylabel("mIoU")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
