"""CollaborativeLoss with real tiny students; bf16 autocast; bad input; no host-device sync in the hot path."""
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import collab_lib.losses as losses
from collab_lib.losses import METHODS, CollaborativeLoss, DMLLoss, KDCLLoss, PixelBSDLoss, RegionBSDLoss
from collab_lib.models import build_student

IGNORE = 255
K = 5


@pytest.fixture(scope="module")
def students():
    """The kit's real students (R18 DeepLabV3+, MiT-B0 SegFormer) with narrow heads, to keep the tests fast."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the test machine is shared; one thread is steadier under load
    torch.manual_seed(0)
    yield (build_student("deeplabv3plus_resnet18", K, aspp_channels=32, decoder_channels=32, skip_channels=16),
           build_student("segformer_b0", K, decoder_channels=32))
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 64, 64, generator=g)
    y = torch.randint(0, K, (2, 64, 64), generator=g)
    y[0, :16] = IGNORE
    return x, y


@pytest.fixture(scope="module")
def outputs(students, batch):
    """One forward of both students (with graph), shared by the tests: each backward keeps the graph."""
    cnn, vit = students
    return cnn(batch[0]), vit(batch[0])


def detached(out, dtype=torch.float32):
    return out._replace(**{k: getattr(out, k).detach().to(dtype).requires_grad_() for k in ("low", "embed", "logits")})


def ce_reference(logits, y):
    up = F.interpolate(logits.float(), size=y.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(up, y, ignore_index=IGNORE)


EXPECTED_KEYS = {
    "independent": set(),
    "dml": {"dml"},
    "kdcl": {"kdcl"},
    "collab": {"hfd", "hfd_cnn_learns", "hfd_vit_learns", "region", "pixel", "region_frac_cnn_teaches",
               "region_frac_vit_teaches", "pixel_frac_cnn_teaches", "pixel_frac_vit_teaches"},
}


@pytest.mark.parametrize("method", METHODS)
def test_each_method_trains_both_students_and_its_own_parameters(students, batch, outputs, method):
    cnn, vit = students
    y = batch[1]
    loss_fn = CollaborativeLoss(cnn, vit, method=method)
    cnn.zero_grad(set_to_none=True)
    vit.zero_grad(set_to_none=True)
    out_c, out_v = outputs
    total, terms = loss_fn(out_c, out_v, y, progress=1.0)
    assert total.dim() == 0 and total.dtype == torch.float32 and torch.isfinite(total)
    assert set(terms) == {"loss", "ce_cnn", "ce_vit", "ramp", "distill"} | EXPECTED_KEYS[method]
    assert all(t.dim() == 0 and not t.requires_grad and torch.isfinite(t) for t in terms.values())
    assert set(loss_fn.last_info) == {k for k in ("hfd", "region", "pixel", "dml", "kdcl") if k in terms}
    total.backward(retain_graph=True)
    assert cnn.classifier.weight.grad.abs().sum() > 0 and vit.classifier.weight.grad.abs().sum() > 0
    # Every parameter of the loss (projectors, connectors) gets a gradient: DDP needs no find_unused_parameters.
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in loss_fn.parameters())
    # The students are not registered in the loss: .parameters() is the loss's own.
    student_ids = {id(p) for p in list(cnn.parameters()) + list(vit.parameters())}
    assert not any(id(p) in student_ids for p in loss_fn.parameters())
    if method == "collab":
        assert loss_fn.hfd.attn[0].q.weight.grad.abs().sum() > 0
        assert loss_fn.region.to_cnn.weight.grad.abs().sum() > 0 and loss_fn.region.to_vit.weight.grad.abs().sum() > 0
        assert cnn.backbone.conv1.weight.grad.abs().sum() > 0  # HFD and the CE reach the stem
    if method == "independent":
        assert len(list(loss_fn.parameters())) == 0


def test_independent_is_the_sum_of_the_two_ce(students, batch, outputs):
    cnn, vit = students
    y = batch[1]
    out_c, out_v = map(detached, outputs)
    total, terms = CollaborativeLoss(cnn, vit, method="independent")(out_c, out_v, y)
    want_c, want_v = ce_reference(out_c.logits, y), ce_reference(out_v.logits, y)
    torch.testing.assert_close(terms["ce_cnn"], want_c)
    torch.testing.assert_close(total, want_c + want_v)


def test_ramp_and_weights(students, batch, outputs):
    cnn, vit = students
    y = batch[1]
    out_c, out_v = map(detached, outputs)
    loss_fn = CollaborativeLoss(cnn, vit, method="collab", warmup=0.2)
    total0, t0 = loss_fn(out_c, out_v, y, progress=0.0)
    assert t0["ramp"].item() == 0.0 and total0.item() == pytest.approx((t0["ce_cnn"] + t0["ce_vit"]).item(), rel=1e-6)
    _, half = loss_fn(out_c, out_v, y, progress=0.1)
    want_distill = 0.1 * half["hfd"] + 0.1 * half["region"] + 0.3 * half["pixel"]
    assert half["ramp"].item() == pytest.approx(0.5)
    assert half["distill"].item() == pytest.approx(want_distill.item(), rel=1e-5)
    assert half["loss"].item() == pytest.approx((half["ce_cnn"] + half["ce_vit"] + 0.5 * want_distill).item(), rel=1e-5)
    assert loss_fn(out_c, out_v, y, progress=0.7)[1]["ramp"].item() == 1.0
    no_warmup = CollaborativeLoss(cnn, vit, method="dml", warmup=0.0, w_dml=2.0)
    _, t = no_warmup(out_c, out_v, y, progress=0.0)
    assert t["ramp"].item() == 1.0
    assert t["loss"].item() == pytest.approx((t["ce_cnn"] + t["ce_vit"] + 2.0 * t["dml"]).item(), rel=1e-5)


def test_collab_terms_equal_the_losses_computed_on_their_own(students, batch, outputs):
    """CollaborativeLoss shares one log-softmax per student between CE, region and pixel BSD: same values, same gradients."""
    cnn, vit = students
    y = batch[1]
    out_c, out_v = map(detached, outputs)
    torch.manual_seed(2)
    loss_fn = CollaborativeLoss(cnn, vit, method="collab", warmup=0.0)
    total, terms = loss_fn(out_c, out_v, y)
    region, _ = loss_fn.region(out_c.embed, out_v.embed, out_c.logits, out_v.logits, y)
    pixel, _ = loss_fn.pixel(out_c.logits, out_v.logits, y)
    hfd, _ = loss_fn.hfd(out_c.low, out_v.low)
    ce_c, ce_v = losses.segmentation_ce(out_c.logits, y), losses.segmentation_ce(out_v.logits, y)
    torch.testing.assert_close(terms["ce_cnn"], ce_c.detach())
    torch.testing.assert_close(terms["region"], region.detach())
    torch.testing.assert_close(terms["pixel"], pixel.detach())
    alone = ce_c + ce_v + 0.1 * hfd + 0.1 * region + 0.3 * pixel
    torch.testing.assert_close(total, alone)
    tensors = [out_c.logits, out_v.logits, out_c.embed, out_v.embed, *loss_fn.parameters()]
    for a, b in zip(torch.autograd.grad(total, tensors), torch.autograd.grad(alone, tensors)):
        torch.testing.assert_close(a, b)


def test_learner_wrong_variant_reaches_the_pixel_term(students, batch, outputs):
    """require_learner_wrong=True: no pixel where both students are right transfers; the spec's rule does transfer there."""
    cnn, vit = students
    y = batch[1]
    out_c, out_v = map(detached, outputs)
    spec = CollaborativeLoss(cnn, vit, use_hfd=False, use_region=False)
    variant = CollaborativeLoss(cnn, vit, use_hfd=False, use_region=False, require_learner_wrong=True)
    for loss_fn, expect_both_right in ((spec, True), (variant, False)):
        loss_fn(out_c, out_v, y)
        info = loss_fn.last_info["pixel"]
        moving = info["cnn_teaches"] | info["vit_teaches"]
        assert bool((moving & info["both_right"]).any()) == expect_both_right
    assert variant.last_info["pixel"]["cnn_teaches"].any() or variant.last_info["pixel"]["vit_teaches"].any()


def test_ablation_switches_build_only_what_is_used(students):
    cnn, vit = students
    loss_fn = CollaborativeLoss(cnn, vit, use_hfd=False, use_region=False)
    assert not hasattr(loss_fn, "hfd") and not hasattr(loss_fn, "region") and isinstance(loss_fn.pixel, PixelBSDLoss)
    assert len(list(loss_fn.parameters())) == 0
    full = CollaborativeLoss(cnn, vit, region_size=4)
    assert isinstance(full.region, RegionBSDLoss) and full.region.region_size == 4
    assert isinstance(CollaborativeLoss(cnn, vit, method="dml").dml, DMLLoss)
    assert isinstance(CollaborativeLoss(cnn, vit, method="kdcl").kdcl, KDCLLoss)


def test_bf16_autocast_is_finite_and_float32_inside(students, batch, outputs):
    """Student outputs in bf16 (as under autocast) -> float32 loss and maps, finite, with finite gradients."""
    cnn, vit = students
    y = batch[1]
    out_c, out_v = (detached(o, torch.bfloat16) for o in outputs)
    loss_fn = CollaborativeLoss(cnn, vit, method="collab")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total, terms = loss_fn(out_c, out_v, y)
        dml, _ = DMLLoss()(out_c.logits, out_v.logits, y)
        kdcl, _ = KDCLLoss()(out_c.logits, out_v.logits, y)
    assert total.dtype == torch.float32 and torch.isfinite(total)
    assert dml.dtype == torch.float32 and torch.isfinite(dml) and kdcl.dtype == torch.float32 and torch.isfinite(kdcl)
    info = loss_fn.last_info
    assert info["pixel"]["kl_map"].dtype == torch.float32 and info["region"]["region_ce_cnn"].dtype == torch.float32
    assert info["hfd"]["cnn_learns_map"].dtype == torch.float32
    assert all(torch.isfinite(t) for t in terms.values())
    tensors = list(loss_fn.parameters()) + [out_c.logits, out_v.logits, out_c.embed, out_v.low]
    grads = torch.autograd.grad(total, tensors)
    assert all(torch.isfinite(g).all() for g in grads)
    assert all(g.abs().sum() > 0 for g in grads[-4:])  # every student output receives a gradient


def test_bad_inputs_raise_value_errors_naming_the_argument(students, outputs, batch):
    cnn, vit = students
    with pytest.raises(ValueError, match="cnn: expected a CNN student"):
        CollaborativeLoss(vit, cnn)
    with pytest.raises(ValueError, match="vit: expected a VIT student"):
        CollaborativeLoss(cnn, cnn)
    with pytest.raises(ValueError, match="independent, dml, kdcl, collab"):
        CollaborativeLoss(cnn, vit, method="mutual")
    logits = torch.randn(2, K, 16, 16)
    y = torch.randint(0, K, (2, 64, 64))
    loss_fn = PixelBSDLoss()
    with pytest.raises(ValueError, match="logits_vit: batch size 3"):
        loss_fn(logits, torch.randn(3, K, 16, 16), y)
    with pytest.raises(ValueError, match="logits_vit: 4 classes"):
        loss_fn(logits, torch.randn(2, 4, 16, 16), y)
    with pytest.raises(ValueError, match="target: batch size 1"):
        loss_fn(logits, logits, y[:1])
    with pytest.raises(ValueError, match=r"target: expected integer labels of shape \(B, H, W\)"):
        loss_fn(logits, logits, y[:, None])
    with pytest.raises(ValueError, match="target: expected an integer dtype"):
        loss_fn(logits, logits, y.float())
    with pytest.raises(ValueError, match="logits_cnn: spatial size 16x16 cannot be reconciled with target's 64x128"):
        loss_fn(logits, logits, torch.randint(0, K, (2, 64, 128)))
    region = RegionBSDLoss(6, 5, region_size=2)
    with pytest.raises(ValueError, match="embed_cnn: expected 6 channels"):
        region(torch.randn(2, 7, 16, 16), torch.randn(2, 5, 16, 16), logits, logits, y)
    with pytest.raises(ValueError, match="embed_vit.*cannot be reconciled"):
        region(torch.randn(2, 6, 16, 16), torch.randn(2, 5, 8, 16), logits, logits, y)
    out_c, out_v = outputs
    with pytest.raises(ValueError, match="out_cnn: expected a CNN student"):
        CollaborativeLoss(cnn, vit)(out_v, out_c, batch[1])


def test_embed_vit_of_another_size_is_resized_to_the_cnn_grid():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, K, (1, 64, 64), generator=g)
    loss, info = RegionBSDLoss(6, 5, region_size=4)(
        torch.randn(1, 6, 16, 16, generator=g), torch.randn(1, 5, 8, 8, generator=g),
        torch.randn(1, K, 16, 16, generator=g), torch.randn(1, K, 8, 8, generator=g), y,
    )
    assert info["direction"].shape == (1, 4, 4) and torch.isfinite(loss)


@pytest.mark.parametrize("method", METHODS)
def test_no_data_dependent_op_off_the_cpu(method):
    """Every method's loss, forward and backward, runs on 'meta' tensors (shapes only, no values): so off
    the CPU nothing in it reads a value from the device or picks a size from the data (either would make
    the host wait for an accelerator every step). The CPU-only gather of RegionBSDLoss is the one
    data-dependent op, and it is taken on the CPU only."""
    from types import SimpleNamespace

    from collab_lib.models import StudentOutput

    cnn = SimpleNamespace(kind="cnn", low_channels=8, embed_channels=12)
    vit = SimpleNamespace(kind="vit", low_channels=4, embed_channels=10)
    loss_fn = CollaborativeLoss(cnn, vit, method=method, region_size=4).to("meta")

    def output(kind, low, embed):
        return StudentOutput(*(torch.empty(2, c, 16, 16, device="meta", requires_grad=True) for c in (low, embed, K)), kind)

    outs = output("cnn", 8, 12), output("vit", 4, 10)
    target = torch.empty(2, 64, 64, dtype=torch.long, device="meta")
    total, terms = loss_fn(*outs, target)
    total.backward()
    assert total.device.type == "meta" and all(out.logits.grad is not None for out in outs)
    if method == "collab":  # every feature term ran; and the check can fail: the gather, forced off the CPU, is caught
        assert all(t.grad is not None for out in outs for t in (out.low, out.embed))
        loss_fn.region.gather_cells = True
        with pytest.raises(NotImplementedError):
            loss_fn(*outs, target)


def test_hot_path_has_no_host_device_sync():
    """No .item(), .tolist(), .cpu(), bool(tensor) style reads in the loss sources."""
    source = "\n".join(p.read_text() for p in Path(losses.__file__).parent.glob("*.py"))
    code = "\n".join(line.split("#")[0] for line in source.splitlines())
    for pattern in (r"\.item\(", r"\.tolist\(", r"\.cpu\(", r"\.numpy\(", r"\.any\(\)", r"\.all\(\)", r"nonzero\("):
        assert not re.search(pattern, code), pattern


@pytest.mark.parametrize("method", METHODS)
def test_compile_terms_wraps_every_term_and_keeps_the_state_dict(students, method):
    """compile_terms() (the trainer's compile=True) puts what forward calls of each term, and nothing
    else, behind torch.compile, in place: the module (HFD, DML, KDCL) or the BSD terms' second entry
    (from_ce_maps, from_log_probs: an instance attribute over the method). No '_orig_mod.' in the keys,
    so checkpoints load either way. Nothing is compiled until called: running it compiled is
    tests/test_gpu.py's (minutes on this CPU)."""
    loss_fn = CollaborativeLoss(*students, method=method)
    keys = list(loss_fn.state_dict())
    assert loss_fn.compile_terms() is loss_fn
    assert list(loss_fn.state_dict()) == keys
    entries = {"region": "from_ce_maps", "pixel": "from_log_probs"}
    compiled = set()
    for name, module in loss_fn.named_children():
        if name in entries:
            if hasattr(vars(module).get(entries[name]), "_torchdynamo_orig_callable"):
                compiled.add(name)
            assert getattr(module, "_compiled_call_impl", None) is None  # one compiled piece a term
        elif getattr(module, "_compiled_call_impl", None) is not None:
            compiled.add(name)
    assert compiled == {name for name, _ in loss_fn.named_children()}
    assert compiled == {"independent": set(), "dml": {"dml"}, "kdcl": {"kdcl"},
                        "collab": {"hfd", "region", "pixel"}}[method]
    assert getattr(loss_fn, "_compiled_call_impl", None) is None  # the ramp and the sum stay eager


def test_defaults_are_the_trainers_defaults():
    """CollaborativeLoss built by hand gets the weights the trainer uses (docs/method.md), not other ones."""
    import dataclasses
    import inspect

    from collab_lib.config import TrainConfig

    trainer = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    shared = {name: p.default for name, p in inspect.signature(CollaborativeLoss).parameters.items()
              if name in trainer and p.default is not inspect.Parameter.empty}
    assert {"w_hfd", "w_region", "w_pixel", "region_size", "temperature", "require_correct", "warmup"} <= set(shared)
    assert shared == {name: trainer[name] for name in shared}
    assert shared["w_pixel"] == 0.3


@pytest.mark.parametrize("method", METHODS)
def test_a_batch_without_a_valid_pixel_costs_zero_not_nan(students, outputs, method):
    """The training path: every label-dependent term is exactly 0 with zero (finite) gradients on the logits;
    only HFD, which reads no label, remains."""
    cnn, vit = students
    out_c, out_v = map(detached, outputs)
    ignored = torch.full((out_c.logits.shape[0], 64, 64), IGNORE)
    loss_fn = CollaborativeLoss(cnn, vit, method=method, warmup=0.0)
    total, terms = loss_fn(out_c, out_v, ignored)
    for name in ("ce_cnn", "ce_vit", "region", "pixel", "dml", "kdcl"):
        assert terms.get(name, torch.tensor(0.0)).item() == 0.0, name
    assert all(torch.isfinite(v) for v in terms.values())
    hfd = loss_fn.weights["hfd"] * terms["hfd"] if "hfd" in terms else torch.tensor(0.0)
    torch.testing.assert_close(total.detach(), hfd)
    for grad in torch.autograd.grad(total, [out_c.logits, out_v.logits], allow_unused=True):
        assert grad is None or (grad == 0).all()
