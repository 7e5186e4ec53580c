"""The losses of the method (docs/method.md is the kit's specification).

Every loss is a plain nn.Module returning (loss, info): a 0-dim float32 tensor
and a dict of detached diagnostic tensors for plotting. Each file reads alone,
its equations in its docstring; checks.py holds only the argument checks and
the float32 zone they all use, common.py the few tensor operations they share
(upsampling logits, masked means, the KL map, the feature distance).

- HFDLoss            heterogeneous feature distillation on the low features (hfd.py)
- RegionBSDLoss      region-wise bidirectional selective distillation on `embed` (region_bsd.py)
- PixelBSDLoss       pixel-wise bidirectional selective distillation on the logits (pixel_bsd.py)
- DMLLoss, KDCLLoss  the online-KD baselines (dml.py, kdcl.py)
- CollaborativeLoss  the whole objective for method independent / dml / kdcl / collab (collaborative.py)
"""
from ..names import METHODS
from .collaborative import CollaborativeLoss, segmentation_ce
from .common import channel_norm, channels_last, feature_distance
from .dml import DMLLoss
from .hfd import HFDLoss, SRAttention
from .kdcl import KDCLLoss
from .pixel_bsd import PixelBSDLoss
from .region_bsd import RegionBSDLoss, regions_to_pixels

__all__ = [
    "HFDLoss", "SRAttention", "RegionBSDLoss", "regions_to_pixels", "PixelBSDLoss", "DMLLoss", "KDCLLoss",
    "CollaborativeLoss", "METHODS", "segmentation_ce", "channel_norm", "channels_last", "feature_distance",
]
