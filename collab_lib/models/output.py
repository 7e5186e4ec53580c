"""What every student returns: three stride-4 tensors and its kind.

The distillation losses are built from these alone: `low` feeds HFD,
`embed` feeds region-wise BSD, `logits` feed pixel-wise BSD and the CE.
"""
from typing import NamedTuple

import torch

STUDENT_KINDS = ("cnn", "vit")


class StudentOutput(NamedTuple):
    """Output of a student for an input of shape (B, 3, H, W).

    low:    (B, C_low, H/4, W/4)   first stride-4 backbone stage
    embed:  (B, C_embed, H/4, W/4) decoder feature just before the classifier
    logits: (B, num_classes, H/4, W/4)
    kind:   "cnn" or "vit"

    A NamedTuple (not a dataclass) so that DDP, torch.compile and autocast
    treat it as a plain tuple of tensors.
    """

    low: torch.Tensor
    embed: torch.Tensor
    logits: torch.Tensor
    kind: str

    @property
    def low_channels(self) -> int:
        return self.low.shape[1]

    @property
    def embed_channels(self) -> int:
        return self.embed.shape[1]
