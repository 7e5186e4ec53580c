"""Region-wise BSD (bidirectional selective distillation) on the decoder features `embed`.

Per region of the feature grid, the student with the lower mean CE against the
labels teaches the other one, in feature space:

    CE_c(r), CE_v(r) = mean over the valid label pixels of region r of each student's CE (nats)
    CNN teaches in r  <=>  CE_c(r) < CE_v(r);   ViT teaches in r  <=>  CE_v(r) < CE_c(r)
    L_region = mean over CNN-teaches regions r of mean_cells(r) d(to_cnn(embed_v), sg(embed_c))
             + mean over ViT-teaches regions r of mean_cells(r) d(to_vit(embed_c), sg(embed_v))
    d(a, b)  = mean_channels (norm(a) - norm(b))^2,  norm = standardise over channels (HFD's d, common.py)

embed_c (B, E_c, h, w), embed_v (B, E_v, h, w) at stride 4; to_cnn, to_vit: 1x1
convs (connectors) on the learning side only; sg = stop-gradient (`.detach()`):
the teacher's embed is only a target. d is in [0, 4] (about 2 for unrelated features).

The paper names "regions" and "the more reliable student" without fixing the
layout; the kit implements them as follows.
- The grid lives on embed_cnn's cells (h, w). A region is region_size x
  region_size cells; the grid has ceil(h/region_size) x ceil(w/region_size)
  regions, the last row/column partial when h or w does not divide.
- embed_vit is resized bilinearly to embed_cnn's size if it differs (the
  kit's students are both at stride 4, so it does not).
- Reliability is measured at label resolution: each student's logits are
  upsampled bilinearly to the labels, CE per pixel, and a region's CE is the
  mean over its valid (non-ignore) pixels. A region of region_size cells covers
  region_size * s label pixels per side, s the integer label stride of
  embed_cnn (4). Labels whose size is not exactly s*h are cropped or padded
  (as ignore) to s*h x s*w first: fewer than s rows/columns change.
- The decision is taken without gradient (the logits are only read, detached);
  a region with no valid pixel, or with equal CE, transfers nothing.
- A region's d is the mean of the per-cell d over all its cells (also cells
  whose pixels are partly or wholly ignore: the decision used the valid pixels, the
  transfer covers the region).
- `selective=False` (the kit's control arm, not the paper's) drops the
  selection: every region with a valid pixel transfers both ways, at the same
  weight (the decision's CE is still computed, for the info maps only).
- Each direction's mean divides by its own region count; with no region going
  one way that term is exactly 0 (and still in the graph, so both connectors
  get a (zero) gradient every step, as DDP without find_unused_parameters needs).

One computation, in two steps: `forward` computes each student's CE per pixel,
then `from_ce_maps` decides and transfers. The combined loss (collaborative.py)
calls `from_ce_maps` directly with the CE maps its CE term already computed
(the same maps: the same result).

The transfer's plain form is `transfer_map`: each connector on every cell, a
mask keeps the cells whose region goes its way. Beside it,
`transfer_map_gathered` gives the same d (equal up to float rounding;
tests/test_losses_region.py checks values and gradients) running each
connector only on those cells, about half the matrix products since a cell
goes at most one way. The loss uses the gathered form on a CPU; off the CPU
its data-dependent size would make the host wait for the device every step,
so the plain form runs there (`gather_cells` overrides).
The kit's specification: docs/method.md, "Region-wise BSD".
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_aspect, check_batch, check_logits_pair, check_map, check_target, float32_zone, label_stride
from .common import channels_last, feature_distance, fraction, masked_mean, upsample_logits


def fit_to(x: torch.Tensor, size) -> torch.Tensor:
    """Crop or zero-pad the last two dims of x to `size` (bottom/right side only).

    Lays label-resolution maps exactly over s*h x s*w: labels whose size is not
    a multiple of the stride lose or gain fewer than s rows/columns (padded
    pixels carry weight 0, i.e. they count as ignore).
    """
    H, W = size
    x = x[..., :H, :W]
    pad_h, pad_w = H - x.shape[-2], W - x.shape[-1]
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    return x


def region_mean(values: torch.Tensor, weights: torch.Tensor, cell: int):
    """Weighted mean of each channel of `values` (B, n, H, W) over cell x cell blocks, weights (B, H, W) float.

    Returns mean (B, n, ceil(H/cell), ceil(W/cell)), NaN where a block has no
    weight, and has_weight (B, Hr, Wr) bool. One pooling of [w*v..., w]: the
    ratio of two block means is the weighted mean (avg_pool2d's divisor cancels,
    also in a partial last block).
    """
    w = weights.unsqueeze(1)
    pooled = F.avg_pool2d(torch.cat([values * w, w], dim=1), cell, cell, ceil_mode=True)
    weight = pooled[:, -1:]
    has_weight = weight > 0
    mean = pooled[:, :-1] / torch.where(has_weight, weight, torch.ones_like(weight))
    return torch.where(has_weight, mean, torch.full_like(mean, math.nan)), has_weight[:, 0]


def regions_to_pixels(region_map: torch.Tensor, region_pixels: int, size) -> torch.Tensor:
    """Paint a (B, Hr, Wr) region map onto label pixels (B, H, W), e.g. to draw or count directions per class.

    Each region covers region_pixels x region_pixels label pixels from the top-left
    (the same layout as RegionBSDLoss); the result is cropped to `size`. With
    region_pixels = region_size and the feature grid's size, it paints regions onto cells.
    """
    up = region_map.repeat_interleave(region_pixels, dim=-2).repeat_interleave(region_pixels, dim=-1)
    return fit_to(up, size)  # label pixels beyond the grid (< one stride) were not counted: 0


def transfer_map(connector: nn.Module, learner: torch.Tensor, teacher: torch.Tensor, cells: torch.Tensor):
    """d(connector(learner), sg(teacher)) per cell where `cells` holds, 0 elsewhere.

    learner (N, E_in), teacher (N, E_out): the cells' features as rows, N = B*h*w
    in the order of cells (B, h, w) bool -> float32 (B, h, w). The connector
    runs on every cell; the mask keeps the learning ones.
    """
    d = feature_distance(connector(learner), teacher.detach()).view(cells.shape)
    return torch.where(cells, d, torch.zeros_like(d))


def transfer_map_gathered(connector: nn.Module, learner: torch.Tensor, teacher: torch.Tensor, cells: torch.Tensor):
    """`transfer_map`, computing only the learning cells: their rows are gathered (index_select) first.

    The same values and gradients up to float rounding, with the connector's
    matrix products over the learning cells only. The number of rows depends
    on the data: on an accelerator it would make the host wait for the device.
    """
    rows = torch.arange(cells.numel(), device=cells.device)[cells.flatten()]  # (n,) indices of the learning cells
    d = feature_distance(connector(learner.index_select(0, rows)), teacher.detach().index_select(0, rows))
    return torch.zeros(cells.numel(), dtype=d.dtype, device=d.device).index_copy(0, rows, d).view(cells.shape)


class RegionBSDLoss(nn.Module):
    """Region-wise BSD.

    forward(embed_cnn (B, E_c, h, w), embed_vit (B, E_v, h, w),
            logits_cnn (B, K, h, w), logits_vit (B, K, h, w), target (B, H, W) int)
      -> (loss, info)
      loss: 0-dim float32 (each term a mean d in [0, 4]).
      info (all detached), over the region grid (B, Hr, Wr):
        "direction"      int64: 1 = CNN teaches ViT, -1 = ViT teaches CNN, 0 = no transfer
                         (no valid pixel, or equal CE); selective=False: 0 everywhere
                         (both ways: read the two masks below)
        "cnn_teaches", "vit_teaches"  bool: the region transfers CNN -> ViT / ViT -> CNN
        "region_ce_cnn", "region_ce_vit"  float32 mean CE (nats) over the region's valid
                         pixels; NaN where the region has no valid pixel
        "region_valid"   bool, the region has at least one valid pixel
        "dist_vit_learns", "dist_cnn_learns"  float32 per-region d of each direction where
                         that direction is chosen, 0 elsewhere
        "loss_cnn_teaches", "loss_vit_teaches"  0-dim, each direction's term
        "frac_cnn_teaches", "frac_vit_teaches"  0-dim, share of the valid regions
    The logits may also come at the labels' size (CollaborativeLoss upsamples them once for all terms).
    After a forward, `self.region_pixels` is the side of a region in label pixels
    (region_size * stride), for `regions_to_pixels`.

    `gather_cells`: None (default) uses `transfer_map_gathered` on a CPU and
    `transfer_map` elsewhere; True / False force one (same loss and gradients up to float rounding).
    """

    def __init__(
        self, cnn_channels: int, vit_channels: int, region_size: int = 8, ignore_index: int = 255,
        gather_cells: bool | None = None, selective: bool = True,
    ):
        super().__init__()
        if region_size < 1:
            raise ValueError(f"region_size: expected an int >= 1, got {region_size!r}")
        if gather_cells not in (None, True, False):
            raise ValueError(f"gather_cells: expected None (automatic), True or False, got {gather_cells!r}")
        self.cnn_channels, self.vit_channels = cnn_channels, vit_channels
        self.region_size, self.ignore_index = region_size, ignore_index
        self.gather_cells, self.selective = gather_cells, selective
        # Connectors on the learning side only; the target is always the teacher's own embed.
        # 1x1 convs, written as nn.Linear over channels-last rows (the same map, one matrix product).
        self.to_cnn = nn.Linear(vit_channels, cnn_channels)  # ViT learns when the CNN teaches
        self.to_vit = nn.Linear(cnn_channels, vit_channels)  # CNN learns when the ViT teaches
        self.region_pixels = None

    def forward(self, embed_cnn, embed_vit, logits_cnn, logits_vit, target):
        check_logits_pair(logits_cnn, logits_vit, target)
        # Each student's CE per pixel at label resolution: what the decision reads. No gradient: only a reading.
        with torch.no_grad(), float32_zone(logits_cnn):
            size, labels = target.shape[-2:], target.long()
            ce_cnn, ce_vit = (  # (B, H, W) nats, 0 at ignored pixels
                F.cross_entropy(upsample_logits(z.detach(), size), labels, ignore_index=self.ignore_index, reduction="none")
                for z in (logits_cnn, logits_vit)
            )
        return self.from_ce_maps(embed_cnn, embed_vit, ce_cnn, ce_vit, target)

    def _check_inputs(self, embed_cnn, embed_vit, ce_cnn, ce_vit, target) -> int:
        """from_ce_maps' argument checks (shapes only); returns the label stride of embed_cnn (4)."""
        check_map("embed_cnn", embed_cnn, self.cnn_channels)
        check_map("embed_vit", embed_vit, self.vit_channels)
        check_batch("embed_vit", embed_vit, "embed_cnn", embed_cnn)
        check_target(target, embed_cnn.shape[0], "embed_cnn")
        for name, ce in (("ce_cnn", ce_cnn), ("ce_vit", ce_vit)):
            if not isinstance(ce, torch.Tensor) or ce.shape != target.shape:
                shape = tuple(ce.shape) if isinstance(ce, torch.Tensor) else type(ce).__name__
                raise ValueError(f"{name}: expected a per-pixel CE map of the target's shape {tuple(target.shape)}, got {shape}")
        stride = label_stride("embed_cnn", embed_cnn, target)
        check_aspect("embed_vit", embed_vit.shape[-2:], "embed_cnn", embed_cnn.shape[-2:])
        return stride

    @torch.no_grad()
    def decide(self, ce_cnn, ce_vit, target, grid, cell):
        """Which way each region transfers, from each student's per-pixel CE (B, H, W) against `target`:
        (cnn_teaches, vit_teaches, region_ce_cnn, region_ce_vit, region_valid), each (B, Hr, Wr), for
        regions of cell x cell label pixels over the `grid` (h * stride, w * stride) under the feature map."""
        with float32_zone(ce_cnn):
            ce_c, ce_v = ce_cnn.detach().float(), ce_vit.detach().float()
            valid = target != self.ignore_index
            region_ce, region_valid = region_mean(
                fit_to(torch.stack([ce_c, ce_v], dim=1), grid), fit_to(valid.float(), grid), cell
            )
            region_ce_c, region_ce_v = region_ce.unbind(1)
            # NaN (no valid pixel) compares False both ways: such regions transfer nothing.
            cnn_teaches = region_ce_c < region_ce_v
            vit_teaches = region_ce_v < region_ce_c  # equal CE: neither
            if not self.selective:  # the control arm: no selection, every valid region both ways
                cnn_teaches, vit_teaches = region_valid, region_valid
        return cnn_teaches, vit_teaches, region_ce_c, region_ce_v, region_valid

    def from_ce_maps(self, embed_cnn, embed_vit, ce_cnn, ce_vit, target):
        """The loss from the embeds and each student's per-pixel CE: (loss, info) as forward's.

        ce_cnn, ce_vit: float32 (B, H, W), each student's CE (nats) at label resolution
        against `target`, 0 at ignored pixels: F.cross_entropy(upsampled logits,
        target, reduction="none"), as forward computes it. Only read (detached).
        """
        stride = self._check_inputs(embed_cnn, embed_vit, ce_cnn, ce_vit, target)
        h, w = embed_cnn.shape[-2:]
        if tuple(embed_vit.shape[-2:]) != (h, w):
            embed_vit = F.interpolate(embed_vit, size=(h, w), mode="bilinear", align_corners=False)
        cell = self.region_size * stride  # side of a region in label pixels
        self.region_pixels = cell

        # 1. Who is reliable where: mean CE per region over valid pixels. A decision, not a loss.
        cnn_teaches, vit_teaches, region_ce_c, region_ce_v, region_valid = self.decide(
            ce_cnn, ce_vit, target, (h * stride, w * stride), cell)

        # 2. The transfer, per cell: the learner's embed through its connector chases the teacher's
        # (detached) embed, on the cells of the regions that go its way; d = 0 on the other cells.
        # One channels-last copy of each embed, as rows (B*h*w, E): the learner's input and (detached) the target.
        rows_c = channels_last(embed_cnn).reshape(-1, self.cnn_channels)
        rows_v = channels_last(embed_vit).reshape(-1, self.vit_channels)
        cells_vit_learns = regions_to_pixels(cnn_teaches, self.region_size, (h, w))  # each region painted on its cells
        cells_cnn_learns = regions_to_pixels(vit_teaches, self.region_size, (h, w))
        gather = self.gather_cells if self.gather_cells is not None else embed_cnn.device.type == "cpu"
        transfer = transfer_map_gathered if gather else transfer_map  # the same d (see the module docstring)
        dist = torch.stack([
            transfer(self.to_cnn, rows_v, rows_c.detach(), cells_vit_learns),  # d(to_cnn(embed_v), sg(embed_c))
            transfer(self.to_vit, rows_c, rows_v.detach(), cells_cnn_learns),  # d(to_vit(embed_c), sg(embed_v))
        ], dim=1)

        # 3. Per-region mean d (exact where the direction is chosen: all its cells carry d; 0 elsewhere),
        # then each direction's mean over its own regions: exactly 0, still in the graph, when none goes that way.
        dist_vit_learns, dist_cnn_learns = F.avg_pool2d(dist, self.region_size, self.region_size, ceil_mode=True).unbind(1)
        loss_cnn_teaches = masked_mean(dist_vit_learns, cnn_teaches)
        loss_vit_teaches = masked_mean(dist_cnn_learns, vit_teaches)
        info = {
            "direction": cnn_teaches.long() - vit_teaches.long(),
            "cnn_teaches": cnn_teaches,
            "vit_teaches": vit_teaches,
            "region_ce_cnn": region_ce_c,
            "region_ce_vit": region_ce_v,
            "region_valid": region_valid,
            "dist_vit_learns": dist_vit_learns.detach(),
            "dist_cnn_learns": dist_cnn_learns.detach(),
            "loss_cnn_teaches": loss_cnn_teaches.detach(),
            "loss_vit_teaches": loss_vit_teaches.detach(),
            "frac_cnn_teaches": fraction(cnn_teaches, region_valid),
            "frac_vit_teaches": fraction(vit_teaches, region_valid),
        }
        return loss_cnn_teaches + loss_vit_teaches, info
