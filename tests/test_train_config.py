"""Fast checks of the training engine's parts: config + CLI, schedules, checkpoint files, device choice."""
import itertools
import json
import random

import numpy as np
import pytest
import torch

from collab_lib import checkpoint
from collab_lib.config import TrainConfig, parse_args
from collab_lib.errors import SetupError
from collab_lib.hardware import resolve_device, resolve_precision
from collab_lib.optim import poly_lr


# ---- config and command line ----------------------------------------------------------------

def test_cli_flags_come_from_the_dataclass():
    config = parse_args(["--method", "dml", "--image-size", "64", "96", "--crop-size", "none", "--no-augment",
                         "--steps", "7", "--lr-vit", "1e-4", "--test-split", "none", "--stop-at-step", "3"])
    assert config.method == "dml" and config.steps == 7 and config.lr_vit == 1e-4
    assert config.image_size == (64, 96) and config.crop_size is None and config.augment is False
    assert config.test_split is None and config.stop_at_step == 3
    assert parse_args([]) == TrainConfig()  # no flags: the dataclass defaults
    assert parse_args(["--crop-size", "32", "64"]).crop_size == (32, 64)


def test_help_of_every_command_line_lists_its_flags(capsys):
    """`--help` works (argparse %-formats help strings: a bare "%" in one once crashed it) and shows every field."""
    from dataclasses import fields

    from collab_lib import experiments
    from collab_lib.data import check

    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for f in fields(TrainConfig):
        assert f"--{f.name.replace('_', '-')}" in out, f.name
    assert "at 20 % of the run" in " ".join(out.split())  # the help text that holds a "%" comes through intact
    for main, flag in ((experiments.main, "--recipe"), (check.main, "--help")):
        with pytest.raises(SystemExit) as exit_info:
            main(["--help"])
        assert exit_info.value.code == 0 and flag in capsys.readouterr().out


@pytest.mark.parametrize("argv, expected", [
    (["--method", "distill"], "independent"),        # bad choice: the valid ones are listed
    (["--precision", "fp8"], "bf16"),
    (["--stepz", "3"], "did you mean --steps"),      # unknown flag: a suggestion and the valid flags
    (["--steps", "many"], "steps='many' (str) is not valid: expected an integer"),
    (["--steps", "0"], "steps must be >= 1"),
    (["--crop-size", "64"], "two integers"),
    (["--cnn", "resnet18"], "deeplabv3plus_resnet18"),
])
def test_cli_errors_are_clear(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert expected in capsys.readouterr().err


def test_help_strings_say_what_a_setting_does_not_where_it_was_measured():
    """Help is for using a setting; the research behind a default lives in docs/evidence.md."""
    from dataclasses import fields

    for f in fields(TrainConfig):
        text = f.metadata["help"]
        for note in ("results/", "RESULTS.md", "sweeps", "beat", "was best", "faster"):
            assert note not in text, f"{f.name}: {text!r}"


def test_snapshot_steps_and_training_subset_settings():
    assert parse_args(["--snapshot-steps", "25", "50", "100"]).snapshot_steps == (25, 50, 100)
    assert parse_args(["--snapshot-steps", "25,50"]).snapshot_steps == (25, 50)
    assert TrainConfig(snapshot_steps=["3", 7]).snapshot_steps == (3, 7)
    assert TrainConfig().snapshot_steps == () and TrainConfig().train_eval_samples == 50
    assert TrainConfig(train_eval_samples="none").train_eval_samples is None  # the whole training split
    with pytest.raises(ValueError, match="snapshot_steps must be steps >= 1"):
        TrainConfig(snapshot_steps=(0, 10))
    with pytest.raises(ValueError, match="train_eval_samples must be >= 0"):
        TrainConfig(train_eval_samples=-1)
    # Neither changes the maths of a run: a run may be resumed with other values.
    from collab_lib.config import RUNTIME_FIELDS

    assert {"snapshot_steps", "train_eval_samples", "recipe"} <= RUNTIME_FIELDS


def test_one_list_of_each_name_and_the_builders_agree_with_it():
    """collab_lib.names is the one list of datasets, methods and students: the settings offer it, and the
    dicts that build each name hold exactly those names, in that order."""
    import dataclasses

    from collab_lib import config, data, losses, models, names

    assert config.METHODS is losses.METHODS is names.METHODS
    assert tuple(data.DATASETS) == data.DATASET_NAMES == names.DATASET_NAMES
    assert tuple(models.STUDENTS) == names.STUDENT_NAMES == names.CNN_STUDENTS + names.VIT_STUDENTS
    assert all(models.STUDENTS[n].func.__name__ == "DeepLabV3Plus" for n in names.CNN_STUDENTS)
    assert all(models.STUDENTS[n].func.__name__ == "SegFormer" for n in names.VIT_STUDENTS)
    choices = {f.name: f.metadata["choices"] for f in dataclasses.fields(TrainConfig)}
    assert (choices["dataset"], choices["method"]) == (names.DATASET_NAMES, names.METHODS)
    assert (choices["cnn"], choices["vit"]) == (names.CNN_STUDENTS, names.VIT_STUDENTS)


def test_config_json_round_trip_and_override(tmp_path):
    config = TrainConfig(method="kdcl", image_size=(64, 128), steps=11)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"config": config.to_dict()}))  # the shape of a run's config.json
    assert TrainConfig.load(path) == config
    assert parse_args(["--config", str(path), "--steps", "5"]) == TrainConfig(method="kdcl", image_size=(64, 128), steps=5)
    with pytest.raises(ValueError, match="unknown config keys.*'stepz'"):
        TrainConfig.from_dict({"stepz": 3})


# ---- schedules ---------------------------------------------------------------------------------

def test_poly_schedule_with_warmup():
    assert poly_lr(0, 100, 0.01) == pytest.approx(0.01)
    assert poly_lr(50, 100, 0.01, power=1.0) == pytest.approx(0.005)
    assert poly_lr(100, 100, 0.01) == 0.0
    # warm-up: linear up to the base lr over 10 steps, then the decay starts from it
    assert [poly_lr(s, 110, 1.0, 1.0, 10) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert poly_lr(10, 110, 1.0, 1.0, 10) == pytest.approx(1.0)
    assert poly_lr(60, 110, 1.0, 1.0, 10) == pytest.approx(0.5)


# ---- checkpoint files ----------------------------------------------------------------------------

def test_rng_state_round_trip_is_weights_only_safe(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    path = tmp_path / "rng.pt"
    checkpoint.save_checkpoint(path, {"rng": [checkpoint.get_rng_state()]})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    checkpoint.set_rng_state(torch.load(path, weights_only=True)["rng"][0])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path):
    path = tmp_path / "metrics.json"
    checkpoint.write_json(path, {"a": 1})

    def crash(f):
        f.write(b"half a fi")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        checkpoint.atomic_write_bytes(path, crash)
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind


def test_unwrap_removes_compile_wrapper():
    module = torch.nn.Linear(2, 2)
    compiled = torch.compile(module)  # wrapping only; nothing is compiled until it is called
    assert checkpoint.unwrap(compiled) is module
    assert list(checkpoint.unwrap(compiled).state_dict()) == ["weight", "bias"]


# ---- device and precision without a GPU ------------------------------------------------------------

def test_no_cuda_api_is_touched_without_cuda(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a CUDA API was called although CUDA is not available")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", forbidden)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", forbidden)
    device = resolve_device("auto")
    assert device == torch.device("cpu")
    assert resolve_precision("auto", device) == "fp32"
    assert resolve_precision("bf16", device) == "bf16"
    assert checkpoint.get_rng_state()["cuda"] == []
    with pytest.raises(SetupError, match="device='cuda'"):  # a user error: the command line prints it, exit 2
        resolve_device("cuda")


class _Items:
    def __init__(self, length):
        self.length = length

    def __len__(self):
        return self.length


@pytest.mark.parametrize("length", [10, 10**8])  # a shuffled finite set; endless data walked in order
def test_the_sampler_splits_ranks_disjointly_and_resumes_where_it_stopped(length):
    from collab_lib.distributed import MAX_SHUFFLED, ResumableSampler

    shares = []
    for rank in (0, 1):
        sampler = ResumableSampler(_Items(length), num_replicas=2, rank=rank, seed=3)
        sampler.set_position(epoch=1, start=0)
        full = list(itertools.islice(iter(sampler), 5))
        sampler.set_position(epoch=1, start=3)
        assert list(itertools.islice(iter(sampler), 2)) == full[3:5]  # the same items, three further on
        assert len(sampler) == length // 2 - 3
        shares.append(full)
    assert not set(shares[0]) & set(shares[1])  # each item to one rank only
    if length > MAX_SHUFFLED:
        assert shares == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]
    else:
        assert sorted(shares[0] + shares[1]) == sorted(set(shares[0] + shares[1]))
        assert shares[0] != sorted(shares[0])  # shuffled
