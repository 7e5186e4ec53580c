"""Behaviour of the course's plotting functions (collab_lib.viz).

Figures are rendered with Agg and checked for what a reader relies on: the
colour at a known place means what the legend says, legends name the right
classes, ignore pixels are not painted, shapes and ranges are right.
"""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from collab_lib.viz import bars, curves, features, maps, results, scenes  # noqa: E402

CLASS_NAMES = ["road", "sidewalk", "car", "pole"]
PALETTE = np.array([[128, 64, 128], [244, 35, 232], [0, 0, 142], [153, 153, 153]], np.uint8)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def rendered(fig):
    """RGB float array (h, w, 3) of the drawn figure."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(np.float64) / 255.0


def color_at(fig, ax, x, y):
    """Rendered colour at data coordinates (x, y) of `ax`."""
    picture = rendered(fig)
    px, py = ax.transData.transform((x, y))
    height = picture.shape[0]
    return picture[int(round(height - py)), int(round(px))]


def closer_to(color, a, b):
    return np.linalg.norm(color - np.array(to_rgb(a))) < np.linalg.norm(color - np.array(to_rgb(b)))


def legend_texts(fig):
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    return [text.get_text() for legend in legends for text in legend.get_texts()]


# ---- scenes ----------------------------------------------------------------------------------

def test_label_to_rgba_paints_classes_and_leaves_ignore_transparent():
    label = np.array([[0, 1], [255, 3]])
    rgba = scenes.label_to_rgba(label, PALETTE, alpha=0.5)
    assert rgba.shape == (2, 2, 4)
    np.testing.assert_allclose(rgba[0, 0, :3], PALETTE[0] / 255.0)
    np.testing.assert_allclose(rgba[1, 1, :3], PALETTE[3] / 255.0)
    assert rgba[1, 0, 3] == 0.0  # ignore: fully transparent
    assert rgba[0, 1, 3] == 0.5


def test_scene_legend_names_exactly_the_present_classes():
    image = np.full((32, 64, 3), 128, np.uint8)
    label = np.zeros((32, 64), np.int64)
    label[:, 32:] = 2
    label[:4] = 255
    fig = scenes.plot_scene(image, torch.from_numpy(label), CLASS_NAMES, PALETTE)
    assert sorted(legend_texts(fig)) == ["car", "road"]


def test_scene_overlay_shows_image_through_ignore_pixels():
    image = np.zeros((32, 32, 3), np.uint8)  # black
    label = np.full((32, 32), 255)
    label[:, 16:] = 1  # sidewalk, magenta
    fig = scenes.plot_segmentation(image, {"gt": label}, CLASS_NAMES, PALETTE, alpha=1.0)
    ax = fig.axes[1]
    np.testing.assert_allclose(color_at(fig, ax, 5, 16), [0, 0, 0], atol=0.05)
    np.testing.assert_allclose(color_at(fig, ax, 26, 16), PALETTE[1] / 255.0, atol=0.05)


def test_scene_grid_has_a_row_per_scene():
    images = [np.zeros((32, 64, 3), np.uint8)] * 3
    labels = [np.full((32, 64), k) for k in range(3)]
    fig = scenes.plot_scene_grid(images, labels, CLASS_NAMES, PALETTE)
    assert len(fig.axes) == 6
    assert sorted(legend_texts(fig)) == ["car", "road", "sidewalk"]


# ---- features --------------------------------------------------------------------------------

def test_pca_rgb_separates_two_feature_clusters():
    rng = np.random.default_rng(0)
    feats = rng.normal(scale=0.01, size=(16, 8, 8))
    feats[0, :, 4:] += 5.0  # right half differs along channel 0
    rgb = features.pca_rgb(feats)
    assert rgb.shape == (8, 8, 3)
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0
    left, right = rgb[:, :4, 0].mean(), rgb[:, 4:, 0].mean()
    assert abs(left - right) > 0.9  # first component tells the halves apart


def test_pca_rgb_of_constant_features_is_grey_not_nan():
    rgb = features.pca_rgb(np.ones((4, 5, 6)))
    assert np.isfinite(rgb).all()


def test_explained_variance_sums_to_at_most_one():
    share = features.explained_variance(np.random.default_rng(1).normal(size=(10, 6, 6)))
    assert share.shape == (3,) and 0 < share.sum() <= 1 + 1e-9 and np.all(np.diff(share) <= 1e-12)


def test_plot_feature_pca_panels_and_titles():
    fig = features.plot_feature_pca(np.zeros((32, 64, 3), np.uint8),
                                    {"CNN low": torch.randn(64, 8, 16), "ViT low": torch.randn(32, 8, 16)})
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "image" and "64 ch" in titles[1] and "32 ch" in titles[2]


# ---- region maps -----------------------------------------------------------------------------

def test_direction_map_colours_match_the_direction():
    image = np.full((64, 96, 3), 255, np.uint8)  # white, so the fill colour shows plainly
    direction = np.array([[1, -1, 0], [0, 1, -1]])
    fig = maps.plot_direction_map(image, direction, region_pixels=32)
    ax = fig.axes[0]
    cnn_cell = color_at(fig, ax, 16, 16)
    vit_cell = color_at(fig, ax, 48, 16)
    assert closer_to(cnn_cell, maps.CNN_COLOR, maps.VIT_COLOR)
    assert closer_to(vit_cell, maps.VIT_COLOR, maps.CNN_COLOR)
    assert closer_to(color_at(fig, ax, 48 + 32, 48), maps.VIT_COLOR, maps.CNN_COLOR)
    # a no-transfer region is not filled: hatching is thin, most of it stays the image's white
    none_patch = [p for p in ax.patches if not p.get_fill()]
    assert len(none_patch) == 2 and all(p.get_hatch() for p in none_patch)
    texts = legend_texts(fig)
    assert any("CNN teaches" in t and "(2)" in t for t in texts)
    assert any("ViT teaches" in t and "(2)" in t for t in texts)
    assert any("no transfer" in t and "(2)" in t for t in texts)


def test_direction_map_rejects_values_outside_minus_one_zero_one():
    with pytest.raises(ValueError, match="direction"):
        maps.plot_direction_map(np.zeros((32, 32, 3), np.uint8), np.array([[2]]))


def test_direction_map_clips_partial_regions_at_the_border():
    image = np.zeros((40, 40, 3), np.uint8)
    fig = maps.plot_direction_map(image, np.ones((2, 2), int), region_pixels=32)
    widths = sorted(p.get_width() for p in fig.axes[0].patches)
    assert widths == [8, 8, 32, 32]


def test_region_ce_leaves_regions_without_valid_pixels_unpainted():
    image = np.zeros((32, 64, 3), np.uint8)
    ce_cnn = np.array([[0.5, np.nan]])
    ce_vit = np.array([[1.0, np.nan]])
    fig = maps.plot_region_ce(image, ce_cnn, ce_vit, region_pixels=32)
    ax = fig.axes[0]
    np.testing.assert_allclose(color_at(fig, ax, 48, 16), [0, 0, 0], atol=0.05)  # NaN: the black image
    assert color_at(fig, ax, 16, 16).sum() > 0.2  # painted
    # difference panel: CNN lower CE -> orange side of the diverging scale
    assert closer_to(color_at(fig, fig.axes[2], 16, 16), maps.CNN_COLOR, maps.VIT_COLOR)


def test_region_bsd_composite_has_four_panels_and_the_direction_legend():
    image = np.zeros((32, 64, 3), np.uint8)
    fig = maps.plot_region_bsd(image, np.zeros((32, 64), int), np.array([[0.2, 0.9]]), np.array([[0.4, 0.3]]),
                               np.array([[1, -1]]), CLASS_NAMES, PALETTE, region_pixels=32)
    assert len([ax for ax in fig.axes if ax.get_title()]) == 4
    assert any("CNN teaches" in t for t in legend_texts(fig))


# ---- pixel maps ------------------------------------------------------------------------------

def pixel_masks():
    cnn = np.zeros((8, 8), bool)
    vit = np.zeros((8, 8), bool)
    cnn[:, :2] = True
    vit[:, 2:4] = True
    both_right = np.zeros((8, 8), bool)
    both_right[:, :3] = True
    both_wrong = np.zeros((8, 8), bool)
    both_wrong[:, 6:] = True
    valid = np.ones((8, 8), bool)
    valid[:, 7] = False
    return cnn, vit, both_right, both_wrong, valid


def test_reliability_categories():
    teaching, correctness = maps.reliability_categories(*pixel_masks())
    assert teaching[0, 0] == 1 and teaching[0, 2] == 2 and teaching[0, 5] == 0 and teaching[0, 7] == -1
    assert correctness[0, 0] == 0 and correctness[0, 4] == 1 and correctness[0, 6] == 2 and correctness[0, 7] == -1


def test_pixel_reliability_colours_and_ignore():
    image = np.zeros((8, 8, 3), np.uint8)
    fig = maps.plot_pixel_reliability(image, *pixel_masks(), alpha=1.0)
    left, right = fig.axes[:2]
    assert closer_to(color_at(fig, left, 0.5, 4), maps.CNN_COLOR, maps.VIT_COLOR)
    assert closer_to(color_at(fig, left, 2.5, 4), maps.VIT_COLOR, maps.CNN_COLOR)
    np.testing.assert_allclose(color_at(fig, left, 7, 4), [0, 0, 0], atol=0.05)  # ignore: image shows
    np.testing.assert_allclose(color_at(fig, right, 6, 4), to_rgb(maps.BOTH_WRONG_COLOR), atol=0.05)
    texts = legend_texts(fig)
    # shares are of the 56 valid pixels: CNN teaches 16/56 = 29%
    assert "CNN teaches 29%" in texts and "both wrong 14%" in texts


def test_kl_map_masks_pixels_not_transferred():
    image = np.zeros((8, 8, 3), np.uint8)
    kl = np.ones((8, 8))
    mask = np.zeros((8, 8), bool)
    mask[:, :4] = True
    fig = maps.plot_kl_map(image, kl, transfer_mask=mask)
    right = fig.axes[1]
    np.testing.assert_allclose(color_at(fig, right, 6, 4), [0, 0, 0], atol=0.05)
    assert color_at(fig, right, 1, 4).sum() > 0.5
    assert "mean 1.000" in right.get_title()


# ---- bars ------------------------------------------------------------------------------------

def test_per_class_iou_bars_heights_labels_and_missing_classes():
    iou = {"CNN (R18)": [0.9, 0.5, None, 0.2], "ViT (B0)": [0.8, 0.6, 0.4, 0.1]}
    fig = bars.plot_per_class_iou(iou, CLASS_NAMES)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASS_NAMES
    heights = [p.get_height() for p in ax.patches]
    assert heights[:4] == [0.9, 0.5, 0.0, 0.2] and heights[4:] == [0.8, 0.6, 0.4, 0.1]
    assert closer_to(np.array(to_rgb(ax.patches[0].get_facecolor())), maps.CNN_COLOR, maps.VIT_COLOR)
    assert any(t.get_text() == "n/a" for t in ax.texts)
    assert any("mean 0.533" in t for t in legend_texts(fig))


def test_per_class_iou_class_filter():
    fig = bars.plot_per_class_iou({"CNN": [0.9, 0.5, 0.3, 0.2]}, CLASS_NAMES, classes=["pole", "road"])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["pole", "road"]
    assert [p.get_height() for p in fig.axes[0].patches] == [0.2, 0.9]
    with pytest.raises(ValueError, match="unknown class"):
        bars.plot_per_class_iou({"CNN": [0.9] * 4}, CLASS_NAMES, classes=["tree"])


def test_iou_gap_colours_by_winner():
    fig = bars.plot_iou_gap([0.9, 0.5, None, 0.2], [0.8, 0.6, 0.4, 0.2], CLASS_NAMES)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["road", "sidewalk", "pole"]
    colors = [np.array(to_rgb(p.get_facecolor())) for p in ax.patches]
    assert closer_to(colors[0], maps.CNN_COLOR, maps.VIT_COLOR)
    assert closer_to(colors[1], maps.VIT_COLOR, maps.CNN_COLOR)


def test_teaching_by_class_stacks_to_one():
    fig = bars.plot_teaching_by_class([0.5, 0.1, np.nan, 0.0], [0.2, 0.6, np.nan, 1.0], CLASS_NAMES)
    ax = fig.axes[0]
    per_class = np.zeros(4)
    for patch in ax.patches:
        per_class[int(round(patch.get_x() + patch.get_width() / 2))] += patch.get_height()
    np.testing.assert_allclose(per_class, [1, 1, 0, 1])
    assert any(t.get_text() == "not seen" for t in ax.texts)
    with pytest.raises(ValueError):
        bars.plot_teaching_by_class([0.8], [0.5], ["x"])


# ---- curves ----------------------------------------------------------------------------------

HISTORY = [
    {"kind": "train", "step": 10, "ce_cnn": 2.0, "ce_vit": 2.2, "pixel": 0.5, "ramp": 0.5,
     "region_frac_cnn_teaches": 0.6, "region_frac_vit_teaches": 0.3, "lr_cnn": 0.01},
    {"kind": "train", "step": 20, "ce_cnn": 1.0, "ce_vit": 1.5, "pixel": 0.4, "ramp": 1.0,
     "region_frac_cnn_teaches": 0.5, "region_frac_vit_teaches": 0.4, "lr_cnn": 0.005},
    {"kind": "eval", "step": 20, "split": "val", "cnn_miou": 0.3, "vit_miou": 0.25},
    {"kind": "eval", "step": 10, "split": "val", "cnn_miou": 0.1, "vit_miou": 0.12},
    {"kind": "eval", "step": 20, "split": "test", "cnn_miou": 0.9, "vit_miou": 0.9},
]


def line(ax, label):
    return next(l for l in ax.get_lines() if l.get_label().startswith(label))


def test_miou_curves_use_only_the_split_in_step_order():
    fig = curves.plot_miou_curves(HISTORY, split="val")
    ax = fig.axes[0]
    np.testing.assert_allclose(line(ax, "CNN").get_xdata(), [10, 20])
    np.testing.assert_allclose(line(ax, "CNN").get_ydata(), [0.1, 0.3])
    np.testing.assert_allclose(line(ax, "ViT").get_ydata(), [0.12, 0.25])
    assert line(ax, "CNN").get_color().lower() == maps.CNN_COLOR.lower()


def test_loss_terms_draw_logged_terms_only_and_skip_bookkeeping():
    fig = curves.plot_loss_terms(HISTORY)
    labels = [l.get_label() for l in fig.axes[0].get_lines()]
    assert labels == ["ce_cnn", "ce_vit", "pixel"]
    assert fig.axes[0].get_yscale() == "log"


def test_teaching_fractions_and_run_without_bsd():
    fig = curves.plot_teaching_fractions(HISTORY)
    labels = [l.get_label() for l in fig.axes[0].get_lines()]
    assert labels == ["regions: CNN teaches", "regions: ViT teaches"]
    fig = curves.plot_teaching_fractions([r for r in HISTORY if "region_frac_cnn_teaches" not in r])
    assert not fig.axes[0].get_lines() and "no selective distillation" in fig.axes[0].texts[0].get_text()


def test_training_overview_cuts_at_until():
    fig = curves.plot_training_overview(HISTORY, until=10)
    np.testing.assert_allclose(line(fig.axes[0], "CNN").get_xdata(), [10])
    np.testing.assert_allclose(line(fig.axes[1], "ce_cnn").get_xdata(), [10])


def test_pixel_bsd_composite_paints_kl_only_where_knowledge_moves():
    image = np.zeros((8, 8, 3), np.uint8)
    cnn, vit, both_right, both_wrong, valid = pixel_masks()
    kl = np.full((8, 8), 0.5)
    fig = maps.plot_pixel_bsd(image, cnn, vit, both_right, both_wrong, kl, valid, temperature=2.0, vmax=1.0)
    kl_ax = fig.axes[2]
    np.testing.assert_allclose(color_at(fig, kl_ax, 6, 4), [0, 0, 0], atol=0.05)  # no transfer: not painted
    assert color_at(fig, kl_ax, 1, 4).sum() > 0.3
    assert "x T^2 = 2.000" in kl_ax.get_title()  # mean 0.5 nats times T^2 = 4
    # a fixed vmax: a smaller KL is drawn darker
    darker = maps.plot_pixel_bsd(image, cnn, vit, both_right, both_wrong, kl / 5, valid, vmax=1.0)
    assert color_at(darker, darker.axes[2], 1, 4).sum() < color_at(fig, kl_ax, 1, 4).sum()


# ---- results ---------------------------------------------------------------------------------

def results_frame():
    import pandas as pd

    rows = []
    for configuration, base in (("independent", 0.5), ("collab", 0.6)):
        for seed in (0, 1):
            row = {"configuration": configuration, "seed": seed, "cnn_miou": base + 0.01 * seed, "vit_miou": base - 0.1}
            for k, name in enumerate(CLASS_NAMES):
                row[f"cnn_iou/{name}"] = base + 0.1 * k
                row[f"vit_iou/{name}"] = None if name == "pole" else base
            rows.append(row)
    return pd.DataFrame(rows)


def test_miou_by_configuration_draws_every_seed_and_the_mean():
    fig = results.plot_miou_by_configuration(results_frame())
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["independent", "collab"]
    bar_heights = sorted(round(p.get_height(), 3) for p in ax.patches if p.get_height() > 0)
    assert bar_heights == [0.4, 0.5, 0.505, 0.605]  # means over the two seeds
    dots = sum(len(c.get_offsets()) for c in ax.collections)
    assert dots == 8  # 2 configurations x 2 seeds x 2 students


def test_per_class_gain_against_independent():
    gains = results.per_class_gain(results_frame(), "cnn", CLASS_NAMES)
    assert list(gains.index) == ["collab"]
    np.testing.assert_allclose(gains.loc["collab"].values, [0.1] * 4)
    vit = results.per_class_gain(results_frame(), "vit", CLASS_NAMES)
    assert np.isnan(vit.loc["collab", "pole"])
    with pytest.raises(ValueError, match="no 'dml' runs"):
        results.per_class_gain(results_frame(), "cnn", CLASS_NAMES, reference="dml")
    fig = results.plot_per_class_gain(results_frame(), "cnn", CLASS_NAMES, classes=["road", "car"])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["road", "car"]


def test_paired_gains_plot_puts_each_seed_and_the_mean_where_they_belong():
    gains = {"hfd_only": {0: 1.0, 1: -1.0, 2: 3.0}, "collab": {0: -0.5}}
    fig = results.plot_paired_gains(gains, student_label="ViT")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["hfd_only (3)", "collab (1)"]
    assert ax.yaxis_inverted()  # the first configuration on top
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    points = sorted(tuple(p) for c in dots for p in np.asarray(c.get_offsets()))
    assert points == [(-1.0, 0.0), (-0.5, 1.0), (1.0, 0.0), (3.0, 0.0)]  # x = gain, y = the configuration's row
    # the means (diamonds) at x = +1.0 (row 0) and -0.5 (row 1); the first bar spans ± s.e. = stdev 2 / sqrt 3
    means = sorted(tuple(line.get_xydata()[0]) for line in ax.lines if line.get_marker() == "D")
    assert means == [(-0.5, 1.0), (1.0, 0.0)]
    bars = [c for c in ax.collections if isinstance(c, LineCollection)]
    spans = [tuple(seg[:, 0]) for c in bars for seg in c.get_segments() if seg[0, 1] == seg[1, 1]]
    se = 2.0 / np.sqrt(3)
    assert any(np.allclose(s, (1.0 - se, 1.0 + se)) for s in spans)
    assert "ViT gain" in ax.get_xlabel()
    plt.close(fig)
    with pytest.raises(ValueError, match="at least one seed"):
        results.plot_paired_gains({})
