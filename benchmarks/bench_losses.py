"""How much does collaborative learning cost per step, compared with training the students independently?

Times, on CPU by default:
  (a) the loss alone: CollaborativeLoss forward + backward given precomputed student outputs;
  (b) one full training step: both students forward, loss, backward, AdamW step
      (students + the loss's projectors and connectors).
for method independent vs collab (kit defaults). The methods are timed
interleaved (independent, collab, independent, ...) so that load from other
processes on a shared machine hits both alike; the median of the repeats is
reported. Target (issue 3): collab step <= 1.10 x independent step.
`--dense` adds "collab-dense": collab with RegionBSDLoss(gather_cells=False),
the accelerator path (connectors on every cell, masked), timed in the same run;
`--terms` adds collab with one term only ("hfd-only", "region-only", "pixel-only"),
to see what each term costs. `--count-ops` counts the operators each variant's
loss dispatches (forward and backward, views and allocations left out): on a
GPU each is about one kernel launch, and at small batches the launches, not
the arithmetic, set the step time (RESULTS.md Run 8). The count is the same on
any device, so it can be read on a CPU.

    .venv/bin/python benchmarks/bench_losses.py            # batch 8, 128x128, R18 + B0, 11 classes, 2 threads
    .venv/bin/python benchmarks/bench_losses.py --dense    # also the dense-connector path
    .venv/bin/python benchmarks/bench_losses.py --terms    # also each collab term alone
    python benchmarks/bench_losses.py --device cuda --precision bf16   # on a GPU (dense connectors there)
"""
import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from collab_lib.losses import CollaborativeLoss
from collab_lib.models import build_student


def timed(fn, device) -> float:
    """Seconds of fn(); on CUDA the clock waits for the device before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


VIEW_OPS = {  # no kernel: views, allocations, metadata
    "view", "_unsafe_view", "reshape", "_reshape_alias", "as_strided", "permute", "transpose", "t", "expand",
    "expand_as", "view_as", "unsqueeze", "squeeze", "slice", "select", "narrow", "unbind", "split",
    "split_with_sizes", "chunk", "alias", "detach", "lift_fresh", "empty", "empty_like", "empty_strided",
    "new_empty_strided",
}


def as_leaves(outputs) -> list:
    """Fixed student outputs as fresh leaves that collect gradients: the loss alone, without the students."""
    return [o._replace(**{k: getattr(o, k).detach().requires_grad_() for k in ("low", "embed", "logits")})
            for o in outputs]


def count_ops(loss_fn, fixed, y, autocast) -> tuple[int, int]:
    """Operators dispatched by one forward and one backward of `loss_fn` on fixed student outputs."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Counter(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket.__name__ not in VIEW_OPS:
                self.count += 1
            return func(*args, **(kwargs or {}))

    with Counter() as forward, autocast:
        total, _ = loss_fn(*as_leaves(fixed), y, progress=0.5)
    with Counter() as backward:
        total.backward()
    return forward.count, backward.count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--classes", type=int, default=11)
    parser.add_argument("--cnn", default="deeplabv3plus_resnet18")
    parser.add_argument("--vit", default="segformer_b0")
    parser.add_argument("--decoder-channels", type=int, default=256,
                        help="width of both decoders (256: the students' standard; the CPU recipe trains with 128)")
    parser.add_argument("--threads", type=int, default=2, help="torch's CPU threads")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                        help="bf16: the students' forward and the loss under bf16 autocast (the trainer's GPU default)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations per method first")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dense", action="store_true", help="also time collab with the dense (accelerator) connector path")
    parser.add_argument("--terms", action="store_true", help="also time collab with one term at a time")
    parser.add_argument("--count-ops", action="store_true",
                        help="also count the operators (about one GPU kernel each) of each variant's loss")
    args = parser.parse_args()
    variants = {"independent": dict(method="independent"), "collab": dict(method="collab")}
    if args.dense:
        variants["collab-dense"] = dict(method="collab")
    if args.terms:
        variants["hfd-only"] = dict(method="collab", use_region=False, use_pixel=False)
        variants["region-only"] = dict(method="collab", use_hfd=False, use_pixel=False)
        variants["pixel-only"] = dict(method="collab", use_hfd=False, use_region=False)
    methods = tuple(variants)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    torch.manual_seed(0)
    width = args.decoder_channels  # as the trainer builds them: ASPP and decoder of the CNN, all-MLP decoder of the ViT
    cnn = build_student(args.cnn, args.classes, aspp_channels=width, decoder_channels=width)
    vit = build_student(args.vit, args.classes, decoder_channels=width)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, args.classes, (args.batch, args.size, args.size))
    y[:, : args.size // 8] = 255  # some ignore, as in real labels
    losses = {m: CollaborativeLoss(cnn, vit, **variants[m]) for m in methods}
    cnn, vit, x, y = cnn.to(device), vit.to(device), x.to(device), y.to(device)
    losses = {m: loss.to(device) for m, loss in losses.items()}
    if args.dense:
        losses["collab-dense"].region.gather_cells = False
    optimisers = {
        m: torch.optim.AdamW(list(cnn.parameters()) + list(vit.parameters()) + list(losses[m].parameters()), lr=1e-4)
        for m in methods
    }
    with torch.no_grad(), autocast:
        fixed = cnn(x), vit(x)

    def loss_only(method):
        with autocast:
            total, _ = losses[method](*as_leaves(fixed), y, progress=0.5)
        total.backward()

    def train_step(method):
        optimisers[method].zero_grad(set_to_none=True)
        with autocast:
            total, _ = losses[method](cnn(x), vit(x), y, progress=0.5)
        total.backward()
        optimisers[method].step()

    if args.count_ops:
        for m in methods:
            forward, backward = count_ops(losses[m], fixed, y, autocast)
            print(f"ops   {m:12s} forward {forward:5d}  backward {backward:5d}  total {forward + backward:5d}")

    results = {}
    for name, fn in (("loss", loss_only), ("step", train_step)):
        for _ in range(args.warmup):
            for m in methods:
                fn(m)
        times = {m: [] for m in methods}
        for _ in range(args.repeats):
            for m in methods:
                times[m].append(timed(lambda: fn(m), device))
        results[name] = times

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"threads {args.threads}"
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, {where}, "
          f"cuda available: {torch.cuda.is_available()}, {args.precision}")
    print(f"setup: batch {args.batch}, {args.size}x{args.size}, {args.cnn} + {args.vit}, decoders {args.decoder_channels} wide, {args.classes} classes, "
          f"{args.warmup} warm-up + {args.repeats} timed repeats per method, interleaved; median (min-max) in ms")
    for name, times in results.items():
        for m in methods:
            t = times[m]
            print(f"{name:5s} {m:12s} {1e3 * statistics.median(t):9.1f}  ({1e3 * min(t):.1f}-{1e3 * max(t):.1f})")
    step = {m: statistics.median(results["step"][m]) for m in methods}
    loss = {m: statistics.median(results["loss"][m]) for m in methods}
    ratios = [c / i for c, i in zip(results["step"]["collab"], results["step"]["independent"])]
    print(f"collab loss overhead vs independent loss: {1e3 * (loss['collab'] - loss['independent']):.1f} ms per step")
    print(f"collab/independent step ratio (medians): {step['collab'] / step['independent']:.3f}  (target <= 1.10)")
    print(f"collab/independent step ratio (median of paired repeats): {statistics.median(ratios):.3f}")
    if args.dense:
        dense = [c / i for c, i in zip(results["step"]["collab-dense"], results["step"]["independent"])]
        print(f"collab-dense/independent step ratio (medians): {step['collab-dense'] / step['independent']:.3f}; "
              f"paired: {statistics.median(dense):.3f}")


if __name__ == "__main__":
    main()
