"""The research ledger: the rule that reads a replication, the pixel-transfer breakdown, stale commits,
and that docs/evidence.md and results/sweeps/README.md quote what the committed runs say.

The checks on the committed runs go through one mechanism each (every quoted table regenerated and
looked up as a whole table in its document), so a change of wording in the write-ups breaks nothing and
a changed number breaks one test that lists every table it affects.
"""
import json

import pytest
import torch
from torch import nn

from collab_lib.models import StudentOutput
from research import ledger

ROOT = ledger.REPO_ROOT


def test_replication_verdict_applies_the_rule_fixed_in_advance(tmp_path, write_split_metrics):
    for seed in range(4):
        write_split_metrics(tmp_path / "base", seed, 0.40, 0.40)
    # ViT gains x100 -- val: +1, +1, +1, -1 (mean +0.5); test: +2, +2, +2, -2 (mean +1.0, 3 of 4 positive)
    for seed, g in enumerate([1, 1, 1, -1]):
        write_split_metrics(tmp_path / "up", seed, 0.40 + g / 100, 0.40 + 2 * g / 100)
    runs = {"independent": "base", "up": "up"}
    report = ledger.replication_verdict(runs, "up", "vit", +1, min_agreeing=3, root=tmp_path)
    assert report["verdict"] == "holds"
    assert report["test"]["mean"] == pytest.approx(1.0) and report["test"]["agreeing"] == 3
    assert report["final_val"]["mean"] == pytest.approx(0.5) and report["final_val"]["se"] == pytest.approx(0.5)
    # the same runs with a stricter count: positive means but too few agreeing seeds on test
    assert ledger.replication_verdict(runs, "up", "vit", +1, min_agreeing=4, root=tmp_path)["verdict"] == "not settled"
    # read as a cost, the positive means refute it; a student that does not move fails either way (mean 0)
    assert ledger.replication_verdict(runs, "up", "vit", -1, min_agreeing=1, root=tmp_path)["verdict"] == "fails"
    assert ledger.replication_verdict(runs, "up", "cnn", +1, min_agreeing=0, root=tmp_path)["verdict"] == "fails"
    # a mean that is positive on test but negative on val fails
    for seed, (gv, gt) in enumerate([(-1, 2), (-1, 2), (1, 2), (-1, 2)]):
        write_split_metrics(tmp_path / "mixed", seed, 0.40 + gv / 100, 0.40 + gt / 100)
    mixed = ledger.replication_verdict({"independent": "base", "mixed": "mixed"}, "mixed", "vit", +1, root=tmp_path)
    assert mixed["verdict"] == "fails" and mixed["test"]["agreeing"] == 4
    with pytest.raises(ValueError, match="expected_sign"):
        ledger.replication_verdict(runs, "up", "vit", 0, root=tmp_path)


def test_tables_in_finds_whole_tables_and_skips_pending_rows():
    text = "intro\n| a | b |\n|---|---|\n| x | 1 |\n| pending | 9 |\ntext\n  | c |\n  |---|\n"
    assert ledger.tables_in(text, skip_rows=("pending",)) == ["| a | b |\n|---|---|\n| x | 1 |", "| c |\n|---|"]
    # a table is found as a whole: one changed cell makes it a different table
    assert "| a | b |\n|---|---|\n| x | 2 |" not in ledger.tables_in(text, skip_rows=("pending",))


class FixedLogits(nn.Module):
    """Returns the same label-sized logits for any image (stride 1, so no interpolation)."""

    def __init__(self, probs, kind):
        super().__init__()
        self.logits, self.kind = torch.tensor(probs).log().T.reshape(1, -1, 1, len(probs)), kind

    def forward(self, images):
        return StudentOutput(low=self.logits, embed=self.logits, logits=self.logits, kind=self.kind)


def test_pixel_transfer_breakdown_by_hand():
    """Three pixels, labels (0, 0, 1):
      pixel 0: both right, the ViT more confident  -> the CNN is polished
      pixel 1: the CNN wrong, the ViT right        -> the CNN is corrected
      pixel 2: the CNN right, the ViT wrong        -> the ViT is corrected
    The pull on a class's logit counts only at pixels of other classes, only its positive part."""
    cnn = FixedLogits([(.6, .3, .1), (.3, .6, .1), (.1, .8, .1)], "cnn")
    vit = FixedLogits([(.9, .05, .05), (.8, .1, .1), (.5, .4, .1)], "vit")
    loader = [(torch.zeros(1, 3, 1, 3), torch.tensor([[[0, 0, 1]]]))]
    out = ledger.pixel_transfer_breakdown(cnn, vit, loader, num_classes=3)
    assert (out["cnn"]["polishing_pixels"], out["cnn"]["correction_pixels"]) == (1, 1)
    assert (out["vit"]["polishing_pixels"], out["vit"]["correction_pixels"]) == (0, 1)
    torch.testing.assert_close(out["cnn"]["polishing_push"], torch.tensor([0.0, 0.25, 0.05], dtype=torch.float64))
    torch.testing.assert_close(out["cnn"]["correction_push"], torch.tensor([0.0, 0.5, 0.0], dtype=torch.float64))
    torch.testing.assert_close(out["vit"]["correction_push"], torch.tensor([0.4, 0.0, 0.0], dtype=torch.float64))
    assert out["vit"]["polishing_push"].sum() == 0
    # At T = 2 the pull is T * (p_learner^T - p_teacher^T) with the softened probabilities.
    soft = lambda p: torch.tensor(p, dtype=torch.float64).sqrt() / torch.tensor(p, dtype=torch.float64).sqrt().sum()  # noqa: E731
    out2 = ledger.pixel_transfer_breakdown(cnn, vit, loader, num_classes=3, temperature=2.0)
    expected = (2 * (soft((.6, .3, .1)) - soft((.9, .05, .05)))).clamp(min=0)
    expected[0] = 0  # pixel 0 is labelled 0
    torch.testing.assert_close(out2["cnn"]["polishing_push"], expected, rtol=1e-5, atol=1e-6)
    # every teacher here is right where it teaches, so dropping the correctness condition moves the same pixels
    loose = ledger.pixel_transfer_breakdown(cnn, vit, loader, num_classes=3, require_correct=False)
    assert loose["cnn"]["correction_pixels"] + loose["cnn"]["polishing_pixels"] == 2


@pytest.mark.slow
def test_pixel_transfer_table_of_a_trained_run(tmp_path):
    from collab_lib.experiments import run_grid

    run_grid("smoke", tmp_path, configurations=["collab"], overrides=dict(steps=2, eval_interval=2, checkpoint_interval=2))
    table = ledger.pixel_transfer_table(tmp_path / "collab" / "seed0", split="val")
    assert "pole" in table.index and list(table.columns) == [
        "cnn_correction_push", "cnn_polishing_push", "vit_correction_push", "vit_polishing_push"]
    assert (table.to_numpy() >= 0).all()
    assert set(table.attrs["pixels"]) == {"cnn", "vit"}
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        ledger.pixel_transfer_table(tmp_path / "collab" / "seed0", checkpoint="missing.pt")


# ---- the write-ups against the committed runs --------------------------------------------------------------
def test_every_quoted_table_is_the_committed_runs():
    """Each study's paired-gain table, regenerated from results/, is one of the tables of the documents that
    quote it (docs/evidence.md the test split, results/sweeps/README.md the val split), and the verdict
    table is docs/evidence.md's. On failure: every (study, document, split) that no longer matches."""
    assert ledger.unquoted_tables() == []
    evidence = ledger.tables_in((ROOT / ledger.EVIDENCE).read_text())
    assert ledger.verdict_table() in evidence, "docs/evidence.md: regenerate the verdict table (ledger.verdict_table())"
    from collab_lib.experiments import collect_results, markdown_table, summarize

    grid = markdown_table(summarize(collect_results(ROOT / "results/cpu")))
    assert grid in evidence, "docs/evidence.md: the CPU grid's table differs from results/cpu"


def test_the_findings_the_readme_states_hold_by_the_rule():
    """The README's evidence summary rests on these verdicts of the pre-registered rounds."""
    verdict = {reading: ledger.replication_verdict(ledger.STUDIES[study], name, student, sign, agreeing, root=ROOT)
               for reading, study, name, student, sign, agreeing in ledger.HYPOTHESES}
    assert verdict["dml costs the CNN, fresh seeds 7-12 (round 7)"]["verdict"] == "holds"
    assert verdict["kdcl costs the CNN, fresh seeds 7-13 (round 12)"]["verdict"] == "holds"
    assert verdict["collab costs the CNN, fresh seeds 7-13 (round 6)"]["verdict"] == "holds"
    assert verdict["collab at w_pixel 0.03 costs the CNN, fresh seeds 7-13 (round 13)"]["verdict"] == "fails"
    # no gain to either student survived a pre-registered round
    gains = [v for reading, v in verdict.items() if "lifts" in reading and ("fresh" in reading or "lr 0.1" in reading)]
    assert len(gains) == 10 and all(v["verdict"] != "holds" for v in gains)


def test_pooled_studies_hold_each_seed_once():
    from collab_lib.analysis import paired_gain_table

    assert "| hfd_only | 14 |" in paired_gain_table(ledger.POOLED_HFD_STUDY, root=ROOT)
    assert "| dml | 9 |" in paired_gain_table(ledger.POOLED_ROUND7_STUDY, root=ROOT)
    assert "| kdcl | 10 |" in paired_gain_table(ledger.POOLED_ROUND12_STUDY, root=ROOT)


def test_mobilenet_learning_rate_choice_is_the_committed_runs():
    """Sweeps item 14: the table quoted is that of the committed val runs, and 0.1 is the best rate on val."""
    from collab_lib.experiments import describe_runs

    folder = ROOT / "results/sweeps/long1200-mnv2-lr"
    assert describe_runs(folder) in (ROOT / ledger.SWEEPS).read_text()
    val = {lr.name: json.loads((lr / "independent/seed0/metrics.json").read_text())["final_val"]["cnn"]["miou"]
           for lr in folder.iterdir()}
    assert max(val, key=val.get) == "0.1"


def test_gpu_round_was_trained_on_cuda_in_bf16():
    for path in (ROOT / "results/sweeps/gpu-mnv2-lr01").glob("*/seed*/metrics.json"):
        metrics = json.loads(path.read_text())
        assert metrics["device"].startswith("cuda") and metrics["precision"] == "bf16" and metrics["steps"] == 1200


def test_round12_pairing_check_reproduced_the_baseline_bit_for_bit():
    """Item 17's pairing check: independent seed 7 trained again with newer code logged the same numbers
    as round 5's run (only the timings differ), so fresh-seed rounds may pair with round 5's runs."""
    timing = {"train_time_s", "wall_time_s", "images_per_s"}
    rerun, original = (ROOT / "results/sweeps" / d / "independent/seed7" for d in ("repro-independent", "long1200-confirm"))
    strip = lambda m: {k: v for k, v in m.items() if k not in timing}  # noqa: E731
    assert strip(json.loads((rerun / "metrics.json").read_text())) == strip(json.loads((original / "metrics.json").read_text()))
    logged = [[strip(json.loads(line)) for line in (d / "history.jsonl").read_text().splitlines()] for d in (rerun, original)]
    assert logged[0] == logged[1] and len(logged[0]) > 20


def test_parameter_counts_quoted_are_those_of_the_trained_students():
    """The write-ups give each pair's size as the runs' config.json counted it (the recipe's 128-wide heads)."""
    counts = {}
    for folder in ("long1200", "long1200-mnv2", "long1200-mnv2-lr01", "gpu-mnv2-lr01"):
        info = json.loads((ROOT / "results/sweeps" / folder / "independent/seed1/config.json").read_text())
        counts[info["config"]["cnn"]] = info["parameters"]["cnn"]
        assert info["parameters"]["vit"] == 3452651  # SegFormer-B0 with a 128-wide decoder, 11 classes
    assert counts == {"deeplabv3plus_resnet18": 13515563, "deeplabv3plus_mobilenetv2": 3436139}
    for document in ("README.md", ledger.EVIDENCE):
        text = (ROOT / document).read_text()
        assert "13.5 M" in text and "3.44 M" in text and "3.45 M" in text, document


# ---- stale commits -----------------------------------------------------------------------------------------


def _write_run(folder, commit, **record):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"git_commit": commit, **record}))


def test_stale_commits_reads_config_json_only(tmp_path):
    """No git here: a run recording its checkout's state is stale when that checkout had uncommitted library
    code (not docs or run folders); an older run only when it names a commit of RECIPE_STALE_COMMITS and carries
    a value of the recipe those runs ran that the commit's did not have (not a value of neither)."""
    ran, then = (ledger.RECIPE_STALE_COMMITS["0ab0615"][key] for key in ("ran", "at_commit"))
    old = "0ab0615" + "0" * 33
    _write_run(tmp_path / "results/a/seed0", old, config={**then, "lr_cnn": ran["lr_cnn"], "lr_vit": 0.0015})
    _write_run(tmp_path / "results/a/seed1", old, config=then)  # ran what its commit says
    _write_run(tmp_path / "results/b/seed0", "1" * 40, config=ran)  # another commit, checked and found right
    _write_run(tmp_path / "results/c/seed0", "2" * 40, config=ran, git_dirty=True,
               git_changes=[" M collab_lib/train.py", " M README.md", "?? results/c/seed1/config.json"])
    _write_run(tmp_path / "results/c/seed1", "2" * 40, config=ran, git_dirty=True,
               git_changes=[" M docs/evidence.md", "?? results/c/seed0/history.jsonl"])
    _write_run(tmp_path / "results/c/seed2", old, config={**then, **ran}, git_dirty=False, git_changes=[])
    assert ledger.stale_commits(root=tmp_path) == [
        {"run": "results/a/seed0", "commit": "0ab0615", "fields": {"lr_cnn": (ran["lr_cnn"], then["lr_cnn"])},
         "changes": []},
        {"run": "results/c/seed0", "commit": "2222222", "fields": {}, "changes": [" M collab_lib/train.py"]}]
    assert "| results/c | 0 | 2222222 | uncommitted: M collab_lib/train.py |" in ledger.stale_commit_table(tmp_path)


def test_the_committed_runs_with_a_stale_commit_are_listed_in_the_evidence():
    """The 46 runs of results/cpu, results/sweeps/{lr,res,weights,scenes} and long1200 seeds 0-2 name commit
    0ab0615, whose `cpu` recipe (lr 0.01 / 6e-4, 100 scenes, w_pixel 1.0) is not the one they ran; no run that
    records its checkout's state ran uncommitted library code."""
    stale = ledger.stale_commits()
    assert len(stale) == 46 and {entry["commit"] for entry in stale} == {"0ab0615"}
    tops = {"/".join(entry["run"].split("/")[:3]) for entry in stale}
    assert tops == {"results/cpu/" + c for c in ("collab", "collab_no_hfd", "collab_no_pixel", "collab_no_region", "dml",
                                                 "hfd_only", "independent", "kdcl")} | {
        "results/sweeps/" + s for s in ("lr", "res", "scenes", "weights", "long1200")}
    assert all(int(entry["run"].rsplit("seed", 1)[1]) <= 2 for entry in stale if "/long1200/" in entry["run"])
    assert ledger.stale_commit_table() in ledger.tables_in((ROOT / ledger.EVIDENCE).read_text())


def test_the_one_time_check_covers_every_run_without_its_checkout_state():
    """RECIPE_STALE_COMMITS holds what a one-time check of the runs recorded before "git_dirty" existed found:
    it speaks for exactly those runs, and a committed run without "git_dirty" added later would not be checked."""
    runs = [info for _, info in ledger._committed_runs(ROOT, "results") if info.get("git_commit")]
    assert sum("git_dirty" not in info for info in runs) == ledger.RECORDS_WITHOUT_CHECKOUT_STATE


def test_no_committed_run_stores_text_where_a_boolean_or_number_belongs_except_the_known_truthy_ones():
    """The long1200-anypixel defect: `--set require_correct=False` stored "False" (truthy). Since typed
    settings no run can; the only text left in committed config.json files is "True" in 17 runs of the
    kit's earlier --set parsing (require_learner_wrong, channels_last), which Python read as true, as meant."""
    import json
    import typing

    from collab_lib.config import TrainConfig, _split_hint

    hints = typing.get_type_hints(TrainConfig)
    found = {}
    paths = sorted((ledger.REPO_ROOT / "results").glob("**/config.json"))
    assert len(paths) > 200
    for path in paths:
        config = json.loads(path.read_text())["config"]
        for name, value in config.items():
            kind = _split_hint(hints[name])[0] if name in hints else None
            if value is not None and ((kind is bool and not isinstance(value, bool))
                                      or (kind in (int, float) and isinstance(value, (str, bool)))):
                found.setdefault((name, value), []).append(path.parent.relative_to(ledger.REPO_ROOT).as_posix())
        TrainConfig.from_dict({k: v for k, v in config.items() if k in hints})  # every one still loads
    assert {key: len(runs) for key, runs in found.items()} == {("require_learner_wrong", "True"): 6,
                                                             ("channels_last", "True"): 11}
    assert all("anypixel" not in run for runs in found.values() for run in runs)


def _write_scan_run(root, cell, method, train, val):
    """A finished seed-0 scan run: final_train and final_val mIoU (fractions) for (cnn, vit)."""
    run = root / ledger.OVERFIT_SCAN / cell / method / "seed0"
    run.mkdir(parents=True)
    split = lambda pair: {s: {"miou": v, "iou": {}} for s, v in zip(("cnn", "vit"), pair)}  # noqa: E731
    (run / "metrics.json").write_text(json.dumps({"final_train": split(train), "final_val": split(val)}))


def test_overfit_pick_takes_the_largest_gain_and_breaks_a_near_tie_by_the_larger_gap(tmp_path):
    # independent: train 0.80 everywhere; val 0.40 (gap 40) without augmentation, 0.60 (gap 20) with it
    gains = {"augoff-n50": 0.02, "augoff-n200": 0.01, "augon-n50": -0.01, "augon-n200": 0.0}
    for cell, g in gains.items():
        val = 0.40 if cell.startswith("augoff") else 0.60
        _write_scan_run(tmp_path, cell, "independent", (0.8, 0.8), (val, val))
        _write_scan_run(tmp_path, cell, "collab", (0.8, 0.8), (val + g, val + g))
    cells = ledger.overfit_scan(root=tmp_path)
    assert cells["augoff-n50"]["g"] == pytest.approx(2.0)
    assert cells["augon-n50"]["independent"]["vit"]["gap"] == pytest.approx(20.0)
    assert ledger.overfit_pick(cells) == "augoff-n50"  # +2.0 against the runner-up's +1.0: no tie
    # a runner-up within 0.5 points with the larger gap wins: augon-n200 at +1.8 (gap 20) vs augoff-n50 (gap 40)
    # keeps augoff-n50; but augoff-n200 at +1.8 with its gap raised to 45 takes it
    cells["augon-n200"]["g"] = 1.8
    assert ledger.overfit_pick(cells) == "augoff-n50"
    cells["augon-n200"]["g"], cells["augoff-n200"]["g"] = 0.0, 1.8
    for s in ("cnn", "vit"):
        cells["augoff-n200"]["independent"][s]["gap"] = 45.0
    assert ledger.overfit_pick(cells) == "augoff-n200"
    table = ledger.overfit_scan_table(ledger.overfit_scan(root=tmp_path))
    assert "| augoff-n50 | off | 50 | collab | 80.0 / 80.0 | 42.0 / 42.0 | 38.0 / 38.0 | +2.0 |" in table


def test_overfit_pick_refuses_an_unfinished_scan(tmp_path):
    _write_scan_run(tmp_path, "augoff-n50", "independent", (0.8, 0.8), (0.4, 0.4))
    cells = ledger.overfit_scan(root=tmp_path)
    assert cells == {}  # collab is missing: the cell is left out
    with pytest.raises(ValueError, match="not complete.*augoff-n50"):
        ledger.overfit_pick(cells)


def test_round15_confirms_in_the_cell_the_scan_picked():
    cells = ledger.overfit_scan()
    assert set(cells) == set(ledger.OVERFIT_CELLS), "round 14 is not complete in the committed runs"
    assert ledger.overfit_pick(cells) == ledger.ROUND15_CELL
    assert ledger.overfit_scan_table(cells) in (ROOT / "research/overfitting.md").read_text(), (
        "research/overfitting.md: regenerate round 14's table (ledger.overfit_scan_table(ledger.overfit_scan()))")


def test_round14_scan_table_is_quoted_in_the_evidence_too():
    """docs/evidence.md carries its own copy of round 14's scan table (research/overfitting.md's is checked above):
    regenerated from results/sweeps/overfit-scan, it must be one of the evidence's tables, whole."""
    table = ledger.overfit_scan_table(ledger.overfit_scan())
    assert table in ledger.tables_in((ROOT / ledger.EVIDENCE).read_text()), (
        "docs/evidence.md: regenerate round 14's table (ledger.overfit_scan_table(ledger.overfit_scan()))")


def _readme_evidence_cells() -> list:
    """The cells after the first of each row of README.md's "Evidence" table, regenerated from the committed runs:
    the 400-step rows from the CPU grid (results/cpu, paired by seed: the difference of the 3-seed means, as the
    grid's table prints it), the 1200-step rows from the fresh-seed rounds (test split, mean ± standard error)."""
    import statistics

    from collab_lib.analysis import paired_gains

    runs_root = ledger.REPO_ROOT
    grid = {name: f"results/cpu/{name}" for name in ("independent", "collab", "dml", "kdcl")}

    def grid_gain(name, student):
        gains = paired_gains(grid, name, student, root=runs_root)
        return len(gains), f"{statistics.mean(gains.values()):+.1f}"

    def fresh(study, name, student):
        r = ledger.replication_verdict(ledger.STUDIES[study], name, student, -1, root=runs_root)["test"]
        return r, f"{r['mean']:+.1f} ± {r['se']:.1f}"

    collab, dml, kdcl = (grid_gain(n, s) for n, s in (("collab", "cnn"), ("dml", "cnn"), ("kdcl", "cnn")))
    rows = [[str(collab[0]), collab[1], grid_gain("collab", "vit")[1]],
            [str(dml[0]) if dml[0] == kdcl[0] else f"{dml[0]} / {kdcl[0]}", f"{dml[1]} / {kdcl[1]}",
             f"{grid_gain('dml', 'vit')[1]} / {grid_gain('kdcl', 'vit')[1]}"]]
    (c_cnn, c_cnn_text), (_, c_vit_text) = fresh("ROUND6_STUDY", "collab", "cnn"), fresh("ROUND6_STUDY", "collab", "vit")
    rows.append([str(c_cnn["seeds"]), f"{c_cnn_text} ({c_cnn['agreeing']} of {c_cnn['seeds']} below)", c_vit_text])
    (d_cnn, d_cnn_text), (k_cnn, k_cnn_text) = fresh("ROUND7_STUDY", "dml", "cnn"), fresh("ROUND12_STUDY", "kdcl", "cnn")
    below = ("every seed below" if d_cnn["agreeing"] == d_cnn["seeds"] and k_cnn["agreeing"] == k_cnn["seeds"]
             else f"{d_cnn['agreeing']} of {d_cnn['seeds']} / {k_cnn['agreeing']} of {k_cnn['seeds']} below")
    rows.append([f"{d_cnn['seeds']} / {k_cnn['seeds']}", f"{d_cnn_text} / {k_cnn_text} ({below})",
                 f"{fresh('ROUND7_STUDY', 'dml', 'vit')[1]} / {fresh('ROUND12_STUDY', 'kdcl', 'vit')[1]}"])
    (p_cnn, p_cnn_text), (_, p_vit_text) = (fresh("ROUND6_STUDY", "collab_no_pixel", s) for s in ("cnn", "vit"))
    rows.append([str(p_cnn["seeds"]), p_cnn_text, p_vit_text])
    # round 15, without augmentation: collab / DML / KDCL, five fresh seeds each
    r15 = {(name, s): ledger.replication_verdict(ledger.ROUND15_STUDY, name, s, +1, root=runs_root)["test"]
           for name in ("collab", "dml", "kdcl") for s in ("cnn", "vit")}
    seeds = {r["seeds"] for r in r15.values()}
    rows.append([" / ".join(map(str, sorted(seeds)))] +
                [" / ".join(f"{r15[name, s]['mean']:+.1f} ± {r15[name, s]['se']:.1f}" for name in ("collab", "dml", "kdcl"))
                 for s in ("cnn", "vit")])
    # round 17 (research/selectivity.md): collab minus the selection off / DML at weight 0.3 / independent, 8 seeds
    from research import selectivity

    study = selectivity.study_runs("mnv2-augoff-n50")
    r17 = {(b, s): ledger.paired_gain_summary(study, "collab", s, b, "test", root=runs_root)
           for b in ("collab_nonselective", "dml_w0.3", "independent") for s in ("cnn", "vit")}
    rows.append([" / ".join(map(str, sorted({r["seeds"] for r in r17.values()})))] +
                [" / ".join(f"{r17[b, s]['mean']:+.1f} ± {r17[b, s]['se']:.1f}" for b in ("collab_nonselective", "dml_w0.3", "independent"))
                 for s in ("cnn", "vit")])
    return rows


def test_readme_evidence_table_is_the_committed_runs():
    """README.md's "Evidence" table, row by row (its first column, the comparison's name, is free text): the
    CPU grid's collab and DML / KDCL gains, then collab (round 6), DML / KDCL (rounds 7 and 12), collab
    without the pixel-wise term (round 6) and collab / DML / KDCL without augmentation (round 15) on fresh
    seeds, and collab against the selection off, DML at weight 0.3 and independent training (round 17). One
    changed number makes its row differ."""
    header = "| comparison | seeds | CNN | ViT |"
    tables = [t for t in ledger.tables_in((ROOT / "README.md").read_text()) if t.startswith(header)]
    assert len(tables) == 1, "README.md: no (or more than one) Evidence table headed " + header
    quoted = [[cell.strip() for cell in row.strip("|").split(" | ")[1:]] for row in tables[0].splitlines()[2:]]
    assert quoted == _readme_evidence_cells(), "README.md: the Evidence table differs from the committed runs"


def test_round15_verdicts_quoted_are_the_committed_runs():
    """Round 15's verdict table, regenerated from results/sweeps/overfit-confirm, is quoted whole in
    research/overfitting.md and in docs/evidence.md."""
    table = ledger.round15_verdict_table()
    for document in ("research/overfitting.md", ledger.EVIDENCE):
        assert table in ledger.tables_in((ROOT / document).read_text()), (
            f"{document}: regenerate round 15's table (ledger.round15_verdict_table())")
