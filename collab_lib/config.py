"""Every setting of a training run, in one plain dataclass.

The defaults are the kit's CPU recipe (collab_lib.experiments, recipe "cpu"):
both students (DeepLabV3+-ResNet18 and SegFormer-B0, decoders 128 wide) on 50
embedded synthetic "streets" training scenes of 64x128, 400 steps of batch 8,
learning rates and w_pixel chosen on the val split (docs/evidence.md tells how).
For a GPU or real data, raise image_size / crop_size / decoder widths / steps
(README, "Training"). The command line (`python -m collab_lib.train --help`)
is generated from the fields below: `--image-size 128 256`, `--no-augment`,
`--crop-size none`, `--config runs/x/config.json` (load a saved config; flags
given after it override it).

Settings no recipe changes, and when to change them (tests/test_settings_reach_the_trainer.py checks
that each reaches what the trainer builds):
    --cnn-weights resnet18.pth --vit-weights pvt_v2_b0.pth   ImageNet backbones without network: full timm
                                                             state_dicts saved where there is network
    --data-seed 1                 another draw of the scenes (and their augmentation), the same for every method
    --cache-dir /data/scenes      large scenes (512x1024) rendered once, read back as PNGs by later runs
    --momentum 0.9 --weight-decay-cnn 1e-4 --weight-decay-vit 0.01 --lr-warmup 0.05 --poly-power 0.9
                                  the optimisers and their schedule (collab_lib/optim.py); the defaults shown
                                  are DeepLab's and SegFormer's usual ones
"""
import argparse
import dataclasses
import json
import types
import difflib
import typing
from dataclasses import dataclass, field

from .names import CNN_STUDENTS, DATASET_NAMES, METHODS, VIT_STUDENTS

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")
PROGRESS = ("auto", "bar", "log", "none")


def _opt(default, help, choices=None):
    """A dataclass field with its --help text (and allowed values) attached."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class TrainConfig:
    # ---- data ---------------------------------------------------------------------------
    dataset: str = _opt("streets", "streets is embedded (synthetic); the others read data_root", DATASET_NAMES)
    data_root: str | None = _opt(None, "dataset folder (not needed for streets)")
    image_size: tuple[int, int] = _opt((64, 128), "(H, W): streets: the scenes' size; real data: every image is resized to it")
    crop_size: tuple[int, int] | None = _opt(None, "(H, W) random training crop; none = whole image")
    train_samples: int | None = _opt(50, "streets: number of training scenes (none = the dataset's default)")
    val_samples: int | None = _opt(100, "streets: number of validation scenes")
    test_samples: int | None = _opt(250, "streets: number of test scenes (read only for the final numbers)")
    endless: bool = _opt(False, "streets: a fresh scene for every item instead of a fixed, finite set")
    cache_dir: str | None = _opt(None, "streets: render each scene once to PNGs in this folder and read them back "
                                       "later (large sizes; shared by loader workers and runs; the same pixels); "
                                       "none = render in memory. An endless training split is never cached")
    data_seed: int = _opt(0, "seed of the scenes and of their augmentation (the same for every method)")
    augment: bool = _opt(True, "training augmentation (scale, crop, flip, colour jitter)")
    class_names: tuple[str, ...] | None = _opt(None, "folder dataset: the class names, label value i = name i "
                                                     "(none = read ROOT/classes.txt, one name per line)")
    # ---- students -----------------------------------------------------------------------
    cnn: str = _opt("deeplabv3plus_resnet18", "CNN student", CNN_STUDENTS)
    vit: str = _opt("segformer_b0", "ViT student", VIT_STUDENTS)
    pretrained: bool = _opt(False, "ImageNet weights from timm (needs network or a cache)")
    cnn_decoder_channels: int = _opt(128, "DeepLabV3+: width of ASPP and decoder (the usual DeepLabV3+ is 256; 128 keeps CPU runs short)")
    vit_decoder_channels: int = _opt(128, "SegFormer: width of the all-MLP decoder (SegFormer-B0/B1 use 256; 128 keeps CPU runs short)")
    cnn_weights: str | None = _opt(None, "local timm state_dict file for the CNN backbone")
    vit_weights: str | None = _opt(None, "local timm state_dict file for the ViT backbone")
    # ---- method (collab_lib.losses.CollaborativeLoss) -----------------------------------
    method: str = _opt("collab", "what the students learn from each other", METHODS)
    w_hfd: float = _opt(0.1, "weight of heterogeneous feature distillation (low layers)")
    w_region: float = _opt(0.1, "weight of region-wise selective distillation (decoder features)")
    w_pixel: float = _opt(0.3, "weight of pixel-wise selective distillation (logits)")
    use_hfd: bool = _opt(True, "collab: use HFD")
    use_region: bool = _opt(True, "collab: use region-wise BSD")
    use_pixel: bool = _opt(True, "collab: use pixel-wise BSD")
    region_size: int = _opt(8, "region side in stride-4 feature cells (8 = 32 input pixels)")
    temperature: float = _opt(1.0, "softmax temperature of the logit distillation")
    require_correct: bool = _opt(True, "pixel-wise BSD: a teacher pixel must also be correct")
    require_learner_wrong: bool = _opt(False, "pixel-wise BSD (the kit's variant): transfer only where the learner is wrong")
    selective: bool = _opt(True, "collab: region- and pixel-wise BSD select who teaches where (false = the kit's "
                                 "control arm: both transfer on every valid region / pixel, both ways)")
    w_dml: float = _opt(1.0, "dml: weight of the DML term (DML's own is 1; collab's w_pixel matches the pixel term)")
    warmup: float = _opt(0.2, "fraction of the steps over which distillation ramps in linearly "
                              "(0.2: from 0 at the start to full weight at 20 % of the run)")
    # ---- optimisation (see collab_lib/optim.py) ------------------------------------------
    steps: int = _opt(400, "optimizer steps (both students step together)")
    batch_size: int = _opt(8, "images per step per process")
    lr_cnn: float = _opt(0.03, "CNN: SGD base learning rate (the default suits a backbone trained from scratch; "
                                  "DeepLab's usual 0.01 assumes a pretrained one)")
    lr_vit: float = _opt(3e-3, "ViT and loss modules: AdamW base learning rate (the default suits training "
                                  "from scratch; SegFormer's fine-tuning recipe uses 6e-5)")
    weight_decay_cnn: float = _opt(1e-4, "CNN: SGD weight decay")
    weight_decay_vit: float = _opt(0.01, "ViT and loss modules: AdamW (decoupled) weight decay")
    momentum: float = _opt(0.9, "CNN: SGD momentum")
    lr_warmup: float = _opt(0.05, "ViT: fraction of the steps of linear lr warm-up")
    poly_power: float = _opt(0.9, "poly decay power, both students")
    # ---- evaluation and logging ---------------------------------------------------------
    eval_interval: int = _opt(100, "evaluate both students every this many steps (and at the end)")
    eval_split: str = _opt("val", "split used during training and to pick best.pt")
    test_split: str | None = _opt("test", "split evaluated once at the end (none = skip)")
    log_interval: int = _opt(50, "read and log the losses every this many steps")
    train_eval_samples: int | None = _opt(50, "at each evaluation also score the first N training items, "
                                              "unaugmented (the generalisation gap); 0 = off, none = the whole split")
    progress: str = _opt("auto", "auto = a tqdm bar on a terminal or in Jupyter, else log lines; log = plain lines "
                                 "on stderr (headless kernels, e.g. papermill with --log-output); none = silent",
                         PROGRESS)
    # ---- hardware -----------------------------------------------------------------------
    device: str = _opt("auto", "auto = CUDA when available, else CPU", DEVICES)
    precision: str = _opt("auto", "auto = bf16 autocast on GPUs that have it, else fp32", PRECISIONS)
    compile: bool = _opt(False, "torch.compile both students and the loss's terms (slow first steps; "
                                "rarely pays on CPU)")
    channels_last: bool | None = _opt(None, "channels-last (NHWC) memory format (none = on CUDA only); not "
                                      "bit-identical to NCHW: other rounding, and the CNN's ASPP dropout may drop other elements (torch's mask order)")
    workers: int = _opt(2, "DataLoader worker processes (0 = load in the training process)")
    # ---- run ----------------------------------------------------------------------------
    seed: int = _opt(0, "seed of the students' initialisation, dropout and data order")
    run_dir: str | None = _opt(None, "where the run is written (none = runs/<dataset>-<method>-seed<seed>)")
    resume: bool = _opt(False, "continue from run_dir/last.pt when it exists (else start afresh)")
    overwrite: bool = _opt(False, "start afresh even if run_dir already holds a checkpoint")
    checkpoint_interval: int = _opt(100, "write last.pt every this many steps (and on SIGINT/SIGTERM)")
    stop_at_step: int | None = _opt(None, "stop after this step with a checkpoint, as if interrupted (tests, time-limited jobs)")
    snapshot_steps: tuple[int, ...] = _opt((), "after these steps also write the weights alone to step_<n>.pt "
                                               "(for pictures of training; step 0 is rebuilt from the seed)")
    recipe: str | None = _opt(None, "the collab_lib.experiments recipe that started this run (recorded in "
                                    "config.json; set by the grid runner, changes nothing)")

    def __post_init__(self):
        # Every entry point (Python, JSON, the command line, the grid runner's --set, papermill's -p) ends here:
        # each field is checked and converted to its declared type now, so no run can store "False" for False.
        hints = _type_hints()
        for f in dataclasses.fields(self):
            setattr(self, f.name, convert_setting(f.name, getattr(self, f.name), hints[f.name]))
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise ValueError(f"{f.name}={getattr(self, f.name)!r} is not valid; choose from: {', '.join(choices)}")
        for name in ("steps", "batch_size", "eval_interval", "log_interval", "checkpoint_interval",
                     "cnn_decoder_channels", "vit_decoder_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("workers", "train_eval_samples"):
            if (getattr(self, name) or 0) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("train_samples", "val_samples", "test_samples", "region_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1" + (" (or none: the dataset's default)" if name != "region_size"
                                                           else "") + f", got {getattr(self, name)}")
        for name in ("warmup", "lr_warmup"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a fraction of the steps in [0, 1], got {getattr(self, name)}")
        if self.stop_at_step is not None and not 1 <= self.stop_at_step <= self.steps:
            raise ValueError(f"stop_at_step must be a step in [1, steps={self.steps}], got {self.stop_at_step}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if any(step < 1 for step in self.snapshot_steps):
            raise ValueError(f"snapshot_steps must be steps >= 1 (step 0 is rebuilt from the seed), got "
                             f"{list(self.snapshot_steps)}")
        for name in ("image_size", "crop_size"):
            if getattr(self, name) is not None and min(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be two positive integers (H, W), got {getattr(self, name)}")
        if self.class_names is not None and len(self.class_names) == 0:
            raise ValueError("class_names must name at least one class, got an empty list")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Build from a dict (e.g. config.json's "config"); unknown keys are an error naming the valid ones."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; valid keys: {', '.join(sorted(names))}")
        return cls(**values)

    @classmethod
    def load(cls, path) -> "TrainConfig":
        """Read a config JSON file: either a plain dict of fields or a run's config.json.
        A missing file, bad JSON or a bad setting is a ValueError naming the file."""
        try:
            with open(path, encoding="utf-8") as f:
                values = json.load(f)
        except (OSError, ValueError) as error:  # ValueError: bad JSON, or bytes that are not UTF-8
            raise ValueError(f"config file {path}: cannot read it as JSON ({error})") from None
        if not isinstance(values, dict):
            raise ValueError(f"config file {path}: expected a JSON object of settings, got {type(values).__name__}")
        try:
            return cls.from_dict(values.get("config", values))
        except ValueError as error:
            raise ValueError(f"config file {path}: {error}") from None


# ---- typed settings -----------------------------------------------------------------------

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")
_NONE = ("none", "null")


def _type_hints() -> dict:
    return typing.get_type_hints(TrainConfig)


def _split_hint(hint):
    """str | None -> (str, True); tuple[int, int] -> (tuple[int, int], False)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        return next(a for a in args if a is not type(None)), type(None) in args
    return hint, False


def _describe(hint, optional: bool) -> str:
    base = hint
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            base = f"a list of {args[0].__name__}s, e.g. [a, b] or a,b"
        else:
            base = "two integers (H, W), e.g. [512, 1024], 512,1024 or '512 1024'"
    else:
        base = {bool: "a boolean (true/false, yes/no or 1/0)", int: "an integer", float: "a number",
                str: "text"}.get(hint, getattr(hint, "__name__", str(hint)))
    return base + (" or none" if optional else "")


def _scalar(value, kind):
    """One value -> bool / int / float / str, or ValueError (the caller names the field)."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError
    if kind is int:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            text = value.strip()
            try:
                return int(text)
            except ValueError:
                number = float(text)  # "1e3", "400.0"
                if number.is_integer():
                    return int(number)
        raise ValueError
    if kind is float:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            return float(value.strip())
        raise ValueError
    if kind is str:
        if isinstance(value, str):
            return value
        raise ValueError
    raise TypeError(f"no conversion to {kind!r}")


def _sequence(value, kind) -> list:
    """[512, 1024], (512, 1024), "[512, 1024]", "512,1024", "512 1024" -> a list of items.

    Text items of a list of names split on commas only ("traffic sign,person" is two names)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if not isinstance(value, str):
        raise ValueError
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
            if isinstance(parsed, list):
                return parsed
        except json.JSONDecodeError:
            pass
    if text[:1] in "[(" and text[-1:] in "])":
        text = text[1:-1]
    if "," in text:
        parts = text.split(",")
    else:
        parts = [text] if kind is str else text.split()
    return [p.strip().strip("'\"") for p in parts if p.strip()]


def convert_setting(name: str, value, hint):
    """Check and convert `value` for the TrainConfig field `name` declared as `hint`.

    Text is converted (papermill's -p, the grid runner's --set and the command line hand over text):
    booleans from true/false/yes/no/1/0 in any case, numbers from text, sizes from [512, 1024],
    512,1024 or "512 1024", none/null for optional fields. Anything else is a ValueError that names
    the field, the value and what was expected.
    """
    kind, optional = _split_hint(hint)
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in _NONE):
        if optional:
            return None
        raise ValueError(f"{name}: got None, expected {_describe(kind, optional)}")
    try:
        if typing.get_origin(kind) is tuple:
            args = typing.get_args(kind)
            items = _sequence(value, args[0])
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_scalar(item, args[0]) for item in items)
            if len(items) != len(args):
                raise ValueError
            return tuple(_scalar(item, a) for item, a in zip(items, args))
        return _scalar(value, kind)
    except (ValueError, TypeError):
        raise ValueError(f"{name}={value!r} ({type(value).__name__}) is not valid: expected "
                         f"{_describe(kind, optional)}") from None


# Settings that may change when a run is resumed: they do not change the maths of a step.
RUNTIME_FIELDS = {"resume", "overwrite", "device", "workers", "progress", "log_interval", "eval_interval",
                  "checkpoint_interval", "stop_at_step", "compile", "run_dir", "data_root", "train_eval_samples",
                  "snapshot_steps", "recipe", "cache_dir"}


def plain(value):
    """Tuples as lists, so that settings compare equal after a JSON round trip (JSON has lists, configs tuples)."""
    return list(value) if isinstance(value, (tuple, list)) else value


def changed_settings(saved: dict, config: "TrainConfig") -> dict:
    """{field: (saved value, new value)} for each setting of `saved` (a checkpoint's or config.json's "config")
    that `config` changes. RUNTIME_FIELDS may change; a field the saved run lacks (added to TrainConfig later)
    or that TrainConfig no longer has is not compared, so runs made before a field existed still match.
    The trainer's resume and the grid's finished runs are held to this one rule."""
    return {key: (plain(value), plain(getattr(config, key))) for key, value in saved.items()
            if key not in RUNTIME_FIELDS and hasattr(config, key) and plain(getattr(config, key)) != plain(value)}


def describe_changes(changed: dict) -> str:
    """changed_settings' result as the messages print it: "lr_cnn: 0.03 -> 0.5, steps: 400 -> 800"."""
    return ", ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changed.items())


# ---- command line -------------------------------------------------------------------------

def _is_tuple(hint) -> bool:
    return typing.get_origin(_split_hint(hint)[0]) is tuple


def build_parser() -> argparse.ArgumentParser:
    """An argparse parser with one flag per TrainConfig field (underscores become dashes)."""
    parser = argparse.ArgumentParser(
        prog="python -m collab_lib.train",
        usage="%(prog)s [--config FILE] [--FIELD VALUE ...]   (all flags: --help)",
        description="Train a CNN and a ViT student together (Zhu et al., ICCV 2023).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,  # a typo must not silently pick another flag
    )
    parser.add_argument("--config", help="JSON file with settings (e.g. a run's config.json); flags override it")
    hints = _type_hints()
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        # argparse %-formats help strings: a literal "%" in a field's help must reach it as "%%"
        kwargs = dict(dest=f.name, default=argparse.SUPPRESS, help=f.metadata["help"].replace("%", "%%"))
        if _split_hint(hints[f.name])[0] is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if _is_tuple(hints[f.name]):  # `--image-size 512 1024`, `--image-size 512,1024`, `--crop-size none`
            kwargs["nargs"] = "+"
            kwargs["metavar"] = "H W" if f.name.endswith("size") else "STEP" if f.name.endswith("steps") else "NAME"
        # Values reach TrainConfig as text: it converts and checks them (one set of rules for every entry point).
        parser.add_argument(flag, choices=f.metadata.get("choices"), **kwargs)
    return parser


def parse_args(argv=None) -> TrainConfig:
    """Command line -> TrainConfig. Bad flags and values exit with argparse's message listing the valid choices."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        flags = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
        hints = [f"{u} (did you mean {' or '.join(difflib.get_close_matches(u.split('=')[0], flags, 2))}?)"
                 if u.startswith("--") and difflib.get_close_matches(u.split("=")[0], flags, 2) else u for u in unknown]
        parser.error(f"unknown arguments: {', '.join(hints)}. Valid flags: {' '.join(flags)}")
    args = vars(args)
    config_file = args.pop("config", None)
    try:
        base = TrainConfig.load(config_file).to_dict() if config_file else {}
    except ValueError as error:
        parser.error(str(error))
    for name, value in args.items():  # one word of a tuple field ("512,1024", "none") is converted as text
        if isinstance(value, list) and len(value) == 1:
            args[name] = value[0]
    try:
        return TrainConfig.from_dict({**base, **args})
    except ValueError as error:
        parser.error(str(error))
