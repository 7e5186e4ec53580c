"""Region-wise BSD (bidirectional selective distillation) on the decoder features `embed`.

Per region of the feature grid, the student with the lower mean CE against the
labels teaches the other one, in feature space:

    L_region = mean over CNN-teaches regions of d(to_cnn(embed_v), sg(embed_c))
             + mean over ViT-teaches regions of d(to_vit(embed_c), sg(embed_v))

How the kit lays regions over the labels (the paper is silent):
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
- The decision is taken without gradient (logits are only read, detached).
- A region's d is the mean of the per-cell `feature_distance` over all its cells
  (also cells whose pixels are partly ignore: the decision used the valid
  pixels, the transfer covers the region).
- Each connector runs only where its direction is needed, in one of two ways
  that agree up to float rounding: on a CPU the cells of the regions that go that way are
  gathered first (`index_select` of their rows), so the matrix products cover
  only them (about half the work: every cell goes at most one way); on an
  accelerator the connectors run on every cell and a mask keeps the chosen
  ones, because a data-dependent gather would make the host wait for the
  device every step. `gather_cells` overrides the choice.
- Each direction's mean divides by its own region count; with no region going
  one way that term is exactly 0 (and still in the graph, so both connectors
  get a (zero) gradient every step, as DDP without find_unused_parameters needs).
"""
import torch
from torch import nn

from ._common import (
    channels_last, check_aspect, check_batch, check_map, check_target, feature_distance, float32_zone, fit_to,
    fraction, label_stride, masked_mean, pixel_ce, region_pool, region_weighted_mean, resize_to, upsample_logits,
)


class RegionBSDLoss(nn.Module):
    """Region-wise BSD.

    forward(embed_cnn (B, E_c, h, w), embed_vit (B, E_v, h, w),
            logits_cnn (B, K, h, w), logits_vit (B, K, h, w), target (B, H, W) int)
      -> (loss, info)
      loss: 0-dim float32 (each term a mean d in [0, 4]).
      info (all detached), over the region grid (B, Hr, Wr):
        "direction"      int64: 1 = CNN teaches ViT, -1 = ViT teaches CNN, 0 = no transfer
                         (no valid pixel, or equal CE)
        "region_ce_cnn", "region_ce_vit"  float32 mean CE (nats) over the region's valid
                         pixels; NaN where the region has no valid pixel
        "region_valid"   bool, the region has at least one valid pixel
        "dist_vit_learns", "dist_cnn_learns"  float32 per-region d of each direction where
                         that direction is chosen, 0 elsewhere (not computed there)
        "loss_cnn_teaches", "loss_vit_teaches"  0-dim, each direction's term
        "frac_cnn_teaches", "frac_vit_teaches"  0-dim, share of the valid regions
    After a forward, `self.region_pixels` is the side of a region in label pixels
    (region_size * stride), for `regions_to_pixels`.

    Optional `ce_maps=(ce_cnn, ce_vit)`: each student's per-pixel CE at label
    resolution (B, H, W), 0 at ignored pixels, of exactly these logits (upsampled
    bilinearly), as CollaborativeLoss has already computed them for its CE term.
    The decision then reads them (detached) instead of computing them again; the
    result is the same.

    `gather_cells`: None (default) gathers the learning cells before the connectors
    on a CPU and masks a dense computation elsewhere; True / False force one way
    (both give the same loss and gradients up to float rounding).
    """

    def __init__(
        self, cnn_channels: int, vit_channels: int, region_size: int = 8, ignore_index: int = 255,
        gather_cells: bool | None = None,
    ):
        super().__init__()
        if region_size < 1:
            raise ValueError(f"region_size: expected an int >= 1, got {region_size!r}")
        if gather_cells not in (None, True, False):
            raise ValueError(f"gather_cells: expected None (automatic), True or False, got {gather_cells!r}")
        self.cnn_channels, self.vit_channels = cnn_channels, vit_channels
        self.region_size, self.ignore_index = region_size, ignore_index
        self.gather_cells = gather_cells
        # Connectors on the learning side only; the target is always the teacher's own embed.
        # 1x1 convs, written as nn.Linear over channels-last maps (the same map, one matrix product).
        self.to_cnn = nn.Linear(vit_channels, cnn_channels)  # ViT learns when the CNN teaches
        self.to_vit = nn.Linear(cnn_channels, vit_channels)  # CNN learns when the ViT teaches
        self.region_pixels = None

    def forward(self, embed_cnn, embed_vit, logits_cnn, logits_vit, target, ce_maps=None):
        check_map("embed_cnn", embed_cnn, self.cnn_channels)
        check_map("embed_vit", embed_vit, self.vit_channels)
        check_map("logits_cnn", logits_cnn, what="logit map")
        check_map("logits_vit", logits_vit, what="logit map")
        for name, x in (("embed_vit", embed_vit), ("logits_cnn", logits_cnn), ("logits_vit", logits_vit)):
            check_batch(name, x, "embed_cnn", embed_cnn)
        if logits_cnn.shape[1] != logits_vit.shape[1]:
            raise ValueError(f"logits_vit: {logits_vit.shape[1]} classes, expected logits_cnn's {logits_cnn.shape[1]}")
        check_target(target, embed_cnn.shape[0], "embed_cnn")
        stride = label_stride("embed_cnn", embed_cnn, target)
        label_stride("logits_cnn", logits_cnn, target)
        label_stride("logits_vit", logits_vit, target)
        check_aspect("embed_vit", embed_vit.shape[-2:], "embed_cnn", embed_cnn.shape[-2:])
        if ce_maps is not None:
            for name, ce in zip(("ce_maps[0]", "ce_maps[1]"), ce_maps):
                if not isinstance(ce, torch.Tensor) or ce.shape != target.shape:
                    shape = tuple(ce.shape) if isinstance(ce, torch.Tensor) else type(ce).__name__
                    raise ValueError(f"{name}: expected a per-pixel CE map of the target's shape {tuple(target.shape)}, got {shape}")
        h, w = embed_cnn.shape[-2:]
        embed_vit = resize_to(embed_vit, (h, w))
        cell = self.region_size * stride  # side of a region in label pixels
        self.region_pixels = cell

        # 1. Who is reliable where: mean CE per region over valid pixels. A decision, not a loss.
        with torch.no_grad(), float32_zone(logits_cnn):
            if ce_maps is None:
                size = target.shape[-2:]
                ce_c, valid = pixel_ce(upsample_logits(logits_cnn.detach(), size), target, self.ignore_index)
                ce_v, _ = pixel_ce(upsample_logits(logits_vit.detach(), size), target, self.ignore_index)
            else:  # the same maps, already computed by the caller
                ce_c, ce_v = (ce.detach().float() for ce in ce_maps)
                valid = target != self.ignore_index
            grid = (h * stride, w * stride)  # label pixels under the feature grid
            region_ce, region_valid = region_weighted_mean(
                fit_to(torch.stack([ce_c, ce_v], dim=1), grid), fit_to(valid.float(), grid), cell
            )
            region_ce_c, region_ce_v = region_ce.unbind(1)
            # NaN (no valid pixel) compares False both ways: such regions transfer nothing.
            cnn_teaches = region_ce_c < region_ce_v
            vit_teaches = region_ce_v < region_ce_c  # equal CE: neither
            direction = cnn_teaches.long() - vit_teaches.long()

        # 2. The transfer, on the cells of the regions that go each way: the learner's embed through
        # its connector chases the teacher's (detached) embed. d per cell, 0 on the other cells
        # (regions_to_pixels with region_size paints each region onto its feature cells).
        # One channels-last copy of each embed, as rows (B*h*w, E): the learner's input and (detached) the target.
        rows_c = channels_last(embed_cnn).reshape(-1, self.cnn_channels)
        rows_v = channels_last(embed_vit).reshape(-1, self.vit_channels)
        dist = torch.stack([
            self.transfer_map(self.to_cnn, rows_v, rows_c, regions_to_pixels(cnn_teaches, self.region_size, (h, w))),
            self.transfer_map(self.to_vit, rows_c, rows_v, regions_to_pixels(vit_teaches, self.region_size, (h, w))),
        ], dim=1)
        # Per-region mean d: exact where the direction is chosen (all its cells carry d), 0 elsewhere.
        dist_vit_learns, dist_cnn_learns = region_pool(dist, self.region_size).unbind(1)
        loss_cnn_teaches = masked_mean(dist_vit_learns, cnn_teaches)  # own region count
        loss_vit_teaches = masked_mean(dist_cnn_learns, vit_teaches)

        info = {
            "direction": direction,
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

    def transfer_map(self, connector: nn.Module, learner: torch.Tensor, teacher: torch.Tensor, cells: torch.Tensor):
        """d(connector(learner), sg(teacher)) per cell where `cells` holds, 0 elsewhere.

        learner (N, E_in), teacher (N, E_out): the cells' features as rows, N = B*h*w in
        the order of cells (B, h, w) bool -> float32 (B, h, w).
        """
        gather = self.gather_cells if self.gather_cells is not None else learner.device.type == "cpu"
        if gather:  # only the learning cells go through the connector (no device to wait for on a CPU)
            rows = torch.arange(cells.numel(), device=cells.device)[cells.flatten()]  # (n,) indices of the learning cells
            d = feature_distance(connector(learner.index_select(0, rows)), teacher.detach().index_select(0, rows))
            return torch.zeros(cells.numel(), dtype=d.dtype, device=d.device).index_copy(0, rows, d).view(cells.shape)
        d = feature_distance(connector(learner), teacher.detach()).view(cells.shape)
        return torch.where(cells, d, torch.zeros_like(d))


def regions_to_pixels(region_map: torch.Tensor, region_pixels: int, size) -> torch.Tensor:
    """Paint a (B, Hr, Wr) region map onto label pixels (B, H, W), e.g. to draw or count directions per class.

    Each region covers region_pixels x region_pixels label pixels from the top-left
    (the same layout as RegionBSDLoss); the result is cropped to `size`.
    """
    up = region_map.repeat_interleave(region_pixels, dim=-2).repeat_interleave(region_pixels, dim=-1)
    return fit_to(up, size)  # label pixels beyond the grid (< one stride) were not counted: 0
