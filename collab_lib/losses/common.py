"""The few tensor operations every loss file uses, each written once.

- upsample_logits   logits at stride 4 -> float32 at the labels' size (bilinear, align_corners=False)
- masked_mean       the mean over a mask (the valid pixels, the regions going one way); 0 when it is empty
- fraction          the share of a mask within another, for the logged diagnostics
- kl_map            KL(p_teacher || p_student) per pixel, from log-probabilities
- channels_last     (B, C, h, w) -> (B, h, w, C), the layout of the feature terms
- channel_norm      standardise each feature vector over its channels
- feature_distance  d(a, b) = mean_channels (norm(a) - norm(b))^2, per location

Masked means and masked maps use torch.where, never `values * mask`: a non-finite value outside the
mask (an ignored pixel's) cannot leak in through 0 * inf. Counts stay on the device (clamped to 1,
never read on the host).
"""
import torch
import torch.nn.functional as F

from .checks import float32_zone


def upsample_logits(logits: torch.Tensor, size) -> torch.Tensor:
    """(B, K, h, w) logits -> float32 (B, K, H, W) at the labels' size (bilinear); unchanged if already there."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits.float()
    return F.interpolate(logits.float(), size=tuple(size), mode="bilinear", align_corners=False)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` over `mask` (bool, the same shape), a 0-dim tensor; exactly 0 (still in the graph)
    when the mask is empty (a batch with no valid pixel, no region going one way)."""
    total = torch.where(mask, values, torch.zeros_like(values)).sum()
    return total / mask.sum().clamp_min(1).to(values.dtype)


def fraction(mask: torch.Tensor, among: torch.Tensor) -> torch.Tensor:
    """Share of `among` (bool) where `mask` holds; 0 when `among` is empty. A detached float32 0-dim tensor."""
    return ((mask & among).sum() / among.sum().clamp_min(1)).float().detach()


def kl_map(log_p_teacher: torch.Tensor, log_p_student: torch.Tensor) -> torch.Tensor:
    """KL(p_teacher || p_student) per pixel, in nats: (B, K, H, W) log-probabilities -> (B, H, W).

    The caller passes `log_p_teacher.detach()` (stop-gradient): then autograd
    records only the student's side (one product in the backward, no second exp as in F.kl_div).
    """
    return (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(1)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h, w, C), a view. The feature terms work channels-last: a 1x1 conv is then
    an nn.Linear (one matrix product) and normalising over channels is one fused layer_norm."""
    return x.permute(0, 2, 3, 1)


def channel_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """norm(x): standardise each location's feature vector over channels, (x - mean_c) / sqrt(var_c + eps).

    (..., C) -> float32 (..., C): LayerNorm over the last dimension without an affine part. The kit
    standardises because the features of a BN-ReLU CNN and of a LayerNorm ViT differ in scale: it
    removes scale and offset per location.
    """
    return F.layer_norm(x.float(), (x.shape[-1],), eps=eps)


def feature_distance(student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """d per location: mean over channels of (norm(student) - norm(target))^2, in [0, 4].

    student, target: channels last, the same shape (..., C): maps (B, h, w, C) or rows (N, C)
    -> float32 (...) (B, h, w) or (N,). The caller passes a detached target (stop-gradient).
    """
    if student.shape != target.shape:
        raise ValueError(f"feature_distance: student {tuple(student.shape)} vs target {tuple(target.shape)}")
    with float32_zone(student):
        with torch.no_grad():  # the target is a constant: normalised without building a graph
            target = channel_norm(target)
        # F.mse_loss(reduction='none') is (a - b)^2 elementwise, one op forward and one backward (cheaper than .sub().pow(2)).
        return F.mse_loss(channel_norm(student), target, reduction="none").mean(dim=-1)
