"""Each notebook's toy check fails for the bugs a learner is likely to write.

The course checks its from-scratch code against the kit's losses on toys small enough to work by hand
(notebooks 00, 02, 03, 04). A toy that a plausible bug passes proves nothing, so here each such bug is put in
place of the kit's loss (a subclass whose forward computes `collab_lib.mistakes`' version with one switch
turned) and the notebook's own toy cells, read from the committed notebook and run as they are, must fail.
The same cells with the kit's own losses pass (the control), so the failure is the mistake's doing.
"""
from pathlib import Path

import matplotlib
import nbformat
import pytest
import torch
import torch.nn.functional as F

import collab_lib.losses as losses
from collab_lib import mistakes

matplotlib.use("Agg")
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

# notebook -> the cells (ids) that build and check its toy, in order, the imports first
TOY_CELLS = {
    "00_primer.ipynb": ["cell-01", "cell-03", "cell-06", "cell-08", "cell-10"],
    "02_hfd.ipynb": ["cell-02", "cell-04", "cell-06"],
    "03_region_bsd.ipynb": ["cell-02", "cell-04", "cell-05"],
    "04_pixel_bsd.ipynb": ["cell-02", "cell-04"],
}


def run_toy(notebook: str) -> dict:
    """Run the notebook's toy cells (IPython magics dropped) in a fresh namespace; returns the namespace."""
    cells = {c.id: c.source for c in nbformat.read(NOTEBOOKS / notebook, as_version=4).cells}
    namespace = {"__name__": "toy"}
    for cell_id in TOY_CELLS[notebook]:
        source = "\n".join(line for line in cells[cell_id].splitlines() if not line.lstrip().startswith("%"))
        exec(compile(source, f"{notebook}:{cell_id}", "exec"), namespace)
    return namespace


# ---- the kit's losses with one mistake each ----------------------------------------------------------------
def _at_label_size(z, target):
    return z if z.shape[-2:] == target.shape[-2:] else F.interpolate(z, size=target.shape[-2:], mode="bilinear",
                                                                      align_corners=False)


def _mutant(kit_class, mistaken):
    """kit_class with its forward's loss (and some info entries) from `mistaken(self, *inputs) -> (loss, info update)`;
    the rest of info comes from the kit's own forward (on detached inputs, so only the mistaken loss has a graph)."""
    class Mutant(kit_class):
        def forward(self, *inputs):
            _, info = super().forward(*(x.detach() if x.is_floating_point() else x for x in inputs))
            loss, update = mistaken(self, *inputs)
            info.update(update)
            return loss, info
    Mutant.__name__ = f"Mutant{kit_class.__name__}"
    return Mutant


def pixel_mutant(**switches):
    def mistaken(self, logits_cnn, logits_vit, target):
        z_c, z_v = _at_label_size(logits_cnn, target), _at_label_size(logits_vit, target)
        kwargs = {"require_correct": self.require_correct, "learner_wrong": self.require_learner_wrong, **switches}
        loss, cnn, vit = mistakes.pixel_bsd(z_c, z_v, target, self.temperature, **kwargs)
        return loss, {"cnn_teaches": cnn, "vit_teaches": vit}
    return _mutant(losses.PixelBSDLoss, mistaken)


def dml_mutant(**switches):
    return _mutant(losses.DMLLoss, lambda self, z_c, z_v, target: (
        mistakes.dml(z_c, z_v, target, self.temperature, **switches), {}))


def kdcl_mutant(**switches):
    return _mutant(losses.KDCLLoss, lambda self, z_c, z_v, target: (
        mistakes.kdcl(z_c, z_v, target, self.temperature, **switches), {}))


def region_mutant(**switches):
    def mistaken(self, embed_cnn, embed_vit, logits_cnn, logits_vit, target):
        valid = target != self.ignore_index
        label = torch.where(valid, target, torch.zeros_like(target))
        ce = [torch.where(valid, F.cross_entropy(_at_label_size(z, target).detach(), label, reduction="none"),
                          torch.zeros(target.shape)) for z in (logits_cnn, logits_vit)]
        loss, direction, r_c, r_v = mistakes.region_bsd(embed_cnn, embed_vit, *ce, target, self.to_cnn, self.to_vit,
                                                        self.region_size, **switches)
        return loss, {"direction": direction, "region_ce_cnn": r_c, "region_ce_vit": r_v}
    return _mutant(losses.RegionBSDLoss, mistaken)


def hfd_mutant(**switches):
    def mistaken(self, low_cnn, low_vit):
        project = lambda module, x: module(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # noqa: E731
        terms = [mistakes.feature_d(project(self.attn, low_cnn), low_vit, **switches),
                 mistakes.feature_d(project(self.mlp, low_vit), low_cnn, **switches)]
        return sum(t.mean() for t in terms), {}
    return _mutant(losses.HFDLoss, mistaken)


# (notebook, the kit's loss replaced, the mistaken version, the mistake in words). Not among them: KDCL's target left
# attached, which is no bug for the kit's ensemble: with q = softmax((z_c + z_v) / 2T), log q - log p_c + log q - log p_v
# is the same for every class, so the gradient through q vanishes (test_kdcl_target_gradient_vanishes below).
MUTATIONS = [
    ("00_primer.ipynb", "DMLLoss", dml_mutant(reverse=True), "reversed KL"),
    ("00_primer.ipynb", "DMLLoss", dml_mutant(t_power=0), "T^2 dropped"),
    ("00_primer.ipynb", "DMLLoss", dml_mutant(detach=False), "the teacher's side not detached"),
    ("00_primer.ipynb", "DMLLoss", dml_mutant(normaliser="all"), "the wrong normaliser (every pixel, ignore too)"),
    ("00_primer.ipynb", "KDCLLoss", kdcl_mutant(reverse=True), "reversed KL"),
    ("00_primer.ipynb", "KDCLLoss", kdcl_mutant(t_power=0), "T^2 dropped"),
    ("00_primer.ipynb", "KDCLLoss", kdcl_mutant(normaliser="all"), "the wrong normaliser (every pixel, ignore too)"),
    ("00_primer.ipynb", "PixelBSDLoss", pixel_mutant(require_correct=False), "correctness ignored"),
    ("02_hfd.ipynb", "HFDLoss", hfd_mutant(detach=False), "the target side not detached"),
    ("02_hfd.ipynb", "HFDLoss", hfd_mutant(standardise_sides=False), "no standardisation"),
    ("03_region_bsd.ipynb", "RegionBSDLoss", region_mutant(reverse_direction=True), "the higher CE teaches"),
    ("03_region_bsd.ipynb", "RegionBSDLoss", region_mutant(count_ignore=True), "ignore pixels in the region CE"),
    ("03_region_bsd.ipynb", "RegionBSDLoss", region_mutant(normaliser="valid"), "the wrong normaliser (valid regions)"),
    ("03_region_bsd.ipynb", "RegionBSDLoss", region_mutant(border="full"), "a partial region averaged over a full one"),
    ("03_region_bsd.ipynb", "RegionBSDLoss", region_mutant(detach=False), "the teacher's side not detached"),
    ("04_pixel_bsd.ipynb", "PixelBSDLoss", pixel_mutant(reverse=True), "reversed KL"),
    ("04_pixel_bsd.ipynb", "PixelBSDLoss", pixel_mutant(t_power=0), "T^2 dropped"),
    ("04_pixel_bsd.ipynb", "PixelBSDLoss", pixel_mutant(t_power=1), "T instead of T^2"),
    ("04_pixel_bsd.ipynb", "PixelBSDLoss", pixel_mutant(require_correct=False), "correctness ignored"),
    ("04_pixel_bsd.ipynb", "PixelBSDLoss", pixel_mutant(detach=False), "the teacher's side not detached"),
    ("04_pixel_bsd.ipynb", "PixelBSDLoss", pixel_mutant(normaliser="valid"), "the wrong normaliser (valid pixels)"),
    ("04_pixel_bsd.ipynb", "PixelBSDLoss", pixel_mutant(normaliser="sum"), "the wrong normaliser (a sum)"),
    ("04_pixel_bsd.ipynb", "PixelBSDLoss", pixel_mutant(swap_masks=True), "the masks swapped"),
]


@pytest.mark.parametrize("notebook", list(TOY_CELLS))
def test_the_toy_passes_with_the_kits_losses(notebook, monkeypatch):
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the toy cells set 2 threads: leave the test's
    run_toy(notebook)


@pytest.mark.parametrize("notebook, loss, mutant, mistake", MUTATIONS,
                         ids=[f"{n[:2]}-{loss}-{m}" for n, loss, _, m in MUTATIONS])
def test_the_toy_fails_for_a_mistaken_loss(notebook, loss, mutant, mistake, monkeypatch):
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    monkeypatch.setattr(losses, loss, mutant)  # what `from collab_lib.losses import ...` in the notebook gets
    with pytest.raises(AssertionError):
        run_toy(notebook)


def test_every_mistake_the_issue_names_is_tried_on_the_pixel_and_the_region_toys():
    tried = {(n, m) for n, _, _, m in MUTATIONS}
    for mistake in ("reversed KL", "T^2 dropped", "correctness ignored", "the teacher's side not detached"):
        assert ("04_pixel_bsd.ipynb", mistake) in tried, mistake
    assert any(n == "04_pixel_bsd.ipynb" and m.startswith("the wrong normaliser") for n, m in tried)
    assert any(n == "03_region_bsd.ipynb" and m.startswith("the wrong normaliser") for n, m in tried)
    assert ("00_primer.ipynb", "correctness ignored") in tried  # the primer's rule table


def test_kdcl_target_gradient_vanishes():
    """Why KDCL's detach is not among the mutations: for the kit's logit-mean ensemble the gradient that would flow
    through the target is exactly 0, so leaving it attached changes nothing a toy could see."""
    g = torch.Generator().manual_seed(0)
    z_c, z_v = torch.randn(1, 4, 3, 3, generator=g), torch.randn(1, 4, 3, 3, generator=g)
    target = torch.randint(0, 4, (1, 3, 3), generator=g)
    grads = []
    for detach in (True, False):
        leaves = [z_c.clone().requires_grad_(), z_v.clone().requires_grad_()]
        grads.append(torch.autograd.grad(mistakes.kdcl(*leaves, target, 2.0, detach=detach), leaves))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
