"""Region-wise BSD: direction map on crafted regions, stop-gradient, own-count means, golden values."""
import math

import pytest
import torch
import torch.nn.functional as F

from collab_lib.losses import RegionBSDLoss, regions_to_pixels

IGNORE = 255
GOOD, WEAK = 4.0, 1.0  # logit given to the labelled class; 0 elsewhere


def crafted():
    """3 classes, labels (1, 8, 16), embeds (1, C, 4, 8) (stride 2), region_size 2.

    The grid is 2 x 4 regions of 4 x 4 label pixels. Logits at label
    resolution (no interpolation), so each region's CE is exactly controlled:
      row 0: CNN better | CNN better | identical (tie) | ViT better
      row 1: CNN better on its valid half (ignored half: CNN confidently wrong)
             | all ignore | ViT better | ViT better
    """
    g = torch.Generator().manual_seed(0)
    label = torch.randint(0, 3, (1, 8, 16), generator=g)
    strength_c = torch.full((8, 16), WEAK)
    strength_v = torch.full((8, 16), WEAK)
    strength_c[0:4, 0:8] = GOOD          # regions (0,0), (0,1)
    strength_c[0:4, 8:12] = GOOD         # (0,2) tie: both GOOD
    strength_v[0:4, 8:12] = GOOD
    strength_v[0:4, 12:16] = GOOD        # (0,3)
    strength_c[4:8, 0:4] = GOOD          # (1,0) ...
    label[0, 4:6, 0:4] = IGNORE          # ... its top half ignored
    label[0, 4:8, 4:8] = IGNORE          # (1,1) all ignore
    strength_v[4:8, 8:16] = GOOD         # (1,2), (1,3)
    safe = label.clamp_max(2)
    logits_c = F.one_hot(safe, 3).permute(0, 3, 1, 2).float() * strength_c
    logits_v = F.one_hot(safe, 3).permute(0, 3, 1, 2).float() * strength_v
    # In the ignored half of (1,0) the CNN is confidently wrong: must not count.
    wrong = F.one_hot((safe + 1) % 3, 3).permute(0, 3, 1, 2).float() * 10
    logits_c[:, :, 4:6, 0:4] = wrong[:, :, 4:6, 0:4]
    embed_c = torch.randn(1, 6, 4, 8, generator=g)
    embed_v = torch.randn(1, 5, 4, 8, generator=g)
    return embed_c, embed_v, logits_c, logits_v, label


def ce_of(strength):
    return math.log(math.exp(strength) + 2) - strength


def test_direction_map_on_crafted_regions():
    loss_fn = RegionBSDLoss(6, 5, region_size=2)
    _, info = loss_fn(*crafted())
    assert info["direction"].dtype == torch.int64 and info["direction"].shape == (1, 2, 4)
    assert info["direction"][0].tolist() == [[1, 1, 0, -1], [1, 0, -1, -1]]
    ce_c, ce_v = info["region_ce_cnn"][0], info["region_ce_vit"][0]
    assert ce_c[0, 0].item() == pytest.approx(ce_of(GOOD), rel=1e-6)
    assert ce_v[0, 0].item() == pytest.approx(ce_of(WEAK), rel=1e-6)
    assert ce_c[1, 0].item() == pytest.approx(ce_of(GOOD), rel=1e-6)  # the ignored, wrong half does not count
    assert ce_c[0, 2].item() == ce_v[0, 2].item()  # an exact tie
    assert math.isnan(ce_c[1, 1].item()) and math.isnan(ce_v[1, 1].item())  # no valid pixel: NaN
    assert info["region_valid"][0].tolist() == [[True] * 4, [True, False, True, True]]
    assert info["frac_cnn_teaches"].item() == pytest.approx(3 / 7)  # over the 7 regions with a valid pixel
    assert info["frac_vit_teaches"].item() == pytest.approx(3 / 7)
    # Painting the map back on the labels gives 4x4 pixel blocks.
    painted = regions_to_pixels(info["direction"], loss_fn.region_pixels, (8, 16))
    assert loss_fn.region_pixels == 4 and painted.shape == (1, 8, 16)
    assert painted[0, 0, 0] == 1 and painted[0, 7, 15] == -1 and painted[0, 5, 5] == 0


def test_stop_gradient_per_region():
    embed_c, embed_v, logits_c, logits_v, label = crafted()
    for t in (embed_c, embed_v, logits_c, logits_v):
        t.requires_grad_(True)
    loss, info = RegionBSDLoss(6, 5, region_size=2)(embed_c, embed_v, logits_c, logits_v, label)
    grad_c, grad_v, grad_lc, grad_lv = torch.autograd.grad(
        loss, (embed_c, embed_v, logits_c, logits_v), allow_unused=True, materialize_grads=True
    )
    # Per cell (4 x 8) -> per region (2 x 4): did the tensor receive any gradient there?
    per_region = lambda g: F.max_pool2d(g.abs().sum(1, keepdim=True), 2)[0, 0] > 0  # noqa: E731
    direction = info["direction"][0]
    assert torch.equal(per_region(grad_v), direction == 1)   # CNN teaches: only the ViT learns
    assert torch.equal(per_region(grad_c), direction == -1)  # ViT teaches: only the CNN learns
    # The logits only decide; they receive no gradient from this loss.
    assert (grad_lc == 0).all() and (grad_lv == 0).all()


def test_each_direction_divides_by_its_own_count():
    loss_fn = RegionBSDLoss(6, 5, region_size=2)
    loss, info = loss_fn(*crafted())
    direction = info["direction"][0]
    want_c = info["dist_vit_learns"][0][direction == 1].mean()  # 3 regions
    want_v = info["dist_cnn_learns"][0][direction == -1].mean()  # 3 regions
    assert info["loss_cnn_teaches"].item() == pytest.approx(want_c.item(), rel=1e-6)
    assert info["loss_vit_teaches"].item() == pytest.approx(want_v.item(), rel=1e-6)
    assert loss.item() == pytest.approx((want_c + want_v).item(), rel=1e-6)


def test_no_region_one_way_is_exact_zero_and_connectors_stay_in_graph():
    embed_c, embed_v, logits_c, logits_v, label = crafted()
    loss_fn = RegionBSDLoss(6, 5, region_size=2)
    # The ViT is better everywhere: no region goes CNN -> ViT.
    uniform = torch.zeros_like(logits_c)  # CE log(3) everywhere
    sure = F.one_hot(label.clamp_max(2), 3).permute(0, 3, 1, 2) * 5.0  # right with margin 5 everywhere
    loss, info = loss_fn(embed_c, embed_v, uniform, sure, label)
    assert (info["direction"] <= 0).all() and info["loss_cnn_teaches"].item() == 0.0
    assert torch.isfinite(loss) and loss.item() > 0
    grads = torch.autograd.grad(loss, list(loss_fn.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)
    assert (grads[0] == 0).all()  # to_cnn: present in the graph, zero gradient
    # Only ignore labels: nothing transfers, loss exactly 0, every parameter still gets a (zero) gradient.
    loss, info = loss_fn(embed_c, embed_v, logits_c, logits_v, torch.full_like(label, IGNORE))
    grads = torch.autograd.grad(loss, list(loss_fn.parameters()))
    assert loss.item() == 0.0 and (info["direction"] == 0).all()
    assert info["region_ce_cnn"].isnan().all() and info["frac_cnn_teaches"].item() == 0.0
    assert all((g == 0).all() for g in grads)


def reference_region_bsd(loss_fn, embed_c, embed_v, logits_c, logits_v, label):
    """Slow reference: loops over regions, pixels and cells; normalisation written out by hand."""
    R = loss_fn.region_size
    B, _, h, w = embed_c.shape
    H, W = label.shape[-2:]
    s = round(H / h)
    P = R * s
    up_c = F.interpolate(logits_c.double(), size=(H, W), mode="bilinear", align_corners=False)
    up_v = F.interpolate(logits_v.double(), size=(H, W), mode="bilinear", align_corners=False)

    def ce(z, y):
        z = z.tolist()
        return math.log(sum(math.exp(t) for t in z)) - z[y]

    def norm(vec):
        vec = vec.double()
        return (vec - vec.mean()) / torch.sqrt(vec.var(unbiased=False) + 1e-5)

    def conv1x1(conv, vec):
        return conv.weight.double() @ vec.double() + conv.bias.double()  # a 1x1 conv on one location

    sums, counts = [0.0, 0.0], [0, 0]
    with torch.no_grad():
        for b in range(B):
            for ri in range(math.ceil(h / R)):
                for rj in range(math.ceil(w / R)):
                    ces_c, ces_v = [], []
                    for i in range(ri * P, min((ri + 1) * P, h * s, H)):
                        for j in range(rj * P, min((rj + 1) * P, w * s, W)):
                            y = int(label[b, i, j])
                            if y != IGNORE:
                                ces_c.append(ce(up_c[b, :, i, j], y))
                                ces_v.append(ce(up_v[b, :, i, j], y))
                    if not ces_c:
                        continue
                    mc, mv = sum(ces_c) / len(ces_c), sum(ces_v) / len(ces_v)
                    if mc == mv:
                        continue
                    ds = []
                    for i in range(ri * R, min((ri + 1) * R, h)):
                        for j in range(rj * R, min((rj + 1) * R, w)):
                            if mc < mv:  # CNN teaches: ViT's embed through to_cnn vs the CNN's
                                d = norm(conv1x1(loss_fn.to_cnn, embed_v[b, :, i, j])) - norm(embed_c[b, :, i, j])
                            else:
                                d = norm(conv1x1(loss_fn.to_vit, embed_c[b, :, i, j])) - norm(embed_v[b, :, i, j])
                            ds.append(d.pow(2).mean().item())
                    k = 0 if mc < mv else 1
                    sums[k] += sum(ds) / len(ds)
                    counts[k] += 1
    return sum(sv / max(n, 1) for sv, n in zip(sums, counts)), counts


@pytest.mark.parametrize("label_size", [(10, 14), (11, 13), (9, 15)])
def test_golden_value_against_loop_reference(label_size):
    """Grid 5x7 cells, regions of 2 cells: partial last row/column; labels not always a multiple of the stride."""
    g = torch.Generator().manual_seed(3)
    embed_c = torch.randn(2, 6, 5, 7, generator=g)
    embed_v = torch.randn(2, 5, 5, 7, generator=g) * 3 + 1
    logits_c = torch.randn(2, 4, 5, 7, generator=g) * 2
    logits_v = torch.randn(2, 4, 5, 7, generator=g) * 2
    label = torch.randint(0, 4, (2, *label_size), generator=g)
    label[torch.rand(2, *label_size, generator=g) < 0.2] = IGNORE
    label[1, :4, :4] = IGNORE  # one region with no valid pixel
    torch.manual_seed(0)
    loss_fn = RegionBSDLoss(6, 5, region_size=2)
    loss, info = loss_fn(embed_c, embed_v, logits_c, logits_v, label)
    expected, counts = reference_region_bsd(loss_fn, embed_c, embed_v, logits_c, logits_v, label)
    assert info["direction"].shape == (2, 3, 4)
    assert min(counts) > 0 and info["direction"][1, 0, 0] == 0
    assert [(info["direction"] == 1).sum().item(), (info["direction"] == -1).sum().item()] == counts
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def _labels_finer_than_logits(label_size):
    """Embeds (2, 6|5, 5, 7) as gradient leaves, logits (2, 4, 5, 7), labels (2, *label_size) with ignored
    pixels (a whole 4x4 corner of the second image), and a RegionBSDLoss of 2x2 regions."""
    g = torch.Generator().manual_seed(4)
    embed_c = torch.randn(2, 6, 5, 7, generator=g).requires_grad_(True)
    embed_v = torch.randn(2, 5, 5, 7, generator=g).requires_grad_(True)
    logits_c = torch.randn(2, 4, 5, 7, generator=g) * 2
    logits_v = torch.randn(2, 4, 5, 7, generator=g) * 2
    label = torch.randint(0, 4, (2, *label_size), generator=g)
    label[torch.rand(2, *label_size, generator=g) < 0.2] = IGNORE
    label[1, :4, :4] = IGNORE
    return embed_c, embed_v, logits_c, logits_v, label, RegionBSDLoss(6, 5, region_size=2)


def _assert_same_loss_info_and_gradients(shared, shared_info, loss, info, params):
    """Two ways of computing one loss agree in value, in every info entry and in the gradients; both directions occur."""
    assert (info["direction"] == 1).any() and (info["direction"] == -1).any()
    torch.testing.assert_close(shared, loss)
    assert set(shared_info) == set(info)
    for key, value in info.items():
        torch.testing.assert_close(shared_info[key], value, equal_nan=True, msg=key)
    for a, b in zip(torch.autograd.grad(shared, params, retain_graph=True), torch.autograd.grad(loss, params)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("label_size", [(10, 14), (11, 13)])
def test_logits_at_label_size_give_the_same_result(label_size):
    """Logits already upsampled to the labels (what CollaborativeLoss passes every term) change nothing:
    loss, info, gradients (the decision's CE is the same per-pixel map either way)."""
    embed_c, embed_v, logits_c, logits_v, label, loss_fn = _labels_finer_than_logits(label_size)
    loss, info = loss_fn(embed_c, embed_v, logits_c, logits_v, label)
    up = lambda z: F.interpolate(z, size=label_size, mode="bilinear", align_corners=False)  # noqa: E731
    shared, shared_info = loss_fn(embed_c, embed_v, up(logits_c), up(logits_v), label)
    _assert_same_loss_info_and_gradients(shared, shared_info, loss, info, [embed_c, embed_v, *loss_fn.parameters()])


@pytest.mark.parametrize("label_size", [(10, 14), (11, 13)])
def test_from_ce_maps_equals_forward(label_size):
    """from_ce_maps (how CollaborativeLoss calls the term, with the CE maps of its CE term) changes nothing:
    loss, info, gradients; a CE map of the wrong shape is named."""
    embed_c, embed_v, logits_c, logits_v, label, loss_fn = _labels_finer_than_logits(label_size)
    loss, info = loss_fn(embed_c, embed_v, logits_c, logits_v, label)
    up = lambda z: F.interpolate(z, size=label_size, mode="bilinear", align_corners=False)  # noqa: E731
    ce_c, ce_v = (F.nll_loss(F.log_softmax(up(z), dim=1), label, ignore_index=IGNORE, reduction="none")
                  for z in (logits_c, logits_v))
    shared, shared_info = loss_fn.from_ce_maps(embed_c, embed_v, ce_c, ce_v, label)
    _assert_same_loss_info_and_gradients(shared, shared_info, loss, info, [embed_c, embed_v, *loss_fn.parameters()])
    with pytest.raises(ValueError, match=r"ce_vit: expected a per-pixel CE map of the target's shape"):
        loss_fn.from_ce_maps(embed_c, embed_v, ce_c, ce_v[:1], label)


def test_gathered_and_dense_connectors_agree():
    """gather_cells=True (the CPU path: connectors on the learning cells only) and False (the accelerator
    path: connectors on every cell, masked) give the same loss, info and gradients, also with a partial
    last region row/column and with cells that transfer nothing."""
    g = torch.Generator().manual_seed(5)
    embed_c = torch.randn(3, 6, 7, 9, generator=g).requires_grad_(True)  # 7x9 cells, regions 3x3: partial last ones
    embed_v = torch.randn(3, 5, 7, 9, generator=g).requires_grad_(True)
    logits_c = (torch.randn(3, 4, 7, 9, generator=g) * 2).requires_grad_(True)
    logits_v = (torch.randn(3, 4, 7, 9, generator=g) * 2).requires_grad_(True)
    label = torch.randint(0, 4, (3, 28, 36), generator=g)
    label[2, :12, :12] = IGNORE  # a region that transfers nothing
    results = {}
    for gather in (True, False):
        loss_fn = RegionBSDLoss(6, 5, region_size=3, gather_cells=gather)
        torch.manual_seed(0)  # the same connectors both times
        loss_fn.to_cnn.reset_parameters(), loss_fn.to_vit.reset_parameters()
        loss, info = loss_fn(embed_c, embed_v, logits_c, logits_v, label)
        params = [embed_c, embed_v, *loss_fn.parameters()]
        results[gather] = loss, info, torch.autograd.grad(loss, params)
    (loss_g, info_g, grads_g), (loss_d, info_d, grads_d) = results[True], results[False]
    direction = info_g["direction"]
    assert (direction == 1).any() and (direction == -1).any() and (direction[2, 0, 0] == 0)
    torch.testing.assert_close(loss_g, loss_d)
    for key in info_g:
        torch.testing.assert_close(info_g[key], info_d[key], equal_nan=True, msg=key)
    for a, b in zip(grads_g, grads_d):
        torch.testing.assert_close(a, b)
    # Each direction's per-region d is reported where that direction is chosen and is 0 elsewhere.
    assert (info_g["dist_vit_learns"][direction == 1] > 0).all() and (info_g["dist_vit_learns"][direction != 1] == 0).all()
    assert (info_g["dist_cnn_learns"][direction == -1] > 0).all() and (info_g["dist_cnn_learns"][direction != -1] == 0).all()
    # A learning cell gets a gradient from its connector's direction only: the ViT's embed none under
    # regions where the ViT teaches or nothing transfers (the region loss alone reaches embed_v only via to_cnn).
    cells_vit_learns = (direction == 1).repeat_interleave(3, -2).repeat_interleave(3, -1)[:, :7, :9]
    grad_embed_v = grads_g[1].abs().sum(1)
    assert (grad_embed_v[~cells_vit_learns] == 0).all() and (grad_embed_v[cells_vit_learns] > 0).all()


def test_transfer_map_gathered_equals_the_plain_transfer_map():
    """The two functions side by side: the same d per cell and the same gradients (learner, connector),
    none to the teacher, also with no learning cell at all (d = 0 everywhere, still in the graph)."""
    from collab_lib.losses.region_bsd import transfer_map, transfer_map_gathered

    g = torch.Generator().manual_seed(6)
    learner = torch.randn(2 * 4 * 5, 6, generator=g).requires_grad_(True)
    teacher = torch.randn(2 * 4 * 5, 3, generator=g).requires_grad_(True)
    connector = torch.nn.Linear(6, 3)
    for cells in (torch.rand(2, 4, 5, generator=g) < 0.5, torch.zeros(2, 4, 5, dtype=torch.bool)):
        plain, gathered = transfer_map(connector, learner, teacher, cells), transfer_map_gathered(connector, learner, teacher, cells)
        torch.testing.assert_close(gathered, plain)
        assert (plain[~cells] == 0).all() and (plain[cells] > 0).all()
        inputs = [learner, *connector.parameters()]
        for a, b in zip(torch.autograd.grad(gathered.sum(), inputs), torch.autograd.grad(plain.sum(), inputs)):
            torch.testing.assert_close(a, b)
        assert torch.autograd.grad(plain.sum(), teacher, allow_unused=True)[0] is None  # sg(teacher)
        assert torch.autograd.grad(gathered.sum(), teacher, allow_unused=True)[0] is None


def test_gather_cells_is_checked():
    with pytest.raises(ValueError, match="gather_cells: expected None"):
        RegionBSDLoss(4, 4, gather_cells="yes")
