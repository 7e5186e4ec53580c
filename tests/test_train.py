"""End-to-end training on the embedded streets data at toy size (64x64, batch 2, a few steps, CPU).

What must never break: the run directory's files, exact resume, a clean stop
on SIGTERM, and a clear stop on a non-finite loss with the last good
checkpoint kept.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import collab_lib.train as train_module
from collab_lib import course, rundir, runinfo, students
from collab_lib.config import TrainConfig
from collab_lib.errors import SetupError
from collab_lib.loaders import make_loader
from collab_lib.train import train
from hang_guard import HUNG_AFTER_S

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a small shared CPU, two threads per process measured 3x slower here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(run_dir, **overrides) -> TrainConfig:
    """6 training scenes in batches of 2 = 3 steps per epoch, so 4 steps cross an epoch boundary."""
    settings = dict(image_size=(64, 64), crop_size=(64, 64), train_samples=6, val_samples=2, test_samples=2,
                    steps=4, batch_size=2, eval_interval=2, log_interval=1, checkpoint_interval=100,
                    workers=0, progress="none", device="cpu", run_dir=str(run_dir))
    settings.update(overrides)
    return TrainConfig(**settings)


def read_history(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "history.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """4 steps straight through (evaluations at steps 2 and 4); shared by the tests below."""
    return train(tiny(tmp_path_factory.mktemp("straight") / "run"))


def test_run_directory(straight):
    run_dir = straight
    assert sorted(p.name for p in run_dir.iterdir()) == ["best.pt", "config.json", "history.jsonl", "last.pt", "metrics.json"]

    info = json.loads((run_dir / "config.json").read_text())
    assert info["config"]["method"] == "collab" and info["seed"] == 0 and info["precision"] == "fp32"
    assert {"torch", "timm", "numpy", "python"} <= set(info["versions"])

    history = read_history(run_dir)
    steps = [h for h in history if h["kind"] == "train"]
    assert [h["step"] for h in steps] == [1, 2, 3, 4]
    for key in ("loss", "ce_cnn", "ce_vit", "hfd", "region", "pixel", "lr_cnn", "lr_vit", "images_per_s",
                "region_frac_cnn_teaches", "pixel_frac_vit_teaches"):
        assert key in steps[0], key
    evals = [h for h in history if h["kind"] in ("eval", "test")]
    assert [(h["step"], h["split"]) for h in evals] == [(2, "val"), (2, "train"), (4, "val"), (4, "train"), (4, "test")]
    val = next(h for h in evals if h["split"] == "val")
    assert sorted(val) == sorted(["kind", "step", "split", "cnn_miou", "vit_miou", "cnn_pixel_accuracy",
                                  "vit_pixel_accuracy"])  # the val records keep the form old readers know

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["steps"] == 4 and metrics["synthetic"] is True and metrics["method"] == "collab"
    for block in (metrics["final_val"], metrics["test"], metrics["final_train"]):
        for student in ("cnn", "vit"):
            assert 0.0 <= block[student]["miou"] <= 1.0
            assert list(block[student]["iou"]) == metrics["class_names"]
    assert metrics["images_per_s"] > 0
    # best.pt: the evaluation with the highest mean of the two students' val mIoU (the first, on a tie)
    vals = [h for h in evals if h["split"] == "val"]
    best = max(vals, key=lambda h: ((h["cnn_miou"] + h["vit_miou"]) / 2, -h["step"]))
    assert metrics["best_val"]["step"] == best["step"]
    best_ckpt = torch.load(run_dir / "best.pt", weights_only=True)
    assert best_ckpt["step"] == best["step"] and set(best_ckpt) == {"step", "cnn", "vit", "loss", "best", "config"}
    last_ckpt = torch.load(run_dir / "last.pt", weights_only=True)
    same = all(torch.equal(best_ckpt["cnn"][k], last_ckpt["cnn"][k]) for k in last_ckpt["cnn"])
    assert same == (best["step"] == 4)  # best.pt holds the weights of its step, not the last ones

    # Checkpoints: plain tensors and values (weights_only), unwrapped module names.
    ckpt = torch.load(run_dir / "last.pt", weights_only=True)
    assert ckpt["step"] == 4 and ckpt["epoch"] == 1 and ckpt["position"] == 1
    for key in ("cnn", "vit", "loss"):
        assert not any(k.startswith(("module.", "_orig_mod.")) for k in ckpt[key]), key
    assert ckpt["loss"], "collab's projectors and connectors are saved"

    # Resuming a finished run changes nothing: no file is rewritten, the test split is not scored again.
    names = ("history.jsonl", "metrics.json", "config.json", "last.pt", "best.pt")
    before = {name: (run_dir / name).read_bytes() for name in names}
    train(tiny(run_dir, resume=True))
    assert {name: (run_dir / name).read_bytes() for name in names} == before

    # The same run directory is not silently reused.
    with pytest.raises(FileExistsError, match="resume"):
        train(tiny(run_dir))
    with pytest.raises(SystemExit) as exit_info:  # the command line: a message, no traceback
        train_module.main(["--run-dir", str(run_dir), "--device", "cpu"])
    assert exit_info.value.code == 2


def test_resume_is_exact(straight, tmp_path):
    """4 steps straight == 2 steps, stop, resume, 2 more: same weights, optimizer state and metrics.

    The stop falls mid-epoch (3 steps per epoch) and after an evaluation, the
    resumed part crosses an epoch boundary, and dropout and augmentation are on."""
    split = train(tiny(tmp_path / "split", stop_at_step=2, snapshot_steps=(1, 3)))
    assert not (split / "metrics.json").exists()
    assert torch.load(split / "last.pt", weights_only=True)["step"] == 2
    train(tiny(split, resume=True, snapshot_steps=(1, 3)))
    assert sorted(p.name for p in split.glob("step_*.pt")) == ["step_000001.pt", "step_000003.pt"]  # resume keeps step 1

    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(split / "last.pt", weights_only=True)
    for key in ("cnn", "vit", "loss"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs after resume"
    for key in ("opt_cnn", "opt_vit"):
        for index, slot in a[key]["state"].items():
            for name, value in slot.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(b[key]["state"][index][name])), f"{key} {name}"
    metrics_a = json.loads((straight / "metrics.json").read_text())
    metrics_b = json.loads((split / "metrics.json").read_text())
    for key in ("final_val", "best_val", "test", "steps", "epochs"):
        assert metrics_a[key] == metrics_b[key], key
    losses = lambda run: [(h["step"], h["loss"]) for h in read_history(run) if h["kind"] == "train"]  # noqa: E731
    assert losses(straight) == losses(split)

    # Changing the maths of a run on resume is refused, naming the setting.
    with pytest.raises(ValueError, match="lr_cnn"):
        train(tiny(split, resume=True, lr_cnn=0.5))
    # config.json describes the last session; the first one (not resumed, same code) is kept beside it.
    info = json.loads((split / "config.json").read_text())
    assert info["resumed_from_step"] == 2 and len(info["earlier_sessions"]) == 1
    first = info["earlier_sessions"][0]
    assert first["resumed_from_step"] is None and first["git_commit"] == info["git_commit"] and "started" in first
    assert first["machine"] == info["machine"] and info["machine"]["threads"] == torch.get_num_threads()


def test_a_resume_on_another_machine_says_so(tmp_path, capsys):
    """config.json records the machine; a resume whose earlier session ran elsewhere (here: its record altered
    to another processor and kernel family) names what changed, and a resume on the same machine says nothing."""
    from collab_lib.runinfo import machine_info

    run = train(tiny(tmp_path / "run", stop_at_step=1))
    here = json.loads((run / "config.json").read_text())["machine"]
    assert here == machine_info("cpu") and here["gpu"] is None
    assert isinstance(here["cpu_capability"], str) and here["cpu_capability"]  # torch >= 2.4 names its kernels
    train(tiny(run, resume=True, stop_at_step=2))
    assert "another machine" not in capsys.readouterr().err
    info = json.loads((run / "config.json").read_text())
    other_kernels = "NOT-" + here["cpu_capability"]  # differs from the host's, whatever the host's is
    info["machine"] = {**here, "processor": "Some Other CPU", "cpu_capability": other_kernels}
    (run / "config.json").write_text(json.dumps(info))
    train(tiny(run, resume=True))
    err = capsys.readouterr().err
    assert "resume: the session before this one ran on another machine" in err
    assert f"processor: Some Other CPU -> {here['processor']}" in err
    assert f"cpu_capability: {other_kernels} -> {here['cpu_capability']}" in err
    sessions = json.loads((run / "config.json").read_text())["earlier_sessions"]
    assert [s["machine"]["processor"] for s in sessions] == [here["processor"], "Some Other CPU"]


def copy_run(source, target, names=("config.json", "history.jsonl", "metrics.json")):
    """A copy of a run's files; by default the three a committed run keeps (no checkpoints)."""
    target.mkdir(parents=True)
    for name in names:
        (target / name).write_bytes((source / name).read_bytes())
    return target


def test_a_finished_run_without_last_pt_is_never_trained_over(straight, tmp_path):
    """A committed run (text files only): neither a plain run nor a resume may wipe it; overwrite may."""
    committed = copy_run(straight, tmp_path / "committed")
    before = {p.name: p.read_bytes() for p in committed.iterdir()}
    for resume in (False, True):
        with pytest.raises(FileExistsError, match=r"finished run \(metrics.json\) without its last.pt.*--overwrite"):
            train(tiny(committed, resume=resume))
    assert {p.name: p.read_bytes() for p in committed.iterdir()} == before
    assert rundir.prepare_run_dir(tiny(committed, overwrite=True)) == (committed, None)
    # An unfinished run stopped before its first checkpoint has nothing to keep: it starts again.
    unfinished = copy_run(straight, tmp_path / "unfinished", names=("config.json", "history.jsonl"))
    assert rundir.prepare_run_dir(tiny(unfinished, resume=True)) == (unfinished, None)


def test_overwrite_removes_the_old_run_before_training(straight, tmp_path, monkeypatch):
    """Killed before its first checkpoint, an overwritten run leaves no last.pt of the old one to resume."""
    old = copy_run(straight, tmp_path / "old", names=("config.json", "history.jsonl", "metrics.json", "last.pt",
                                                       "best.pt"))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed before the first checkpoint")

    monkeypatch.setattr(train_module, "train_loop", killed)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(old, overwrite=True))
    assert sorted(p.name for p in old.iterdir()) == ["config.json", "history.jsonl"]
    assert (old / "history.jsonl").read_text() == ""


def test_a_damaged_or_foreign_last_pt_is_named(straight, tmp_path):
    run_dir = copy_run(straight, tmp_path / "run", names=("config.json", "history.jsonl"))
    (run_dir / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SetupError, match=r"cannot read .*last.pt.*--overwrite"):
        train(tiny(run_dir, resume=True))
    torch.save({"step": 2, "cnn": {}}, run_dir / "last.pt")  # e.g. a best.pt renamed: weights only
    with pytest.raises(SetupError, match=r"last.pt is not a last.pt .*missing epoch, position"):
        train(tiny(run_dir, resume=True))


def test_stop_at_step_must_lie_ahead(straight, tmp_path):
    with pytest.raises(ValueError, match=r"stop_at_step must be a step in \[1, steps=4\], got 5"):
        tiny(tmp_path, stop_at_step=5)
    with pytest.raises(ValueError, match="stop_at_step"):
        tiny(tmp_path, stop_at_step=0)
    run_dir = copy_run(straight, tmp_path / "run", names=("config.json", "history.jsonl"))
    checkpoint = torch.load(straight / "last.pt", weights_only=True)
    torch.save({**checkpoint, "step": 2}, run_dir / "last.pt")
    with pytest.raises(SetupError, match=r"stop_at_step=2 is not after the step .*\(2\)"):
        train(tiny(run_dir, resume=True, stop_at_step=2))


def test_a_run_dir_that_is_a_file_is_named(tmp_path):
    (tmp_path / "taken").write_text("")
    for run_dir in (tmp_path / "taken", tmp_path / "taken" / "run"):
        with pytest.raises(SetupError, match=r"taken is a file"):
            train(tiny(run_dir))


def test_a_torn_last_history_line_is_dropped_and_other_damage_named(tmp_path):
    good = [{"kind": "train", "step": 1, "loss": 2.0}, {"kind": "eval", "step": 2, "split": "val"}]
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in good) + '{"kind": "train", "st')  # killed mid-write
    with pytest.warns(UserWarning, match=r"history.jsonl: line 3, the last, is cut off"):
        assert course.read_history(tmp_path) == good
    with pytest.warns(UserWarning):
        rundir.truncate_history(path, step=1)  # a resume from step 1
    assert [json.loads(line) for line in path.read_text().splitlines()] == good[:1]
    path.write_text(json.dumps(good[0]) + "\n{oops\n" + json.dumps(good[1]) + "\n")
    with pytest.raises(ValueError, match=r"history.jsonl, line 2: not a JSON record"):
        course.read_history(tmp_path)
    with pytest.raises(SetupError, match=r"resume: .*line 2.*--overwrite"):
        rundir.truncate_history(path, step=1)


def test_nan_loss_stops_naming_step_and_term(tmp_path, monkeypatch):
    class PoisonedLoss(students.CollaborativeLoss):
        calls = 0

        def forward(self, *args, **kwargs):
            total, terms = super().forward(*args, **kwargs)
            PoisonedLoss.calls += 1
            if PoisonedLoss.calls == 3:  # step 3
                terms = {**terms, "hfd": torch.tensor(float("nan")), "loss": torch.tensor(float("nan"))}
                total = total * float("nan")
            return total, terms

    monkeypatch.setattr(students, "CollaborativeLoss", PoisonedLoss)  # what build_loss builds
    config = tiny(tmp_path / "run", steps=6, eval_interval=10, checkpoint_interval=2)
    with pytest.raises(FloatingPointError, match=r"step 3: .*hfd.*last good checkpoint.*step 2") as error:
        train(config)
    assert "loss" in str(error.value)
    assert torch.load(Path(config.run_dir) / "last.pt", weights_only=True)["step"] == 2


@pytest.mark.slow  # a fresh interpreter trained twice: make test runs it, make test-fast does not
def test_sigterm_writes_a_checkpoint_and_resume_continues(tmp_path):
    run_dir = tmp_path / "run"
    flags = ["--image-size", "64", "64", "--crop-size", "64", "64", "--train-samples", "6", "--val-samples", "2",
             "--test-samples", "2", "--batch-size", "2", "--steps", "1000", "--eval-interval", "1000",
             "--log-interval", "1", "--checkpoint-interval", "1000", "--workers", "0", "--device", "cpu",
             "--progress", "log", "--method", "dml", "--run-dir", str(run_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "collab_lib.train", *flags], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + HUNG_AFTER_S
        history = run_dir / "history.jsonl"
        while not (history.exists() and len(history.read_text().splitlines()) >= 2):
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "training did not start in time"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=HUNG_AFTER_S)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "SIGTERM at step" in output and "Traceback" not in output
    step = torch.load(run_dir / "last.pt", weights_only=True)["step"]
    assert step >= 2

    config = TrainConfig(image_size=(64, 64), crop_size=(64, 64), train_samples=6, val_samples=2, test_samples=2,
                         batch_size=2, steps=1000, eval_interval=1000, log_interval=1, checkpoint_interval=1000,
                         workers=0, device="cpu", progress="none", method="dml", run_dir=str(run_dir),
                         resume=True, stop_at_step=step + 1)
    train(config)
    assert torch.load(run_dir / "last.pt", weights_only=True)["step"] == step + 1
    assert [h["step"] for h in read_history(run_dir)][-1] == step + 1


def test_config_json_names_the_commit_of_the_code_that_ran(monkeypatch):
    """A grid worker trains run after run with the code it imported; the checkout may move on meanwhile.
    config.json's "git_commit" is the commit read when the library was imported, "git_head_at_start"
    the checkout's commit when the run started (they differed in results/sweeps/long1200-mnv2-lr01)."""
    from collab_lib.config import TrainConfig

    if (REPO / ".git").exists():
        assert runinfo.CODE_COMMIT == runinfo.git_head()  # nothing was committed during this test
    monkeypatch.setattr(runinfo, "CODE_COMMIT", "a" * 40)
    monkeypatch.setattr(runinfo, "git_head", lambda: "b" * 40)
    info = runinfo.run_info(TrainConfig(run_dir="x"), torch.device("cpu"), "fp32", 1)
    assert info["git_commit"] == "a" * 40 and info["git_head_at_start"] == "b" * 40


def test_training_subset_and_snapshots_leave_training_unchanged(straight, tmp_path):
    """The same 4 steps without the training-subset evaluation and with snapshots after steps 1 and 3: the
    same weights, losses and val/test numbers as `straight` (evaluation and snapshots draw no random number)."""
    run_dir = train(tiny(tmp_path / "snap", train_eval_samples=0, snapshot_steps=(1, 3)))
    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(run_dir / "last.pt", weights_only=True)
    for key in ("cnn", "vit", "loss"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs"
    same = lambda run: [{k: v for k, v in h.items() if k != "images_per_s"}  # noqa: E731
                        for h in read_history(run) if h.get("split") != "train"]
    assert same(straight) == same(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["final_train"] is None and not [h for h in read_history(run_dir) if h.get("split") == "train"]
    for key in ("final_val", "best_val", "test"):
        assert metrics[key] == json.loads((straight / "metrics.json").read_text())[key], key

    # The snapshots: weights only, at the steps asked for, loadable by the course's helpers.
    assert [p.name for p in sorted(run_dir.glob("step_*.pt"))] == ["step_000001.pt", "step_000003.pt"]
    snapshot = torch.load(course.snapshot_path(run_dir, 3), weights_only=True)
    assert set(snapshot) == {"step", "cnn", "vit", "loss", "config"} and snapshot["step"] == 3
    assert list(snapshot["config"]["snapshot_steps"]) == [1, 3]
    assert list(course.list_checkpoints(run_dir)) == ["step 0 (untrained)", "step 1", "step 3", "step 4 (last)"]
    cnn, vit, loss_fn, config = course.load_students(run_dir, "step_000003.pt")
    assert all(torch.equal(t, snapshot["cnn"][n]) for n, t in cnn.state_dict().items())
    assert not torch.equal(cnn.state_dict()["classifier.weight"], a["cnn"]["classifier.weight"])  # step 3, not 4
    # Starting the run afresh removes the earlier run's snapshots with its other files.
    train(tiny(run_dir, overwrite=True, steps=1, train_eval_samples=0))
    assert not list(run_dir.glob("step_*.pt"))


def test_training_subset_is_the_first_items_unaugmented(straight):
    """The train-split records score the first train_eval_samples items (here all 6) without augmentation:
    recomputing them from the saved weights gives the same numbers."""
    history = read_history(straight)
    last = [h for h in history if h.get("split") == "train"][-1]
    assert last["step"] == 4 and last["samples"] == 6
    metrics = json.loads((straight / "metrics.json").read_text())
    assert metrics["final_train"]["samples"] == 6 and metrics["final_train"]["cnn"]["miou"] == last["cnn_miou"]
    cnn, vit, _, config = course.load_students(straight)
    data = students.make_dataset(config, "train", train=False)
    loader = make_loader(data, config)
    scores = train_module.evaluate({"cnn": cnn, "vit": vit}, loader, data.num_classes, data.ignore_index,
                                   torch.device("cpu"), None, False)
    assert scores["cnn"]["miou"] == pytest.approx(last["cnn_miou"], abs=1e-9)
    assert scores["vit"]["miou"] == pytest.approx(last["vit_miou"], abs=1e-9)
    assert metrics["final_train"]["cnn"]["miou"] != metrics["final_val"]["cnn"]["miou"]  # another split


def test_config_json_records_command_line_dirty_tree_and_recipe(straight, tmp_path, monkeypatch, run_git):
    info = json.loads((straight / "config.json").read_text())
    assert info["command"]["argv"] and {"git_dirty", "git_changes", "git_diff_sha1"} <= set(info)
    assert info["recipe"] is None  # not started by the grid runner

    # working_tree() on a repository of its own: clean, then an edit (hashed), then a new file in the folder.
    repo = tmp_path / "repo"
    (repo / "lib").mkdir(parents=True)
    (repo / "lib" / "a.py").write_text("x = 1\n")
    git = lambda *args: run_git(repo, *args)  # noqa: E731
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "one")
    monkeypatch.setattr(runinfo, "CODE_FOLDER", repo / "lib")
    assert runinfo.working_tree() == {"git_dirty": False, "git_changes": [], "git_diff_sha1": None}
    (repo / "runs").mkdir()
    (repo / "runs" / "log.txt").write_text("a run directory being written is not a code change")
    assert runinfo.working_tree()["git_dirty"] is False
    (repo / "lib" / "a.py").write_text("x = 2\n")
    first = runinfo.working_tree()
    assert first["git_dirty"] is True and first["git_changes"] == [" M lib/a.py"] and len(first["git_diff_sha1"]) == 40
    (repo / "lib" / "a.py").write_text("x = 3\n")
    assert runinfo.working_tree()["git_diff_sha1"] != first["git_diff_sha1"]  # another edit, another hash
    (repo / "lib" / "a.py").write_text("x = 1\n")
    (repo / "lib" / "new.py").write_text("")
    assert runinfo.working_tree()["git_changes"] == ["?? lib/new.py"]  # untracked code counts
    monkeypatch.setattr(runinfo, "CODE_FOLDER", tmp_path)  # no git repository at all
    assert runinfo.working_tree()["git_dirty"] is None

    # The grid runner's recipe reaches config.json; it does not change the maths of a resumed run.
    info = runinfo.run_info(TrainConfig(run_dir="x", recipe="cpu"), torch.device("cpu"), "fp32", 1)
    assert info["recipe"] == "cpu" and info["config"]["recipe"] == "cpu"


def test_command_line_inside_a_kernel_names_the_parent_process(monkeypatch):
    """papermill runs the notebook in a kernel whose argv is only the kernel launcher's: the parent's command
    line (papermill's own) is recorded too, where the system tells it."""
    import types

    outside = runinfo.command_line()
    assert "kernel" not in outside and outside["argv"] == sys.argv
    if sys.version_info >= (3, 10) and len(sys.argv) > 1:  # the same arguments, after the interpreter's own
        assert outside["orig_argv"][1 - len(sys.argv):] == sys.argv[1:]
    fake_ipython = types.ModuleType("IPython")
    fake_ipython.get_ipython = lambda: types.SimpleNamespace(kernel=object())  # what a kernel's shell has
    monkeypatch.setitem(sys.modules, "IPython", fake_ipython)
    monkeypatch.setenv("JPY_SESSION_NAME", "notebooks/05_full_training.ipynb")
    info = runinfo.command_line()
    assert info["kernel"] is True and info["notebook"] == "notebooks/05_full_training.ipynb"
    if Path(f"/proc/{os.getppid()}/cmdline").exists():
        assert info["parent"] and isinstance(info["parent"][0], str)


def test_user_errors_on_the_command_line_exit_2_with_one_paragraph(straight, tmp_path, capsys):
    """A dataset problem and a resume with other settings: "error: ..." on stderr, exit code 2, no traceback."""
    with pytest.raises(SystemExit) as exit_info:
        train_module.main(["--dataset", "cityscapes", "--data-root", str(tmp_path / "nowhere"), "--device", "cpu",
                           "--run-dir", str(tmp_path / "run"), "--workers", "0"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and "Traceback" not in err
    assert "nowhere" in err or "cityscapes" in err.lower()

    with pytest.raises(SystemExit) as exit_info:
        train_module.main(["--config", str(straight / "config.json"), "--resume", "--lr-cnn", "0.5"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "lr_cnn: 0.03 -> 0.5" in err and "Traceback" not in err

    with pytest.raises(SystemExit) as exit_info:
        train_module.main(["--run-dir", str(straight), "--device", "cpu"])
    assert exit_info.value.code == 2 and "--resume" in capsys.readouterr().err

    for content, message in ((None, "cannot read it as JSON"), ("{\"stepz\": 3}", "unknown config keys"),
                             ("[1, 2]", "expected a JSON object")):
        path = tmp_path / f"settings-{len(message)}.json"
        if content is not None:
            path.write_text(content)
        with pytest.raises(SystemExit) as exit_info:
            train_module.main(["--config", str(path)])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and f"config file {path}: " in err and message in err, err
        assert "Traceback" not in err


def test_a_nan_stop_on_the_command_line_prints_its_message(monkeypatch, capsys, tmp_path):
    def nan_at_step_3(config):
        raise FloatingPointError("step 3: the loss is nan (hfd); the last good checkpoint (step 2) is kept")

    monkeypatch.setattr(train_module, "train", nan_at_step_3)
    with pytest.raises(SystemExit) as exit_info:
        train_module.main(["--run-dir", str(tmp_path / "run"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.startswith("error: step 3: the loss is nan") and "Traceback" not in err


def test_progress_log_lines_go_to_stderr(capsys):
    """progress="log" (headless kernels, papermill --log-output): every line on stderr, nothing on stdout."""
    from collab_lib.progress import Progress, format_seconds

    shown = Progress("log", total=10, initial=0, enabled=True)
    shown.show("loss 1.0", "step 1/10 | loss 1.0000")
    shown.write("step 1: val mIoU cnn 0.1 vit 0.2")
    shown.close()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "step 1/10 | loss 1.0000\nstep 1: val mIoU cnn 0.1 vit 0.2\n"
    silent = Progress("log", total=10, initial=0, enabled=False)  # a DDP rank other than 0
    silent.show("x", "y")
    silent.write("z")
    assert capsys.readouterr().err == ""
    assert format_seconds(12.7) == "0m12s" and format_seconds(3725) == "1h02m"
