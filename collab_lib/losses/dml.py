"""DML, deep mutual learning (Zhang et al., CVPR 2018): the unselective baseline.

On every valid pixel, both directions, each student learns the other's prediction:

    L_dml = T^2 * [ mean_valid KL(sg(p_v^T) || p_c^T) + mean_valid KL(sg(p_c^T) || p_v^T) ]
    p^T = softmax(z / T) over the K classes,  KL(p || q) = sum_k p_k (log p_k - log q_k)  (nats)

z: a student's logits (B, K, h, w) upsampled bilinearly to the labels (B, H, W);
float32. sg = stop-gradient (`.detach()`): the other student's prediction is only
a target. This is pixel-wise BSD (pixel_bsd.py) without any selection, which is
why the kit uses it as the baseline; the paper compares against DML and the kit
implements it as above (docs/method.md, "Baselines").
"""
import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_logits_pair, check_temperature, float32_zone
from .common import kl_map, masked_mean, upsample_logits


class DMLLoss(nn.Module):
    """forward(logits_cnn (B, K, h, w), logits_vit (B, K, h, w), target (B, H, W)) -> (loss, info)

    loss: 0-dim float32. info (detached): "cnn_learns", "vit_learns" (0-dim, each
    direction's term, times T^2), "kl_cnn_learns", "kl_vit_learns" ((B, H, W) KL in
    nats at temperature T, 0 at ignored pixels). The logits may also come at the labels' size.
    """

    def __init__(self, temperature: float = 1.0, ignore_index: int = 255):
        super().__init__()
        self.temperature, self.ignore_index = check_temperature(temperature), ignore_index

    def forward(self, logits_cnn, logits_vit, target):
        check_logits_pair(logits_cnn, logits_vit, target)
        T, valid = self.temperature, target != self.ignore_index
        with float32_zone(logits_cnn):
            z_c, z_v = upsample_logits(logits_cnn, target.shape[-2:]), upsample_logits(logits_vit, target.shape[-2:])
            log_p_c, log_p_v = F.log_softmax(z_c / T, dim=1), F.log_softmax(z_v / T, dim=1)
            # each side is only a target for the other (detached)
            kl_cnn_learns = kl_map(log_p_v.detach(), log_p_c)  # KL(sg(p_v^T) || p_c^T), (B, H, W)
            kl_vit_learns = kl_map(log_p_c.detach(), log_p_v)  # KL(sg(p_c^T) || p_v^T)
            # means over valid pixels; none valid: the terms are 0, not NaN
            cnn_learns = T * T * masked_mean(kl_cnn_learns, valid)
            vit_learns = T * T * masked_mean(kl_vit_learns, valid)
        zero = torch.zeros_like(kl_cnn_learns)
        info = {
            "cnn_learns": cnn_learns.detach(),
            "vit_learns": vit_learns.detach(),
            "kl_cnn_learns": torch.where(valid, kl_cnn_learns, zero).detach(),
            "kl_vit_learns": torch.where(valid, kl_vit_learns, zero).detach(),
        }
        return cnn_learns + vit_learns, info
