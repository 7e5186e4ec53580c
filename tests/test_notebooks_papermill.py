"""Notebook 05 through papermill, as the README and the notebook itself tell a user to run it.

Every papermill command is read from the files, not copied here: the lines of ```bash blocks (with their
`\\` continuations joined) and the `code spans` of README.md, docs/usage.md and notebook 05's markdown cells whose
program is `papermill` or `.venv/bin/papermill`. Each one runs *as written*, with only these changes:

1. it runs from the kit's folder with this interpreter's papermill (`python -m papermill`, the same
   program as `.venv/bin/papermill`);
2. the output notebook goes to a temporary folder, and so do `-p out_root X` / `-p run_dir X` (a relative
   X keeps its name below it); a command that gives neither gets `-p out_root <tmp>/runs`, so nothing
   lands in the checkout's runs/;
3. `-p data_root X` points at a tiny dataset the test writes in the layout of the command's `-p dataset`
   (2 images of 64x64 per split; the folder dataset with its classes.txt);
4. SHRINK below is appended: later `-p` values win in papermill, so the run becomes 3 steps of 2 images
   of 64x64 with 16-wide decoders on the CPU, no worker processes, smoke mode on, no ImageNet weights
   (nothing may be downloaded), whatever the command asked for.

Each run must leave metrics.json in `<out_root>/<method>/seed<seed>` (or the given run_dir) saying the
command's method, dataset and seed and the dataset's own class names. Separately (no kernel, seconds),
every command's own parameter values are checked: each names a parameter of notebook 05, and the values
papermill would hand over (text such as "[512, 1024]" or "none") build a TrainConfig; an output folder the
command writes into exists on a fresh clone or is created by a `mkdir -p` in the same block.
"""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

papermill = pytest.importorskip("papermill")
from papermill.cli import _resolve_type  # noqa: E402  how `papermill -p NAME VALUE` types VALUE
from test_data_own import OWN_CLASSES, camvid_tree, cityscapes_tree, own_tree, voc_tree  # noqa: E402

from collab_lib.config import TrainConfig  # noqa: E402
from collab_lib.data import build_dataset  # noqa: E402
from collab_lib.experiments import collect_results  # noqa: E402
from hang_guard import HUNG_AFTER_S

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "05_full_training.ipynb"
README = REPO / "README.md"
USAGE = REPO / "docs" / "usage.md"
KERNEL = "collab-kit"
SHRINK = ["-p", "steps", "3", "-p", "batch_size", "2", "-p", "image_size", "[64, 64]", "-p", "crop_size", "[64, 64]",
          "-p", "cnn_decoder_channels", "16", "-p", "vit_decoder_channels", "16", "-p", "workers", "0",
          "-p", "device", "cpu", "-p", "precision", "auto", "-p", "pretrained", "False", "-p", "smoke", "True"]
TREES = {"folder": own_tree, "cityscapes": cityscapes_tree, "camvid": camvid_tree, "voc": voc_tree}
# notebook parameters that are not TrainConfig fields (the notebook derives the run's folder and smoke mode)
NOTEBOOK_ONLY = {"out_root", "smoke"}


# ---------------------------------------------------------------- reading the commands from the files

def markdown_texts(source):
    """(name, markdown text) of README.md, docs/usage.md or notebook 05's markdown cells."""
    if source in ("README.md", "docs/usage.md"):
        return [(source, (README if source == "README.md" else USAGE).read_text())]
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    return [(f"05 cell {i}", c.source) for i, c in enumerate(notebook.cells) if c.cell_type == "markdown"]


def is_papermill(words):
    return bool(words) and words[0] in ("papermill", ".venv/bin/papermill")


def commands_in(text):
    """[(command words, the ```bash block it stands in or None)] in the order they appear."""
    found = []
    for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, flags=re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            words = shlex.split(line, comments=True)
            if is_papermill(words):
                found.append((words, block))
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for span in re.findall(r"`([^`\n]+)`", prose):
        words = shlex.split(span)
        if is_papermill(words) and len(words) > 2:
            found.append((words, None))
    return found


def all_commands(source):
    return [(name, words, block) for name, text in markdown_texts(source) for words, block in commands_in(text)]


def parameters_of(words):
    """{name: value} as papermill hands them to the notebook: -y YAML first, then -p (typed as papermill does)."""
    values, typed = {}, {}
    for index, word in enumerate(words):
        if word in ("-y", "--parameters_yaml"):
            values.update(yaml.safe_load(words[index + 1]))
        elif word in ("-p", "--parameters"):
            typed[words[index + 1]] = _resolve_type(words[index + 2])
    return {**values, **typed}


def notebook_parameters():
    tagged = [c for c in nbformat.read(NOTEBOOK, as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    return tagged[0].source


def parameter_names():
    return {line.split("=")[0].strip() for line in notebook_parameters().splitlines()
            if "=" in line and not line.lstrip().startswith("#")}


SOURCES = ["README.md", "docs/usage.md", "notebook 05"]


@pytest.mark.parametrize("source", SOURCES)
def test_the_file_shows_papermill_commands(source):
    assert all_commands(source), f"{source} shows no papermill command (README: the lead pastes .scratch/readme-papermill.md)"


@pytest.mark.parametrize("source", SOURCES)
def test_every_command_names_parameters_of_05_with_values_the_config_takes(source):
    names = parameter_names()
    for where, words, block in all_commands(source):
        assert words[1] == "notebooks/05_full_training.ipynb", (where, words)
        values = parameters_of(words)
        unknown = sorted(set(values) - names)
        assert not unknown, f"{where}: {' '.join(words)}\n  names no parameter of notebook 05: {unknown}"
        settings = {k: v for k, v in values.items() if k not in NOTEBOOK_ONLY}
        TrainConfig(**settings)  # "[512, 1024]", "none", "6e-5" ... must convert (a ValueError names the field)
        output = Path(words[2]).parent
        if str(output) not in ("", "."):
            tracked = subprocess.run(["git", "ls-files", str(output)], cwd=REPO, capture_output=True, text=True).stdout
            made = block is not None and re.search(rf"mkdir -p [^\n]*\b{re.escape(str(output))}\b", block)
            assert tracked or made, f"{where}: the output folder {output} does not exist on a fresh clone; " \
                                    f"put `mkdir -p {output}` before the command"


def test_parameters_cell_holds_only_literals():
    names = parameter_names()
    # papermill infers the parameters from the cell; a line it cannot parse (brackets in a comment were one) makes
    # it warn "Passed unknown parameter" for a parameter the notebook has
    assert set(papermill.inspect_notebook(str(NOTEBOOK))) == names
    for name in ("dataset", "data_root", "class_names", "method", "w_hfd", "w_region", "w_pixel", "cnn", "vit",
                 "pretrained", "lr_cnn", "lr_vit", "steps", "image_size", "crop_size", "batch_size", "workers",
                 "device", "precision", "seed", "out_root", "run_dir", "progress", "smoke"):
        assert name in names, f"parameter {name} missing from the parameters cell"
    for line in notebook_parameters().splitlines():  # derived values belong in the next cell
        code = line.split("#")[0]
        assert not any(token in code for token in ("os.environ", "(", "+")), f"computed in the parameters cell: {line}"


# ---------------------------------------------------------------- the derived-settings cell, without a kernel

def derived_settings(monkeypatch, ci, **overrides):
    """Run the parameters cell, the overrides (as papermill injects them) and the derived cell in-process,
    with the trainer left out: (namespace, printed text). The default out_root's parent is the current folder."""
    import collab_lib.course

    monkeypatch.setattr(collab_lib.course, "RUNS", Path.cwd() / "runs")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    index = next(i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", []))
    derived = next(c.source for c in notebook.cells[index + 1:] if c.cell_type == "code")
    derived = "\n".join(line for line in derived.splitlines() if not line.startswith("%"))
    monkeypatch.delenv("COURSE_SMOKE", raising=False)  # `make test` sets it; here CI alone decides
    if ci:
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.delenv("CI", raising=False)
    namespace = {}
    exec(notebook.cells[index].source, namespace)
    namespace.update(overrides)
    import contextlib
    import io
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(derived, namespace)
    return namespace, printed.getvalue()


def test_runs_land_as_out_root_method_seed_and_a_changed_setting_gets_a_fresh_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    base, _ = derived_settings(monkeypatch, ci=False, smoke=False)
    assert base["run_dir"] == Path(base["out_root"]) / "collab" / "seed0"
    dml, _ = derived_settings(monkeypatch, ci=False, smoke=False, method="dml", seed=2)
    assert dml["out_root"] == base["out_root"] and dml["run_dir"] == Path(base["out_root"]) / "dml" / "seed2"
    longer, _ = derived_settings(monkeypatch, ci=False, smoke=False, steps="4000")  # papermill's text, converted
    assert longer["config"].steps == 4000 and longer["out_root"] != base["out_root"]
    assert "4000steps" in str(longer["out_root"])
    given, _ = derived_settings(monkeypatch, ci=False, smoke=False, out_root=str(tmp_path / "mine"), seed=1)
    assert given["run_dir"] == tmp_path / "mine" / "collab" / "seed1" and given["config"].resume
    sized, _ = derived_settings(monkeypatch, ci=False, smoke=False, image_size="[512, 1024]",
                                crop_size=[256, 512], class_names="[road, traffic sign]", test_split="none")
    config = sized["config"]
    assert config.image_size == (512, 1024) and config.crop_size == (256, 512)
    assert config.class_names == ("road", "traffic sign") and config.test_split is None and config.progress == "log"


def test_the_ci_smoke_cap_is_printed_and_can_be_switched_off(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    capped, printed = derived_settings(monkeypatch, ci=True, steps=4000)
    assert capped["config"].steps == 30 and "SMOKE MODE (the CI or COURSE_SMOKE environment variable asks for it): steps 4000 -> 30" in printed
    assert "-p smoke False" in printed
    for off in (False, "False", "false", "no"):
        full, printed = derived_settings(monkeypatch, ci=True, steps=4000, smoke=off)
        assert full["config"].steps == 4000 and "SMOKE" not in printed
    quiet, printed = derived_settings(monkeypatch, ci=False, steps=4000)
    assert quiet["config"].steps == 4000 and "SMOKE" not in printed
    with pytest.raises(ValueError, match="smoke"):
        derived_settings(monkeypatch, ci=False, smoke="maybe")


def test_a_misspelt_parameter_stops_the_run_and_any_setting_can_be_given(monkeypatch, tmp_path):
    """Papermill only warns about a name the parameters cell lacks; the notebook refuses it, naming the nearest
    setting, and takes every other TrainConfig setting (not only those its parameters cell lists)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\): step \(did you mean steps\?\), colour\. Valid: "):
        derived_settings(monkeypatch, ci=False, smoke=False, step="4000", colour="red")
    extra, _ = derived_settings(monkeypatch, ci=False, smoke=False, augment="False", train_samples="50",
                                eval_interval="300", steps="1200")
    config = extra["config"]
    assert (config.augment, config.train_samples, config.eval_interval, config.steps) == (False, 50, 300, 1200)
    assert "augment" not in parameter_names()  # so this setting came through the new path, not the cell


# ---------------------------------------------------------------- each command, run

def kernel_installed(name: str) -> bool:
    from jupyter_client.kernelspec import KernelSpecManager

    return name in KernelSpecManager().find_kernel_specs()


def adapted(words, tmp_path):
    """The command with the changes 1-4 of the module docstring; also the tiny dataset's class names or None."""
    words = list(words)
    values = parameters_of(words)
    command = [sys.executable, "-m", "papermill", words[1], str(tmp_path / Path(words[2]).name), *words[3:]]
    class_names = None
    for index in range(len(command) - 2):
        if command[index] in ("-p", "--parameters"):
            name = command[index + 1]
            if name in ("out_root", "run_dir"):
                command[index + 2] = str(tmp_path / command[index + 2].lstrip("/"))
            elif name == "data_root":
                dataset = values.get("dataset", "streets")
                root = tmp_path / "data"
                TREES[dataset](root)
                class_names = build_dataset(dataset, root, split="val").class_names
                command[index + 2] = str(root)
    if "out_root" not in values and "run_dir" not in values:
        command += ["-p", "out_root", str(tmp_path / "runs")]
    return command + SHRINK, class_names


def unique_commands():
    """Every command of README.md, docs/usage.md and notebook 05 once (the same command in both runs once)."""
    seen = {}
    for source in SOURCES:
        for where, words, _ in all_commands(source):
            key = " ".join(["papermill", *words[1:]])
            values = parameters_of(words)
            name = f"{where}: {values.get('dataset', 'streets')} {values.get('method', 'collab')}".replace(" ", "-")
            seen.setdefault(key, pytest.param(where, words, id=name))
    return list(seen.values())


@pytest.mark.slow
@pytest.mark.parametrize("where, words", unique_commands())
def test_each_documented_command_runs_and_writes_its_metrics(tmp_path, where, words):
    if not kernel_installed(KERNEL):
        pytest.skip(f"kernel {KERNEL!r} not installed (make setup installs it)")
    command, class_names = adapted(words, tmp_path)
    result = subprocess.run(command, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                            text=True, timeout=HUNG_AFTER_S)
    assert result.returncode == 0, f"{where}: {shlex.join(command)}\n{result.stderr[-4000:]}"
    executed = nbformat.read(command[4], as_version=4)  # the output notebook
    kernel_stderr = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", [])
                            if o.get("name") == "stderr")
    assert re.search(r"step 3/3 \|", kernel_stderr), "the headless kernel printed progress lines on stderr"
    if "--log-output" in command:
        assert re.search(r"step 3/3 \|", result.stderr), "papermill --log-output shows them"
    values = parameters_of(command)
    method, seed = values.get("method", "collab"), int(values.get("seed", 0))
    run_dir = Path(values["run_dir"]) if "run_dir" in values else Path(values["out_root"]) / method / f"seed{seed}"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["method"] == method and metrics["seed"] == seed and metrics["steps"] == 3
    assert metrics["dataset"] == values.get("dataset", "streets")
    if class_names is not None:
        assert metrics["class_names"] == list(class_names)
        if values.get("dataset") == "folder":
            assert metrics["class_names"] == OWN_CLASSES
    for student in ("cnn", "vit"):
        assert list(metrics["final_val"][student]["iou"]) == metrics["class_names"]
        assert 0.0 <= metrics["final_val"][student]["miou"] <= 1.0
    if "run_dir" not in values:  # notebook 06 and collect_results read the folder as one configuration per method
        table = collect_results(values["out_root"])
        assert table[["configuration", "seed"]].values.tolist() == [[method, seed]]
