"""The losses of the method (see docs/method.md, the kit's specification).

Every loss is a plain nn.Module returning (loss, info): a 0-dim float32 tensor
and a dict of detached diagnostic tensors for plotting.

- HFDLoss            heterogeneous feature distillation on the low features
- RegionBSDLoss      region-wise bidirectional selective distillation on `embed`
- PixelBSDLoss       pixel-wise bidirectional selective distillation on the logits
- DMLLoss, KDCLLoss  the online-KD baselines
- CollaborativeLoss  the whole objective for method independent / dml / kdcl / collab
"""
from ._common import channel_norm, channels_last, feature_distance
from .collaborative import METHODS, CollaborativeLoss, segmentation_ce
from .dml import DMLLoss
from .hfd import HFDLoss, SRAttention
from .kdcl import KDCLLoss
from .pixel_bsd import PixelBSDLoss
from .region_bsd import RegionBSDLoss, regions_to_pixels

__all__ = [
    "HFDLoss", "SRAttention", "RegionBSDLoss", "regions_to_pixels", "PixelBSDLoss", "DMLLoss", "KDCLLoss",
    "CollaborativeLoss", "METHODS", "segmentation_ce", "channel_norm", "channels_last", "feature_distance",
]
