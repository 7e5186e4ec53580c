"""The whole objective (docs/method.md, "The total objective"), for every method the kit compares.

    L = CE_c + CE_v + r(t) * distill
    independent: distill = 0 (and L is exactly CE_c + CE_v)
    dml:         distill = w_dml * L_dml
    kdcl:        distill = w_kdcl * L_kdcl
    collab:      distill = w_hfd * L_hfd + w_region * L_region + w_pixel * L_pixel
                 (each term switchable for ablations: use_hfd, use_region, use_pixel;
                 selective=False: the BSD terms transfer on every valid region / pixel
                 both ways, the control arm that isolates the selection)

r(t) = min(1, progress / warmup) ramps distillation in linearly over the first
`warmup` fraction of training (warmup = 0: r = 1 from the start): students that
know nothing have nothing reliable to teach. CE is the cross-entropy of the
bilinearly upsampled logits against the labels, float32, mean over valid
pixels (0, not NaN, for a batch with no valid pixel). Each term is its own
module in its own file (hfd.py, region_bsd.py, pixel_bsd.py, dml.py, kdcl.py),
with its equations in that file's docstring.

What the combined loss shares between its terms, for speed (the same values;
gradients equal up to float rounding, tests/test_losses_region.py and
tests/test_losses_pixel.py check it): each student's logits are upsampled to
the labels once, and every term gets them at the labels' size; one log-softmax
per student gives the CE term, and the BSD terms read it through their second
entry instead of computing it again: `RegionBSDLoss.from_ce_maps` gets the
per-pixel CE maps, `PixelBSDLoss.from_log_probs` the log-softmax itself (at
T = 1 the CE and the transfer then share it: one backward through it, not two).
"""
import torch
import torch.nn.functional as F
from torch import nn

from ..names import METHODS
from .checks import check_logits_pair, float32_zone
from .common import masked_mean, upsample_logits
from .dml import DMLLoss
from .hfd import HFDLoss
from .kdcl import KDCLLoss
from .pixel_bsd import PixelBSDLoss
from .region_bsd import RegionBSDLoss


def segmentation_ce(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Mean CE (nats) over valid pixels of bilinearly upsampled logits, float32 (0-dim)."""
    with float32_zone(logits):
        target = target.long()
        ce = F.cross_entropy(upsample_logits(logits, target.shape[-2:]), target, ignore_index=ignore_index, reduction="none")
        return masked_mean(ce, target != ignore_index)


def _check_student(name: str, student, kind: str) -> None:
    actual = getattr(student, "kind", None)
    if actual != kind:
        raise ValueError(f"{name}: expected a {kind.upper()} student (kind {kind!r}), got kind {actual!r} ({type(student).__name__})")


class CollaborativeLoss(nn.Module):
    """The training objective for two students, as an nn.Module owning the projectors.

    CollaborativeLoss(cnn, vit, method="collab", ...): `cnn` and `vit` are the
    student modules (only their .kind, .low_channels and .embed_channels are read;
    they are not registered here, so `.parameters()` is just the loss's own
    projectors and connectors, for the trainer's optimiser).

    forward(out_cnn, out_vit, target (B, H, W) int, progress=1.0) -> (total, terms)
      out_cnn, out_vit: StudentOutput (low, embed, logits at stride 4, kind)
      progress: Python float in [0, 1], the fraction of training done (for the ramp)
      total: 0-dim float32, differentiable
      terms: flat dict of detached 0-dim tensors, raw (unweighted) values:
        always "loss", "ce_cnn", "ce_vit", "ramp", "distill" (weighted sum before the ramp);
        dml: "dml"; kdcl: "kdcl";
        collab: "hfd", "hfd_cnn_learns", "hfd_vit_learns" / "region",
        "region_frac_cnn_teaches", "region_frac_vit_teaches" / "pixel",
        "pixel_frac_cnn_teaches", "pixel_frac_vit_teaches" (for the terms switched on).
    `self.last_info` keeps the last step's diagnostic maps: {"hfd"|"region"|"pixel"|"dml"|"kdcl": info}.
    """

    def __init__(
        self, cnn, vit, method: str = "collab",
        w_hfd: float = 0.1, w_region: float = 0.1, w_pixel: float = 0.3,
        use_hfd: bool = True, use_region: bool = True, use_pixel: bool = True,
        region_size: int = 8, temperature: float = 1.0, require_correct: bool = True,
        warmup: float = 0.2, ignore_index: int = 255, w_dml: float = 1.0, w_kdcl: float = 1.0,
        require_learner_wrong: bool = False, selective: bool = True,
    ):
        super().__init__()
        _check_student("cnn", cnn, "cnn")
        _check_student("vit", vit, "vit")
        if method not in METHODS:
            raise ValueError(f"method: {method!r} is not one of {', '.join(METHODS)}")
        if not 0 <= warmup <= 1:
            raise ValueError(f"warmup: expected a fraction of training in [0, 1], got {warmup!r}")
        self.method, self.warmup, self.ignore_index = method, float(warmup), ignore_index
        self.weights = {}
        # Build only what the method needs, so every parameter here is used every step.
        if method == "dml":
            self.dml = DMLLoss(temperature, ignore_index)
            self.weights["dml"] = w_dml
        elif method == "kdcl":
            self.kdcl = KDCLLoss(temperature, ignore_index)
            self.weights["kdcl"] = w_kdcl
        elif method == "collab":
            if use_hfd:
                self.hfd = HFDLoss(cnn.low_channels, vit.low_channels)
                self.weights["hfd"] = w_hfd
            if use_region:
                self.region = RegionBSDLoss(cnn.embed_channels, vit.embed_channels, region_size, ignore_index,
                                            selective=selective)
                self.weights["region"] = w_region
            if use_pixel:
                self.pixel = PixelBSDLoss(temperature, require_correct, ignore_index, require_learner_wrong, selective)
                self.weights["pixel"] = w_pixel
        self.last_info = {}

    def compile_terms(self, mode: str | None = None) -> "CollaborativeLoss":
        """torch.compile, in place, what forward calls of each term: the module itself (HFD, DML,
        KDCL: `module.compile()`), or the BSD terms' second entry (`RegionBSDLoss.from_ce_maps`,
        `PixelBSDLoss.from_log_probs`, which their own forward also calls). One compiled piece a term.

        On a GPU a term is dozens of small kernels, each launched from Python; compiled, its
        elementwise work fuses into a few. The ramp and the sum stay eager: `progress` changes
        every step and would make a compiled forward recompile. State dicts do not change.
        `mode` is torch.compile's (None: its default); "reduce-overhead" also replays each
        compiled term as a CUDA graph on a GPU (one launch instead of dozens; a term's outputs
        are then overwritten by its next call, so read them before the next step).
        """
        for module in self.children():
            if isinstance(module, RegionBSDLoss):
                module.from_ce_maps = torch.compile(module.from_ce_maps, mode=mode)
            elif isinstance(module, PixelBSDLoss):
                module.from_log_probs = torch.compile(module.from_log_probs, mode=mode)
            else:
                module.compile(mode=mode)
        return self

    def ramp(self, progress: float) -> float:
        """r(t): 0 -> 1 linearly over the first `warmup` of training, then 1."""
        if self.warmup <= 0:
            return 1.0
        return min(1.0, max(0.0, float(progress)) / self.warmup)

    def forward(self, out_cnn, out_vit, target, progress: float = 1.0):
        _check_student("out_cnn", out_cnn, "cnn")
        _check_student("out_vit", out_vit, "vit")
        check_logits_pair(out_cnn.logits, out_vit.logits, target)
        # Upsample each student's logits once (float32); the terms see label-sized logits and skip their own resize.
        # Likewise one log-softmax per student: its per-pixel CE is the CE term (what segmentation_ce computes),
        # and the BSD terms read the same maps (region: the CE maps, pixel: the log-softmax).
        with float32_zone(out_cnn.logits):
            logits_cnn = upsample_logits(out_cnn.logits, target.shape[-2:])
            logits_vit = upsample_logits(out_vit.logits, target.shape[-2:])
            log_p_cnn, log_p_vit = F.log_softmax(logits_cnn, dim=1), F.log_softmax(logits_vit, dim=1)
            labels = target.long()
            valid = labels != self.ignore_index
            ce_map_cnn = F.nll_loss(log_p_cnn, labels, ignore_index=self.ignore_index, reduction="none")  # (B, H, W)
            ce_map_vit = F.nll_loss(log_p_vit, labels, ignore_index=self.ignore_index, reduction="none")
            ce_cnn, ce_vit = masked_mean(ce_map_cnn, valid), masked_mean(ce_map_vit, valid)
        terms = {"ce_cnn": ce_cnn.detach(), "ce_vit": ce_vit.detach()}
        infos, raw = {}, {}

        if "hfd" in self.weights:
            raw["hfd"], infos["hfd"] = self.hfd(out_cnn.low, out_vit.low)
            terms["hfd_cnn_learns"], terms["hfd_vit_learns"] = infos["hfd"]["cnn_learns"], infos["hfd"]["vit_learns"]
        if "region" in self.weights:
            raw["region"], infos["region"] = self.region.from_ce_maps(out_cnn.embed, out_vit.embed, ce_map_cnn, ce_map_vit, target)
        if "pixel" in self.weights:
            raw["pixel"], infos["pixel"] = self.pixel.from_log_probs(logits_cnn, logits_vit, log_p_cnn, log_p_vit, target)
        if "dml" in self.weights:
            raw["dml"], infos["dml"] = self.dml(logits_cnn, logits_vit, target)
        if "kdcl" in self.weights:
            raw["kdcl"], infos["kdcl"] = self.kdcl(logits_cnn, logits_vit, target)
        for name in ("region", "pixel"):
            if name in infos:
                terms[f"{name}_frac_cnn_teaches"] = infos[name]["frac_cnn_teaches"]
                terms[f"{name}_frac_vit_teaches"] = infos[name]["frac_vit_teaches"]

        r = self.ramp(progress)
        total = ce_cnn + ce_vit
        distill = torch.zeros_like(total)
        if raw:  # a config branch (which terms exist), not a data-dependent one
            distill = sum(self.weights[name] * value for name, value in raw.items())
            total = total + r * distill  # r = 0 keeps the terms in the graph (zero gradient, DDP-safe)
        terms.update({name: value.detach() for name, value in raw.items()})
        # full_like fills on the device; new_tensor(r) would copy a host scalar, which waits for the GPU.
        terms.update(loss=total.detach(), ramp=torch.full_like(total.detach(), r), distill=distill.detach())
        self.last_info = infos
        return total, terms
