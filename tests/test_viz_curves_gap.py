"""plot_generalisation_gap: train vs val mIoU of both students, and old runs without train records."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from collab_lib.viz.curves import plot_generalisation_gap  # noqa: E402

HISTORY = [
    {"kind": "train", "step": 10, "loss": 2.0},
    {"kind": "eval", "step": 20, "split": "val", "cnn_miou": 0.30, "vit_miou": 0.25},
    {"kind": "eval", "step": 20, "split": "train", "samples": 50, "cnn_miou": 0.50, "vit_miou": 0.35},
    {"kind": "eval", "step": 10, "split": "val", "cnn_miou": 0.10, "vit_miou": 0.12},
    {"kind": "eval", "step": 10, "split": "train", "samples": 50, "cnn_miou": 0.15, "vit_miou": 0.13},
    {"kind": "test", "step": 20, "split": "test", "cnn_miou": 0.9, "vit_miou": 0.9},
]


def lines_of(ax):
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}


def test_train_and_val_curves_per_student_with_the_gap_in_the_title():
    fig = plot_generalisation_gap(HISTORY)
    cnn, vit = fig.axes
    assert lines_of(cnn) == {"train (unaugmented)": ([10, 20], [0.15, 0.50]), "val": ([10, 20], [0.10, 0.30])}
    assert lines_of(vit)["train (unaugmented)"] == ([10, 20], [0.13, 0.35])
    assert cnn.get_title() == "CNN: gap +20.0 points at step 20"  # 0.50 - 0.30
    assert vit.get_title() == "ViT: gap +10.0 points at step 20"
    assert len(cnn.collections) == 1  # the shaded band between the curves
    assert fig.get_size_inches()[0] <= 10
    plt.close(fig)


def test_a_run_without_train_evaluations_still_plots_and_says_so():
    old = [h for h in HISTORY if h.get("split") != "train"]
    fig = plot_generalisation_gap(old)
    for ax in fig.axes:
        texts = [t.get_text() for t in ax.texts]
        assert texts == ["no train-split evaluations in this run"]
        assert lines_of(ax)["val"][0] == [10, 20]
        assert ax.get_title() in ("CNN", "ViT")
    plt.close(fig)


def test_another_held_out_split():
    history = [dict(h, split="test") if h.get("split") == "val" else h for h in HISTORY]
    fig = plot_generalisation_gap(history, split="test", title="t")
    assert np.allclose(lines_of(fig.axes[0])["test"][1], [0.10, 0.30])
    assert fig._suptitle.get_text() == "t"
    plt.close(fig)
