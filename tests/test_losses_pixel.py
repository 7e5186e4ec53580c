"""Pixel-wise BSD: the decision rule on crafted pixels, stop-gradient, own-count means, golden values."""
import math

import pytest
import torch
import torch.nn.functional as F

from collab_lib.losses import PixelBSDLoss

IGNORE = 255


def crafted():
    """Logits at label resolution (stride 1: no interpolation), 3 classes, labels (1, 2, 4).

    Probabilities chosen so every case of the rule appears once:
      (0,0) CNN right & confident, ViT wrong          -> CNN teaches
      (0,1) ViT right & confident, CNN wrong          -> ViT teaches
      (0,2) both right, CNN more confident            -> CNN teaches
      (0,3) both right, ViT more confident            -> ViT teaches
      (1,0) both wrong, CNN lower CE                  -> nothing (CNN teaches if require_correct=False)
      (1,1) identical predictions, both right (tie)   -> nothing
      (1,2) ignore label, CNN would be right          -> nothing
      (1,3) CNN right (p=.4) but ViT wrong with lower CE (p_label=.45) -> nothing (ViT if not require_correct)
    """
    label = torch.tensor([[[0, 1, 2, 0], [1, 2, IGNORE, 0]]])
    probs_c = [[(.9, .05, .05), (.6, .2, .2), (.05, .05, .9), (.5, .3, .2)],
               [(.2, .3, .5), (.2, .3, .5), (.9, .05, .05), (.4, .3, .3)]]
    probs_v = [[(.2, .7, .1), (.1, .8, .1), (.2, .2, .6), (.8, .1, .1)],
               [(.3, .1, .6), (.2, .3, .5), (.1, .1, .8), (.45, .55, 0.0001)]]
    to_logits = lambda p: torch.tensor(p).clamp_min(1e-6).log().permute(2, 0, 1).unsqueeze(0)  # noqa: E731
    return to_logits(probs_c), to_logits(probs_v), label


def test_decision_rule_on_crafted_pixels():
    logits_c, logits_v, label = crafted()
    _, info = PixelBSDLoss()(logits_c, logits_v, label)
    assert info["cnn_teaches"].dtype == torch.bool and info["cnn_teaches"].shape == (1, 2, 4)
    assert info["cnn_teaches"][0].tolist() == [[True, False, True, False], [False, False, False, False]]
    assert info["vit_teaches"][0].tolist() == [[False, True, False, True], [False, False, False, False]]
    assert info["both_right"][0].tolist() == [[False, False, True, True], [False, True, False, False]]
    assert info["both_wrong"][0].tolist() == [[False, False, False, False], [True, False, False, False]]
    assert info["frac_cnn_teaches"].item() == pytest.approx(2 / 7)  # 7 valid pixels
    assert info["frac_vit_teaches"].item() == pytest.approx(2 / 7)
    # The transferred-KL map is zero exactly where nothing is transferred.
    moving = info["cnn_teaches"] | info["vit_teaches"]
    assert (info["kl_map"][~moving] == 0).all() and (info["kl_map"][moving] > 0).all()


def test_without_correctness_condition_lower_ce_teaches():
    logits_c, logits_v, label = crafted()
    _, info = PixelBSDLoss(require_correct=False)(logits_c, logits_v, label)
    assert info["cnn_teaches"][0].tolist() == [[True, False, True, False], [True, False, False, False]]
    assert info["vit_teaches"][0].tolist() == [[False, True, False, True], [False, False, False, True]]


def test_learner_wrong_variant_moves_knowledge_only_onto_mistakes():
    """require_learner_wrong: the both-right pixels (0,2) and (0,3) stop transferring; corrections stay."""
    logits_c, logits_v, label = crafted()
    _, info = PixelBSDLoss(require_learner_wrong=True)(logits_c, logits_v, label)
    assert info["cnn_teaches"][0].tolist() == [[True, False, False, False], [False, False, False, False]]
    assert info["vit_teaches"][0].tolist() == [[False, True, False, False], [False, False, False, False]]
    assert not ((info["cnn_teaches"] | info["vit_teaches"]) & info["both_right"]).any()
    # Without the correctness condition: (1,0) both wrong, CNN lower CE -> CNN teaches (the ViT is wrong);
    # (1,3) the ViT has the lower CE but the CNN is right there -> nothing.
    _, info = PixelBSDLoss(require_correct=False, require_learner_wrong=True)(logits_c, logits_v, label)
    assert info["cnn_teaches"][0].tolist() == [[True, False, False, False], [True, False, False, False]]
    assert info["vit_teaches"][0].tolist() == [[False, True, False, False], [False, False, False, False]]


def test_stop_gradient_per_pixel():
    logits_c, logits_v, label = crafted()
    logits_c.requires_grad_(True)
    logits_v.requires_grad_(True)
    loss, info = PixelBSDLoss()(logits_c, logits_v, label)
    grad_c, grad_v = torch.autograd.grad(loss, (logits_c, logits_v))
    moved_c = grad_c.abs().sum(1)[0] > 0  # (H, W): pixels where the CNN receives gradient
    moved_v = grad_v.abs().sum(1)[0] > 0
    # Where the CNN teaches only the ViT learns, and the reverse; elsewhere nobody.
    assert torch.equal(moved_v, info["cnn_teaches"][0])
    assert torch.equal(moved_c, info["vit_teaches"][0])


def test_each_direction_divides_by_its_own_count():
    logits_c, logits_v, label = crafted()
    T = 2.0
    _, info = PixelBSDLoss(temperature=T)(logits_c, logits_v, label)
    kl = info["kl_map"][0]  # nats at temperature T, not yet times T^2
    assert info["cnn_teaches"].sum() == 2 and info["vit_teaches"].sum() == 2  # not the 7 valid pixels
    assert info["loss_cnn_teaches"].item() == pytest.approx(T * T * kl[info["cnn_teaches"][0]].mean().item(), rel=1e-6)
    assert info["loss_vit_teaches"].item() == pytest.approx(T * T * kl[info["vit_teaches"][0]].mean().item(), rel=1e-6)


def test_no_pixel_one_way_gives_exact_zero_term_and_finite_gradient():
    torch.manual_seed(0)
    label = torch.randint(0, 3, (2, 8, 8))
    logits_v = torch.randn(2, 3, 8, 8)
    logits_c = (F.one_hot(label, 3).permute(0, 3, 1, 2) * 10.0).requires_grad_(True)  # CNN always right and surer
    logits_v.requires_grad_(True)
    loss, info = PixelBSDLoss()(logits_c, logits_v, label)
    assert info["vit_teaches"].sum() == 0 and info["loss_vit_teaches"].item() == 0.0
    assert torch.isfinite(loss)
    # All ignore: both terms exactly zero, gradients zero (not NaN).
    loss, info = PixelBSDLoss()(logits_c, logits_v, torch.full_like(label, IGNORE))
    grads = torch.autograd.grad(loss, (logits_c, logits_v))
    assert loss.item() == 0.0 and all(torch.isfinite(g).all() and (g == 0).all() for g in grads)


def reference_pixel_bsd(logits_c, logits_v, label, T, require_correct, require_learner_wrong=False):
    """Slow reference: loops over pixels, softmax/KL written out by hand."""
    H, W = label.shape[-2:]
    up_c = F.interpolate(logits_c.double(), size=(H, W), mode="bilinear", align_corners=False)
    up_v = F.interpolate(logits_v.double(), size=(H, W), mode="bilinear", align_corners=False)
    sums, counts = [0.0, 0.0], [0, 0]
    for b in range(label.shape[0]):
        for i in range(H):
            for j in range(W):
                y = int(label[b, i, j])
                if y == IGNORE:
                    continue
                zc, zv = up_c[b, :, i, j].tolist(), up_v[b, :, i, j].tolist()
                ce = lambda z: math.log(sum(math.exp(t) for t in z)) - z[y]  # noqa: E731
                right = lambda z: max(range(len(z)), key=lambda k: z[k]) == y  # noqa: E731

                def soft(z):
                    e = [math.exp(t / T) for t in z]
                    return [t / sum(e) for t in e]

                kl = lambda p, q: sum(a * math.log(a / c) for a, c in zip(p, q))  # noqa: E731
                if (right(zc) or not require_correct) and ce(zc) < ce(zv) and not (require_learner_wrong and right(zv)):
                    sums[0] += kl(soft(zc), soft(zv)); counts[0] += 1
                if (right(zv) or not require_correct) and ce(zv) < ce(zc) and not (require_learner_wrong and right(zc)):
                    sums[1] += kl(soft(zv), soft(zc)); counts[1] += 1
    return T * T * sum(s / max(n, 1) for s, n in zip(sums, counts))


@pytest.mark.parametrize("T,require_correct,learner_wrong",
                         [(1.0, True, False), (2.0, True, False), (2.0, False, False), (1.0, True, True), (2.0, False, True)])
def test_golden_value_against_loop_reference(T, require_correct, learner_wrong):
    g = torch.Generator().manual_seed(7)
    logits_c = torch.randn(2, 4, 4, 5, generator=g) * 2
    logits_v = torch.randn(2, 4, 4, 5, generator=g) * 2
    label = torch.randint(0, 4, (2, 16, 20), generator=g)
    label[torch.rand(2, 16, 20, generator=g) < 0.2] = IGNORE
    loss, _ = PixelBSDLoss(temperature=T, require_correct=require_correct,
                           require_learner_wrong=learner_wrong)(logits_c, logits_v, label)
    expected = reference_pixel_bsd(logits_c, logits_v, label, T, require_correct, learner_wrong)
    assert expected > 0
    if learner_wrong:  # the variant's value differs from the spec's rule on the same input
        assert abs(expected - reference_pixel_bsd(logits_c, logits_v, label, T, require_correct)) > 1e-3
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("T,require_correct", [(1.0, True), (2.0, True), (2.0, False)])
def test_from_log_probs_with_a_shared_log_softmax_equals_forward(T, require_correct):
    """from_log_probs (how CollaborativeLoss calls the term, with the log-softmax of its CE term) changes
    nothing: loss, info, and the gradients of CE + pixel BSD, whose log-softmax is then shared at T = 1."""
    g = torch.Generator().manual_seed(8)
    logits_c = (torch.randn(2, 4, 4, 5, generator=g) * 2).requires_grad_(True)
    logits_v = (torch.randn(2, 4, 4, 5, generator=g) * 2).requires_grad_(True)
    label = torch.randint(0, 4, (2, 16, 20), generator=g)
    label[torch.rand(2, 16, 20, generator=g) < 0.2] = IGNORE
    loss_fn = PixelBSDLoss(temperature=T, require_correct=require_correct)
    up = lambda z: F.interpolate(z, size=label.shape[-2:], mode="bilinear", align_corners=False)  # noqa: E731

    def ce(log_p):  # the combined loss's CE term, from a log-softmax
        return F.nll_loss(log_p, label, ignore_index=IGNORE)

    loss, info = loss_fn(logits_c, logits_v, label)
    plain = loss + ce(F.log_softmax(up(logits_c), dim=1)) + ce(F.log_softmax(up(logits_v), dim=1))
    z_c, z_v = up(logits_c), up(logits_v)
    log_p_c, log_p_v = F.log_softmax(z_c, dim=1), F.log_softmax(z_v, dim=1)
    shared, shared_info = loss_fn.from_log_probs(z_c, z_v, log_p_c, log_p_v, label)
    combined = shared + ce(log_p_c) + ce(log_p_v)
    assert info["cnn_teaches"].any() and info["vit_teaches"].any()
    torch.testing.assert_close(shared, loss)
    assert set(shared_info) == set(info)
    for key, value in info.items():
        torch.testing.assert_close(shared_info[key], value, msg=key)
    for a, b in zip(torch.autograd.grad(combined, (logits_c, logits_v)), torch.autograd.grad(plain, (logits_c, logits_v))):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match=r"from_log_probs: expected z_c, z_v, log_p_c, log_p_v of one shape"):
        loss_fn.from_log_probs(z_c, z_v, log_p_c, log_p_v[:, :3], label)


def test_saturated_pixels_tie_in_float32_and_transfer_nothing():
    """Notebook 04: where both CEs round to exactly 0 in float32, they are equal and nobody teaches.

    Both students right at every pixel; the CNN's margin (40) is larger than the ViT's (20), so in exact
    arithmetic the CNN is more confident (CE e^-40 vs e^-20) and would teach. In float32 both CEs are 0.
    With margins 2 and 4 the more confident student does teach: the tie comes from the rounding only.
    """
    label = torch.zeros(1, 2, 2, dtype=torch.long)

    def logits(margin):  # class 0 (the label) leads the other two by `margin`; the label's logit is 20
        z = torch.zeros(1, 3, 2, 2)
        z[:, 0] = 20.0
        z[:, 1:] = 20.0 - margin
        return z

    _, info = PixelBSDLoss()(logits(40.0), logits(20.0), label)
    assert info["both_right"].all()
    assert not info["cnn_teaches"].any() and not info["vit_teaches"].any()
    _, info = PixelBSDLoss(require_correct=False)(logits(40.0), logits(20.0), label)
    assert not info["cnn_teaches"].any() and not info["vit_teaches"].any()
    _, info = PixelBSDLoss()(logits(4.0), logits(2.0), label)
    assert info["cnn_teaches"].all() and not info["vit_teaches"].any()


def test_an_exact_tie_for_the_largest_logit_counts_as_correct():
    """is_correct reads "the label's logit is the largest": a tie at the top is right for every tied class."""
    from collab_lib.losses.pixel_bsd import is_correct

    logits = torch.tensor([[2.0, 2.0, 1.0]]).reshape(1, 3, 1, 1).expand(1, 3, 1, 3).contiguous()
    target = torch.tensor([[[0, 1, 2]]])
    assert is_correct(logits, target, target != 255).tolist() == [[[True, True, False]]]
    # in the loss: a CNN tied between the label and another class is right, and teaches a ViT that is wrong
    z_c = torch.tensor([0.0, 0.0]).reshape(1, 2, 1, 1)
    z_v = torch.tensor([-1.0, 1.0]).reshape(1, 2, 1, 1)
    _, info = PixelBSDLoss()(z_c, z_v, torch.tensor([[[0]]]))
    assert info["cnn_teaches"].item() and not info["vit_teaches"].item() and not info["both_right"].item()
