"""Typed settings: every entry point (Python, JSON, the command line, the grid's --set, papermill text)
ends in TrainConfig, which converts text to the declared type or refuses it, naming field, value and type.

The defect this guards against: `--set require_correct=False` once stored the string "False" (truthy),
so a study meant to drop the correctness condition ran plain collab instead.
"""
import json

import pytest

from collab_lib import experiments
from collab_lib.config import TrainConfig, parse_args


# ---- conversions that must succeed ------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("true", True), ("False", False), ("FALSE", False), ("yes", True), ("No", False), ("1", True), ("0", False),
    (True, True), (0, False),
])
def test_booleans_from_text_in_any_case(text, expected):
    config = TrainConfig(require_correct=text, augment=text)
    assert config.require_correct is expected and config.augment is expected


@pytest.mark.parametrize("text", ["[512, 1024]", "512,1024", "512 1024", "(512, 1024)", [512, 1024], (512, 1024),
                                  ["512", "1024"]])
def test_sizes_from_every_spelling(text):
    assert TrainConfig(image_size=text).image_size == (512, 1024)


def test_numbers_from_text_keep_their_declared_type():
    config = TrainConfig(steps="12", w_pixel="0.3", lr_vit="3e-3", batch_size=4.0, seed="1e1")
    assert (config.steps, config.w_pixel, config.lr_vit, config.batch_size, config.seed) == (12, 0.3, 0.003, 4, 10)
    assert type(config.steps) is int and type(config.w_pixel) is float and type(config.batch_size) is int
    assert TrainConfig(w_hfd=1).w_hfd == 1.0 and type(TrainConfig(w_hfd=1).w_hfd) is float


def test_none_for_optional_fields_only():
    config = TrainConfig(crop_size="none", test_split="None", train_samples="null", data_root="none")
    assert config.crop_size is None and config.test_split is None and config.train_samples is None
    assert config.data_root is None
    with pytest.raises(ValueError, match="steps='none' \\(str\\) is not valid: expected an integer"):
        TrainConfig(steps="none")


def test_class_names_from_a_list_commas_or_json_text():
    assert TrainConfig(class_names="road,traffic sign").class_names == ("road", "traffic sign")
    assert TrainConfig(class_names='["road", "traffic sign"]').class_names == ("road", "traffic sign")
    assert TrainConfig(class_names="background").class_names == ("background",)
    assert TrainConfig(class_names=["a", "b"]).class_names == ("a", "b")


def test_a_converted_config_round_trips_through_json(tmp_path):
    config = TrainConfig(require_correct="no", image_size="128,256", steps="7", class_names="a,b")
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"config": config.to_dict()}))
    stored = json.loads(path.read_text())["config"]
    assert stored["require_correct"] is False and stored["steps"] == 7 and stored["image_size"] == [128, 256]
    assert TrainConfig.load(path) == config


# ---- bad inputs: a ValueError naming the field, the value and what was expected -----------------

BAD_PYTHON = [
    (dict(require_correct="Flase"), "require_correct='Flase' (str) is not valid: expected a boolean"),
    (dict(augment="on"), "augment='on' (str) is not valid: expected a boolean"),
    (dict(augment=2), "augment=2 (int) is not valid: expected a boolean"),
    (dict(steps="12.5"), "steps='12.5' (str) is not valid: expected an integer"),
    (dict(steps=True), "steps=True (bool) is not valid: expected an integer"),
    (dict(steps="many"), "steps='many' (str) is not valid: expected an integer"),
    (dict(w_pixel="abc"), "w_pixel='abc' (str) is not valid: expected a number"),
    (dict(w_pixel=[0.3]), "w_pixel=[0.3] (list) is not valid: expected a number"),
    (dict(image_size="512"), "image_size='512' (str) is not valid: expected two integers (H, W)"),
    (dict(image_size=[64, 128, 3]), "image_size=[64, 128, 3] (list) is not valid: expected two integers"),
    (dict(image_size="[64, wide]"), "image_size='[64, wide]' (str) is not valid"),
    (dict(crop_size=(0, 64)), "crop_size must be two positive integers"),
    (dict(cnn=5), "cnn=5 (int) is not valid: expected text"),
    (dict(lr_cnn=None), "lr_cnn: got None, expected a number"),
    (dict(class_names=[]), "class_names must name at least one class"),
    (dict(method="distill"), "method='distill' is not valid; choose from: independent"),
    (dict(train_samples=0), "train_samples must be >= 1 (or none: the dataset's default), got 0"),
    (dict(region_size=0), "region_size must be >= 1, got 0"),
    (dict(warmup=1.5), "warmup must be a fraction of the steps in [0, 1], got 1.5"),
    (dict(temperature=0), "temperature must be > 0, got 0.0"),
]


@pytest.mark.parametrize("values, message", BAD_PYTHON)
def test_bad_values_from_python_name_field_value_and_expectation(values, message):
    with pytest.raises(ValueError) as error:
        TrainConfig(**values)
    assert message in str(error.value)


@pytest.mark.parametrize("values, message", BAD_PYTHON[:8])
def test_bad_values_from_json_files_too(tmp_path, values, message):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    with pytest.raises(ValueError) as error:
        TrainConfig.load(path)
    assert message in str(error.value)


@pytest.mark.parametrize("argv, message", [
    (["--steps", "12.5"], "steps='12.5' (str) is not valid: expected an integer"),
    (["--w-pixel", "heavy"], "w_pixel='heavy' (str) is not valid: expected a number"),
    (["--image-size", "64", "96", "128"], "image_size=['64', '96', '128'] (list) is not valid"),
    (["--image-size", "64x96"], "image_size='64x96' (str) is not valid"),
    (["--crop-size", "64"], "crop_size='64' (str) is not valid: expected two integers (H, W)"),
])
def test_bad_values_on_the_command_line_exit_2_with_the_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_command_line_accepts_every_size_spelling_and_class_names_with_spaces():
    assert parse_args(["--image-size", "512,1024"]).image_size == (512, 1024)
    assert parse_args(["--image-size", "[512, 1024]"]).image_size == (512, 1024)
    assert parse_args(["--image-size", "512", "1024", "--crop-size", "none"]).crop_size is None
    assert parse_args(["--class-names", "road", "traffic sign"]).class_names == ("road", "traffic sign")
    assert parse_args(["--class-names", "road,traffic sign"]).class_names == ("road", "traffic sign")


@pytest.mark.parametrize("setting, stored", [
    ("require_correct=False", False), ("require_correct=false", False), ("require_correct=NO", False),
    ("augment=0", False), ("steps=800", 800), ("w_pixel=0.03", 0.03), ("crop_size=none", None),
    ("image_size=[128, 256]", (128, 256)), ("image_size=128,256", (128, 256)),
])
def test_the_grid_runners_set_stores_the_declared_type(tmp_path, monkeypatch, setting, stored):
    """--set hands text to TrainConfig: "False" is False, not a truthy string (the long1200-anypixel defect)."""
    seen = []
    monkeypatch.setattr("collab_lib.train.train", lambda config: seen.append(config))
    experiments.main(["--recipe", "smoke", "--configurations", "collab", "--out", str(tmp_path), "--set", setting])
    field = setting.partition("=")[0]
    assert len(seen) == 1 and getattr(seen[0], field) == stored
    assert type(getattr(seen[0], field)) is type(stored)


@pytest.mark.parametrize("setting, message", [
    ("require_correct=Flase", "require_correct='Flase' (str) is not valid: expected a boolean"),
    ("steps=lots", "steps='lots' (str) is not valid: expected an integer"),
    ("stepz=3", "unknown config keys ['stepz']"),
])
def test_a_bad_set_stops_the_grid_before_any_run(tmp_path, monkeypatch, capsys, setting, message):
    monkeypatch.setattr("collab_lib.train.train", lambda config: pytest.fail("no run may start"))
    with pytest.raises(SystemExit) as exit_info:
        experiments.main(["--recipe", "smoke", "--out", str(tmp_path), "--set", setting])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
