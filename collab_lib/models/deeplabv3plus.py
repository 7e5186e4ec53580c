"""The CNN student: DeepLabV3+ on a timm backbone (Chen et al., ECCV 2018).

Backbone at output stride 16 (dilated last stage). ASPP = one 1x1 branch,
three 3x3 atrous branches (rates 6, 12, 18) and image pooling. The decoder
upsamples the ASPP output to stride 4, concatenates a 48-channel projection of
the stride-4 backbone feature (the skip), and fuses with two 3x3 convs.
"""
import torch
import torch.nn.functional as F
from torch import nn

from .backbone import check_input_size, create_backbone
from .output import StudentOutput


def conv_bn_relu(in_ch: int, out_ch: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: (B, in_ch, h, w) -> (B, out_ch, h, w)."""

    def __init__(self, in_ch: int, out_ch: int = 256, rates=(6, 12, 18)):
        super().__init__()
        self.branches = nn.ModuleList([conv_bn_relu(in_ch, out_ch, 1)] + [conv_bn_relu(in_ch, out_ch, 3, r) for r in rates])
        # Image pooling: global context, without BN on a 1x1 map (it breaks at batch size 1).
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.ReLU(inplace=True))
        self.project = nn.Sequential(conv_bn_relu(out_ch * (len(rates) + 2), out_ch, 1), nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.interpolate(self.image_pool(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.project(torch.cat([branch(x) for branch in self.branches] + [pooled], dim=1))


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+ student. forward((B,3,H,W)) -> StudentOutput at stride 4."""

    kind = "cnn"

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet18",
        pretrained: bool = False,
        backbone_weights=None,
        aspp_channels: int = 256,
        decoder_channels: int = 256,
        skip_channels: int = 48,
    ):
        super().__init__()
        # All stages are computed anyway on the way down; keep the stride-4 one (skip, `low`) and the deepest.
        self.backbone = create_backbone(
            backbone, out_indices=(0, 1, 2, 3, 4), pretrained=pretrained,
            backbone_weights=backbone_weights, output_stride=16,
        )
        reductions = self.backbone.feature_info.reduction()
        if 4 not in reductions:
            raise ValueError(f"backbone {backbone!r} has no stride-4 stage (reductions {reductions})")
        self.low_index = reductions.index(4)
        channels = self.backbone.feature_info.channels()
        low_ch, high_ch = channels[self.low_index], channels[-1]
        self.aspp = ASPP(high_ch, aspp_channels)
        self.skip = conv_bn_relu(low_ch, skip_channels, 1)
        self.fuse = nn.Sequential(
            conv_bn_relu(aspp_channels + skip_channels, decoder_channels, 3),
            conv_bn_relu(decoder_channels, decoder_channels, 3),
        )
        self.classifier = nn.Conv2d(decoder_channels, num_classes, 1)
        self.num_classes = num_classes
        self.low_channels = low_ch
        self.embed_channels = decoder_channels

    def forward(self, x: torch.Tensor) -> StudentOutput:
        check_input_size(*x.shape[-2:])
        features = self.backbone(x)
        low, high = features[self.low_index], features[-1]
        context = F.interpolate(self.aspp(high), size=low.shape[-2:], mode="bilinear", align_corners=False)
        embed = self.fuse(torch.cat([context, self.skip(low)], dim=1))
        return StudentOutput(low=low, embed=embed, logits=self.classifier(embed), kind=self.kind)
