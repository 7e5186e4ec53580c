"""Argument checks every loss runs first, and the float32 zone every loss computes in.

Nothing here computes a loss: a reader of a loss file can take these on trust
(each `check_*` raises a ValueError naming the argument, the shape it got and
what it expected; otherwise it does nothing).

Conventions of all losses:
- Features and logits arrive at stride 4 (B, C, h, w); labels at full
  resolution (B, H, W), integer, `ignore_index` (255) = no label.
- Logits are brought to the labels' size by bilinear interpolation
  (align_corners=False), in float32. Labels are never resized.
- CE and KL are computed in float32 with autocast switched off (`float32_zone`),
  whatever the dtype of the inputs (bf16 under autocast): their log-sums and
  differences of small probabilities are where bf16 loses digits.
- Checks look at shapes and dtypes only: no label-range check and nothing that
  reads a value from the device (no host-device synchronisation).
"""
import contextlib

import torch

# A feature map and a label (or two feature maps) "can be reconciled" when
# their aspect ratios agree within this factor; beyond it one of them is
# transposed, cropped differently, or simply the wrong tensor.
ASPECT_TOLERANCE = 1.1


def float32_zone(tensor: torch.Tensor):
    """Context in which autocast is off, so float32 inputs stay float32 (CE, KL, normalisation)."""
    if tensor.device.type == "meta":  # shape-only tensors (the tests' no-host-sync check): no autocast there
        return contextlib.nullcontext()
    return torch.autocast(device_type=tensor.device.type, enabled=False)


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
    """The checks shared by every logit-space loss (pixel BSD, DML, KDCL, CE, the logits of region BSD)."""
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


def check_temperature(temperature) -> float:
    """A softmax temperature T > 0, as a Python float."""
    if not temperature > 0:
        raise ValueError(f"temperature: expected > 0, got {temperature!r}")
    return float(temperature)
