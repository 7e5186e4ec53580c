"""The grid runner: same recipe for every method, skip-if-finished, summaries."""
import json
import math

import pytest

import collab_lib.train
from collab_lib import experiments
from collab_lib.experiments import CONFIGURATIONS, CPU_GRID, RECIPES, collect_results, markdown_table, run_grid, summarize
from collab_lib.errors import SetupError


def test_every_configuration_shares_the_recipe_and_only_the_loss_differs(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(collab_lib.train, "train", lambda config: seen.append(config))
    run_grid("cpu", tmp_path, seeds=[0, 1], configurations=list(CONFIGURATIONS))
    assert len(seen) == 2 * len(CONFIGURATIONS)
    loss_fields = {"method", "use_hfd", "use_region", "use_pixel", "selective", "w_dml"}
    for seed in (0, 1):
        configs = [c.to_dict() for c in seen if c.seed == seed]
        shared = [{k: v for k, v in c.items() if k not in loss_fields | {"run_dir"}} for c in configs]
        assert all(s == shared[0] for s in shared)  # students, data, schedule, budget, seed: identical
    methods = {(c.method, c.use_hfd, c.use_region, c.use_pixel) for c in seen}
    assert ("collab", False, True, True) in methods and ("collab", True, False, False) in methods
    assert {(c.method, c.selective, c.w_dml) for c in seen} >= {("collab", False, 1.0), ("dml", True, 0.3)}
    assert all(c.resume for c in seen)  # an interrupted run continues from last.pt
    assert {c.recipe for c in seen} == {"cpu"}  # config.json names the recipe that started the run


def test_the_cpu_recipe_keeps_its_grid():
    """results/cpu's eight configurations; the selectivity study's arms are asked for by name."""
    assert RECIPES["cpu"].configurations == CPU_GRID and len(CPU_GRID) == 8
    assert set(CONFIGURATIONS) - set(CPU_GRID) == {"collab_nonselective", "dml_w0.3"}


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
    # Finished: a second call with the same settings trains nothing; one with other settings is refused.
    before = (dirs[0] / "metrics.json").stat().st_mtime_ns
    run_grid("smoke", tmp_path, configurations=["collab"], overrides=dict(steps=2, eval_interval=2, checkpoint_interval=2))
    assert (dirs[0] / "metrics.json").stat().st_mtime_ns == before
    with pytest.raises(SetupError, match="steps: 2 -> 3"):  # the recipe's own 3 steps
        run_grid("smoke", tmp_path, configurations=["collab"])
    assert (dirs[0] / "metrics.json").stat().st_mtime_ns == before


def test_recipes_are_valid_configs():
    from collab_lib.config import TrainConfig

    for name, recipe in RECIPES.items():
        for configuration in recipe.configurations:
            TrainConfig.from_dict({**recipe.base, **CONFIGURATIONS[configuration], "run_dir": "x"})
    assert experiments.RECIPES["cpu"].seeds == (0, 1, 2)


def test_a_run_locked_by_a_live_process_is_skipped_and_a_leftover_lock_file_blocks_nothing(tmp_path, monkeypatch):
    import subprocess
    import sys

    seen = []
    monkeypatch.setattr(collab_lib.train, "train", lambda config: seen.append(config.run_dir))
    (tmp_path / "independent" / "seed0").mkdir(parents=True)
    holder = ("import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
              "print('locked', flush=True); time.sleep(60)")
    busy = subprocess.Popen([sys.executable, "-c", holder, str(tmp_path / "independent" / "seed0" / "grid.lock")],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert busy.stdout.readline().strip() == "locked"
        (tmp_path / "dml" / "seed0").mkdir(parents=True)
        (tmp_path / "dml" / "seed0" / "grid.lock").write_text("999999999")  # left by a dead process: no holder
        (tmp_path / "kdcl" / "seed0").mkdir(parents=True)
        (tmp_path / "kdcl" / "seed0" / "grid.lock").write_text("")  # left empty (killed between open and write)
        run_grid("cpu-mini", tmp_path)
    finally:
        busy.kill()
        busy.wait()
    assert str(tmp_path / "independent" / "seed0") not in seen
    assert {str(tmp_path / name / "seed0") for name in ("dml", "kdcl", "collab")} == set(seen)
    assert not (tmp_path / "dml" / "seed0" / "grid.lock").exists()  # released after training


def test_the_grid_lock_is_held_until_released_and_a_lock_file_without_holder_is_free(tmp_path):
    """flock belongs to an open file description: a second claim, even from this process, fails while the first
    is held. The old pid file took a claim by this process's own pid as its own, and an empty one as pid 0
    (os.kill(0, 0) succeeds): that run was skipped forever."""
    import os

    run_dir = tmp_path / "collab" / "seed0"
    first = experiments._claim(run_dir)
    assert first is not None
    assert (run_dir / "grid.lock").read_text().strip() == str(os.getpid())  # for people: who trains it
    assert experiments._claim(run_dir) is None
    experiments._release(run_dir, first)
    assert not (run_dir / "grid.lock").exists()
    second = experiments._claim(run_dir)
    assert second is not None
    experiments._release(run_dir, second)

    for leftover in ("", "0", str(os.getpid()), "999999999"):  # no process holds any of these
        (run_dir / "grid.lock").write_text(leftover)
        lock = experiments._claim(run_dir)
        assert lock is not None, f"a grid.lock holding {leftover!r} and locked by no one blocked the run"
        experiments._release(run_dir, lock)


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
    # a hand-made run folder without config.json: a row that says so, not a traceback
    bare = tmp_path / "bare" / "collab" / "seed3"
    bare.mkdir(parents=True)
    (bare / "metrics.json").write_text(json.dumps({"seed": 3, "final_val": {"cnn": {"miou": 0.5}, "vit": {"miou": 0.25}}}))
    row = next(line for line in describe_runs(tmp_path, "cpu").splitlines() if line.startswith("| bare/"))
    assert row == "| bare/collab/seed3 (seed 3) | unknown (no config.json) | 50.0 | 25.0 |"


def test_an_interrupted_grid_exits_with_the_signal_code_and_says_how_to_continue(tmp_path, monkeypatch, capsys):
    """SIGTERM during a grid run: the trainer has written its checkpoint; the grid runner exits 128 + 15 with one
    line (no traceback), and the lock of the interrupted run is released so the same command resumes it."""
    import signal

    from collab_lib import experiments
    from collab_lib.errors import TrainingInterrupted

    def interrupted(config):
        raise TrainingInterrupted(f"SIGTERM at step 2: checkpoint written to {config.run_dir}/last.pt", signal.SIGTERM)

    monkeypatch.setattr("collab_lib.train.train", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        experiments.main(["--recipe", "smoke", "--configurations", "collab", "--out", str(tmp_path)])
    assert exit_info.value.code == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "SIGTERM at step 2" in err and "the same command continues the grid" in err and "Traceback" not in err
    assert not (tmp_path / "collab" / "seed0" / "grid.lock").exists()


def _finished_run(run_dir, recipe, configuration, seed, **changes):
    """A finished run as the grid leaves it: config.json (as JSON has it: lists for tuples) and metrics.json."""
    from collab_lib.config import TrainConfig

    config = TrainConfig.from_dict({**RECIPES[recipe].base, **CONFIGURATIONS[configuration], "seed": seed,
                                    "run_dir": str(run_dir), "resume": True, "recipe": recipe, **changes}).to_dict()
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"config": config}))
    (run_dir / "metrics.json").write_text(json.dumps({"final_val": {"cnn": {"miou": 0.4}, "vit": {"miou": 0.3}}}))
    return config


def test_a_finished_run_with_other_settings_stops_the_grid_before_any_run(tmp_path, monkeypatch, capsys):
    """--set steps=800 on a folder of 400-step runs: the old runs would be reported as the new ones. The grid
    refuses, naming the field, before anything trains; as the trainer does for an unfinished run on resume."""
    seen = []
    monkeypatch.setattr(collab_lib.train, "train", lambda config: seen.append(config.run_dir))
    done = tmp_path / "dml" / "seed0"
    _finished_run(done, "cpu", "dml", 0)  # the recipe's 400 steps
    with pytest.raises(SetupError, match=r"dml/seed0 holds a finished run .*steps: 400 -> 800"):
        run_grid("cpu-mini", tmp_path, overrides={"steps": 800})
    assert seen == []  # not even independent/seed0, planned before it

    with pytest.raises(SystemExit) as exit_info:
        experiments.main(["--recipe", "cpu-mini", "--out", str(tmp_path), "--set", "steps=800"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and "steps: 400 -> 800" in err
    assert "Traceback" not in err and seen == []

    with pytest.raises(SetupError, match=r"image_size: \[64, 128\] -> \[64, 64\]"):  # also a --dry-run
        run_grid("cpu-mini", tmp_path, overrides={"image_size": "64,64"}, dry_run=True)

    # Settings that do not change the maths (RUNTIME_FIELDS) may differ, as on resume: the run is skipped.
    run_grid("cpu-mini", tmp_path, overrides={"eval_interval": 50, "workers": 2})
    assert str(done) not in seen and len(seen) == 3


def test_a_finished_run_from_before_a_field_existed_is_still_skipped(tmp_path, monkeypatch):
    """Committed runs predate fields added later (config.json lacks them): as on resume, a field the run does
    not record is not compared, so the grid skips them rather than refusing every committed folder."""
    seen = []
    monkeypatch.setattr(collab_lib.train, "train", lambda config: seen.append(config.run_dir))
    done = tmp_path / "collab" / "seed0"
    config = _finished_run(done, "cpu", "collab", 0)
    for later in ("require_learner_wrong", "class_names", "snapshot_steps", "train_eval_samples", "recipe"):
        del config[later]
    config["a_field_since_removed"] = 1
    (done / "config.json").write_text(json.dumps({"config": config}))
    run_grid("cpu-mini", tmp_path)
    assert str(done) not in seen and len(seen) == 3


def test_the_committed_folders_are_still_read_and_skipped(capsys):
    """--summary-only and --describe only read: they never refuse a committed run; the training grid skips the
    committed runs of its own recipe (their config.json lacks fields added since)."""
    from pathlib import Path

    results = Path(__file__).resolve().parents[1] / "results"
    cpu = results / "cpu"
    if not any(cpu.glob("*/seed*/metrics.json")):
        pytest.skip(f"no committed results in {cpu}")
    experiments.main(["--recipe", "cpu", "--out", str(cpu), "--summary-only"])
    assert "| collab |" in capsys.readouterr().out
    sweeps = sorted(p for p in (results / "sweeps").iterdir() if p.is_dir() and any(p.rglob("metrics.json")))
    for sweep in sweeps:
        experiments.main(["--recipe", "cpu", "--out", str(sweep), "--describe"])
        experiments.main(["--recipe", "cpu", "--out", str(sweep), "--summary-only"])
    assert capsys.readouterr().out.count("| run | differs from recipe 'cpu'") == len(sweeps)
    dirs = run_grid("cpu", cpu, dry_run=True)  # trains nothing, writes nothing
    assert "[grid] skip" in capsys.readouterr().out and len(dirs) == 24


@pytest.mark.parametrize("setting, option", [
    ("method=dml", "--configurations"), ("use_hfd=false", "--configurations"),
    ("use_pixel=false", "--configurations"), ("seed=3", "--seeds"), ("run_dir=/tmp/x", "--out"), ("resume=false", "--out"), ("overwrite=true", "--out"),
    ("recipe=cpu", "--recipe"),
])
def test_a_set_of_a_field_the_grid_sets_itself_is_refused(tmp_path, monkeypatch, capsys, setting, option):
    """The grid overwrote these per run (the loss switches for some configurations only): --set silently lost."""
    monkeypatch.setattr(collab_lib.train, "train", lambda config: pytest.fail("no run may start"))
    with pytest.raises(SystemExit) as exit_info:
        experiments.main(["--recipe", "smoke", "--out", str(tmp_path), "--set", "steps=2", setting])
    key = setting.partition("=")[0]
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert f"--set: {key} is set by the grid for each run" in err and option in err
    with pytest.raises(ValueError, match=f"{key} is set by the grid"):  # the Python entry point too
        run_grid("smoke", tmp_path, overrides={key: setting.partition("=")[2]})


@pytest.mark.parametrize("mode", ["--summary-only", "--describe"])
def test_reading_a_folder_without_finished_runs_is_an_error_naming_it(tmp_path, capsys, mode):
    """A mistyped --out (or a grid not run yet) printed nothing, or only a header, and exited 0."""
    unfinished = tmp_path / "grid" / "collab" / "seed0"
    unfinished.mkdir(parents=True)
    (unfinished / "config.json").write_text(json.dumps({"config": {"seed": 0}}))  # started, not finished
    for out, where in ((tmp_path / "grid", ""), (tmp_path / "gird", " (the folder does not exist)")):
        with pytest.raises(SystemExit) as exit_info:
            experiments.main(["--recipe", "smoke", "--out", str(out), mode])
        captured = capsys.readouterr()
        assert exit_info.value.code == 2 and captured.out == ""
        assert captured.err.startswith(f"error: no finished run (metrics.json) was found under {out}{where};")
        assert captured.err.count("\n") == 1  # one paragraph
