"""The course's losses written out plainly, with the mistakes a learner is likely to make, one switch each.

Each function computes one loss of the kit the way the course writes it from scratch (notebooks 00-04);
its keyword switches turn one part wrong at a time: the KL reversed, T^2 dropped, the correctness
condition ignored, the teacher's side not detached, the wrong normaliser, ... With every switch at its
default a function equals the kit's loss (collab_lib.losses; tests/test_mistakes.py checks values and
gradients). Two users:

- `collab_lib.exercises` runs a learner's answer beside these versions and names the mistake whose
  numbers it reproduces ("your KL runs from learner to teacher", "missing T^2", ...);
- tests/test_toys_catch_mistakes.py puts each mistaken version in place of the kit's loss and shows that
  the notebook's own check on its toy fails: a toy that a plausible bug passes teaches nothing.

`MISTAKES` names every switch with the message an exercise prints for it.
Shapes: logits (B, K, H, W) at the labels' size, labels (B, H, W), 255 = ignore; features (B, C, h, w).
"""
import torch
import torch.nn.functional as F

IGNORE = 255

# switch -> what an exercise says when a learner's answer reproduces it
MISTAKES = {
    "reverse": "your KL runs from learner to teacher, KL(p_learner || p_teacher): the teacher's distribution must "
               "come first, it weighs the classes (primer, exercise 3)",
    "t_power=0": "missing T^2: at T = 1 your value is right, at T = 2 it is the reference divided by 4 (primer, section 2)",
    "t_power=1": "T instead of T^2: the softened KL's gradient shrinks like 1/T^2 for large T, so the factor is T^2",
    "detach=False": "the teacher's side carries gradient: the teacher's prediction is a target only, sg(.) = "
                    "`.detach()` on the teaching side; your value is right but the teacher is pulled towards the learner",
    "soft_ce": "you return the soft cross-entropy -sum p_teacher log p_learner: it differs from the KL by the teacher's "
               "entropy, a constant for the learner (same gradient) but not 0 when the two distributions agree",
    "temperature_on=learner": "the temperature softens only the learner: both distributions are taken at T",
    "require_correct=False": "you ignored the correctness condition: with it, a student teaches only where its argmax is "
                             "the label; without it a wrong student with the lower CE teaches, even a right one",
    "learner_wrong=False": "you kept the paper's rule: the variant also asks that the learner be wrong there",
    "learner_right": "your extra condition asks that the learner be right; the variant asks that it be wrong",
    "normaliser=valid": "the wrong normaliser: each direction is a mean over its own pixels (|X_c|, |X_v|), not over every "
                        "valid pixel",
    "normaliser=sum": "the wrong normaliser: you sum the KL over the pixels; each direction is a mean over its own pixels",
    "normaliser=all": "the wrong normaliser: you average over every pixel, ignore pixels too; average over the valid ones",
    "decide_at_T": "the decision uses T = 1: the temperature changes how much is transferred, never where",
    "swap_masks": "your masks are swapped: where the CNN teaches, the ViT learns, KL(sg(p_c^T) || p_v^T)",
    "count_ignore": "your region mean counts ignore pixels: a region's CE is the mean over its valid pixels only",
    "empty=0": "a region without a valid pixel has no CE: NaN, and it transfers nothing; 0 would make it look perfectly reliable",
    "grid=floor": "the partial regions at the border are missing: the grid has ceil(h / S) x ceil(w / S) regions",
    "border=full": "the partial border region is averaged over a full region's area; average over the cells it has",
    "reverse_direction": "the direction is reversed: the student with the LOWER CE teaches",
}


def kl_rows(log_q: torch.Tensor, log_p: torch.Tensor) -> torch.Tensor:
    """KL(q || p) over dim 1 (the classes), nats: log-probabilities (B, K, ...) -> (B, ...)."""
    return (log_q.exp() * (log_q - log_p)).sum(1)


def distill_term(z_teacher, z_learner, T=1.0, *, reverse=False, t_power=2, detach=True, soft_ce=False,
                 temperature_on="both"):
    """T^2 * KL(sg(p_teacher^T) || p_learner^T) for logit vectors (K,), or its mean over the rows of (N, K)."""
    z_teacher, z_learner = torch.atleast_2d(z_teacher), torch.atleast_2d(z_learner)
    log_t = F.log_softmax(z_teacher / (T if temperature_on == "both" else 1.0), dim=1)
    log_l = F.log_softmax(z_learner / T, dim=1)
    if detach:
        log_t = log_t.detach()
    if reverse:
        per_row = kl_rows(log_l, log_t)
    elif soft_ce:
        per_row = -(log_t.exp() * log_l).sum(1)
    else:
        per_row = kl_rows(log_t, log_l)
    return T ** t_power * per_row.mean()


def is_right(z, target, ignore_index=IGNORE):
    """The label's logit is the largest (as the kit counts it: a tie at the top is right); False at ignore."""
    valid = target != ignore_index
    label = torch.where(valid, target, torch.zeros_like(target))
    return valid & (z.gather(1, label.unsqueeze(1)).squeeze(1) >= z.amax(1))


def _reduce(values, mask, valid, normaliser):
    total = torch.where(mask, values, torch.zeros_like(values)).sum()
    if normaliser == "sum":
        return total
    if normaliser == "all":  # every pixel, ignore ones too
        return total / mask.numel()
    return total / (mask if normaliser == "own" else valid).sum().clamp_min(1)


def pixel_bsd(z_c, z_v, target, T=1.0, *, require_correct=True, learner_wrong=False, learner_right=False,
              select=True, reverse=False, t_power=2, detach=True, normaliser="own", decide_at_T=False,
              swap_masks=False, ignore_index=IGNORE):
    """(loss, cnn_teaches, vit_teaches): pixel-wise BSD (select=False: DML, every valid pixel both ways)."""
    valid = target != ignore_index
    label = torch.where(valid, target, torch.zeros_like(target))
    with torch.no_grad():
        t_decide = T if decide_at_T else 1.0
        ce_c = F.cross_entropy(z_c / t_decide, label, reduction="none")
        ce_v = F.cross_entropy(z_v / t_decide, label, reduction="none")
        right_c, right_v = is_right(z_c, target, ignore_index), is_right(z_v, target, ignore_index)
        cnn = (right_c if require_correct else valid) & (ce_c < ce_v)
        vit = (right_v if require_correct else valid) & (ce_v < ce_c)
        if learner_wrong:
            cnn, vit = cnn & ~right_v, vit & ~right_c
        if learner_right:
            cnn, vit = cnn & right_v, vit & right_c
        if not select:
            cnn, vit = valid, valid
    log_c, log_v = F.log_softmax(z_c / T, dim=1), F.log_softmax(z_v / T, dim=1)
    teach_c, teach_v = (log_c.detach(), log_v.detach()) if detach else (log_c, log_v)
    if reverse:
        vit_learns, cnn_learns = kl_rows(log_v, teach_c), kl_rows(log_c, teach_v)
    else:
        vit_learns, cnn_learns = kl_rows(teach_c, log_v), kl_rows(teach_v, log_c)
    weigh_vit, weigh_cnn = (vit, cnn) if swap_masks else (cnn, vit)
    loss = T ** t_power * (_reduce(vit_learns, weigh_vit, valid, normaliser)
                           + _reduce(cnn_learns, weigh_cnn, valid, normaliser))
    return loss, cnn, vit


def dml(z_c, z_v, target, T=1.0, **mistakes):
    """DML's loss: pixel_bsd without selection (the same switches apply)."""
    return pixel_bsd(z_c, z_v, target, T, select=False, **mistakes)[0]


def kdcl(z_c, z_v, target, T=1.0, *, reverse=False, t_power=2, detach=True, normaliser="own", ignore_index=IGNORE):
    """KDCL's loss as the kit builds it: both students learn softmax((z_c + z_v) / 2T), detached."""
    valid = target != ignore_index
    log_q = F.log_softmax((z_c + z_v) / (2 * T), dim=1)
    if detach:
        log_q = log_q.detach()
    terms = []
    for z in (z_c, z_v):
        log_p = F.log_softmax(z / T, dim=1)
        terms.append(_reduce(kl_rows(log_p, log_q) if reverse else kl_rows(log_q, log_p), valid, valid, normaliser))
    return T ** t_power * sum(terms)


def region_ce(ce, valid, region_pixels, *, count_ignore=False, empty="nan", grid="ceil"):
    """Mean CE per region of region_pixels x region_pixels label pixels: (B, H, W) -> (B, Hr, Wr), NaN without a
    valid pixel. A region at the border may be partial (ceil)."""
    weights = torch.ones_like(ce) if count_ignore else valid.float()
    values = ce if count_ignore else torch.where(valid, ce, torch.zeros_like(ce))
    pooled = F.avg_pool2d(torch.stack([values * weights, weights], 1), region_pixels, region_pixels,
                          ceil_mode=grid == "ceil")
    has = pooled[:, 1] > 0
    mean = pooled[:, 0] / torch.where(has, pooled[:, 1], torch.ones_like(pooled[:, 1]))
    return torch.where(has, mean, torch.full_like(mean, float("nan") if empty == "nan" else 0.0))


def standardise(x):
    """Over the channels (dim 1): mean 0, variance 1 at every location (eps 1e-5), as HFD's d."""
    return (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=False, keepdim=True) + 1e-5)


def feature_d(prediction, target, *, detach=True, standardise_sides=True):
    """HFD's d per location: mean over channels of the squared difference of the standardised vectors."""
    target = target.detach() if detach else target
    if standardise_sides:
        prediction, target = standardise(prediction), standardise(target)
    return (prediction - target).pow(2).mean(1)


def conv1x1(linear, x):
    """A connector (nn.Linear over channels) on a (B, C, h, w) map: a 1x1 convolution."""
    return linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def region_bsd(embed_c, embed_v, ce_c, ce_v, target, to_cnn, to_vit, region_size, *, reverse_direction=False,
               count_ignore=False, normaliser="own", detach=True, border="own", ignore_index=IGNORE):
    """(loss, direction, region CE of the CNN, of the ViT): region-wise BSD on embeds (B, E, h, w) with per-pixel
    CE maps (B, H, W) at label resolution, H = stride * h; regions of region_size x region_size cells."""
    valid = target != ignore_index
    cell = region_size * (target.shape[-1] // embed_c.shape[-1])
    with torch.no_grad():
        r_c = region_ce(ce_c, valid, cell, count_ignore=count_ignore)
        r_v = region_ce(ce_v, valid, cell, count_ignore=count_ignore)
        lower_c, lower_v = (r_c > r_v, r_v > r_c) if reverse_direction else (r_c < r_v, r_v < r_c)
        direction = lower_c.long() - lower_v.long()
        region_valid = ~torch.isnan(r_c)
    vit_learns = feature_d(conv1x1(to_cnn, embed_v), embed_c, detach=detach)  # where the CNN teaches
    cnn_learns = feature_d(conv1x1(to_vit, embed_c), embed_v, detach=detach)  # where the ViT teaches
    per_region = F.avg_pool2d(torch.stack([vit_learns, cnn_learns], 1), region_size, region_size, ceil_mode=True)
    if border == "full":  # partial regions divided by a full region's number of cells
        cells = F.avg_pool2d(torch.ones_like(vit_learns)[:, None], region_size, region_size, ceil_mode=True,
                             divisor_override=1)
        per_region = per_region * cells / region_size ** 2
    loss = (_reduce(per_region[:, 0], direction == 1, region_valid, normaliser)
            + _reduce(per_region[:, 1], direction == -1, region_valid, normaliser))
    return loss, direction, r_c, r_v
