"""Score a trained run's students on any split, or on another dataset: `evaluate_run` and its command line.

    python -m collab_lib.evaluate --run-dir runs/mine --checkpoint best --split test
    python -m collab_lib.evaluate --run-dir runs/mine --dataset folder --data-root /data/other --split val

Both students are rebuilt from the run's config.json at a checkpoint (collab_lib.predict.load_run) and
scored by the trainer's own `evaluate`, through the trainer's own dataset and loader: the run's image_size,
batch size, precision and memory format. So the run's eval split with last.pt gives metrics.json's
`final_val` exactly (and its test split, metrics.json's `test`), on the same kind of machine; the command
says whether it does. Numbers: per-class IoU under the run's class names (None: a class neither in the
labels nor in the predictions), mIoU over the classes present, pixel accuracy (collab_lib.metrics).

The command prints a table and writes the numbers beside the run, never over its metrics.json:
RUN/eval-<checkpoint>-<split>.json, or for other data RUN/eval-<checkpoint>-<dataset>-<folder>-<split>.json
(--out FILE puts it elsewhere). A user error is one `error:` line and exit status 2, nothing written.
"""
import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

from .checkpoint import write_json
from .data import DATASET_NAMES
from .data.folder import CLASSES_FILE
from .errors import SetupError
from .loaders import make_loader
from .predict import CHECKPOINTS, add_run_arguments, exit_on_user_error, load_run
from .students import make_dataset
from .train import evaluate, named_iou

TRAINER_FILES = ("metrics.json", "config.json", "history.jsonl")  # what the trainer writes: never replaced here


def evaluate_run(run_dir, checkpoint="best", split=None, dataset=None, data_root=None, device="auto",
                 workers=None) -> dict:
    """Both students of `run_dir` at `checkpoint` ("best", "last" or a path) on `split` (None: the run's
    eval split) of the run's dataset, or of `dataset` / `data_root` when given.

    Returns {"run_dir", "checkpoint", "step", "dataset", "data_root", "run_data" (True: the run's own
    dataset and folder), "split", "synthetic", "items", "image_size", "class_names", "device", "precision",
    "batch_size", "cnn", "vit"}, each student as metrics.json has it: {"miou", "pixel_accuracy", "iou": {class name: IoU or None}}; "dataset_class_names"
    too when the dataset names its classes otherwise than the run (same count; the run's names are used).
    """
    run = load_run(run_dir, checkpoint, device)
    config = run.config
    changes = {"workers": config.workers if workers is None else workers}
    if dataset is not None and dataset != config.dataset:
        changes.update(dataset=dataset, data_root=data_root, class_names=None)
    elif data_root is not None:
        changes["data_root"] = data_root
    config = dataclasses.replace(config, **changes)
    if (config.dataset == "folder" and config.class_names is None and config.data_root
            and not (Path(config.data_root) / CLASSES_FILE).is_file()):
        config = dataclasses.replace(config, class_names=tuple(run.class_names))  # the students' classes
    split = split or config.eval_split
    data = make_dataset(config, split, train=False)
    if data.num_classes != len(run.class_names):
        raise SetupError(f"{config.dataset} {split} ({config.data_root or 'embedded'}) has {data.num_classes} classes "
                         f"({', '.join(data.class_names)}), the run's students {len(run.class_names)} "
                         f"({', '.join(run.class_names)}); evaluate on data labelled with the run's classes")
    hw = run.hardware
    loader = make_loader(data, config, device=hw.device)  # the trainer's eval loader: same order, same batches
    results = evaluate({"cnn": run.cnn, "vit": run.vit}, loader, data.num_classes, data.ignore_index,
                       hw.device, hw.amp_dtype, hw.channels_last)
    run_data = (config.dataset, config.data_root) == (run.config.dataset, run.config.data_root)
    result = {"run_dir": str(run.run_dir), "checkpoint": str(run.checkpoint), "step": run.step,
              "dataset": config.dataset, "data_root": config.data_root, "run_data": run_data, "split": split,
              "synthetic": bool(getattr(data, "synthetic", False)), "items": len(data),
              "image_size": list(config.image_size), "class_names": run.class_names, "device": str(hw.device),
              "precision": hw.precision, "batch_size": config.batch_size,
              **{name: named_iou(metrics, run.class_names) for name, metrics in results.items()}}
    if list(data.class_names) != run.class_names:
        result["dataset_class_names"] = list(data.class_names)
    return result


def training_numbers(run_dir, result: dict):
    """(key, numbers) of metrics.json for the same data, split and step ("final_val" or "test"), else None."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    for key in ("final_val", "test"):
        numbers = metrics.get(key)
        if numbers and numbers["split"] == result["split"] and numbers["step"] == result["step"]:
            return key, numbers
    return None


def same_numbers(a: dict, b: dict) -> bool:
    """Both students' mIoU, pixel accuracy and per-class IoU equal to the last bit (NaN equals NaN)."""
    def flat(numbers):
        return [v for s in ("cnn", "vit") for v in (numbers[s]["miou"], numbers[s]["pixel_accuracy"],
                                                     *numbers[s]["iou"].values())]
    return all(x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
               for x, y in zip(flat(a), flat(b), strict=True))


def format_table(result: dict) -> str:
    """Per-class IoU of both students, then mIoU and pixel accuracy, as plain text columns."""
    names = result["class_names"]
    width = max(len("pixel accuracy"), *(len(n) for n in names))

    def cell(value):
        return f"{value:8.4f}" if value is not None else f"{'-':>8}"

    lines = [f"{'class':<{width}}  {'CNN':>8}  {'ViT':>8}"]
    lines += [f"{n:<{width}}  {cell(result['cnn']['iou'][n])}  {cell(result['vit']['iou'][n])}" for n in names]
    lines += [f"{label:<{width}}  {cell(result['cnn'][key])}  {cell(result['vit'][key])}"
              for label, key in (("mIoU", "miou"), ("pixel accuracy", "pixel_accuracy"))]
    return "\n".join(lines)


def default_output(run_dir: Path, checkpoint, result: dict) -> Path:
    """RUN/eval-<checkpoint>-<split>.json; other data: RUN/eval-<checkpoint>-<dataset>-<folder name>-<split>.json."""
    label = checkpoint if checkpoint in CHECKPOINTS else Path(checkpoint).stem
    data = ""
    if not result["run_data"]:
        data = f"{result['dataset']}-" + (f"{Path(result['data_root']).name}-" if result["data_root"] else "")
    return run_dir / f"eval-{label}-{data}{result['split']}.json"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m collab_lib.evaluate",
        description="Score a trained run's students on a split of its dataset or of another one; prints a table, "
                    "writes a JSON beside the run.")
    add_run_arguments(parser)
    parser.add_argument("--split", default=None, help="val, test, train ... (default: the run's eval split)")
    parser.add_argument("--dataset", default=None, choices=DATASET_NAMES, help="another dataset (default: the run's)")
    parser.add_argument("--data-root", default=None, help="its folder (default: the run's data_root)")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: the run's)")
    parser.add_argument("--out", default=None, help="the JSON file (default: RUN/eval-<checkpoint>-...<split>.json)")
    args = parser.parse_args(argv)

    def run():
        run_dir = Path(args.run_dir)
        out = Path(args.out) if args.out else None
        if out is not None and out.name in TRAINER_FILES and out.resolve().parent == run_dir.resolve():
            raise SetupError(f"--out {out}: the trainer's own file; give another name (default: RUN/eval-...json)")
        result = evaluate_run(run_dir, args.checkpoint, args.split, args.dataset, args.data_root, args.device,
                              args.workers)
        kind = "SYNTHETIC scenes" if result["synthetic"] else "images"
        print(f"{run_dir}, {Path(result['checkpoint']).name} (step {result['step']}): {result['dataset']} "
              f"{result['split']}, {result['items']} {kind} at {result['image_size'][0]}x{result['image_size'][1]}, "
              f"{result['device']} {result['precision']}")
        if "dataset_class_names" in result:
            print(f"note: the dataset names its classes {', '.join(result['dataset_class_names'])}; "
                  f"shown under the run's names")
        print(format_table(result))
        found = training_numbers(run_dir, result) if result["run_data"] else None
        if found:
            key, numbers = found
            print(f"metrics.json {key} (step {numbers['step']}): " + (
                "the same numbers, exactly" if same_numbers(result, numbers) else
                "other numbers (another device, precision or thread count rounds differently)"))
        out = out or default_output(run_dir, args.checkpoint, result)
        try:
            write_json(out, result)
        except OSError as error:
            raise SetupError(f"--out {out}: cannot write it ({error})") from None
        print(f"written: {out}")

    exit_on_user_error(run)


if __name__ == "__main__":
    main()
