"""Segment new images with a trained run's students: `predict_image`, `load_run` and their command line.

    python -m collab_lib.predict --run-dir runs/mine --student both --out runs/mine/predictions photos/ cat.jpg

    from collab_lib.predict import load_run, predict_image
    run = load_run("runs/mine", checkpoint="best")           # both students, the run's classes and palette
    labels = run.predict(image, "vit")                        # (H, W) int64 class indices, the image's own size
    labels = predict_image(run.cnn, image, size=run.config.image_size)  # the same with any student module

An image of any size meets the students in one of two ways (`fit`):
  "resize"  what every run's config says, and the default: the trainer brings every image to
            config.image_size (real images are resized to it, the synthetic scenes are drawn at it), so
            the students only know that scale. The image is resized to image_size (bilinear, the trainer's
            evaluation transform), and the logits are resized back to the image's (H, W) (bilinear) before
            the argmax, as mmsegmentation's inference does.
  "pad"     the image at its own resolution, padded at the bottom and right to multiples of 32 (the
            padding is the mean colour, as in training), the padding cut off the logits. Only for images
            already at the scale the students learnt (e.g. tiles of a larger photo).
The command line writes, for an image NAME.ext and each student S (cnn, vit):
  OUT/S/masks/NAME.png     index PNG at the image's size: one class index per pixel (the folder dataset's masks)
  OUT/S/colour/NAME.png    the mask in the run's palette (the dataset's; palette.txt for your own data)
  OUT/S/overlay/NAME.png   the image and the colours blended (--alpha)
  OUT/both/NAME.png        with --student both: image | CNN overlay | ViT overlay, side by side
  OUT/classes.txt, OUT/palette.txt   which class each index and colour is (the folder dataset's files)
Every input is read before anything is written: a file that is not an image, a run without its checkpoint
or a class count that does not match is one `error:` line naming it, exit status 2, and no file written.
"""
import argparse
import dataclasses
import json
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .checkpoint import atomic_write_bytes, load_checkpoint
from .config import DEVICES, TrainConfig
from .data import DATASETS, DatasetError, SegmentationTransform
from .data.files import list_images, stem
from .data.folder import CLASSES_FILE, PALETTE_FILE, default_palette, read_class_names, read_palette
from .data.io import read_image
from .distributed import DistInfo
from .errors import SetupError, user_message
from .hardware import Hardware, choose_hardware
from .models.backbone import INPUT_MULTIPLE
from .students import build_students

STUDENT_NAMES = ("cnn", "vit")
CHECKPOINTS = {"best": "best.pt", "last": "last.pt"}
FITS = ("resize", "pad")


# ---- one image ------------------------------------------------------------------------------

def as_rgb(image) -> np.ndarray:
    """A file path, a PIL image or a uint8 array (H, W), (H, W, 3) or (H, W, 4) -> uint8 (H, W, 3)."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, Image.Image):
        return np.array(image.convert("RGB"), dtype=np.uint8)
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"image: expected uint8 (H, W, 3) RGB, a PIL image or a file path; got {array.dtype} "
                         f"{array.shape}")
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


@torch.no_grad()
def predict_image(student, image, size=None, amp_dtype=None, channels_last=False) -> np.ndarray:
    """One image -> int64 (H, W) class indices at the image's own size (H, W), whatever that size is.

    student: a student module in eval mode (load_run, load_students), on any device.
    image: a file path, a PIL image or uint8 (H, W, 3).
    size: (h, w) the run was trained at (config.image_size): fit "resize", see the module docstring;
          None: fit "pad" (the image at its own resolution, padded to multiples of 32).
    amp_dtype, channels_last: as the run evaluated (load_run passes them); None / False = fp32, NCHW.
    """
    rgb = as_rgb(image)
    height, width = rgb.shape[:2]
    # the trainer's evaluation transform: resize (when size is given), then normalise with ImageNet's statistics
    tensor, _ = SegmentationTransform(resize_to=size)(rgb, np.zeros((height, width), np.uint8), None)
    if size is None:
        pad_h, pad_w = -height % INPUT_MULTIPLE, -width % INPUT_MULTIPLE
        tensor = F.pad(tensor, (0, pad_w, 0, pad_h), value=0.0)  # 0 after normalising = the mean colour
    device = next(student.parameters()).device
    tensor = tensor[None].to(device)
    if channels_last:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext():
        logits = student(tensor).logits.float()  # (1, C, h/4, w/4)
    if size is None:  # back to the padded size, then the padding cut off
        logits = F.interpolate(logits, size=tensor.shape[-2:], mode="bilinear", align_corners=False)
        logits = logits[:, :, :height, :width]
    else:
        logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
    return logits.argmax(dim=1)[0].cpu().numpy()


def colourise(labels, palette) -> np.ndarray:
    """int (H, W) class indices -> uint8 (H, W, 3) in the palette's colours (uint8 (C, 3)); other values black."""
    palette = np.asarray(palette, np.uint8)
    labels = np.asarray(labels)
    known = (labels >= 0) & (labels < len(palette))
    return np.where(known[..., None], palette[np.where(known, labels, 0)], 0).astype(np.uint8)


def overlay(image, labels, palette, alpha: float = 0.5) -> np.ndarray:
    """uint8 (H, W, 3): the image blended with the colourised labels, (1 - alpha) image + alpha colour."""
    blend = (1.0 - alpha) * as_rgb(image).astype(np.float32) + alpha * colourise(labels, palette).astype(np.float32)
    return np.clip(blend + 0.5, 0, 255).astype(np.uint8)


# ---- a trained run --------------------------------------------------------------------------

@dataclass
class TrainedRun:
    """A run's two students at one checkpoint, in eval mode on `device`, with its classes and palette."""
    run_dir: Path
    checkpoint: Path
    step: int
    config: TrainConfig
    cnn: torch.nn.Module
    vit: torch.nn.Module
    class_names: list
    palette: np.ndarray       # uint8 (C, 3)
    hardware: Hardware        # device, precision, amp_dtype, channels_last (collab_lib.hardware)

    def student(self, name: str) -> torch.nn.Module:
        if name not in STUDENT_NAMES:
            raise ValueError(f"student {name!r}: choose cnn or vit")
        return getattr(self, name)

    def predict(self, image, student: str = "cnn", fit: str = "resize") -> np.ndarray:
        """int64 (H, W) class indices of `image` (path, PIL or uint8 (H, W, 3)) by one student, at the image's size."""
        if fit not in FITS:
            raise ValueError(f"fit {fit!r}: choose resize or pad")
        size = self.config.image_size if fit == "resize" else None
        return predict_image(self.student(student), image, size, self.hardware.amp_dtype, self.hardware.channels_last)


def checkpoint_path(run_dir: Path, checkpoint) -> Path:
    """"best" / "last" -> the run's best.pt / last.pt; else a path, or a file name in the run folder."""
    if str(checkpoint) not in CHECKPOINTS:
        for path in (Path(checkpoint), run_dir / checkpoint):
            if path.is_file():
                return path
        raise SetupError(f"checkpoint {checkpoint}: no such file (neither as given nor in {run_dir})")
    name = CHECKPOINTS[str(checkpoint)]
    if (run_dir / name).is_file():
        return run_dir / name
    found = sorted(p.name for p in run_dir.glob("*.pt"))
    holds = (f"it holds {', '.join(found)}" if found else
             "it holds no checkpoint (*.pt) at all: a committed run keeps only its text files; train it again "
             "(python -m collab_lib.train --config RUN/config.json --run-dir NEW) to use its students")
    raise SetupError(f"checkpoint {checkpoint}: {run_dir / name} not found; {holds}")


def run_class_names(run_dir: Path, config: TrainConfig) -> list:
    """The names the run trained under: metrics.json's, else (a run not finished) the dataset's."""
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        return list(json.loads(metrics.read_text())["class_names"])
    if config.dataset != "folder":
        return list(DATASETS[config.dataset].class_names)
    if config.class_names:
        return list(config.class_names)
    return read_class_names(Path(config.data_root or ".") / CLASSES_FILE)


def run_palette(config: TrainConfig, count: int) -> np.ndarray:
    """uint8 (count, 3): the dataset's palette; own data: data_root/palette.txt, else the folder dataset's default."""
    if config.dataset != "folder":
        return np.asarray(DATASETS[config.dataset].palette, np.uint8)
    path = Path(config.data_root or ".") / PALETTE_FILE
    return read_palette(path, count) if config.data_root and path.is_file() else default_palette(count)


def load_run(run_dir, checkpoint="best", device="auto") -> TrainedRun:
    """Both students of `run_dir` rebuilt from its config.json, weights from `checkpoint` ("best", "last", a path).

    device: auto / cpu / cuda / mps, as the trainer's; precision and memory format as the run evaluated
    (its config, resolved on this device). SetupError (naming the file) for a folder that is no run, a missing
    or unreadable checkpoint, or a checkpoint whose class count is not the run's.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise SetupError(f"run folder {run_dir}: no config.json there; give the folder collab_lib.train wrote")
    try:
        config = TrainConfig.load(run_dir / "config.json")
    except ValueError as error:
        raise SetupError(str(error)) from None
    path = checkpoint_path(run_dir, checkpoint)
    try:
        state = load_checkpoint(path)
        counts = {name: state[name]["classifier.weight"].shape[0] for name in STUDENT_NAMES}
    except Exception as error:  # damage, another program's file, a file that is no checkpoint at all
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SetupError(f"checkpoint {path}: not a checkpoint of this kit's trainer ({reason})") from None
    class_names = run_class_names(run_dir, config)
    if set(counts.values()) != {len(class_names)}:
        raise SetupError(f"checkpoint {path}: its students predict {counts['cnn']} (CNN) and {counts['vit']} (ViT) "
                         f"classes, but the run names {len(class_names)} ({', '.join(class_names)}); give a "
                         f"checkpoint of this run")
    palette = run_palette(config, len(class_names))
    # the weights come from the checkpoint: no ImageNet download, no backbone file needed to rebuild the students
    config = dataclasses.replace(config, device=str(device), pretrained=False, cnn_weights=None, vit_weights=None)
    hardware = choose_hardware(config, DistInfo())
    cnn, vit = build_students(config, len(class_names))
    memory_format = torch.channels_last if hardware.channels_last else torch.contiguous_format
    for name, module in (("cnn", cnn), ("vit", vit)):
        module.load_state_dict(state[name])
        module.to(device=hardware.device, memory_format=memory_format).eval()
    return TrainedRun(run_dir, path, int(state.get("step", -1)), config, cnn, vit, class_names, palette, hardware)


# ---- the command line -----------------------------------------------------------------------

def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """--run-dir, --checkpoint, --device: the same in collab_lib.predict and collab_lib.evaluate."""
    parser.add_argument("--run-dir", required=True, help="the folder collab_lib.train wrote (config.json, *.pt)")
    parser.add_argument("--checkpoint", default="best", metavar="best|last|PATH",
                        help="best.pt (best mean val mIoU), last.pt (the last step) or a checkpoint file")
    parser.add_argument("--device", default="auto", choices=DEVICES, help="auto = CUDA when available, else CPU")


def exit_on_user_error(call):
    """call(); a user error (SetupError, DatasetError) becomes one `error:` line on stderr and exit status 2."""
    try:
        return call()
    except (SetupError, DatasetError) as error:
        print(f"error: {user_message(error)}", file=sys.stderr)
        sys.exit(2)


def find_images(inputs) -> list:
    """Image files and folders (their images, not sub-folders) -> the image paths, in order. Every file is
    read once here, before anything is written: SetupError for a missing path, an empty folder, a file that
    is not an image, or two images with one name (their outputs would overwrite each other)."""
    paths = []
    for given in map(Path, inputs):
        if given.is_dir():
            found = [Path(p) for p in list_images(given)]
            if not found:
                raise SetupError(f"{given}: no image files (.png, .jpg, .jpeg, .bmp, .tif, .tiff) in this folder")
            paths.extend(found)
        elif given.is_file():
            paths.append(given)
        else:
            raise SetupError(f"{given}: no such file or folder")
    names = {}
    for path in paths:
        if stem(path) in names:
            raise SetupError(f"{path} and {names[stem(path)]} have the same name; their masks would overwrite each "
                             f"other: predict them into different --out folders")
        names[stem(path)] = path
        try:
            read_image(path)
        except DatasetError as error:
            raise SetupError(f"{path}: not an image this kit can read ({error})") from None
    return paths


def write_png(path: Path, array: np.ndarray) -> None:
    """uint8 (H, W) grey or (H, W, 3) RGB -> PNG, atomically (temp file, then rename)."""
    atomic_write_bytes(path, lambda f: Image.fromarray(array).save(f, format="PNG"))


def write_predictions(run: TrainedRun, paths, students, out: Path, fit: str, alpha: float) -> None:
    """For each image: each student's index mask, colour mask and overlay (and the side-by-side picture)."""
    from tqdm.auto import tqdm

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / CLASSES_FILE, lambda f: f.write("".join(f"{n}\n" for n in run.class_names).encode()))
    atomic_write_bytes(out / PALETTE_FILE, lambda f: f.write("".join(f"{r} {g} {b}\n" for r, g, b in
                                                                    run.palette.tolist()).encode()))
    for path in tqdm(paths, desc="predict", unit="image", disable=None):  # a bar on a terminal, silent in a log
        image = read_image(path)
        overlays = []
        for name in students:
            labels = run.predict(image, name, fit).astype(np.uint8)
            write_png(out / name / "masks" / f"{stem(path)}.png", labels)
            write_png(out / name / "colour" / f"{stem(path)}.png", colourise(labels, run.palette))
            overlays.append(overlay(image, labels, run.palette, alpha))
            write_png(out / name / "overlay" / f"{stem(path)}.png", overlays[-1])
        if len(students) == 2:
            write_png(out / "both" / f"{stem(path)}.png", np.concatenate([image, *overlays], axis=1))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m collab_lib.predict", description="Segment images with a trained run's students: index "
        "masks at each image's own size, colour masks and overlays (see the module docstring for the files).")
    add_run_arguments(parser)
    parser.add_argument("--student", default="both", choices=(*STUDENT_NAMES, "both"), help="which student segments")
    parser.add_argument("--fit", default="resize", choices=FITS,
                        help="resize: to the run's image_size and back (what the run trained at); pad: at the "
                             "image's own resolution, padded to multiples of 32")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay: the colours' weight, 0..1")
    parser.add_argument("--out", required=True, help="folder for the masks, colour masks and overlays")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and folders of images")
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if not 0.0 <= args.alpha <= 1.0:
        build_parser().error(f"--alpha {args.alpha}: expected a number from 0 to 1")

    def predict():
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise SetupError(f"--out {out}: is a file; give a folder (it is created when missing)")
        paths = find_images(args.inputs)
        run = load_run(args.run_dir, args.checkpoint, args.device)
        students = list(STUDENT_NAMES) if args.student == "both" else [args.student]
        height, width = run.config.image_size
        how = (f"resized to the run's image_size {height}x{width} and the prediction brought back to its size"
               if args.fit == "resize" else f"at its own size, padded to multiples of {INPUT_MULTIPLE}")
        print(f"{run.run_dir}: {run.checkpoint.name} (step {run.step}), {', '.join(students)} on "
              f"{run.hardware.device}; {len(paths)} image(s), each {how}", flush=True)
        write_predictions(run, paths, students, out, args.fit, args.alpha)
        masks = ", ".join(f"{s}/masks" for s in students)
        print(f"wrote {len(paths)} x {len(students)} masks, colour masks and overlays to {out} "
              f"({masks}: one class index per pixel, classes in {out / CLASSES_FILE})")

    exit_on_user_error(predict)


if __name__ == "__main__":
    main()
