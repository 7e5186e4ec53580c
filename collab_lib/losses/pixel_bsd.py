"""Pixel-wise BSD (bidirectional selective distillation) on the logits.

Per pixel, a student teaches the other one only where it is reliable:

    CE_A       = -log p_A(label)                          (T = 1, nats; per pixel)
    A teaches B at a pixel  <=>  valid  and  argmax(p_A) = label  and  CE_A < CE_B
    L_pixel = T^2 * [ mean over CNN-teaches pixels of KL(sg(p_c^T) || p_v^T)
                    + mean over ViT-teaches pixels of KL(sg(p_v^T) || p_c^T) ]
    p^T = softmax(z / T) over the K classes,  KL(p || q) = sum_k p_k (log p_k - log q_k)

z: a student's logits (B, K, h, w) upsampled bilinearly to the labels (B, H, W);
everything float32. sg = stop-gradient (`.detach()`): the teacher's softened
prediction is only a target. Each direction's mean divides by its own pixel
count (0 pixels: that term is exactly 0, still in the graph).

The paper names the rule "reliable prediction knowledge"; the kit implements it
as above: correct and strictly lower CE (at T = 1, against the label); equal CE
transfers nothing; `require_correct=False` drops the correctness condition.
`require_learner_wrong=True` (the kit's variant, not the paper's) also asks that
the learner be wrong at that pixel, so knowledge moves only where it corrects a
mistake, not where both students are right and one is merely more confident.
`selective=False` (the kit's control arm, not the paper's) drops the selection
altogether: every valid pixel transfers both ways, which is DML's loss
(dml.py) at the same weight, temperature and warm-up.

One computation, in two steps: `forward` takes the logits to the labels' size
and their log-softmax, then `from_log_probs` decides and transfers. The
combined loss (collaborative.py) calls `from_log_probs` directly with the
log-softmax its CE term already computed: at T = 1 the CE and the transfer then
share it (the same values; gradients equal up to float rounding,
tests/test_losses_pixel.py checks both).
The kit's specification: docs/method.md, "Pixel-wise BSD".
"""
import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_logits_pair, check_temperature, float32_zone
from .common import fraction, kl_map, masked_mean, upsample_logits


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
                   not times T^2), 0 where nothing is transferred (selective=False: the
                   sum of both directions' KL)
        "loss_cnn_teaches", "loss_vit_teaches"  0-dim, each direction's term (times T^2)
        "frac_cnn_teaches", "frac_vit_teaches", "frac_both_right", "frac_both_wrong"
                   0-dim, shares of the valid pixels
    The logits may also come at the labels' size (then nothing is resized).
    """

    def __init__(self, temperature: float = 1.0, require_correct: bool = True, ignore_index: int = 255,
                 require_learner_wrong: bool = False, selective: bool = True):
        super().__init__()
        self.temperature, self.require_correct, self.ignore_index = check_temperature(temperature), require_correct, ignore_index
        self.require_learner_wrong, self.selective = require_learner_wrong, selective

    def forward(self, logits_cnn, logits_vit, target):
        check_logits_pair(logits_cnn, logits_vit, target)
        with float32_zone(logits_cnn):
            z_c = upsample_logits(logits_cnn, target.shape[-2:])
            z_v = upsample_logits(logits_vit, target.shape[-2:])
            return self.from_log_probs(z_c, z_v, F.log_softmax(z_c, dim=1), F.log_softmax(z_v, dim=1), target)

    def from_log_probs(self, z_c, z_v, log_p_c, log_p_v, target):
        """The loss from logits at the labels' size and their log-softmax: (loss, info) as forward's.

        z_c, z_v: float32 (B, K, H, W) logits at the labels' size (H, W).
        log_p_c, log_p_v: F.log_softmax(z, dim=1) of exactly these logits (T = 1), with their graph.
        The decision reads each pixel's CE from them; at T = 1 the transfer uses them as p^T.
        """
        if not (log_p_c.shape == log_p_v.shape == z_c.shape == z_v.shape and z_c.shape[-2:] == target.shape[-2:]):
            shapes = ", ".join(str(tuple(t.shape)) for t in (z_c, z_v, log_p_c, log_p_v, target))
            raise ValueError(f"from_log_probs: expected z_c, z_v, log_p_c, log_p_v of one shape (B, K, H, W) "
                             f"and target (B, H, W), got {shapes}")
        T = self.temperature
        with float32_zone(z_c):
            # The decision: a few lines of tensor code, no gradient. CE at T = 1, against the label.
            with torch.no_grad():
                labels = target.long()
                valid = labels != self.ignore_index
                ce_c = F.nll_loss(log_p_c, labels, ignore_index=self.ignore_index, reduction="none")  # (B, H, W)
                ce_v = F.nll_loss(log_p_v, labels, ignore_index=self.ignore_index, reduction="none")
                right_c, right_v = is_correct(z_c, target, valid), is_correct(z_v, target, valid)
                reliable_c = right_c if self.require_correct else valid
                reliable_v = right_v if self.require_correct else valid
                cnn_teaches = reliable_c & (ce_c < ce_v)
                vit_teaches = reliable_v & (ce_v < ce_c)
                if self.require_learner_wrong:  # transfer only where it corrects the learner's argmax
                    cnn_teaches = cnn_teaches & ~right_v
                    vit_teaches = vit_teaches & ~right_c
                if not self.selective:  # the control arm: no selection, every valid pixel both ways (= DML)
                    cnn_teaches, vit_teaches = valid, valid

            # The transfer: softened log-probabilities (at T = 1 the ones above); the teacher's is a target (detached).
            if T != 1.0:
                log_p_c, log_p_v = F.log_softmax(z_c / T, dim=1), F.log_softmax(z_v / T, dim=1)
            kl_vit_learns = kl_map(log_p_c.detach(), log_p_v)  # KL(sg(p_c^T) || p_v^T)
            kl_cnn_learns = kl_map(log_p_v.detach(), log_p_c)  # KL(sg(p_v^T) || p_c^T)
            loss_cnn_teaches = T * T * masked_mean(kl_vit_learns, cnn_teaches)
            loss_vit_teaches = T * T * masked_mean(kl_cnn_learns, vit_teaches)

        zero = torch.zeros_like(kl_vit_learns)
        # Selective: at most one direction per pixel. Non-selective: both, so the map is their sum.
        transferred = torch.where(cnn_teaches, kl_vit_learns, zero) + torch.where(vit_teaches, kl_cnn_learns, zero)
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
