"""The ViT student: SegFormer's all-MLP decoder on a MiT encoder (Xie et al., NeurIPS 2021).

timm's `pvt_v2_b0` created with `mlp_ratios=(4, 4, 4, 4)` is exactly MiT-B0
(overlapping patch embeddings, spatial-reduction attention, Mix-FFN with a
depth-wise conv; 3,319,392 encoder parameters). `pvt_v2_b1` / `pvt_v2_b2` the
same way are MiT-B1 / MiT-B2. (timm's own pvt_v2 defaults use mlp_ratio 8 in
the first two stages: that is PVTv2, not MiT.)

Decoder: each of the four stages is projected to `decoder_channels` by a 1x1
conv (the paper's per-stage "MLP"), upsampled to stride 4, concatenated, fused
by a 1x1 conv + BN + ReLU (this is `embed`), then classified.
"""
import torch
import torch.nn.functional as F
from torch import nn

from .backbone import check_input_size, create_backbone
from .output import StudentOutput

MIT_ENCODERS = {"b0": "pvt_v2_b0", "b1": "pvt_v2_b1", "b2": "pvt_v2_b2"}


class SegFormer(nn.Module):
    """SegFormer student. forward((B,3,H,W)) -> StudentOutput at stride 4."""

    kind = "vit"

    def __init__(
        self,
        num_classes: int,
        variant: str = "b0",
        pretrained: bool = False,
        backbone_weights=None,
        decoder_channels: int = 256,
        dropout: float = 0.1,
    ):
        super().__init__()
        if variant not in MIT_ENCODERS:
            raise ValueError(f"variant {variant!r}: expected one of {sorted(MIT_ENCODERS)}")
        self.backbone = create_backbone(
            MIT_ENCODERS[variant], out_indices=(0, 1, 2, 3), pretrained=pretrained,
            backbone_weights=backbone_weights, mlp_ratios=(4, 4, 4, 4),
        )
        channels = self.backbone.feature_info.channels()
        self.stage_proj = nn.ModuleList([nn.Conv2d(ch, decoder_channels, 1) for ch in channels])
        self.fuse = nn.Sequential(
            nn.Conv2d(decoder_channels * len(channels), decoder_channels, 1, bias=False),
            nn.BatchNorm2d(decoder_channels),
            nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(decoder_channels, num_classes, 1)
        self.num_classes = num_classes
        self.low_channels = channels[0]
        self.embed_channels = decoder_channels

    def forward(self, x: torch.Tensor) -> StudentOutput:
        check_input_size(*x.shape[-2:])
        stages = self.backbone(x)
        size = stages[0].shape[-2:]  # stride 4
        projected = [
            F.interpolate(proj(stage), size=size, mode="bilinear", align_corners=False) if i else proj(stage)
            for i, (proj, stage) in enumerate(zip(self.stage_proj, stages))
        ]
        embed = self.fuse(torch.cat(projected, dim=1))
        return StudentOutput(low=stages[0], embed=embed, logits=self.classifier(self.dropout(embed)), kind=self.kind)
