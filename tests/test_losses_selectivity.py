"""The selectivity switch (research/selectivity.md): collab's BSD terms without their selection.

selective=False must transfer on every valid region / pixel in both directions, at the same
weights; its pixel term is then DML's loss; on and off differ only in the masks (same per-pixel KL,
same per-cell distances, same HFD).
"""
import pytest
import torch

from collab_lib.config import TrainConfig
from collab_lib.experiments import CONFIGURATIONS
from collab_lib.losses import CollaborativeLoss, DMLLoss, PixelBSDLoss, RegionBSDLoss
from collab_lib.models import build_student
from collab_lib.students import build_loss
from test_losses_pixel import crafted as crafted_pixels
from test_losses_region import crafted as crafted_regions

IGNORE = 255


def test_pixel_term_without_selection_transfers_every_valid_pixel_both_ways():
    logits_c, logits_v, label = crafted_pixels()
    valid = label != IGNORE
    _, info = PixelBSDLoss(selective=False)(logits_c, logits_v, label)
    assert torch.equal(info["cnn_teaches"], valid) and torch.equal(info["vit_teaches"], valid)
    assert info["frac_cnn_teaches"].item() == 1.0 and info["frac_vit_teaches"].item() == 1.0
    # The selective rule keeps only some of them (the crafted pixels have every case): the switch changes the masks.
    _, selective = PixelBSDLoss()(logits_c, logits_v, label)
    assert selective["cnn_teaches"].sum() < valid.sum() and selective["vit_teaches"].sum() < valid.sum()
    # The other rules do not bring the selection back.
    for kwargs in (dict(require_correct=False), dict(require_learner_wrong=True)):
        _, other = PixelBSDLoss(selective=False, **kwargs)(logits_c, logits_v, label)
        assert torch.equal(other["cnn_teaches"], valid) and torch.equal(other["vit_teaches"], valid)


@pytest.mark.parametrize("T", [1.0, 2.0])
def test_pixel_term_without_selection_is_dml(T):
    """Value and gradients: PixelBSDLoss(selective=False) is DMLLoss at the same temperature."""
    g = torch.Generator().manual_seed(3)
    logits_c = torch.randn(2, 5, 6, 7, generator=g, requires_grad=True)
    logits_v = torch.randn(2, 5, 6, 7, generator=g, requires_grad=True)
    label = torch.randint(0, 5, (2, 24, 28), generator=g)
    label[0, :5] = IGNORE
    pixel, _ = PixelBSDLoss(temperature=T, selective=False)(logits_c, logits_v, label)
    dml, _ = DMLLoss(temperature=T)(logits_c, logits_v, label)
    torch.testing.assert_close(pixel, dml)
    for a, b in zip(torch.autograd.grad(pixel, (logits_c, logits_v)), torch.autograd.grad(dml, (logits_c, logits_v))):
        torch.testing.assert_close(a, b)
    # And the selective term is not (otherwise the comparison could not tell the arms apart).
    selective, _ = PixelBSDLoss(temperature=T)(logits_c, logits_v, label)
    assert abs(selective.item() - dml.item()) > 1e-3


def test_pixel_on_and_off_differ_only_in_the_masks():
    """The per-pixel KL is the same; each direction's loss is that KL's mean over its own mask."""
    logits_c, logits_v, label = crafted_pixels()
    on_loss, on = PixelBSDLoss()(logits_c, logits_v, label)
    off_loss, off = PixelBSDLoss(selective=False)(logits_c, logits_v, label)
    # Where the selective rule transfers one way, the non-selective map carries that KL plus the other way's.
    from collab_lib.losses.pixel_bsd import kl_map
    log_p_c, log_p_v = torch.log_softmax(logits_c, 1), torch.log_softmax(logits_v, 1)
    kl_vit_learns, kl_cnn_learns = kl_map(log_p_c, log_p_v), kl_map(log_p_v, log_p_c)
    valid = label != IGNORE
    torch.testing.assert_close(off["kl_map"], torch.where(valid, kl_vit_learns + kl_cnn_learns, torch.zeros_like(kl_vit_learns)))
    for info, loss in ((on, on_loss), (off, off_loss)):
        want = (kl_vit_learns[info["cnn_teaches"]].mean() if info["cnn_teaches"].any() else 0) + \
            (kl_cnn_learns[info["vit_teaches"]].mean() if info["vit_teaches"].any() else 0)
        torch.testing.assert_close(loss, torch.as_tensor(want, dtype=torch.float32))


def test_region_term_without_selection_transfers_every_valid_region_both_ways():
    embed_c, embed_v, logits_c, logits_v, label = crafted_regions()
    for t in (embed_c, embed_v):
        t.requires_grad_(True)
    torch.manual_seed(0)
    on_fn = RegionBSDLoss(6, 5, region_size=2)
    off_fn = RegionBSDLoss(6, 5, region_size=2, selective=False)
    off_fn.load_state_dict(on_fn.state_dict())  # the same connectors: only the masks may differ
    on_loss, on = on_fn(embed_c, embed_v, logits_c, logits_v, label)
    off_loss, off = off_fn(embed_c, embed_v, logits_c, logits_v, label)
    valid = off["region_valid"]
    assert valid[0].tolist() == [[True] * 4, [True, False, True, True]]
    assert torch.equal(off["cnn_teaches"], valid) and torch.equal(off["vit_teaches"], valid)
    assert off["frac_cnn_teaches"].item() == 1.0 and off["frac_vit_teaches"].item() == 1.0
    assert on["direction"][0].tolist() == [[1, 1, 0, -1], [1, 0, -1, -1]]  # the selective map is unchanged
    # Same per-region distances where the selective run computed them; each direction's mean over its own regions.
    one_way = on["cnn_teaches"]
    torch.testing.assert_close(off["dist_vit_learns"][one_way], on["dist_vit_learns"][one_way])
    torch.testing.assert_close(off["loss_cnn_teaches"], off["dist_vit_learns"][valid].mean())
    torch.testing.assert_close(off["loss_vit_teaches"], off["dist_cnn_learns"][valid].mean())
    torch.testing.assert_close(off_loss, off["loss_cnn_teaches"] + off["loss_vit_teaches"])
    # Gradients: every region with a valid pixel now teaches both students (the all-ignore region teaches neither).
    grad_c, grad_v = torch.autograd.grad(off_loss, (embed_c, embed_v))
    per_region = lambda g: torch.nn.functional.max_pool2d(g.abs().sum(1, keepdim=True), 2)[0, 0] > 0  # noqa: E731
    assert torch.equal(per_region(grad_c), valid[0]) and torch.equal(per_region(grad_v), valid[0])


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    return (build_student("deeplabv3plus_resnet18", 4, aspp_channels=16, decoder_channels=16, skip_channels=8),
            build_student("segformer_b0", 4, decoder_channels=16))


def test_collaborative_loss_without_selection_same_weights_same_hfd(pair):
    """The control arm changes only the BSD masks: HFD, the CE terms, the weights and the ramp are the same."""
    cnn, vit = pair
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 64, 64, generator=g)
    y = torch.randint(0, 4, (2, 64, 64), generator=g)
    with torch.no_grad():
        out_c, out_v = cnn(x), vit(x)
    torch.manual_seed(1)
    on_fn = CollaborativeLoss(cnn, vit, warmup=0.5)
    off_fn = CollaborativeLoss(cnn, vit, warmup=0.5, selective=False)
    off_fn.load_state_dict(on_fn.state_dict())
    on_total, on = on_fn(out_c, out_v, y, progress=0.25)
    off_total, off = off_fn(out_c, out_v, y, progress=0.25)
    for key in ("ce_cnn", "ce_vit", "hfd", "ramp"):
        assert torch.equal(on[key], off[key]), key
    assert off["pixel_frac_cnn_teaches"].item() == 1.0 and off["region_frac_vit_teaches"].item() == 1.0
    dml, _ = DMLLoss()(out_c.logits, out_v.logits, y)
    torch.testing.assert_close(off["pixel"], dml)
    want = off["ce_cnn"] + off["ce_vit"] + 0.5 * (0.1 * off["hfd"] + 0.1 * off["region"] + 0.3 * off["pixel"])
    torch.testing.assert_close(off_total, want)
    assert not torch.equal(on["pixel"], off["pixel"])


def test_the_settings_reach_the_loss_and_the_grid():
    """selective and w_dml are TrainConfig settings that build_loss passes on; the study's configurations use them."""
    torch.manual_seed(0)
    cnn = build_student("deeplabv3plus_resnet18", 4, aspp_channels=16, decoder_channels=16, skip_channels=8)
    vit = build_student("segformer_b0", 4, decoder_channels=16)
    off = build_loss(TrainConfig(selective="false"), cnn, vit)
    assert off.region.selective is False and off.pixel.selective is False
    on = build_loss(TrainConfig(), cnn, vit)
    assert on.region.selective is True and on.pixel.selective is True
    assert build_loss(TrainConfig(method="dml", w_dml=0.3), cnn, vit).weights == {"dml": 0.3}
    assert build_loss(TrainConfig(method="dml"), cnn, vit).weights == {"dml": 1.0}
    assert CONFIGURATIONS["collab_nonselective"] == dict(method="collab", selective=False)
    assert CONFIGURATIONS["dml_w0.3"] == dict(method="dml", w_dml=0.3)
    assert TrainConfig().w_pixel == CONFIGURATIONS["dml_w0.3"]["w_dml"]  # matched to collab's pixel weight
