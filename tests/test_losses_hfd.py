"""HFD: the Attn projector is MiT's spatial-reduction attention; golden value; stop-gradient; resizing."""
import math

import pytest
import torch
import torch.nn.functional as F

from collab_lib.losses import HFDLoss, SRAttention


def test_sr_attention_matches_hand_written_attention():
    torch.manual_seed(0)
    att = SRAttention(8, num_heads=2, sr_ratio=4)
    x = torch.randn(2, 8, 8, 8)  # channels-last (B, H, W, C)
    with torch.no_grad():
        tokens = x.reshape(2, 64, 8)  # (B, N, C)
        normed = F.layer_norm(tokens, (8,), att.norm.weight, att.norm.bias)
        reduced = F.conv2d(normed.transpose(1, 2).reshape(2, 8, 8, 8), att.sr.weight, att.sr.bias, stride=4)
        reduced = F.layer_norm(reduced.flatten(2).transpose(1, 2), (8,), att.sr_norm.weight, att.sr_norm.bias)
        assert reduced.shape == (2, 4, 8)  # 64 queries attend to 4 reduced tokens
        q = normed @ att.q.weight.T + att.q.bias
        kv = reduced @ att.kv.weight.T + att.kv.bias
        k, v = kv[..., :8], kv[..., 8:]
        heads = []
        for hd in range(2):
            sl = slice(4 * hd, 4 * hd + 4)
            weights = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(4), dim=-1)
            heads.append(weights @ v[..., sl])
        out = tokens + torch.cat(heads, -1) @ att.proj.weight.T + att.proj.bias
        expected = out.reshape(2, 8, 8, 8)
        torch.testing.assert_close(att(x), expected, rtol=1e-5, atol=1e-5)


def reference_hfd(loss_fn, low_c, low_v):
    """Loop over locations; per-channel standardisation written out."""
    def norm(vec):
        vec = vec.double()
        return (vec - vec.mean()) / torch.sqrt(vec.var(unbiased=False) + 1e-5)

    def d(pred, target):
        B, _, h, w = target.shape
        vals = [(norm(pred[b, :, i, j]) - norm(target[b, :, i, j])).pow(2).mean().item()
                for b in range(B) for i in range(h) for j in range(w)]
        return sum(vals) / len(vals)

    nhwc, nchw = (lambda t: t.permute(0, 2, 3, 1)), (lambda t: t.permute(0, 3, 1, 2))  # the projectors work channels-last
    with torch.no_grad():
        pred_c = nchw(loss_fn.attn(nhwc(low_c)))
        pred_c = F.interpolate(pred_c, size=low_v.shape[-2:], mode="bilinear", align_corners=False)
        pred_v = F.interpolate(nchw(loss_fn.mlp(nhwc(low_v))), size=low_c.shape[-2:], mode="bilinear", align_corners=False)
        return d(pred_c, low_v), d(pred_v, low_c)


@pytest.mark.parametrize("vit_size", [(8, 8), (4, 4)])
def test_golden_value_against_loop_reference(vit_size):
    torch.manual_seed(1)
    loss_fn = HFDLoss(6, 4)
    low_c = torch.randn(2, 6, 8, 8).relu() * 5  # BN-ReLU-like: non-negative, large
    low_v = torch.randn(2, 4, *vit_size) * 0.1 + 0.3  # LayerNorm-like scale, different offset
    loss, info = loss_fn(low_c, low_v)
    want_c, want_v = reference_hfd(loss_fn, low_c, low_v)
    assert info["cnn_learns"].item() == pytest.approx(want_c, rel=1e-5)
    assert info["vit_learns"].item() == pytest.approx(want_v, rel=1e-5)
    assert loss.item() == pytest.approx(want_c + want_v, rel=1e-5)
    assert info["cnn_learns_map"].shape == (2, *vit_size) and info["vit_learns_map"].shape == (2, 8, 8)
    assert 0 <= info["cnn_learns"] <= 4 and 0 <= info["vit_learns"] <= 4


def test_distance_is_scale_free():
    """d does not change when a target is rescaled and shifted: both sides are standardised."""
    torch.manual_seed(2)
    loss_fn = HFDLoss(6, 4)
    low_c, low_v = torch.randn(1, 6, 8, 8), torch.randn(1, 4, 8, 8)
    _, a = loss_fn(low_c, low_v)
    _, b = loss_fn(low_c, low_v * 50 + 3)
    assert b["cnn_learns"].item() == pytest.approx(a["cnn_learns"].item(), rel=1e-4)


def test_stop_gradient_each_side_learns_only_through_its_projector():
    torch.manual_seed(3)
    loss_fn = HFDLoss(6, 4)
    low_c = torch.randn(2, 6, 8, 8, requires_grad=True)
    low_v = torch.randn(2, 4, 8, 8, requires_grad=True)
    loss, _ = loss_fn(low_c, low_v)
    grad_c, grad_v = torch.autograd.grad(loss, (low_c, low_v))
    # With sg() on each target, the gradient reaching low_c comes only from d(Attn(low_c), low_v.detach()).
    from collab_lib.losses import feature_distance
    nhwc = lambda t: t.permute(0, 2, 3, 1)  # noqa: E731
    only_c = feature_distance(loss_fn.attn(nhwc(low_c)), nhwc(low_v.detach())).mean()
    only_v = feature_distance(loss_fn.mlp(nhwc(low_v)), nhwc(low_c.detach())).mean()
    torch.testing.assert_close(grad_c, torch.autograd.grad(only_c, low_c)[0])
    torch.testing.assert_close(grad_v, torch.autograd.grad(only_v, low_v)[0])
    assert grad_c.abs().sum() > 0 and grad_v.abs().sum() > 0
    # Every projector parameter is in the graph.
    assert all(g is not None for g in torch.autograd.grad(loss_fn(low_c, low_v)[0], list(loss_fn.parameters())))


def test_bad_inputs_name_the_argument():
    loss_fn = HFDLoss(6, 4)
    with pytest.raises(ValueError, match="low_vit.*4 channels"):
        loss_fn(torch.randn(1, 6, 8, 8), torch.randn(1, 5, 8, 8))
    with pytest.raises(ValueError, match="low_vit: batch size 2"):
        loss_fn(torch.randn(1, 6, 8, 8), torch.randn(2, 4, 8, 8))
    with pytest.raises(ValueError, match="low_vit.*cannot be reconciled"):
        loss_fn(torch.randn(1, 6, 8, 16), torch.randn(1, 4, 16, 8))
    with pytest.raises(ValueError, match="low_cnn.*shape"):
        loss_fn(torch.randn(6, 8, 8), torch.randn(1, 4, 8, 8))
