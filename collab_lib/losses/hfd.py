"""HFD, heterogeneous feature distillation: the students' low layers mimic each other.

    L_hfd = mean_locations d(Attn(low_c), sg(low_v)) + mean_locations d(MLP(low_v), sg(low_c))
    d(a, b) = mean_channels (norm(a) - norm(b))^2,   norm(x) = (x - mean_c x) / sqrt(var_c x + 1e-5)

low_c (B, C_c, h, w), low_v (B, C_v, h', w'): the first stride-4 stage of each
student; sg = stop-gradient (`.detach()`): each side is only a target for the other.

The paper names an attention-style projector ("Attn") on the ViT->CNN path and
an MLP-style projector ("MLP") on the CNN->ViT path; the kit implements them as
- Attn (CNN side, so the CNN learns to produce what the ViT's attention sees):
  the attention half of a MiT block (pre-norm spatial-reduction self-attention
  with a residual, 1 head, keys/values from the map reduced by `sr_ratio` = 8,
  as in MiT stage 1), then a 1x1 conv to the ViT's channels. The Mix-FFN half
  of the MiT block is left out: the 1x1 conv after it mixes channels.
- MLP (ViT side): 1x1 conv, GELU, 1x1 conv to the CNN's channels (hidden width
  = the CNN's channels).
The paper does not specify the distance; the kit's specification (docs/method.md)
takes the MSE after standardising both sides over channels, d above: so d
depends on neither side's scale (with both standardised, d = 2 - 2 * Pearson
correlation over channels, in [0, 4]: about 2 for unrelated features, 0 for a
perfect match). Both d are averaged over all locations of the batch.
If the maps differ in size, the projected side is resized bilinearly to the target's.

Every 1x1 conv here is an nn.Linear over channels-last maps (B, h, w, C): the
same map, one matrix product, and the channel normalisation after it is one
fused layer_norm (cheaper on a CPU than NCHW means and variances; benchmarks/RESULTS.md has the cost).
The projectors exist only for training: the trainer optimises `HFDLoss.parameters()` with the students.
The kit's specification: docs/method.md, "HFD".
"""
import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_aspect, check_batch, check_map
from .common import channels_last, feature_distance


def resize_channels_last(x: torch.Tensor, size) -> torch.Tensor:
    """Bilinear resize of a channels-last (B, h, w, C) map to `size`; the identity when it already has it."""
    if tuple(x.shape[1:3]) == tuple(size):
        return x
    resized = F.interpolate(x.permute(0, 3, 1, 2), size=tuple(size), mode="bilinear", align_corners=False)
    return channels_last(resized)


class SRAttention(nn.Module):
    """Spatial-reduction self-attention as in MiT / PVT, with its pre-norm and residual.

    Channels-last (B, H, W, C) -> (B, H, W, C). Queries: every location; keys
    and values: the map reduced by a strided sr_ratio x sr_ratio conv (N/sr^2
    tokens), so the cost is linear in the number of locations.
    """

    def __init__(self, channels: int, num_heads: int = 1, sr_ratio: int = 8):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"channels {channels} not divisible by num_heads {num_heads}")
        self.num_heads, self.sr_ratio = num_heads, sr_ratio
        self.norm = nn.LayerNorm(channels)
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(channels, 2 * channels)
        self.sr = nn.Conv2d(channels, channels, sr_ratio, stride=sr_ratio) if sr_ratio > 1 else nn.Identity()
        self.sr_norm = nn.LayerNorm(channels) if sr_ratio > 1 else nn.Identity()
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        if H < self.sr_ratio or W < self.sr_ratio:
            raise ValueError(f"low_cnn: map {H}x{W} is smaller than the attention's sr_ratio {self.sr_ratio}")
        tokens = x.reshape(B, H * W, C)  # (B, N, C)
        normed = self.norm(tokens)
        reduced = self.sr(normed.transpose(1, 2).reshape(B, C, H, W)).flatten(2).transpose(1, 2)
        k, v = self.kv(self.sr_norm(reduced)).chunk(2, dim=-1)
        heads = lambda t: t.reshape(B, t.shape[1], self.num_heads, C // self.num_heads).transpose(1, 2)  # noqa: E731
        out = F.scaled_dot_product_attention(heads(self.q(normed)), heads(k), heads(v))  # softmax(qk^T/sqrt(d)) v
        tokens = tokens + self.proj(out.transpose(1, 2).reshape(B, H * W, C))
        return tokens.reshape(B, H, W, C)


class HFDLoss(nn.Module):
    """Heterogeneous feature distillation on the low (first stride-4 stage) features.

    forward(low_cnn (B, C_cnn, h, w), low_vit (B, C_vit, h', w')) -> (loss, info)
      loss: 0-dim float32, d(Attn(low_c), sg(low_v)) + d(MLP(low_v), sg(low_c));
            each d is in [0, 4] (about 2 for unrelated features).
      info: "cnn_learns", "vit_learns" (0-dim, each direction's d),
            "cnn_learns_map" (B, h', w'), "vit_learns_map" (B, h, w) (per-location d).
    If the two maps differ in spatial size, the projected (student) side is
    resized bilinearly to the target's size: the target is never resampled.
    """

    def __init__(self, cnn_channels: int, vit_channels: int, sr_ratio: int = 8):
        super().__init__()
        self.cnn_channels, self.vit_channels = cnn_channels, vit_channels
        # CNN side: CNN features -> (attention) -> ViT channels; learns to match the ViT.
        self.attn = nn.Sequential(SRAttention(cnn_channels, sr_ratio=sr_ratio), nn.Linear(cnn_channels, vit_channels))
        # ViT side: ViT features -> MLP -> CNN channels; learns to match the CNN.
        self.mlp = nn.Sequential(nn.Linear(vit_channels, cnn_channels), nn.GELU(), nn.Linear(cnn_channels, cnn_channels))

    def forward(self, low_cnn: torch.Tensor, low_vit: torch.Tensor):
        check_map("low_cnn", low_cnn, self.cnn_channels)
        check_map("low_vit", low_vit, self.vit_channels)
        check_batch("low_vit", low_vit, "low_cnn", low_cnn)
        check_aspect("low_vit", low_vit.shape[-2:], "low_cnn", low_cnn.shape[-2:])

        # One channels-last copy of each map serves as the projector's input and (detached) as the target.
        low_c, low_v = channels_last(low_cnn).contiguous(), channels_last(low_vit).contiguous()
        # The CNN learns: its projected feature chases the ViT's, which is only a target (detached).
        cnn_pred = resize_channels_last(self.attn(low_c), low_v.shape[1:3])
        cnn_learns_map = feature_distance(cnn_pred, low_v.detach())
        # The ViT learns: the reverse, with the MLP projector.
        vit_pred = resize_channels_last(self.mlp(low_v), low_c.shape[1:3])
        vit_learns_map = feature_distance(vit_pred, low_c.detach())

        cnn_learns, vit_learns = cnn_learns_map.mean(), vit_learns_map.mean()
        info = {
            "cnn_learns": cnn_learns.detach(),
            "vit_learns": vit_learns.detach(),
            "cnn_learns_map": cnn_learns_map.detach(),
            "vit_learns_map": vit_learns_map.detach(),
        }
        return cnn_learns + vit_learns, info
