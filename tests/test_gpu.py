"""What only a GPU can show: the kit on CUDA. Skipped where CUDA is absent (CI, the 2-core CPU machines).

Run on a lent GPU with `python -m pytest tests/test_gpu.py` (benchmarks/gpu_session.sh does, and
benchmarks/RESULTS.md records what it found). Each test proves a claim the CPU tests can only
approximate:
- no loss and no training step makes the host wait for the device (CUDA's own sync detector,
  not the source scan and meta-device test of test_losses_collaborative.py);
- the losses give the CPU's values and gradients on CUDA (the dense region path against the
  CPU's gathered one), and stay finite and float32 under bf16 autocast;
- the trainer runs on CUDA with its GPU defaults (bf16, channels-last), resumes exactly, and
  its checkpoints load on a machine without a GPU;
- `compile=True` (students and the loss's terms compiled) trains and agrees with eager.
"""
import json
import warnings

import pytest
import torch

from collab_lib.config import TrainConfig
from collab_lib.losses import CollaborativeLoss
from collab_lib.models import build_student
from collab_lib.optim import build_optimizers
from collab_lib.train import build_students, train, train_step

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_session.sh)")

METHODS = ("independent", "dml", "kdcl", "collab")


def needs_bf16():
    """Skip, saying why, on a GPU without bf16 (before Ampere): the trainer picks fp32 there."""
    if not torch.cuda.is_bf16_supported():
        pytest.skip(f"{torch.cuda.get_device_name()} has no bf16 (the trainer runs fp32 there)")


@pytest.fixture(autouse=True)
def exact_fp32():
    """fp32 means fp32 here: TF32 matmuls and convolutions would differ from the CPU by ~1e-3."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def students(classes=5, width=32, seed=0):
    torch.manual_seed(seed)
    cnn = build_student("deeplabv3plus_resnet18", classes, aspp_channels=width, decoder_channels=width)
    vit = build_student("segformer_b0", classes, decoder_channels=width)
    return cnn, vit


def batch(classes=5, size=64, seed=1):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(2, 3, size, size, generator=g)
    labels = torch.randint(0, classes, (2, size, size), generator=g)
    labels[:, : size // 8] = 255  # some ignore
    return images, labels


def as_leaves(outs, device=None):
    """StudentOutputs as fresh leaves that collect gradients (on `device`, if given; graphs cut off)."""
    return [o._replace(**{k: getattr(o, k).detach().to(device).clone().requires_grad_()
                          for k in ("low", "embed", "logits")}) for o in outs]


def outputs_with_grad(cnn, vit, images):
    """Both students' outputs as leaves that collect gradients (students' own graphs cut off)."""
    with torch.no_grad():
        return as_leaves((cnn(images), vit(images)))


def sync_warnings(fn):
    """Run fn under CUDA's sync debug mode; return the messages of every host-device synchronisation."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return [str(w.message).splitlines()[0] for w in caught
            if "synchronizing" in str(w.message) and "prototype feature" not in str(w.message)]


@pytest.mark.parametrize("method", METHODS)
def test_losses_never_wait_for_the_device(method):
    """Forward and backward of every method's loss on CUDA: no synchronising call (CUDA's detector)."""
    cnn, vit = students()
    loss_fn = CollaborativeLoss(cnn, vit, method=method, warmup=0.0).cuda()
    images, labels = batch()
    outs = outputs_with_grad(cnn.cuda(), vit.cuda(), images.cuda())
    labels = labels.cuda()
    loss_fn(*outs, labels, 0.5)  # warm-up: first-call allocations and kernel loads are not the question

    def step():
        total, _ = loss_fn(*outs, labels, 0.5)
        total.backward()

    assert sync_warnings(step) == []


def test_the_sync_detector_can_fail():
    """The detector above sees a synchronisation when there is one (else the test above proves nothing)."""
    x = torch.ones(4, device="cuda")
    assert sync_warnings(lambda: x.sum().item())


def test_the_metric_update_never_waits_for_the_device():
    """ConfusionMatrix.update on CUDA logits at stride 4 with ignored pixels: no sync (its docstring's claim),
    and the same matrix as on the CPU."""
    from collab_lib.metrics import ConfusionMatrix

    torch.manual_seed(0)
    logits, target = torch.randn(2, 5, 8, 16), torch.randint(0, 5, (2, 32, 64))
    target[:, :4] = 255
    on_cpu, on_cuda = ConfusionMatrix(5), ConfusionMatrix(5, device="cuda")
    on_cpu.update(logits, target)
    logits, target = logits.cuda(), target.cuda()
    on_cuda.update(logits, target)  # warm-up: kernels load
    on_cuda.reset()
    assert sync_warnings(lambda: on_cuda.update(logits, target)) == []
    assert torch.equal(on_cuda.matrix.cpu(), on_cpu.matrix)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_whole_training_step_never_waits_for_the_device(precision):
    """train_step as the trainer runs it on CUDA (fused SGD / AdamW, channels-last, autocast): no sync."""
    if precision == "bf16":
        needs_bf16()
    config = TrainConfig(method="collab", warmup=0.0, device="cuda", run_dir="unused")
    cnn, vit = students()
    loss_fn = CollaborativeLoss(cnn, vit, method="collab", warmup=0.0)
    for module in (cnn, vit, loss_fn):
        module.to(device="cuda", memory_format=torch.channels_last)
    opt_cnn, opt_vit = build_optimizers(cnn, vit, loss_fn, config, torch.device("cuda"))
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    images, labels = batch()
    images, labels = images.cuda().contiguous(memory_format=torch.channels_last), labels.cuda()
    dtype = torch.bfloat16 if precision == "bf16" else None

    def step():
        return train_step(cnn, vit, loss_fn, opt_cnn, opt_vit, scaler, images, labels, 0.5, dtype)

    step()  # the optimizers' state is created on the first step
    assert sync_warnings(step) == []
    assert torch.isfinite(step()["loss"]).item()


@pytest.mark.parametrize("method", METHODS)
def test_cuda_gives_the_cpus_values_and_gradients(method):
    """The same loss on CPU (region connectors on the gathered cells) and CUDA (dense, masked): the same
    total, terms and gradients, up to float rounding."""
    cnn, vit = students()
    images, labels = batch()
    outs_cpu = outputs_with_grad(cnn, vit, images)  # once, on the CPU: the students' dropout draws differ by device
    results = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(3)  # the same projectors and connectors on both devices
        loss_fn = CollaborativeLoss(cnn, vit, method=method, warmup=0.0).to(device)
        outs = as_leaves(outs_cpu, device)
        total, terms = loss_fn(*outs, labels.to(device), 0.5)
        leaves = [t for o in outs for t in (o.low, o.embed, o.logits)] + list(loss_fn.parameters())
        grads = torch.autograd.grad(total, leaves, allow_unused=True)
        results[device] = total, terms, grads
    (total_cpu, terms_cpu, grads_cpu), (total_gpu, terms_gpu, grads_gpu) = results["cpu"], results["cuda"]
    torch.testing.assert_close(total_gpu.cpu(), total_cpu, rtol=1e-4, atol=1e-5)
    for name in terms_cpu:
        torch.testing.assert_close(terms_gpu[name].cpu(), terms_cpu[name], rtol=1e-4, atol=1e-5, msg=name)
    for a, b in zip(grads_cpu, grads_gpu):
        if a is None:
            assert b is None
        else:
            torch.testing.assert_close(b.cpu(), a, rtol=1e-3, atol=1e-6)
    if method == "collab":  # both directions were exercised, so the comparison covered both connectors
        assert 0 < terms_cpu["region_frac_cnn_teaches"] < 1 and 0 < terms_cpu["region_frac_vit_teaches"] < 1


def test_bf16_autocast_keeps_the_loss_in_float32():
    """Under bf16 autocast on CUDA the students emit bf16; the loss comes out float32 and finite, and
    equals the loss of the same bf16 outputs computed without autocast (CE, KL and distances in fp32)."""
    needs_bf16()
    cnn, vit = students()
    cnn, vit = cnn.cuda(), vit.cuda()
    loss_fn = CollaborativeLoss(cnn, vit, method="collab", warmup=0.0).cuda()
    images, labels = batch()
    images, labels = images.cuda(), labels.cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        outs = cnn(images), vit(images)
        assert outs[0].logits.dtype == torch.bfloat16
        total, terms = loss_fn(*outs, labels, 0.5)
    assert total.dtype == torch.float32 and all(t.dtype == torch.float32 for t in terms.values())
    assert torch.isfinite(total).item()
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in loss_fn.parameters() if p.grad is not None)
    # The same bf16 outputs, widened to float32, without autocast: only the projectors' and connectors'
    # matmuls ran in bf16 above, so the two agree to bf16's precision.
    plain, _ = loss_fn(*[o._replace(**{k: getattr(o, k).detach().float() for k in ("low", "embed", "logits")})
                         for o in outs], labels, 0.5)
    torch.testing.assert_close(total.detach(), plain, rtol=2e-2, atol=1e-3)


def tiny(run_dir, **overrides) -> TrainConfig:
    """test_train.py's toy run (64x64, batch 2, 4 steps), on CUDA, with a checkpoint every 2 steps."""
    from test_train import tiny as tiny_on_cpu  # tests/ is on sys.path under pytest

    return tiny_on_cpu(run_dir, **{"device": "cuda", "checkpoint_interval": 2, **overrides})


def test_trainer_on_cuda_uses_its_gpu_defaults_and_resumes_exactly(tmp_path):
    """bf16 and channels-last by default on CUDA; stopped at step 2 and resumed, the run ends where a
    straight run ends (bf16 and cuDNN autotuning are not bitwise reproducible: close, not equal)."""
    straight = train(tiny(tmp_path / "straight"))
    info = json.loads((straight / "config.json").read_text())
    metrics = json.loads((straight / "metrics.json").read_text())
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp32"  # pre-Ampere cards have no bf16: fp32
    assert info["precision"] == expected and info["channels_last"] is True
    assert metrics["device"].startswith("cuda") and metrics["precision"] == expected and metrics["steps"] == 4

    train(tiny(tmp_path / "resumed", stop_at_step=2))
    resumed = train(tiny(tmp_path / "resumed", resume=True))
    a = json.loads((straight / "metrics.json").read_text())["final_val"]
    b = json.loads((resumed / "metrics.json").read_text())["final_val"]
    assert abs(a["cnn"]["miou"] - b["cnn"]["miou"]) < 0.05 and abs(a["vit"]["miou"] - b["vit"]["miou"]) < 0.05


def test_a_cuda_checkpoint_loads_on_a_machine_without_one(tmp_path):
    """weights_only=True, map_location='cpu': plain tensors, no CUDA storage needed; the students
    evaluate on the CPU as on the GPU."""
    run_dir = train(tiny(tmp_path / "run", steps=2))
    state = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
    cnn, vit = build_students(TrainConfig.from_dict(state["config"]), num_classes=11)
    cnn.load_state_dict(state["cnn"])
    vit.load_state_dict(state["vit"])
    images, _ = batch(classes=11)
    with torch.no_grad():
        on_cpu = cnn.eval()(images).logits
        on_gpu = cnn.cuda()(images.cuda()).logits.cpu()
    torch.testing.assert_close(on_gpu, on_cpu, rtol=1e-3, atol=1e-3)


def test_compiled_training_runs_and_agrees_with_eager(tmp_path, monkeypatch):
    """compile=True: the students and the loss's terms go through torch.compile; 4 steps in fp32 land
    where eager lands (inductor's fused kernels round differently: close, not equal). Inductor's own
    random numbers are switched off, so that dropout draws the eager masks."""
    import torch._inductor.config

    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)
    eager = train(tiny(tmp_path / "eager", precision="fp32", method="collab", warmup=0.0))
    compiled = train(tiny(tmp_path / "compiled", precision="fp32", method="collab", warmup=0.0, compile=True))
    losses = {}
    for name, run_dir in (("eager", eager), ("compiled", compiled)):
        history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
        losses[name] = [e["loss"] for e in history if e.get("kind") == "train"]
    assert len(losses["eager"]) == len(losses["compiled"]) == 4
    assert losses["eager"][0] == pytest.approx(losses["compiled"][0], rel=1e-3)
    assert losses["eager"] == pytest.approx(losses["compiled"], rel=1e-2)
