"""The grid runner: same recipe for every method, skip-if-finished, summaries."""
import json
import math

import pytest

import collab_lib.train
from collab_lib import experiments
from collab_lib.experiments import CONFIGURATIONS, RECIPES, collect_results, markdown_table, run_grid, summarize


def test_every_configuration_shares_the_recipe_and_only_the_loss_differs(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(collab_lib.train, "train", lambda config: seen.append(config))
    run_grid("cpu", tmp_path, seeds=[0, 1])
    assert len(seen) == 2 * len(CONFIGURATIONS)
    loss_fields = {"method", "use_hfd", "use_region", "use_pixel"}
    for seed in (0, 1):
        configs = [c.to_dict() for c in seen if c.seed == seed]
        shared = [{k: v for k, v in c.items() if k not in loss_fields | {"run_dir"}} for c in configs]
        assert all(s == shared[0] for s in shared)  # students, data, schedule, budget, seed: identical
    methods = {(c.method, c.use_hfd, c.use_region, c.use_pixel) for c in seen}
    assert ("collab", False, True, True) in methods and ("collab", True, False, False) in methods
    assert all(c.resume for c in seen)  # an interrupted run continues from last.pt
    assert {c.recipe for c in seen} == {"cpu"}  # config.json names the recipe that started the run


def test_finished_runs_are_skipped(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(collab_lib.train, "train", lambda config: seen.append(config.run_dir))
    done = tmp_path / "dml" / "seed0"
    done.mkdir(parents=True)
    (done / "metrics.json").write_text("{}")
    dirs = run_grid("cpu-mini", tmp_path)
    assert str(done) not in seen and len(seen) == 3
    assert done in dirs and len(dirs) == 4


def test_bad_names_are_listed():
    with pytest.raises(ValueError, match="valid: .*cpu"):
        run_grid("laptop")
    with pytest.raises(ValueError, match="collab_no_hfd"):
        run_grid("smoke", configurations=["collab_without_anything"])


def _fake_run(root, name, seed, cnn, vit, method="collab"):
    run = root / name / f"seed{seed}"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"config": {"seed": seed, "method": method, "cnn": "c", "vit": "v", "steps": 5}}))
    (run / "metrics.json").write_text(json.dumps({
        "class_names": ["road", "pole"],
        "final_val": {"cnn": {"miou": cnn - 0.01}, "vit": {"miou": vit - 0.01}},
        "test": {"cnn": {"miou": cnn, "iou": {"road": cnn, "pole": None}}, "vit": {"miou": vit, "iou": {"road": vit, "pole": 0.1}}},
    }))


def test_summary_means_spreads_and_gains(tmp_path):
    _fake_run(tmp_path, "independent", 0, 0.50, 0.40, "independent")
    _fake_run(tmp_path, "independent", 1, 0.52, 0.42, "independent")
    _fake_run(tmp_path, "collab", 0, 0.53, 0.45)
    _fake_run(tmp_path, "collab", 1, 0.55, 0.47)
    df = collect_results(tmp_path)
    assert set(df["split"]) == {"test"} and len(df) == 4
    assert df.loc[df.configuration == "collab", "vit_iou/pole"].tolist() == [0.1, 0.1]
    summary = summarize(df)
    assert list(summary.index) == ["independent", "collab"]
    assert summary.loc["collab", "cnn_mean"] == pytest.approx(0.54)
    assert summary.loc["collab", "cnn_std"] == pytest.approx(math.sqrt(2 * 0.01**2))  # sample std of 0.53, 0.55
    assert summary.loc["collab", "vit_gain"] == pytest.approx(0.05)
    table = markdown_table(summary)
    assert "| collab | 2 | 54.0 ± 1.4 | 46.0 ± 1.4 | +3.0 | +5.0 |" in table


@pytest.mark.slow
def test_a_real_tiny_grid_writes_what_the_summary_reads(tmp_path):
    dirs = run_grid("smoke", tmp_path, configurations=["collab"], overrides=dict(steps=2, eval_interval=2, checkpoint_interval=2))
    df = collect_results(tmp_path)
    assert len(df) == 1 and df.loc[0, "method"] == "collab" and df.loc[0, "split"] == "test"
    assert 0.0 <= df.loc[0, "cnn_miou"] <= 1.0 and 0.0 <= df.loc[0, "vit_miou"] <= 1.0
    assert "cnn_iou/pole" in df.columns
    assert json.loads((dirs[0] / "config.json").read_text())["recipe"] == "smoke"  # provenance
    # Finished: a second call trains nothing (it would fail if it tried, since train is not patched to be quick).
    before = (dirs[0] / "metrics.json").stat().st_mtime_ns
    run_grid("smoke", tmp_path, configurations=["collab"])
    assert (dirs[0] / "metrics.json").stat().st_mtime_ns == before


def test_recipes_are_valid_configs():
    from collab_lib.config import TrainConfig

    for name, recipe in RECIPES.items():
        for configuration in recipe.configurations:
            TrainConfig.from_dict({**recipe.base, **CONFIGURATIONS[configuration], "run_dir": "x"})
    assert experiments.RECIPES["cpu"].seeds == (0, 1, 2)


def test_a_run_claimed_by_a_live_process_is_skipped_and_a_stale_lock_taken_over(tmp_path, monkeypatch):
    import subprocess
    import sys

    seen = []
    monkeypatch.setattr(collab_lib.train, "train", lambda config: seen.append(config.run_dir))
    busy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "independent" / "seed0").mkdir(parents=True)
        (tmp_path / "independent" / "seed0" / "grid.lock").write_text(str(busy.pid))
        (tmp_path / "dml" / "seed0").mkdir(parents=True)
        (tmp_path / "dml" / "seed0" / "grid.lock").write_text("999999999")  # no such process
        run_grid("cpu-mini", tmp_path)
    finally:
        busy.kill()
    assert str(tmp_path / "independent" / "seed0") not in seen
    assert str(tmp_path / "dml" / "seed0") in seen and len(seen) == 3
    assert not (tmp_path / "dml" / "seed0" / "grid.lock").exists()  # released after training


@pytest.mark.parametrize("recipe", ["cpu", "cpu-v1"])
def test_committed_results_were_made_by_the_recipe_of_their_folder(recipe):
    """results/<recipe>/ holds what that recipe trains: every committed run's config.json agrees with the
    recipe's base, its configuration and its seed (a recipe changed without re-running the grid fails here)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "results" / recipe
    configs = sorted(root.glob("*/seed*/config.json"))
    if not configs:
        pytest.skip(f"no committed results in {root}")
    plan = RECIPES[recipe]
    for path in configs:
        configuration, seed = path.parent.parent.name, int(path.parent.name[len("seed"):])
        assert configuration in plan.configurations and seed in plan.seeds, path
        saved = json.loads(path.read_text())["config"]
        expected = {**plan.base, **CONFIGURATIONS[configuration], "seed": seed}
        for key, value in expected.items():
            value = list(value) if isinstance(value, tuple) else value
            assert saved[key] == value, f"{path}: {key}={saved[key]!r}, recipe {recipe!r} says {value!r}"


def test_describe_runs_names_what_each_run_changed_and_shows_only_val(tmp_path):
    from collab_lib.experiments import describe_runs

    base = {**RECIPES["cpu"].base, "run_dir": "x", "seed": 0, "recipe": "cpu"}
    for name, changes in (("plain", {}), ("fast", {"lr_cnn": 0.5, "image_size": [128, 256]})):
        run = tmp_path / name / "collab" / "seed0"
        run.mkdir(parents=True)
        config = {k: list(v) if isinstance(v, tuple) else v for k, v in {**base, **changes}.items()}
        (run / "config.json").write_text(json.dumps({"config": config}))
        (run / "metrics.json").write_text(json.dumps({
            "final_val": {"cnn": {"miou": 0.4012}, "vit": {"miou": 0.3777}},
            "test": {"cnn": {"miou": 0.9999}, "vit": {"miou": 0.9999}}}))
    rows = {line.split(" |")[0].strip("| "): line for line in describe_runs(tmp_path, "cpu").splitlines()[2:]}
    assert "lr_cnn=0.5" in rows["fast/collab/seed0 (seed 0)"] and "image_size=[128, 256]" in rows["fast/collab/seed0 (seed 0)"]
    assert "| - |" in rows["plain/collab/seed0 (seed 0)"]  # nothing changed (the recipe's name is no change)
    assert all("40.1" in row and "37.8" in row and "99.9" not in row for row in rows.values())
    assert base["lr_cnn"] != 0.5


def test_an_interrupted_grid_exits_with_the_signal_code_and_says_how_to_continue(tmp_path, monkeypatch, capsys):
    """SIGTERM during a grid run: the trainer has written its checkpoint; the grid runner exits 128 + 15 with one
    line (no traceback), and the lock of the interrupted run is released so the same command resumes it."""
    import signal

    from collab_lib import experiments
    from collab_lib.train import TrainingInterrupted

    def interrupted(config):
        raise TrainingInterrupted(f"SIGTERM at step 2: checkpoint written to {config.run_dir}/last.pt", signal.SIGTERM)

    monkeypatch.setattr("collab_lib.train.train", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        experiments.main(["--recipe", "smoke", "--configurations", "collab", "--out", str(tmp_path)])
    assert exit_info.value.code == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "SIGTERM at step 2" in err and "the same command continues the grid" in err and "Traceback" not in err
    assert not (tmp_path / "collab" / "seed0" / "grid.lock").exists()
