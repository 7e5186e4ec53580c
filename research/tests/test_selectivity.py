"""The selectivity study's rules (research/selectivity.md) on hand-made runs: the pick, H1's minimum-effect rule."""
import json

import pytest

from research import selectivity


def write_run(folder, seed, cnn, vit, split_values=None):
    """folder/seed<N>/metrics.json with both students' mIoU on final_val and test (the same unless split_values)."""
    run = folder / f"seed{seed}"
    run.mkdir(parents=True)
    values = split_values or {"final_val": (cnn, vit), "test": (cnn, vit)}
    (run / "metrics.json").write_text(json.dumps({
        split: {"cnn": {"miou": c, "iou": {}}, "vit": {"miou": v, "iou": {}}} for split, (c, v) in values.items()}))


def scan_metrics(iou_cnn, iou_vit, train=(0.7, 0.7), val=(0.4, 0.4)):
    return {"final_val": {"cnn": {"miou": val[0], "iou": iou_cnn}, "vit": {"miou": val[1], "iou": iou_vit}},
            "final_train": {"cnn": {"miou": train[0]}, "vit": {"miou": train[1]}}}


def test_class_leads_need_the_margin_and_both_ious():
    leads = selectivity.class_leads(scan_metrics(
        {"road": 0.80, "sky": 0.50, "car": 0.30, "pole": None, "person": 0.10},
        {"road": 0.79, "sky": 0.53, "car": 0.20, "pole": 0.5, "person": 0.10}))
    assert leads == {"cnn": ["car"], "vit": ["sky"]}  # road: 1 point (< 2); pole: CNN's IoU undefined; person: level


def _write_scan(root, cells):
    runs = {}
    for cell, metrics in cells.items():
        folder = root / cell
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(metrics))
        runs[cell] = cell
    return runs


def test_the_pick_is_the_eligible_cell_with_the_largest_gap(tmp_path):
    two_each = ({"a": 0.5, "b": 0.5, "c": 0.1, "d": 0.1}, {"a": 0.1, "b": 0.1, "c": 0.5, "d": 0.5})
    one_each = ({"a": 0.5, "b": 0.1}, {"a": 0.1, "b": 0.5})
    runs = _write_scan(tmp_path, {
        "small-gap": scan_metrics(*two_each, train=(0.5, 0.5)),           # eligible, gap 10
        "big-gap": scan_metrics(*two_each, train=(0.8, 0.6)),             # eligible, gap 30
        "biggest-gap-one-sided": scan_metrics(*one_each, train=(0.9, 0.9)),  # not eligible, gap 50
    })
    cells = selectivity.scan(tmp_path, runs)
    assert cells["big-gap"]["mean_gap"] == pytest.approx(30.0)
    assert selectivity.selectivity_pick(cells, expected=tuple(runs)) == ("big-gap", True)
    # None eligible: the most two-sided cell, then the larger gap; and the pick says it is not eligible.
    del cells["small-gap"], cells["big-gap"]
    assert selectivity.selectivity_pick(cells, expected=("biggest-gap-one-sided",)) == ("biggest-gap-one-sided", False)
    with pytest.raises(ValueError, match="not complete.*small-gap"):
        selectivity.selectivity_pick(cells, expected=tuple(runs))
    assert "| big-gap |" in selectivity.scan_table(selectivity.scan(tmp_path, runs))


def _arms(tmp_path, gains_cnn, val_gains_cnn=None):
    """collab vs collab_nonselective: per-seed CNN gains (points) on test (and on val), the ViT level."""
    runs = {"collab": tmp_path / "collab", "collab_nonselective": tmp_path / "nonsel"}
    for seed, gain in enumerate(gains_cnn):
        val_gain = gain if val_gains_cnn is None else val_gains_cnn[seed]
        write_run(runs["collab_nonselective"], seed, 0.40, 0.40)
        write_run(runs["collab"], seed, None, None, {"final_val": (0.40 + val_gain / 100, 0.40),
                                                      "test": (0.40 + gain / 100, 0.40)})
    return {k: str(v) for k, v in runs.items()}


@pytest.mark.parametrize("gains,verdict", [
    ([0.5, 0.6, 0.4, 0.5, 0.7, 0.5, 0.4, 0.6], "holds"),                      # about 0.5, tight
    ([0.1, -0.1, 0.0, 0.05, -0.05, 0.1, 0.0, -0.1], "fails (level)"),         # an effect of 0.3 ruled out
    ([-0.5, -0.6, -0.4, -0.5, -0.7, -0.5, -0.4, -0.6], "fails (a cost)"),
    ([0.15, 0.1, 0.12, 0.18, 0.14, 0.1, 0.16, 0.12], "fails (a smaller gain)"),  # real but below 0.3
    ([1.5, -1.0, 2.0, -1.5, 1.0, 0.5, -0.5, 2.0], "not settled"),              # too noisy to tell
    ([0.5, 0.5, 0.5, 0.5, 0.5, -0.01, -0.01, -0.01], "not settled"),           # 5 of 8 positive only
])
def test_the_minimum_effect_rule(tmp_path, gains, verdict):
    runs = _arms(tmp_path, gains)
    report = selectivity.min_effect_verdict(runs, "collab", "cnn", "collab_nonselective", root="/")
    assert report["verdict"] == verdict
    assert report["test"]["mean"] == pytest.approx(sum(gains) / len(gains), abs=1e-9)


def test_a_gain_on_test_alone_does_not_hold(tmp_path):
    runs = _arms(tmp_path, [0.5] * 4 + [0.6] * 4, val_gains_cnn=[-0.2] * 8)
    assert selectivity.min_effect_verdict(runs, "collab", "cnn", "collab_nonselective", root="/")["verdict"] == "not settled"


def test_the_cells_settings_are_valid_trainer_settings_and_the_arms_are_grid_configurations():
    from collab_lib.config import TrainConfig
    from collab_lib.experiments import CONFIGURATIONS

    assert set(selectivity.CELL_SETTINGS) == set(selectivity.SCAN_RUNS)
    for settings in selectivity.CELL_SETTINGS.values():
        TrainConfig(**settings)
    assert set(selectivity.STUDY_ARMS) <= set(CONFIGURATIONS) and len(selectivity.STUDY_SEEDS) == 8
    assert min(selectivity.STUDY_SEEDS) == 20  # fresh: no committed run of the kit used seeds 20-27 before


def test_the_committed_scan_picks_the_capacity_matched_cell():
    """Round 16 as research/selectivity.md reports it: the table is the committed runs', and the rule picks mnv2-augoff-n50."""
    from research.ledger import REPO_ROOT

    cells = selectivity.scan()
    assert selectivity.selectivity_pick(cells) == ("mnv2-augoff-n50", True)
    assert selectivity.scan_table(cells) in (REPO_ROOT / "research/selectivity.md").read_text()


def _write_history(folder, seed, rows):
    run = folder / f"seed{seed}"
    run.mkdir(parents=True)
    (run / "history.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def _share_row(step, cnn_regions, cnn_pixels, vit_pixels):
    return {"kind": "train", "step": step, "region_frac_cnn_teaches": cnn_regions,
            "region_frac_vit_teaches": 1 - cnn_regions, "pixel_frac_cnn_teaches": cnn_pixels,
            "pixel_frac_vit_teaches": vit_pixels}


def test_teaching_shares_average_the_last_steps_of_each_seed_then_the_seeds(tmp_path):
    arm = tmp_path / "collab"
    # seed 0: the early rows (step 100) are outside the last 300 steps and must not count
    _write_history(arm, 0, [_share_row(100, 0.9, 0.9, 0.0), _share_row(1100, 0.6, 0.5, 0.3),
                            {"kind": "val", "step": 1100, "cnn_miou": 0.4}, _share_row(1200, 0.8, 0.7, 0.1)])
    _write_history(arm, 1, [_share_row(1200, 0.5, 0.4, 0.4)])
    shares = selectivity.teaching_shares("collab", root=tmp_path)
    assert shares["region_frac_cnn_teaches"][0] == pytest.approx((0.7 + 0.5) / 2)   # seed 0: (0.6 + 0.8) / 2
    assert shares["region_frac_vit_teaches"][0] == pytest.approx((0.3 + 0.5) / 2)
    assert shares["pixel_frac_vit_teaches"][0] == pytest.approx((0.2 + 0.4) / 2)
    assert shares["region_frac_cnn_teaches"][1] == pytest.approx(0.1)  # s.e.: sd(0.7, 0.5) / sqrt(2)
    with pytest.raises(ValueError, match="no seed"):
        selectivity.teaching_shares("nonselective", root=tmp_path)
    _write_history(tmp_path / "independent", 0, [{"kind": "train", "step": 1200, "ce_cnn": 0.3}])
    with pytest.raises(ValueError, match="no train rows with the teaching shares"):
        selectivity.teaching_shares("independent", root=tmp_path)


def test_the_contrast_table_reads_paired_gains_per_student(tmp_path, monkeypatch):
    for seed, gain in enumerate([0.2, 0.4, 0.3]):
        write_run(tmp_path / "mini" / "dml_w0.3", seed, 0.40, 0.40)
        write_run(tmp_path / "mini" / "collab_nonselective", seed, None, None,
                  {"final_val": (0.40, 0.40 - gain / 100), "test": (0.40 + gain / 100, 0.40 - gain / 100)})
    monkeypatch.setattr(selectivity, "STUDY_FOLDER", str(tmp_path))
    table = selectivity.contrast_table("mini", root="/")
    assert "| CNN | 3 | +0.00 ± 0.00 | +0.30 ± 0.06 | 3 |" in table
    assert "| ViT | 3 | -0.30 ± 0.06 | -0.30 ± 0.06 | 0 |" in table


def test_the_write_ups_quote_the_committed_study_whole():
    """research/selectivity.md quotes round 17's verdict, arms, contrast and teaching-share tables, and
    docs/evidence.md its verdict and arms tables, each regenerated from results/sweeps/selectivity: one changed
    number (or one more run) makes a quoted table differ."""
    from research import ledger

    cell = "mnv2-augoff-n50"
    tables = {"verdict_table": selectivity.verdict_table(cell), "arms_table": selectivity.arms_table(cell),
              "contrast_table": selectivity.contrast_table(cell), "teaching_share_table": selectivity.teaching_share_table(cell)}
    for document, names in (("research/selectivity.md", tables), (ledger.EVIDENCE, ("verdict_table", "arms_table"))):
        quoted = ledger.tables_in((ledger.REPO_ROOT / document).read_text())
        for name in names:
            assert tables[name] in quoted, f"{document}: regenerate round 17's table (research.selectivity.{name}('{cell}'))"


def test_the_ledger_lists_the_study_as_the_selectivity_module_reads_it():
    """Notebook 07's study picker (ledger.STUDIES) shows round 17 with the same folders the verdicts read."""
    from research import ledger

    assert ledger.STUDIES["SELECTIVITY_STUDY"] == selectivity.study_runs("mnv2-augoff-n50")
