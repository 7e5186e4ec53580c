"""KDCL-style ensemble distillation (after Guo et al., CVPR 2020): both students learn their logits' mean.

    q = softmax(((z_c + z_v) / 2) / T), detached (sg)
    L_kdcl = T^2 * [ mean_valid KL(q || p_c^T) + mean_valid KL(q || p_v^T) ]
    p^T = softmax(z / T) over the K classes,  KL(p || q) = sum_k p_k (log p_k - log q_k)  (nats)

z: a student's logits (B, K, h, w) upsampled bilinearly to the labels (B, H, W)
(the mean of upsampled logits = the upsampled mean: bilinear is linear); float32.
The paper compares against KDCL without saying how its ensemble teacher is built; KDCL
itself offers several ways to build it from the students' logits. The kit implements the
plainest such teacher, the mean of the two students' logits (no per-sample weighting or
selection), as above, and does not claim it is one of KDCL's named variants
(docs/method.md, "Baselines").
"""
import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_logits_pair, check_temperature, float32_zone
from .common import kl_map, masked_mean, upsample_logits


class KDCLLoss(nn.Module):
    """forward(logits_cnn (B, K, h, w), logits_vit (B, K, h, w), target (B, H, W)) -> (loss, info)

    loss: 0-dim float32. info (detached): "cnn_learns", "vit_learns" (0-dim, times
    T^2), "ensemble_pred" ((B, H, W) int64, argmax of the soft target q), "kl_cnn_learns",
    "kl_vit_learns" ((B, H, W) nats at temperature T, 0 at ignored pixels).
    The logits may also come at the labels' size.
    """

    def __init__(self, temperature: float = 1.0, ignore_index: int = 255):
        super().__init__()
        self.temperature, self.ignore_index = check_temperature(temperature), ignore_index

    def forward(self, logits_cnn, logits_vit, target):
        check_logits_pair(logits_cnn, logits_vit, target)
        T, valid = self.temperature, target != self.ignore_index
        with float32_zone(logits_cnn):
            z_c, z_v = upsample_logits(logits_cnn, target.shape[-2:]), upsample_logits(logits_vit, target.shape[-2:])
            log_q = F.log_softmax((z_c + z_v).detach() / (2 * T), dim=1)  # the ensemble teacher, a target only
            kl_cnn_learns = kl_map(log_q, F.log_softmax(z_c / T, dim=1))  # KL(q || p_c^T), (B, H, W)
            kl_vit_learns = kl_map(log_q, F.log_softmax(z_v / T, dim=1))  # KL(q || p_v^T)
            # means over valid pixels; none valid: the terms are 0, not NaN
            cnn_learns = T * T * masked_mean(kl_cnn_learns, valid)
            vit_learns = T * T * masked_mean(kl_vit_learns, valid)
        zero = torch.zeros_like(kl_cnn_learns)
        info = {
            "cnn_learns": cnn_learns.detach(),
            "vit_learns": vit_learns.detach(),
            "ensemble_pred": log_q.argmax(1),
            "kl_cnn_learns": torch.where(valid, kl_cnn_learns, zero).detach(),
            "kl_vit_learns": torch.where(valid, kl_vit_learns, zero).detach(),
        }
        return cnn_learns + vit_learns, info
