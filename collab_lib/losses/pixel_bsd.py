"""Pixel-wise BSD (bidirectional selective distillation) on the logits.

Per pixel, a student teaches the other one only where it is reliable:

    A teaches B at a pixel  <=>  valid  and  argmax(p_A) = label  and  CE_A < CE_B
    L_pixel = T^2 * [ mean over CNN-teaches pixels of KL(sg(p_c^T) || p_v^T)
                    + mean over ViT-teaches pixels of KL(sg(p_v^T) || p_c^T) ]

The paper names the rule "reliable prediction knowledge"; the kit implements it
as above: correct and strictly lower CE (at T = 1, against the label); equal CE
transfers nothing; `require_correct=False` drops the correctness condition.
`require_learner_wrong=True` (the kit's variant, not the paper's) also asks that
the learner be wrong at that pixel, so knowledge moves only where it corrects a
mistake, not where both students are right and one is merely more confident.
Logits are upsampled bilinearly to the labels; everything is float32. Each
direction's mean divides by its own pixel count (0 pixels: that term is 0).
"""
import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_logits_pair, float32_zone, fraction, kl_map, masked_mean, nll_map, upsample_logits


def is_correct(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """argmax(logits) == label, per pixel (B, H, W) bool; False at ignored pixels.

    Written as "the label's logit is the largest" (amax + gather), which reads
    the same as argmax == label but runs much faster on CPU than a strided argmax;
    an exact tie for the maximum counts as correct.
    """
    label = torch.where(valid, target.long(), torch.zeros_like(target, dtype=torch.long))
    return valid & (logits.gather(1, label.unsqueeze(1)).squeeze(1) >= logits.amax(dim=1))


class PixelBSDLoss(nn.Module):
    """Pixel-wise BSD.

    forward(logits_cnn (B, K, h, w), logits_vit (B, K, h, w), target (B, H, W) int) -> (loss, info)
      loss: 0-dim float32 (nats, times T^2).
      info (detached), at label resolution (B, H, W):
        "cnn_teaches", "vit_teaches"  bool: the pixel transfers CNN -> ViT / ViT -> CNN
        "both_right", "both_wrong"    bool, over valid pixels (argmax vs label)
        "kl_map"   float32: the KL transferred at each pixel (nats at temperature T,
                   not times T^2), 0 where nothing is transferred
        "loss_cnn_teaches", "loss_vit_teaches"  0-dim, each direction's term (times T^2)
        "frac_cnn_teaches", "frac_vit_teaches", "frac_both_right", "frac_both_wrong"
                   0-dim, shares of the valid pixels

    Optional `log_probs=(log_p_cnn, log_p_vit)`: F.log_softmax over classes of
    exactly these logits at label resolution (float32, (B, K, H, W), with their
    graph), as CollaborativeLoss has already computed them for its CE term. The
    decision reads each pixel's CE from them and, at T = 1, the transfer uses
    them as p^T: nothing is computed twice, the result is the same.
    """

    def __init__(self, temperature: float = 1.0, require_correct: bool = True, ignore_index: int = 255,
                 require_learner_wrong: bool = False):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature: expected > 0, got {temperature!r}")
        self.temperature, self.require_correct, self.ignore_index = float(temperature), require_correct, ignore_index
        self.require_learner_wrong = require_learner_wrong

    def forward(self, logits_cnn, logits_vit, target, log_probs=None):
        check_logits_pair(logits_cnn, logits_vit, target)
        T = self.temperature
        with float32_zone(logits_cnn):
            z_c = upsample_logits(logits_cnn, target.shape[-2:])
            z_v = upsample_logits(logits_vit, target.shape[-2:])
            if log_probs is None:
                log_probs = F.log_softmax(z_c, dim=1), F.log_softmax(z_v, dim=1)
            elif not all(isinstance(lp, torch.Tensor) and lp.shape == z_c.shape for lp in log_probs):
                shapes = [tuple(lp.shape) if isinstance(lp, torch.Tensor) else type(lp).__name__ for lp in log_probs]
                raise ValueError(f"log_probs: expected two log-probability maps of shape {tuple(z_c.shape)}, got {shapes}")

            # Softened log-probabilities for the transfer (at T = 1: the plain log-softmax).
            if T == 1.0:
                log_p_c, log_p_v = log_probs
            else:
                log_p_c, log_p_v = F.log_softmax(z_c / T, dim=1), F.log_softmax(z_v / T, dim=1)

            # The decision: a few lines of tensor code, no gradient. CE at T = 1, against the label.
            with torch.no_grad():
                ce_c, valid = nll_map(log_probs[0], target, self.ignore_index)
                ce_v, _ = nll_map(log_probs[1], target, self.ignore_index)
                right_c, right_v = is_correct(z_c, target, valid), is_correct(z_v, target, valid)
                reliable_c = right_c if self.require_correct else valid
                reliable_v = right_v if self.require_correct else valid
                cnn_teaches = reliable_c & (ce_c < ce_v)
                vit_teaches = reliable_v & (ce_v < ce_c)
                if self.require_learner_wrong:  # transfer only where it corrects the learner's argmax
                    cnn_teaches = cnn_teaches & ~right_v
                    vit_teaches = vit_teaches & ~right_c

            # The transfer: the teacher's softened prediction is a target (detached).
            kl_vit_learns = kl_map(log_p_c.detach(), log_p_v)  # KL(sg(p_c^T) || p_v^T)
            kl_cnn_learns = kl_map(log_p_v.detach(), log_p_c)  # KL(sg(p_v^T) || p_c^T)
            loss_cnn_teaches = T * T * masked_mean(kl_vit_learns, cnn_teaches)
            loss_vit_teaches = T * T * masked_mean(kl_cnn_learns, vit_teaches)

        zero = torch.zeros_like(kl_vit_learns)
        transferred = torch.where(cnn_teaches, kl_vit_learns, torch.where(vit_teaches, kl_cnn_learns, zero))
        both_right, both_wrong = right_c & right_v, valid & ~right_c & ~right_v
        info = {
            "cnn_teaches": cnn_teaches,
            "vit_teaches": vit_teaches,
            "both_right": both_right,
            "both_wrong": both_wrong,
            "kl_map": transferred.detach(),
            "loss_cnn_teaches": loss_cnn_teaches.detach(),
            "loss_vit_teaches": loss_vit_teaches.detach(),
            "frac_cnn_teaches": fraction(cnn_teaches, valid),
            "frac_vit_teaches": fraction(vit_teaches, valid),
            "frac_both_right": fraction(both_right, valid),
            "frac_both_wrong": fraction(both_wrong, valid),
        }
        return loss_cnn_teaches + loss_vit_teaches, info
