"""Pieces every loss shares: argument checks, resizing, per-pixel CE, the feature distance.

Conventions (all losses):
- Features and logits arrive at stride 4 (B, C, h, w); labels at full
  resolution (B, H, W), integer, `ignore_index` (255) = no label.
- Logits are brought to the label's size by bilinear interpolation
  (align_corners=False), in float32. Labels are never resized.
- CE and KL are computed in float32 with autocast switched off, whatever
  the dtype of the inputs (bf16 under autocast): their log-sums and
  differences of small probabilities are where bf16 loses digits.
- Checks look at shapes and dtypes only: no label-range check and nothing
  that reads a value from the device (no host-device synchronisation).
"""
import contextlib
import math

import torch
import torch.nn.functional as F

# A feature map and a label (or two feature maps) "can be reconciled" when
# their aspect ratios agree within this factor; beyond it one of them is
# transposed, cropped differently, or simply the wrong tensor.
ASPECT_TOLERANCE = 1.1


def float32_zone(tensor: torch.Tensor):
    """Context in which autocast is off, so float32 inputs stay float32 (CE, KL, normalisation)."""
    if tensor.device.type == "meta":  # shape-only tensors (the tests' no-host-sync check): no autocast there
        return contextlib.nullcontext()
    return torch.autocast(device_type=tensor.device.type, enabled=False)


# ---------------------------------------------------------------- checks
def check_map(name: str, x, channels: int | None = None, what: str = "feature map") -> None:
    """A (B, C, h, w) tensor, optionally with a given channel count."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a {what} of shape (B, C, h, w), got {shape}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name}: expected {channels} channels (as configured), got {x.shape[1]} (shape {tuple(x.shape)})")


def check_batch(name: str, x: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    if x.shape[0] != ref.shape[0]:
        raise ValueError(f"{name}: batch size {x.shape[0]} does not match {ref_name}'s batch size {ref.shape[0]}")


def check_target(target, batch: int, ref_name: str) -> None:
    """Labels: integer (B, H, W). Values are not checked here (that is the data pipeline's job)."""
    if not isinstance(target, torch.Tensor) or target.dim() != 3:
        shape = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
        raise ValueError(f"target: expected integer labels of shape (B, H, W), got {shape}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ValueError(f"target: expected an integer dtype (class indices), got {target.dtype}")
    if target.shape[0] != batch:
        raise ValueError(f"target: batch size {target.shape[0]} does not match {ref_name}'s batch size {batch}")


def check_aspect(name: str, hw, ref_name: str, ref_hw) -> None:
    """Two maps of the same image: their aspect ratios must agree (within ASPECT_TOLERANCE)."""
    (h, w), (rh, rw) = hw, ref_hw
    ratio = (h / w) / (rh / rw)
    if not (1 / ASPECT_TOLERANCE <= ratio <= ASPECT_TOLERANCE):
        raise ValueError(
            f"{name}: spatial size {h}x{w} cannot be reconciled with {ref_name}'s {rh}x{rw} "
            f"(aspect ratios differ; expected maps of the same image, e.g. both at stride 4)"
        )


def label_stride(name: str, x: torch.Tensor, target: torch.Tensor) -> int:
    """The integer stride s of a (B, C, h, w) map relative to the (B, H, W) labels.

    Accepted: H within one stride of s*h and W within one stride of s*w, the
    same s on both axes (h = floor or ceil of H/s). So 128x128 labels with
    32x32 maps give s = 4; 130x130 labels with 32x32 or 33x33 maps too.
    """
    (h, w), (H, W) = x.shape[-2:], target.shape[-2:]
    s = max(1, round(H / h)) if h > 0 else 0
    if s == 0 or abs(s * h - H) >= s or abs(s * w - W) >= s:
        raise ValueError(
            f"{name}: spatial size {h}x{w} cannot be reconciled with target's {H}x{W}: expected the "
            f"labels to be an integer multiple (the stride, e.g. 4) of the map on both axes"
        )
    return s


def check_logits_pair(logits_cnn, logits_vit, target) -> None:
    """The checks shared by every logit-space loss (pixel BSD, DML, KDCL, CE)."""
    check_map("logits_cnn", logits_cnn, what="logit map")
    check_map("logits_vit", logits_vit, what="logit map")
    check_batch("logits_vit", logits_vit, "logits_cnn", logits_cnn)
    if logits_cnn.shape[1] != logits_vit.shape[1]:
        raise ValueError(
            f"logits_vit: {logits_vit.shape[1]} classes, expected the same number as logits_cnn ({logits_cnn.shape[1]})"
        )
    check_target(target, logits_cnn.shape[0], "logits_cnn")
    label_stride("logits_cnn", logits_cnn, target)
    label_stride("logits_vit", logits_vit, target)


# ---------------------------------------------------------------- resizing
def resize_to(x: torch.Tensor, size) -> torch.Tensor:
    """Bilinear resize of a (B, C, h, w) map to `size`; the identity when it already has it."""
    size = tuple(size)
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def upsample_logits(logits: torch.Tensor, size) -> torch.Tensor:
    """(B, K, h, w) logits -> float32 (B, K, H, W) at label size (bilinear). Call inside float32_zone."""
    return resize_to(logits.float(), size)


def fit_to(x: torch.Tensor, size) -> torch.Tensor:
    """Crop or zero-pad the last two dims of x to `size` (bottom/right side only).

    Used to lay label-resolution maps exactly over s*h x s*w: labels whose size
    is not a multiple of the stride lose or gain fewer than s rows/columns
    (padded pixels carry weight 0, i.e. they count as ignore).
    """
    H, W = size
    x = x[..., :H, :W]
    pad_h, pad_w = H - x.shape[-2], W - x.shape[-1]
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    return x


# ---------------------------------------------------------------- per-pixel quantities
def pixel_ce(logits32: torch.Tensor, target: torch.Tensor, ignore_index: int):
    """Per-pixel CE (float32 (B, H, W), 0 at ignored pixels) and the valid mask (bool (B, H, W))."""
    target = target.long()
    ce = F.cross_entropy(logits32, target, ignore_index=ignore_index, reduction="none")
    return ce, target != ignore_index


def nll_map(log_probs: torch.Tensor, target: torch.Tensor, ignore_index: int):
    """pixel_ce from log-probabilities already computed: (B, K, H, W) -> ((B, H, W), valid)."""
    target = target.long()
    return F.nll_loss(log_probs, target, ignore_index=ignore_index, reduction="none"), target != ignore_index


def kl_map(log_p_teacher: torch.Tensor, log_p_student: torch.Tensor) -> torch.Tensor:
    """KL(p_teacher || p_student) per pixel, in nats: (B, K, H, W) log-probs -> (B, H, W).

    The caller decides about stop-gradient (pass `log_p_teacher.detach()`): then the
    teacher's probabilities are a constant and autograd records only the
    student's side (one product in the backward, no second exp as in F.kl_div).
    """
    return (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` over `mask`; exactly 0 (still in the graph) when the mask is empty.

    torch.where (not values * mask) so that a non-finite value outside the mask
    cannot leak a NaN in; the count is clamped to 1 on the device (never read on the host).
    """
    total = torch.where(mask, values, torch.zeros_like(values)).sum()
    return total / mask.sum().clamp_min(1).to(values.dtype)


def fraction(mask: torch.Tensor, among: torch.Tensor) -> torch.Tensor:
    """Share of `among` (bool) where `mask` holds; 0 when `among` is empty. A detached float32 0-dim tensor."""
    return ((mask & among).sum() / among.sum().clamp_min(1)).float().detach()


# ---------------------------------------------------------------- feature distance
def channels_last(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h, w, C), a view. The feature terms work channels-last: a 1x1 conv is then
    an nn.Linear (one matrix product) and normalising over channels is one fused layer_norm."""
    return x.permute(0, 2, 3, 1)


def channel_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Standardise each location's feature vector over channels: (x - mean_c) / sqrt(var_c + eps).

    Channels-last (B, h, w, C) -> float32 (B, h, w, C). This is LayerNorm over
    channels without an affine part (hence F.layer_norm). The paper says features
    of a BN-ReLU CNN and of a LayerNorm ViT differ in scale; the kit removes
    scale and offset per location.
    """
    return F.layer_norm(x.float(), (x.shape[-1],), eps=eps)


def feature_distance(student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """d per location: mean over channels of (norm(student) - norm(target))^2.

    student, target: channels-last (B, h, w, C), same shape -> float32 (B, h, w).
    method.md: "mean squared error after normalising each target over channels".
    The kit normalises the student's projected feature the same way, so d does
    not depend on either side's scale: with both standardised,
    d = 2 - 2 * (Pearson correlation over channels), in [0, 4]; about 2 for
    unrelated features, 0 for a perfect match. The caller passes a detached
    target (stop-gradient).
    """
    if student.shape != target.shape:
        raise ValueError(f"feature_distance: student {tuple(student.shape)} vs target {tuple(target.shape)}")
    with float32_zone(student):
        with torch.no_grad():  # the target is a constant: normalised without building a graph
            target = channel_norm(target)
        # F.mse_loss(reduction='none') is (a - b)^2 elementwise, one op forward and one backward (cheaper than .sub().pow(2)).
        return F.mse_loss(channel_norm(student), target, reduction="none").mean(dim=-1)


def region_pool(maps: torch.Tensor, cell: int) -> torch.Tensor:
    """Mean over non-overlapping cell x cell blocks: (B, n, H, W) -> (B, n, ceil(H/cell), ceil(W/cell)).

    avg_pool2d in ceil mode: a partial last block is averaged over the cells it
    has (PyTorch divides by the part of the window inside the map; the golden
    tests pin this).
    """
    return F.avg_pool2d(maps, cell, cell, ceil_mode=True)


def region_weighted_mean(values: torch.Tensor, weights: torch.Tensor, cell: int):
    """Weighted mean of each of `values` over blocks: values (B, n, H, W), weights (B, H, W) float.

    Returns mean (B, n, Hr, Wr), NaN where the block has no weight, and
    has_weight (B, Hr, Wr) bool. One pooling of [w*v..., w]: the ratio of two
    block means is the weighted mean (the divisor cancels).
    """
    w = weights.unsqueeze(1)
    pooled = region_pool(torch.cat([values * w, w], dim=1), cell)
    weight = pooled[:, -1:]
    has_weight = weight > 0
    mean = pooled[:, :-1] / torch.where(has_weight, weight, torch.ones_like(weight))
    return torch.where(has_weight, mean, torch.full_like(mean, math.nan)), has_weight[:, 0]
