"""KDCL (Guo et al., CVPR 2020), its naive ensemble: both students learn the average of both.

    q = softmax(((z_c + z_v) / 2) / T), detached
    L_kdcl = T^2 * [ mean_valid KL(q || p_c^T) + mean_valid KL(q || p_v^T) ]

The paper compares against KDCL; the kit implements KDCL's "naive" variant
(mean of the logits, no per-sample weighting). Logits are upsampled bilinearly
to the labels (the mean of upsampled logits = upsampled mean: bilinear is
linear); float32.
"""
import torch.nn.functional as F
from torch import nn

from ._common import check_logits_pair, float32_zone, kl_map, masked_mean, upsample_logits


class KDCLLoss(nn.Module):
    """forward(logits_cnn (B, K, h, w), logits_vit (B, K, h, w), target (B, H, W)) -> (loss, info)

    loss: 0-dim float32. info (detached): "cnn_learns", "vit_learns" (0-dim, times
    T^2), "ensemble_pred" ((B, H, W) int64, argmax of the soft target q), "kl_cnn_learns",
    "kl_vit_learns" ((B, H, W) nats at temperature T, 0 at ignored pixels).
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
            z_c = upsample_logits(logits_cnn, target.shape[-2:])
            z_v = upsample_logits(logits_vit, target.shape[-2:])
            log_q = F.log_softmax((z_c + z_v).detach() / (2 * T), dim=1)  # the ensemble teacher, a target only
            kl_cnn_learns = kl_map(log_q, F.log_softmax(z_c / T, dim=1))  # KL(q || p_c^T)
            kl_vit_learns = kl_map(log_q, F.log_softmax(z_v / T, dim=1))  # KL(q || p_v^T)
            cnn_learns = T * T * masked_mean(kl_cnn_learns, valid)
            vit_learns = T * T * masked_mean(kl_vit_learns, valid)
        info = {
            "cnn_learns": cnn_learns.detach(),
            "vit_learns": vit_learns.detach(),
            "ensemble_pred": log_q.argmax(1),
            "kl_cnn_learns": (kl_cnn_learns * valid).detach(),
            "kl_vit_learns": (kl_vit_learns * valid).detach(),
        }
        return cnn_learns + vit_learns, info
