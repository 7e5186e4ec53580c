"""DML and KDCL against their textbook definitions on a hand-checkable pixel."""
import math

import pytest
import torch

from collab_lib.losses import DMLLoss, KDCLLoss

IGNORE = 255


def two_pixels():
    """2 classes, labels (1, 1, 2): pixel 0 valid, pixel 1 ignored with wild logits.

    p_c = softmax(0, ln 3) = (1/4, 3/4), p_v = softmax(0, 0) = (1/2, 1/2) on the valid pixel.
    """
    logits_c = torch.tensor([[0.0, 30.0], [math.log(3), -30.0]]).reshape(1, 2, 1, 2)
    logits_v = torch.tensor([[0.0, -30.0], [0.0, 30.0]]).reshape(1, 2, 1, 2)
    return logits_c, logits_v, torch.tensor([[[1, IGNORE]]])


def kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def soft(z, T):
    e = [math.exp(t / T) for t in z]
    return [t / sum(e) for t in e]


@pytest.mark.parametrize("T", [1.0, 2.0])
def test_dml_textbook(T):
    p_c, p_v = soft([0, math.log(3)], T), soft([0, 0], T)
    if T == 1.0:
        assert kl(p_v, p_c) == pytest.approx(0.5 * math.log(4 / 3))  # by hand: .5 ln(.5/.25) + .5 ln(.5/.75)
    want = T * T * (kl(p_v, p_c) + kl(p_c, p_v))  # each student learns the other: KL(sg(p_other) || p_self)
    loss, info = DMLLoss(temperature=T)(*two_pixels())
    assert loss.item() == pytest.approx(want, rel=1e-5)
    assert info["cnn_learns"].item() == pytest.approx(T * T * kl(p_v, p_c), rel=1e-5)
    assert info["kl_cnn_learns"][0, 0, 1] == 0  # the ignored pixel


@pytest.mark.parametrize("T", [1.0, 2.0])
def test_kdcl_logit_mean_ensemble_textbook(T):
    q = soft([0, math.log(3) / 2], T)  # softmax of the mean logits / T
    if T == 1.0:
        assert q[1] == pytest.approx(math.sqrt(3) / (1 + math.sqrt(3)))
    p_c, p_v = soft([0, math.log(3)], T), soft([0, 0], T)
    want = T * T * (kl(q, p_c) + kl(q, p_v))
    loss, info = KDCLLoss(temperature=T)(*two_pixels())
    assert loss.item() == pytest.approx(want, rel=1e-5)
    assert info["vit_learns"].item() == pytest.approx(T * T * kl(q, p_v), rel=1e-5)


@pytest.mark.parametrize("cls", [DMLLoss, KDCLLoss])
def test_teacher_side_is_detached_and_mean_is_over_valid_pixels(cls):
    logits_c, logits_v, label = two_pixels()
    logits_c.requires_grad_(True)
    logits_v.requires_grad_(True)
    # The ensemble / the other student is a target: each student's gradient is that of its own KL only,
    # on both sides (a missing detach on either would add the other KL's gradient).
    loss, _ = cls()(logits_c, logits_v, label)
    grad_c, grad_v = torch.autograd.grad(loss, (logits_c, logits_v))
    if cls is DMLLoss:
        targets = {"cnn": torch.softmax(logits_v[0, :, 0, 0].detach(), 0), "vit": torch.softmax(logits_c[0, :, 0, 0].detach(), 0)}
    else:
        ensemble = torch.softmax((logits_c + logits_v)[0, :, 0, 0].detach() / 2, 0)
        targets = {"cnn": ensemble, "vit": ensemble}
    for name, logits, grad in (("cnn", logits_c, grad_c), ("vit", logits_v, grad_v)):
        target = targets[name]
        own = (target * (target.log() - torch.log_softmax(logits[0, :, 0, 0], 0))).sum()
        torch.testing.assert_close(grad[0, :, 0, 0], torch.autograd.grad(own, logits)[0][0, :, 0, 0])
        assert grad[0, :, 0, 0].abs().sum() > 0  # the student does learn there
        assert (grad[0, :, 0, 1] == 0).all()  # ignored pixel: no gradient
    # No valid pixel: exactly 0, not NaN.
    loss, _ = cls()(logits_c, logits_v, torch.full_like(label, IGNORE))
    assert loss.item() == 0.0
