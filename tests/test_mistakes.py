"""collab_lib.mistakes: with every switch at its default each plain version is the kit's loss (value, masks,
gradients); each switch changes it (otherwise it could name no mistake)."""
import pytest
import torch
import torch.nn.functional as F

from collab_lib import mistakes
from collab_lib.losses import DMLLoss, HFDLoss, KDCLLoss, PixelBSDLoss, RegionBSDLoss


def _logits(seed=0):
    g = torch.Generator().manual_seed(seed)
    z_c, z_v = 2 * torch.randn(2, 5, 6, 7, generator=g), 2 * torch.randn(2, 5, 6, 7, generator=g)
    target = torch.randint(0, 5, (2, 6, 7), generator=g)
    target[0, :2] = 255
    return z_c, z_v, target


def _value_and_grads(fn, tensors):
    leaves = [t.clone().requires_grad_() for t in tensors]
    out = fn(*leaves)
    loss = out[0] if isinstance(out, tuple) else out
    return out, torch.autograd.grad(loss, leaves)


@pytest.mark.parametrize("T", [1.0, 2.0])
@pytest.mark.parametrize("kwargs, kit", [({}, {}), ({"require_correct": False}, {"require_correct": False}),
                                         ({"learner_wrong": True}, {"require_learner_wrong": True}),
                                         ({"select": False}, {"selective": False})])
def test_pixel_bsd_is_the_kits(T, kwargs, kit):
    z_c, z_v, target = _logits()
    (loss, cnn, vit), grads = _value_and_grads(lambda c, v: mistakes.pixel_bsd(c, v, target, T, **kwargs), (z_c, z_v))
    (kit_loss, info), kit_grads = _value_and_grads(lambda c, v: PixelBSDLoss(temperature=T, **kit)(c, v, target), (z_c, z_v))
    torch.testing.assert_close(loss, kit_loss)
    assert torch.equal(cnn, info["cnn_teaches"]) and torch.equal(vit, info["vit_teaches"])
    for a, b in zip(grads, kit_grads):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("T", [1.0, 2.0])
def test_dml_and_kdcl_are_the_kits(T):
    z_c, z_v, target = _logits(1)
    for mine, kit in ((mistakes.dml, DMLLoss), (mistakes.kdcl, KDCLLoss)):
        value, grads = _value_and_grads(lambda c, v: mine(c, v, target, T), (z_c, z_v))
        (kit_value, _), kit_grads = _value_and_grads(lambda c, v: kit(temperature=T)(c, v, target), (z_c, z_v))
        torch.testing.assert_close(value, kit_value)
        for a, b in zip(grads, kit_grads):
            torch.testing.assert_close(a, b)


def test_distill_term_is_the_softened_kl_times_t_squared():
    g = torch.Generator().manual_seed(2)
    z_t, z_s = torch.randn(7, generator=g), torch.randn(7, generator=g)
    log_q = F.log_softmax(z_t / 2, 0)
    expected = 4 * (log_q.exp() * (log_q - F.log_softmax(z_s / 2, 0))).sum()
    torch.testing.assert_close(mistakes.distill_term(z_t, z_s, 2.0), expected)


def test_region_bsd_is_the_kits_with_partial_regions_and_ignore():
    g = torch.Generator().manual_seed(3)
    embed_c, embed_v = torch.randn(1, 4, 3, 3, generator=g), torch.randn(1, 3, 3, 3, generator=g)
    logits_c, logits_v = torch.randn(1, 5, 12, 12, generator=g), torch.randn(1, 5, 12, 12, generator=g)
    target = torch.randint(0, 5, (1, 12, 12), generator=g)
    target[0, :3, :5] = 255
    target[0, 8:, 8:] = 255  # the partial bottom-right region has no valid pixel
    kit = RegionBSDLoss(4, 3, region_size=2)
    valid = target != 255
    label = torch.where(valid, target, torch.zeros_like(target))
    ce = [torch.where(valid, F.cross_entropy(z, label, reduction="none"), torch.zeros(())) for z in (logits_c, logits_v)]
    params = list(kit.parameters())
    leaves = [embed_c.clone().requires_grad_(), embed_v.clone().requires_grad_()]
    loss, direction, r_c, r_v = mistakes.region_bsd(*leaves, *ce, target, kit.to_cnn, kit.to_vit, 2)
    kit_leaves = [embed_c.clone().requires_grad_(), embed_v.clone().requires_grad_()]
    kit_loss, info = kit(*kit_leaves, logits_c, logits_v, target)
    torch.testing.assert_close(loss, kit_loss)
    assert torch.equal(direction, info["direction"])
    torch.testing.assert_close(r_c, info["region_ce_cnn"], equal_nan=True)
    for a, b in zip(torch.autograd.grad(loss, leaves + params), torch.autograd.grad(kit_loss, kit_leaves + params)):
        torch.testing.assert_close(a, b)
    # every switch changes something on this case
    for switch in (dict(reverse_direction=True), dict(count_ignore=True), dict(normaliser="valid"), dict(border="full")):
        other, other_direction, other_c, _ = mistakes.region_bsd(*leaves, *ce, target, kit.to_cnn, kit.to_vit, 2, **switch)
        changed = (not torch.allclose(other, loss) or not torch.equal(other_direction, direction)
                   or not torch.allclose(other_c, r_c, equal_nan=True))
        assert changed, switch


def test_feature_d_is_hfds_distance():
    g = torch.Generator().manual_seed(4)
    hfd = HFDLoss(cnn_channels=8, vit_channels=4)
    low_c, low_v = torch.randn(2, 8, 16, 16, generator=g), torch.randn(2, 4, 16, 16, generator=g)
    project = lambda m, x: m(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # noqa: E731
    mine = (mistakes.feature_d(project(hfd.attn, low_c), low_v).mean()
            + mistakes.feature_d(project(hfd.mlp, low_v), low_c).mean())
    torch.testing.assert_close(mine, hfd(low_c, low_v)[0])


@pytest.mark.parametrize("switch", [dict(reverse=True), dict(t_power=0), dict(detach=False), dict(normaliser="valid"),
                                    dict(normaliser="sum"), dict(require_correct=False), dict(swap_masks=True)])
def test_every_pixel_switch_changes_the_value_masks_or_gradients(switch):
    z_c, z_v, target = _logits(5)
    (loss, cnn, vit), grads = _value_and_grads(lambda c, v: mistakes.pixel_bsd(c, v, target, 2.0), (z_c, z_v))
    (m_loss, m_cnn, m_vit), m_grads = _value_and_grads(lambda c, v: mistakes.pixel_bsd(c, v, target, 2.0, **switch),
                                                       (z_c, z_v))
    same = (torch.allclose(loss, m_loss) and torch.equal(cnn, m_cnn) and torch.equal(vit, m_vit)
            and all(torch.allclose(a, b) for a, b in zip(grads, m_grads)))
    assert not same, switch


def test_every_switch_has_a_message():
    for name in ("reverse", "t_power=0", "detach=False", "require_correct=False", "normaliser=valid", "count_ignore",
                 "empty=0", "grid=floor", "reverse_direction"):
        assert mistakes.MISTAKES[name]
