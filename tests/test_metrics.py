"""The metric on hand-computed cases."""
import math

import pytest
import torch

from collab_lib.metrics import ConfusionMatrix


def test_hand_computed_case_with_ignore_and_absent_class():
    # 4 classes; class 3 never occurs in labels nor predictions.
    target = torch.tensor([[[0, 0, 1, 1], [2, 2, 255, 255]]])
    pred = torch.tensor([[[0, 1, 1, 1], [2, 0, 3, 1]]])  # last two are ignored whatever they say
    cm = ConfusionMatrix(4)
    cm.update(pred, target)
    out = cm.compute()
    # class 0: TP 1, FP 1 (the 2 predicted as 0), FN 1 (0 predicted as 1) -> 1/3
    # class 1: TP 2, FP 1, FN 0 -> 2/3 ; class 2: TP 1, FP 0, FN 1 -> 1/2 ; class 3 absent
    assert out["iou"][:3] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert out["iou"][3] is None
    assert out["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert out["pixel_accuracy"] == pytest.approx(4 / 6)
    assert out["present"] == [True, True, True, False]


def test_ignored_pixels_never_count():
    target = torch.full((1, 2, 2), 255)
    cm = ConfusionMatrix(3)
    cm.update(torch.zeros(1, 2, 2, dtype=torch.long), target)
    assert cm.matrix.sum() == 0
    out = cm.compute()
    assert math.isnan(out["miou"]) and out["iou"] == [None, None, None]


def test_perfect_and_all_wrong_predictions():
    target = torch.tensor([[[0, 1], [2, 2]]])
    cm = ConfusionMatrix(3)
    cm.update(target.clone(), target)
    assert cm.compute()["miou"] == 1.0 and cm.compute()["pixel_accuracy"] == 1.0
    wrong = ConfusionMatrix(3)
    wrong.update((target + 1) % 3, target)
    assert wrong.compute()["miou"] == 0.0 and wrong.compute()["iou"] == [0.0, 0.0, 0.0]


def test_predicted_but_absent_class_counts_as_zero_iou():
    # A class that is predicted but never labelled is present (a false positive): IoU 0, and it lowers mIoU.
    target = torch.tensor([[[0, 0]]])
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([[[0, 1]]]), target)
    out = cm.compute()
    assert out["iou"] == [0.5, 0.0] and out["miou"] == 0.25


def test_dataset_level_not_mean_of_images():
    # Image A: class 1 tiny and wrong; image B: class 1 large and right. Dataset IoU differs from the per-image mean.
    a_t, a_p = torch.tensor([[[0, 0, 0, 1]]]), torch.tensor([[[0, 0, 0, 0]]])
    b_t, b_p = torch.tensor([[[1, 1, 1, 1]]]), torch.tensor([[[1, 1, 1, 1]]])
    cm = ConfusionMatrix(2)
    cm.update(a_p, a_t)
    cm.update(b_p, b_t)
    # class 1: TP 4, FN 1 -> 0.8; class 0: TP 3, FP 1 -> 0.75
    assert cm.compute()["iou"] == pytest.approx([0.75, 0.8])


def test_logits_at_stride_four_are_upsampled_then_argmaxed():
    logits = torch.zeros(1, 3, 1, 1)
    logits[0, 2] = 5.0
    target = torch.full((1, 4, 4), 2)
    cm = ConfusionMatrix(3)
    cm.update(logits, target)
    assert cm.compute()["iou"] == [None, None, 1.0]
    # Small logits must not be truncated to integers before argmax.
    fine = torch.tensor([[[[0.1]], [[0.4]], [[0.2]]]])
    cm2 = ConfusionMatrix(3)
    cm2.update(fine, torch.ones(1, 1, 1, dtype=torch.long))
    assert cm2.compute()["miou"] == 1.0


def test_accumulates_over_batches_and_resets():
    target = torch.tensor([[[0, 1]]])
    cm = ConfusionMatrix(2)
    cm.update(target, target)
    cm.update(target, target)
    assert cm.matrix.tolist() == [[2, 0], [0, 2]]
    cm.reset()
    assert cm.matrix.sum() == 0


def test_bad_shapes_are_named():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="classes"):
        cm.update(torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="does not match"):
        cm.update(torch.zeros(1, 3, 3, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long))


def test_rows_are_the_truth_and_logits_are_upsampled_bilinearly_before_the_argmax():
    """Class-0 minus class-1 logit (1, 5) on two stride cells; bilinear to 4 pixels (align_corners=False) gives
    1, -0.5, -3.5, -5: predictions 0, 1, 1, 1. Nearest-neighbour upsampling of the argmax would give 0, 0, 1, 1."""
    logits = torch.tensor([[1.0, -5.0], [0.0, 0.0]]).reshape(1, 2, 1, 2)
    target = torch.tensor([[[0, 0, 1, 1]]])
    cm = ConfusionMatrix(2)
    cm.update(logits, target)
    assert cm.matrix.tolist() == [[1, 1], [0, 2]]  # truth 0 predicted 1 sits in row 0, column 1
    assert cm.compute()["iou"] == pytest.approx([1 / 2, 2 / 3])


def test_float_class_maps_are_refused_and_no_valid_pixel_gives_nan():
    cm = ConfusionMatrix(2)
    with pytest.raises(ValueError, match="got a float"):
        cm.update(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    cm.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), 255))
    result = cm.compute()
    assert math.isnan(result["miou"]) and math.isnan(result["pixel_accuracy"]) and result["iou"] == [None, None]


def test_matches_a_direct_count_on_random_maps():
    """Every cell of the matrix is the number of valid pixels with that (truth, prediction), for random maps
    with a third of the pixels ignored (the ignored ones predict anything)."""
    torch.manual_seed(0)
    target = torch.randint(0, 6, (3, 10, 12))
    target[torch.rand(target.shape) < 0.33] = 255
    pred = torch.randint(0, 6, (3, 10, 12))
    cm = ConfusionMatrix(6)
    cm.update(pred, target)
    expected = torch.zeros(6, 6, dtype=torch.int64)
    for t, p in zip(target.flatten().tolist(), pred.flatten().tolist()):
        if t != 255:
            expected[t, p] += 1
    assert torch.equal(cm.matrix, expected)
    assert cm.matrix.sum() == (target != 255).sum()
