"""analysis.gain_against_gap and viz.results.plot_gain_against_gap: the paired gain of a method per training
regime against how much that regime's baseline students overfit (train minus val mIoU)."""
import json
import math

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from collab_lib.analysis import gain_against_gap, generalisation_gaps  # noqa: E402
from collab_lib.viz.results import plot_gain_against_gap  # noqa: E402


def write_run(folder, seed, train, val, test):
    """seed<N>/metrics.json with (cnn, vit) mIoU fractions on final_train, final_val and test."""
    run = folder / f"seed{seed}"
    run.mkdir(parents=True)
    split = lambda pair: {s: {"miou": v, "iou": {}} for s, v in zip(("cnn", "vit"), pair)}  # noqa: E731
    (run / "metrics.json").write_text(json.dumps(
        {"final_train": split(train), "final_val": split(val), "test": split(test)}))


@pytest.fixture
def two_cells(tmp_path):
    # "off": the baseline overfits (train 0.80, val 0.40: gap 40 / 40), collab gains +2 and +4 (CNN), +1 and +1 (ViT)
    # "on": no overfitting (train 0.62, val 0.60: gap 2 / 2), collab loses 1 point on both seeds for both students
    for seed, (g_cnn, g_vit) in enumerate([(0.02, 0.01), (0.04, 0.01)]):
        write_run(tmp_path / "off/independent", seed, (0.80, 0.80), (0.40, 0.40), (0.40, 0.40))
        write_run(tmp_path / "off/collab", seed, (0.70, 0.70), (0.41, 0.41), (0.40 + g_cnn, 0.40 + g_vit))
        write_run(tmp_path / "on/independent", seed, (0.62, 0.62), (0.60, 0.60), (0.60, 0.60))
        write_run(tmp_path / "on/collab", seed, (0.62, 0.62), (0.60, 0.60), (0.59, 0.59))
    return {label: {"independent": f"{label}/independent", "collab": f"{label}/collab"} for label in ("off", "on")}


def test_gaps_and_paired_gains_per_cell_and_student(two_cells, tmp_path):
    assert generalisation_gaps("off/independent", "cnn", root=tmp_path) == {0: pytest.approx(40), 1: pytest.approx(40)}
    table = gain_against_gap(two_cells, root=tmp_path).set_index(["cell", "student"])
    off_cnn, on_vit = table.loc[("off", "cnn")], table.loc[("on", "vit")]
    assert off_cnn["gap"] == pytest.approx(40) and off_cnn["gain"] == pytest.approx(3.0)
    assert off_cnn["gain_se"] == pytest.approx(1.0)  # gains 2 and 4: stdev sqrt(2) / sqrt(2)
    assert table.loc[("off", "vit"), "gain"] == pytest.approx(1.0) and table.loc[("off", "vit"), "gain_se"] == pytest.approx(0)
    assert on_vit["gap"] == pytest.approx(2) and on_vit["gain"] == pytest.approx(-1.0) and on_vit["seeds"] == 2
    # val instead of test: collab's val is 1 point above independent's where it overfits, level where it does not
    val = gain_against_gap(two_cells, split="final_val", root=tmp_path).set_index(["cell", "student"])
    assert val.loc[("off", "cnn"), "gain"] == pytest.approx(1.0) and val.loc[("on", "cnn"), "gain"] == pytest.approx(0)


def test_one_seed_has_no_standard_error_and_old_runs_are_named(tmp_path):
    write_run(tmp_path / "a/independent", 0, (0.5, 0.5), (0.4, 0.4), (0.4, 0.4))
    write_run(tmp_path / "a/collab", 0, (0.5, 0.5), (0.4, 0.4), (0.45, 0.4))
    table = gain_against_gap({"a": {"independent": "a/independent", "collab": "a/collab"}}, root=tmp_path)
    assert math.isnan(table["gain_se"].iloc[0]) and table["gain"].iloc[0] == pytest.approx(5.0)
    old = tmp_path / "old/independent/seed0"
    old.mkdir(parents=True)
    (old / "metrics.json").write_text(json.dumps({"final_val": {}, "test": {}}))
    with pytest.raises(ValueError, match="old.independent.*final_train"):
        generalisation_gaps("old/independent", "vit", root=tmp_path)
    with pytest.raises(ValueError, match="student must be"):
        generalisation_gaps("a/independent", "teacher", root=tmp_path)


def test_the_figure_puts_each_student_at_its_gap_and_gain(two_cells, tmp_path):
    fig = plot_gain_against_gap(gain_against_gap(two_cells, root=tmp_path))
    ax = fig.axes[0]
    points = {}
    for container in ax.containers:  # one errorbar container per student
        line = container.lines[0]
        points[container.get_label()] = sorted(zip(line.get_xdata(), line.get_ydata()))
    assert points["CNN"] == [(pytest.approx(2), pytest.approx(-1)), (pytest.approx(40), pytest.approx(3))]
    assert points["ViT"] == [(pytest.approx(2), pytest.approx(-1)), (pytest.approx(40), pytest.approx(1))]
    assert sorted(t.get_text() for t in ax.texts) == ["off", "off", "on", "on"]
    with pytest.raises(ValueError, match="no|none"):
        plot_gain_against_gap(gain_against_gap(two_cells, root=tmp_path).iloc[0:0])
