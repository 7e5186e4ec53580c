"""DML, deep mutual learning (Zhang et al., CVPR 2018): the unselective baseline.

On every valid pixel, both directions, each student learns the other's prediction:

    L_dml = T^2 * [ mean_valid KL(sg(p_v^T) || p_c^T) + mean_valid KL(sg(p_c^T) || p_v^T) ]

Logits are upsampled bilinearly to the labels; float32. This is pixel-wise BSD
without any selection, which is why the kit uses it as the baseline.
"""
import torch.nn.functional as F
from torch import nn

from ._common import check_logits_pair, float32_zone, kl_map, masked_mean, upsample_logits


class DMLLoss(nn.Module):
    """forward(logits_cnn (B, K, h, w), logits_vit (B, K, h, w), target (B, H, W)) -> (loss, info)

    loss: 0-dim float32. info (detached): "cnn_learns", "vit_learns" (0-dim, each
    direction's term, times T^2), "kl_cnn_learns", "kl_vit_learns" ((B, H, W) KL in
    nats at temperature T, 0 at ignored pixels).
    """

    def __init__(self, temperature: float = 1.0, ignore_index: int = 255):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature: expected > 0, got {temperature!r}")
        self.temperature, self.ignore_index = float(temperature), ignore_index

    def forward(self, logits_cnn, logits_vit, target):
        check_logits_pair(logits_cnn, logits_vit, target)
        T = self.temperature
        valid = target != self.ignore_index
        with float32_zone(logits_cnn):
            log_p_c = F.log_softmax(upsample_logits(logits_cnn, target.shape[-2:]) / T, dim=1)
            log_p_v = F.log_softmax(upsample_logits(logits_vit, target.shape[-2:]) / T, dim=1)
            kl_cnn_learns = kl_map(log_p_v.detach(), log_p_c)  # KL(sg(p_v^T) || p_c^T)
            kl_vit_learns = kl_map(log_p_c.detach(), log_p_v)  # KL(sg(p_c^T) || p_v^T)
            cnn_learns = T * T * masked_mean(kl_cnn_learns, valid)
            vit_learns = T * T * masked_mean(kl_vit_learns, valid)
        info = {
            "cnn_learns": cnn_learns.detach(),
            "vit_learns": vit_learns.detach(),
            "kl_cnn_learns": (kl_cnn_learns * valid).detach(),
            "kl_vit_learns": (kl_vit_learns * valid).detach(),
        }
        return cnn_learns + vit_learns, info
