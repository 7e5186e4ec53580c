"""Throughput and peak memory of one training step (both students, one batch), and of the data loader.

    python benchmarks/bench_train.py                                   # CPU: 128x128, batch 8
    python benchmarks/bench_train.py --size 512 1024 --batch 8         # GPU: the Cityscapes recipe
    python benchmarks/bench_train.py --layouts auto nhwc               # CPU: also channels-last students
    python benchmarks/bench_train.py --interleave --steps 21           # collab / independent in one process

For each method (independent, collab) and, on CUDA, each setting (fp32 eager,
bf16 eager, bf16 + torch.compile of both students and the loss's terms, as the
trainer's compile=True; `--settings` picks some, and also offers bf16+cudagraphs: the
same compiled with mode "reduce-overhead", which replays each compiled piece as a CUDA
graph), a fresh subprocess builds the students, the
loss and the optimizers as `collab_lib.train` does (decoders `--decoder-channels`
wide: 256 by default, where the trainer's own default is 128), runs `--warmup`
untimed steps and then `--steps` timed ones on one fixed batch of streets
scenes, and reports the median step time (images/s = batch / median) and the
peak memory: CUDA max_memory_allocated, or on CPU the process's peak resident
set size (a fresh process per setting, so the numbers do not mix).
Also measured: the training DataLoader's images/s (rendering + augmentation,
`--workers` processes), to show whether the data pipeline can keep up.
With `--interleave`, each setting is one process instead that alternates the
two methods' steps on the same students (ABBA order) and reports the median of
the paired collab / independent ratios: the way to read the issue-3 target on
a machine whose step time moves between processes (no memory figures then);
`--profile` adds, on CUDA, the kernels each step launches and the GPU's busy time.
Printed as a table and, with --json, as JSON lines.
"""
import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_students_and_batch(args):
    """The config, the students and one fixed batch of streets scenes, on the device and in the layout the trainer would use."""
    import torch

    from collab_lib.config import TrainConfig
    from collab_lib.data import build_dataset
    from collab_lib.hardware import resolve_device
    from collab_lib.students import build_students

    device = resolve_device(args.device)
    torch.manual_seed(0)
    dataset = build_dataset("streets", split="val", size=tuple(args.size), num_samples=args.batch)
    images = torch.stack([dataset[i][0] for i in range(args.batch)])
    labels = torch.stack([dataset[i][1] for i in range(args.batch)])
    channels_last = device.type == "cuda" if args.layout == "auto" else args.layout == "nhwc"  # auto: as the trainer
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    images = images.to(device).contiguous(memory_format=memory_format)
    labels = labels.to(device)
    config = TrainConfig(batch_size=args.batch, image_size=tuple(args.size),
                         cnn_decoder_channels=args.decoder_channels, vit_decoder_channels=args.decoder_channels)
    cnn, vit = build_students(config, dataset.num_classes)
    for module in (cnn, vit):
        module.to(device=device, memory_format=memory_format).train()
    return config, device, memory_format, cnn, vit, images, labels


# --compile (internal) -> torch.compile's mode; "eager" compiles nothing
COMPILE_MODES = {"eager": None, "compile": None, "cudagraphs": "reduce-overhead"}


def build_step(args, config, method, device, memory_format, cnn, vit, images, labels):
    """One training step of `method` as `collab_lib.train` runs it (its loss, its two optimizers): a callable."""
    import dataclasses

    import torch

    from collab_lib.hardware import AMP_DTYPES
    from collab_lib.losses import CollaborativeLoss
    from collab_lib.optim import build_optimizers
    from collab_lib.train import train_step

    config = dataclasses.replace(config, method=method)
    loss_fn = CollaborativeLoss(cnn, vit, method=config.method, w_hfd=config.w_hfd, w_region=config.w_region,
                                w_pixel=config.w_pixel, warmup=0.0)  # warm-up 0: every term at full weight
    loss_fn.to(device=device, memory_format=memory_format).train()
    opt_cnn, opt_vit = build_optimizers(cnn, vit, loss_fn, config, device)
    scaler = torch.amp.GradScaler(device.type, enabled=args.precision == "fp16")
    cnn_step, vit_step = cnn, vit
    mode = COMPILE_MODES[args.compile]
    if args.compile != "eager":  # as the trainer's compile=True: both students and the loss's terms
        cnn_step, vit_step = torch.compile(cnn, mode=mode), torch.compile(vit, mode=mode)
        loss_fn.compile_terms(mode=mode)

    def step():
        if mode == "reduce-overhead":  # a new step: the CUDA graphs may overwrite the last step's outputs
            torch.compiler.cudagraph_mark_step_begin()
        return train_step(cnn_step, vit_step, loss_fn, opt_cnn, opt_vit, scaler, images, labels, 0.5,
                          AMP_DTYPES[args.precision])
    return step


def timed_step(step, device) -> tuple[float, dict]:
    """Seconds of one step; on CUDA the clock waits for the device (the trainer itself does not)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    terms = step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, terms


def one_setting(args) -> dict:
    """Runs in its own process: time `args.steps` training steps of one method/precision/compile setting."""
    import torch

    config, device, memory_format, cnn, vit, images, labels = build_students_and_batch(args)
    step = build_step(args, config, args.method, device, memory_format, cnn, vit, images, labels)
    times = []
    for i in range(args.warmup + args.steps):
        seconds, terms = timed_step(step, device)
        if i >= args.warmup:
            times.append(seconds)
    assert torch.isfinite(terms["loss"]).item()
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    median = statistics.median(times)
    return {"what": "step", "method": args.method, "precision": args.precision, "compile": args.compile,
            "layout": "nhwc" if memory_format == torch.channels_last else "nchw", "device": str(device),
            "size": args.size, "batch": args.batch, "decoder_channels": args.decoder_channels, "median_s": median,
            "images_per_s": args.batch / median, "peak_mib": peak_mib, "times_s": times}


def interleaved(args) -> dict:
    """Runs in its own process: independent and collab steps alternating on the same students.

    Between processes this machine's step time moves by up to 30 % (RESULTS.md Run 6), more than the
    difference being measured; within one process both methods meet the same allocator state, caches and
    load. Round r runs independent then collab (r even) or the reverse (r odd), so neither always goes
    first. Both methods train the same two students (each with its own loss and optimizers): only the
    time is measured here, no memory.
    """
    import torch

    config, device, memory_format, cnn, vit, images, labels = build_students_and_batch(args)
    methods = ("independent", "collab")
    steps = {m: build_step(args, config, m, device, memory_format, cnn, vit, images, labels) for m in methods}
    times, logged = {m: [] for m in methods}, {}
    for r in range(args.warmup + args.steps):
        for m in (methods if r % 2 == 0 else methods[::-1]):
            seconds, terms = timed_step(steps[m], device)
            assert torch.isfinite(terms["loss"]).item(), f"{m}: non-finite loss at round {r}"
            logged[m] = sorted(terms)  # which loss terms the step computed (proof of what was timed)
            if r >= args.warmup:
                times[m].append(seconds)
    paired = [c / i for c, i in zip(times["collab"], times["independent"])]
    medians = {m: statistics.median(t) for m, t in times.items()}
    row = {"what": "interleaved", "precision": args.precision, "compile": args.compile,
           "layout": "nhwc" if memory_format == torch.channels_last else "nchw", "device": str(device),
           "size": args.size, "batch": args.batch, "decoder_channels": args.decoder_channels, "median_s": medians,
           "ratio_of_medians": medians["collab"] / medians["independent"],
           "median_paired_ratio": statistics.median(paired), "paired_ratios": paired, "times_s": times,
           "terms": logged}
    if args.profile and device.type == "cuda":
        row["kernels"] = {m: kernel_profile(steps[m]) for m in methods}
    return row


def kernel_profile(step, repeats: int = 3) -> dict:
    """CUDA kernels launched per step and the GPU's busy time per step (sum of kernel durations, ms).

    Busy time well below the step's wall time means the step is bound by launching kernels from
    Python (the host), not by the GPU's arithmetic: then the number of kernels is what costs.
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(repeats):
            step()
        torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]  # kernels, memsets, copies
    busy_us = sum(e.time_range.elapsed_us() for e in kernels)
    return {"kernels_per_step": len(kernels) / repeats, "gpu_busy_ms_per_step": busy_us / 1000 / repeats}


def loader_throughput(args) -> dict:
    """Images/s of the training DataLoader: fresh scenes (first epoch: rendering + augmentation)."""
    import torch
    from torch.utils.data import DataLoader

    from collab_lib.data import build_dataset

    dataset = build_dataset("streets", split="train", size=tuple(args.size), crop_size=tuple(args.size),
                            num_samples=args.batch * (args.loader_batches + 2), augment=True)
    loader = DataLoader(dataset, batch_size=args.batch, num_workers=args.workers, shuffle=True,
                        pin_memory=torch.cuda.is_available(), persistent_workers=False)
    batches = iter(loader)
    next(batches)  # start-up (worker processes) is not throughput
    t0 = time.perf_counter()
    count = 0
    for _ in range(args.loader_batches):
        count += next(batches)[0].shape[0]
    seconds = time.perf_counter() - t0
    return {"what": "loader", "workers": args.workers, "size": args.size, "batch": args.batch,
            "images_per_s": count / seconds}


def run_child(command: list) -> str | None:
    """The child's stdout; None (after printing the end of its stderr) when it failed, so that one
    failing setting (a compiler error, say) does not cost the settings after it."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        print(f"# FAILED (exit {done.returncode}): {' '.join(command[2:])}\n{tail}", flush=True)
        return None
    return done.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=[128, 128], metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--decoder-channels", type=int, default=256,
                        help="width of both decoders (256: the students' standard, as in every run recorded so far; "
                             "TrainConfig's default, used by the CPU recipe, is 128)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per setting")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compile, allocator, caches)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for the loader measurement")
    parser.add_argument("--loader-batches", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    parser.add_argument("--layouts", nargs="+", default=["auto"], choices=["auto", "nchw", "nhwc"],
                        help="memory layouts of students and batch to measure (auto: as the trainer, "
                             "channels-last on CUDA only); each is timed for every setting")
    parser.add_argument("--settings", nargs="+", choices=["fp32", "bf16", "bf16+compile", "bf16+cudagraphs"],
                        help="precision / compile settings to time (default on CUDA: fp32, bf16, bf16+compile; "
                             "on CPU: fp32); +compile compiles both students and the loss's terms, as the "
                             "trainer's compile=True; +cudagraphs the same with mode 'reduce-overhead' (CUDA graphs)")
    parser.add_argument("--profile", action="store_true",
                        help="with --interleave on CUDA: also count kernels per step and the GPU's busy time")
    parser.add_argument("--interleave", action="store_true",
                        help="time independent and collab alternating in one process per setting (the ratio "
                             "without between-process noise; --steps rounds of one step each; no memory figures)")
    # internal: one setting, in a child process
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--one-interleaved", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", default="collab", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--compile", default="eager", choices=list(COMPILE_MODES), help=argparse.SUPPRESS)
    parser.add_argument("--layout", default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_setting(args)))
        return
    if args.one_interleaved:
        print(json.dumps(interleaved(args)))
        return

    import torch
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if cuda:
        half = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        named = {"fp32": ("fp32", "eager"), "bf16": (half, "eager"), "bf16+compile": (half, "compile"),
                 "bf16+cudagraphs": (half, "cudagraphs")}
        settings = [named[name] for name in (args.settings or ("fp32", "bf16", "bf16+compile"))]
        machine = torch.cuda.get_device_name(0)
    else:
        settings = [("fp32", "eager")]
        machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
    print(f"# {machine}; torch {torch.__version__}; size {args.size[0]}x{args.size[1]}, batch {args.batch}, "
          f"decoders {args.decoder_channels} wide; "
          f"median of {args.steps} steps after {args.warmup} warm-up", flush=True)

    rows = []
    settings = [(precision, compile_setting, layout) for precision, compile_setting in settings for layout in args.layouts]
    for precision, compile_setting, layout in settings:
        common = ["--precision", precision, "--size", *map(str, args.size), "--batch", str(args.batch),
                  "--device", args.device, "--steps", str(args.steps), "--warmup", str(args.warmup),
                  "--layout", layout, "--decoder-channels", str(args.decoder_channels)] + ["--compile", compile_setting] \
            + (["--profile"] if args.profile else [])
        if args.interleave:
            out = run_child([sys.executable, __file__, "--one-interleaved", *common])
            if out is None:
                continue
            row = json.loads(out.strip().splitlines()[-1])
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                name = f"{precision} {compile_setting} {row['layout']}"
                print(f"{name:20s} independent {row['median_s']['independent'] * 1000:8.1f} ms/step, collab "
                      f"{row['median_s']['collab'] * 1000:8.1f} ms/step; collab / independent: "
                      f"{row['median_paired_ratio']:.3f}x (median of paired rounds), "
                      f"{row['ratio_of_medians']:.3f}x (ratio of medians)", flush=True)
                for method, k in row.get("kernels", {}).items():
                    print(f"{'':20s} {method}: {k['kernels_per_step']:.0f} kernels/step, GPU busy "
                          f"{k['gpu_busy_ms_per_step']:.2f} ms/step", flush=True)
            continue
        for method in ("independent", "collab"):
            out = run_child([sys.executable, __file__, "--one", "--method", method, *common])
            if out is None:
                break
            rows.append(json.loads(out.strip().splitlines()[-1]))
            row = rows[-1]
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                name = f"{method} {precision} {compile_setting} {row['layout']}"
                print(f"{name:32s} {row['median_s'] * 1000:9.1f} ms/step {row['images_per_s']:8.1f} img/s "
                      f"peak {row['peak_mib']:8.0f} MiB", flush=True)
        if out is not None:
            ratio = rows[-1]["median_s"] / rows[-2]["median_s"]
            print(f"{'':32s} collab / independent step time: {ratio:.3f}x", flush=True)
    if cuda and len(rows) == 6 and args.settings is None and args.layouts == ["auto"] and not args.interleave:
        best = max(r["images_per_s"] for r in rows[2:])
        print(f"best precision/compile vs fp32 eager (collab): {rows[-1]['images_per_s'] / rows[1]['images_per_s']:.2f}x; "
              f"best of all settings vs fp32 eager collab: {best / rows[1]['images_per_s']:.2f}x")
    loader = loader_throughput(args)
    print(json.dumps(loader) if args.json else
          f"{'data loader (' + str(args.workers) + ' workers)':32s} {loader['images_per_s']:28.1f} img/s", flush=True)


if __name__ == "__main__":
    main()
