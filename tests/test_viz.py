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


def mean_color(fig, ax, x0, x1, y0, y1):
    """Mean rendered colour over the data rectangle [x0, x1] x [y0, y1] of `ax` (pixel edges)."""
    picture = rendered(fig)
    height = picture.shape[0]
    (px0, py0), (px1, py1) = ax.transData.transform([(x0, y0), (x1, y1)])
    rows = sorted((int(round(height - py0)), int(round(height - py1))))
    cols = sorted((int(round(px0)), int(round(px1))))
    return picture[rows[0] + 1:rows[1] - 1, cols[0] + 1:cols[1] - 1].reshape(-1, 3).mean(axis=0)


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
    """8x8 masks: CNN teaches columns 0-1, ViT 2-3; both right 0-2, only the CNN right 4, only the ViT 5,
    both wrong 3 and 6; column 7 is ignore."""
    cnn = np.zeros((8, 8), bool)
    vit = np.zeros((8, 8), bool)
    cnn[:, :2] = True
    vit[:, 2:4] = True
    cnn_right = np.zeros((8, 8), bool)
    vit_right = np.zeros((8, 8), bool)
    cnn_right[:, :3] = vit_right[:, :3] = True
    cnn_right[:, 4] = True
    vit_right[:, 5] = True
    valid = np.ones((8, 8), bool)
    valid[:, 7] = False
    return cnn, vit, cnn_right, vit_right, valid


def test_reliability_categories_split_one_right_by_student():
    teaching, correctness = maps.reliability_categories(*pixel_masks())
    assert teaching[0, 0] == 1 and teaching[0, 2] == 2 and teaching[0, 5] == 0 and teaching[0, 7] == -1
    assert correctness[0].tolist() == [0, 0, 0, 3, 1, 2, 3, -1]
    assert maps.CORRECTNESS_NAMES[1] == "only the CNN right" and maps.CORRECTNESS_NAMES[2] == "only the ViT right"


def test_pixel_reliability_colours_and_ignore():
    image = np.zeros((8, 8, 3), np.uint8)
    fig = maps.plot_pixel_reliability(image, *pixel_masks(), alpha=1.0)
    left, right = fig.axes[:2]
    assert closer_to(color_at(fig, left, 0.5, 4), maps.CNN_COLOR, maps.VIT_COLOR)
    assert closer_to(color_at(fig, left, 2.5, 4), maps.VIT_COLOR, maps.CNN_COLOR)
    np.testing.assert_allclose(color_at(fig, left, 7, 4), [0, 0, 0], atol=0.05)  # ignore: image shows
    np.testing.assert_allclose(color_at(fig, right, 6, 4), to_rgb(maps.BOTH_WRONG_COLOR), atol=0.05)
    np.testing.assert_allclose(color_at(fig, right, 4, 4), to_rgb(maps.ONLY_CNN_RIGHT_COLOR), atol=0.05)
    np.testing.assert_allclose(color_at(fig, right, 5, 4), to_rgb(maps.ONLY_VIT_RIGHT_COLOR), atol=0.05)
    texts = legend_texts(fig)
    # shares are of the 56 valid pixels: CNN teaches 16/56 = 29%, both wrong (columns 3 and 6) 29%, only one 14%
    assert "CNN teaches, ViT learns 29%" in texts and "both wrong 29%" in texts
    assert "only the CNN right 14%" in texts and "only the ViT right 14%" in texts


def test_kl_map_masks_pixels_not_transferred():
    image = np.zeros((8, 8, 3), np.uint8)
    kl = np.ones((8, 8))
    mask = np.zeros((8, 8), bool)
    mask[:, :4] = True
    fig = maps.plot_kl_map(image, kl, transfer_mask=mask)
    right = fig.axes[1]
    # not transferred: no colour, only the thin grey hatching of "no transfer" over the black image
    assert mean_color(fig, right, 4.5, 7.5, 0.5, 7.5).max() < 0.25
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


def test_hfd_curves_take_the_teachers_colour():
    history = [{"kind": "train", "step": s, "hfd_cnn_learns": 1.0 / s, "hfd_vit_learns": 2.0 / s} for s in (1, 2)]
    ax = curves.plot_loss_terms(history).axes[0]
    assert line(ax, "hfd_cnn_learns (ViT teaches)").get_color().lower() == maps.VIT_COLOR.lower()
    assert line(ax, "hfd_vit_learns (CNN teaches)").get_color().lower() == maps.CNN_COLOR.lower()


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


def test_pixel_bsd_title_gives_the_loss_of_the_scene_per_direction():
    """L_pixel averages each direction on its own (PixelBSDLoss), not all transferring pixels together."""
    cnn, vit, cnn_right, vit_right, valid = pixel_masks()
    vit[:, 3] = False  # the CNN teaches 16 pixels (KL 1.0), the ViT 8 (KL 0.25)
    kl = np.where(cnn, 1.0, np.where(vit, 0.25, 0.0))
    title = maps.plot_pixel_bsd(np.zeros((8, 8, 3), np.uint8), cnn, vit, cnn_right, vit_right, kl, valid,
                                temperature=2.0).axes[2].get_title()
    assert "mean 0.750 nats" in title  # (16 * 1.0 + 8 * 0.25) / 24
    assert "CNN teaches 1.000 + ViT teaches 0.250) = 5.000" in title  # 4 * (1.0 + 0.25), not 4 * 0.75


def test_pixel_bsd_title_matches_the_loss_module_on_one_scene():
    import torch

    from collab_lib.losses import PixelBSDLoss

    generator = torch.Generator().manual_seed(0)
    logits_c, logits_v = torch.randn(2, 1, 5, 16, 16, generator=generator)
    target = torch.randint(0, 5, (1, 16, 16), generator=generator)
    target[:, :2] = 255
    loss, info = PixelBSDLoss(temperature=3.0)(logits_c, logits_v, target)
    assert info["cnn_teaches"].any() and info["vit_teaches"].any()
    title = maps.plot_pixel_bsd(np.zeros((16, 16, 3), np.uint8), info["cnn_teaches"][0], info["vit_teaches"][0],
                                info["both_right"][0], info["both_right"][0], info["kl_map"][0], target[0] != 255,
                                temperature=3.0).axes[2].get_title()
    assert title.endswith(f") = {loss.item():.3f}")


def test_pixel_bsd_composite_paints_kl_only_where_knowledge_moves():
    image = np.zeros((8, 8, 3), np.uint8)
    cnn, vit, cnn_right, vit_right, valid = pixel_masks()
    kl = np.full((8, 8), 0.5)
    fig = maps.plot_pixel_bsd(image, cnn, vit, cnn_right, vit_right, kl, valid, temperature=2.0, vmax=1.0)
    kl_ax = fig.axes[2]
    assert mean_color(fig, kl_ax, 4.5, 6.5, 0.5, 7.5).max() < 0.25  # no transfer: only grey hatching
    assert color_at(fig, kl_ax, 1, 4).sum() > 0.3
    assert "mean 0.500 nats" in kl_ax.get_title() and "= 4.000" in kl_ax.get_title()  # T^2 (0.5 + 0.5), T = 2
    # a fixed vmax: a smaller KL is drawn darker
    darker = maps.plot_pixel_bsd(image, cnn, vit, cnn_right, vit_right, kl / 5, valid, vmax=1.0)
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


# ---- one convention across the course ----------------------------------------------------------

def handle_for(fig, text):
    """The legend handle (patch) whose label contains `text`, from any legend of the figure."""
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    legends += [a for ax in fig.axes for a in ax.artists if isinstance(a, matplotlib.legend.Legend)]
    for legend in legends:
        for handle, label in zip(legend.legend_handles, legend.get_texts()):
            if text in label.get_text():
                return handle
    raise AssertionError(f"no legend entry containing {text!r}; entries: {legend_texts(fig)}")


def transfer_figures():
    """Every figure of the course that shows who teaches: region map, region composite, pixel map, class bars."""
    image = np.full((64, 128, 3), 255, np.uint8)
    direction = np.array([[1, -1, 0, 1], [0, 0, -1, 1]])
    label = np.zeros((64, 128), int)
    cnn, vit, cnn_right, vit_right, valid = pixel_masks()
    return {
        "plot_direction_map": maps.plot_direction_map(image, direction, region_pixels=32),
        "plot_region_bsd": maps.plot_region_bsd(image, label, np.ones((2, 4)), np.ones((2, 4)), direction,
                                                CLASS_NAMES, PALETTE, region_pixels=32),
        "plot_pixel_bsd": maps.plot_pixel_bsd(np.full((8, 8, 3), 255, np.uint8), cnn, vit, cnn_right, vit_right,
                                              np.ones((8, 8)), valid),
        "plot_pixel_reliability": maps.plot_pixel_reliability(np.full((8, 8, 3), 255, np.uint8), cnn, vit,
                                                              cnn_right, vit_right, valid),
        "plot_teaching_by_class": bars.plot_teaching_by_class([0.5, 0.1, 0.2, 0.0], [0.2, 0.6, 0.1, 1.0], CLASS_NAMES),
    }


def test_every_transfer_figure_uses_the_one_colour_convention():
    for name, fig in transfer_figures().items():
        cnn = handle_for(fig, "CNN teaches")
        vit = handle_for(fig, "ViT teaches")
        none = handle_for(fig, "no transfer")
        assert np.allclose(to_rgb(cnn.get_facecolor()), to_rgb(maps.CNN_COLOR)), name
        assert np.allclose(to_rgb(vit.get_facecolor()), to_rgb(maps.VIT_COLOR)), name
        assert none.get_hatch() == maps.NONE_HATCH, name
        assert np.allclose(to_rgb(none.get_edgecolor()), to_rgb(maps.NONE_COLOR)), name
        assert np.allclose(to_rgb(none.get_facecolor()), (1, 1, 1)), f"{name}: no transfer must not be filled"


def test_no_transfer_is_hatched_not_filled_in_region_and_pixel_maps():
    white = np.full((32, 64, 3), 255, np.uint8)
    region = maps.plot_direction_map(white, np.array([[0, 1]]), region_pixels=32)
    pixel_teaching = np.zeros((32, 64), bool)
    pixel_teaching[:, 32:] = True
    pixel = maps.plot_pixel_reliability(white, pixel_teaching, np.zeros_like(pixel_teaching),
                                        pixel_teaching, pixel_teaching)
    for fig in (region, pixel):
        ax = fig.axes[0]
        hatched = [p for p in ax.patches if p.get_hatch() == maps.NONE_HATCH and not p.get_fill()]
        assert hatched, "the no-transfer area carries the grey hatching"
        assert np.allclose(to_rgb(hatched[0].get_edgecolor()), to_rgb(maps.NONE_COLOR))
        # mostly white (the image), a little grey (the hatching); the transfer half is orange
        none_area = mean_color(fig, ax, 0, 31, 0, 31)
        assert none_area.min() > 0.75 and np.ptp(none_area) < 0.05, none_area
        assert closer_to(mean_color(fig, ax, 33, 63, 0, 31), maps.CNN_COLOR, maps.VIT_COLOR)


def test_label_panels_carry_a_class_legend():
    image = np.zeros((64, 128, 3), np.uint8)
    label = np.zeros((64, 128), int)
    label[:, 64:] = 2
    label[:8] = 255
    fig = maps.plot_region_bsd(image, label, np.ones((2, 4)), np.ones((2, 4)), np.zeros((2, 4), int),
                               CLASS_NAMES, PALETTE, region_pixels=32)
    texts = legend_texts(fig)
    assert "road" in texts and "car" in texts and "sidewalk" not in texts
    road = handle_for(fig, "road")
    assert np.allclose(to_rgb(road.get_facecolor()), PALETTE[0] / 255.0)
    fig = maps.plot_direction_map(image, np.zeros((2, 4), int), region_pixels=32, label=label, palette=PALETTE,
                                  class_names=CLASS_NAMES)
    assert {"road", "car"} <= set(legend_texts(fig))


def test_class_heatmap_writes_every_value():
    import pandas as pd

    table = pd.DataFrame([[0.5, np.nan, 0.25], [0.1, 0.2, 0.3]], index=["CNN", "ViT"], columns=CLASS_NAMES[:3])
    fig = results.plot_class_heatmap(table, "IoU")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASS_NAMES[:3]
    assert sorted(t.get_text() for t in ax.texts) == ["0.10", "0.20", "0.25", "0.30", "0.50"]  # NaN: blank


def all_figures():
    """One call of every plotting function at the course's sizes (64x128 scenes, 11 classes, 8 configurations)."""
    import pandas as pd

    rng = np.random.default_rng(0)
    names = [f"class {k}" for k in range(11)]
    palette = rng.integers(0, 255, size=(11, 3))
    image = rng.integers(0, 255, size=(64, 128, 3)).astype(np.uint8)
    label = rng.integers(0, 11, size=(64, 128))
    region = rng.random((2, 4))
    direction = rng.integers(-1, 2, size=(2, 4))
    masks = [rng.random((64, 128)) > 0.5 for _ in range(4)]
    frame = pd.DataFrame([{"configuration": f"config {c}", "seed": s, "cnn_miou": 0.4, "vit_miou": 0.38,
                           **{f"{k}_iou/{n}": 0.3 for k in ("cnn", "vit") for n in names}}
                          for c in range(8) for s in range(2)]).replace({"configuration": {"config 0": "independent"}})
    yield "plot_scene", lambda: scenes.plot_scene(image, label, names, palette)
    yield "plot_segmentation", lambda: scenes.plot_segmentation(image, {"gt": label, "CNN": label, "ViT": label},
                                                                names, palette)
    yield "plot_scene_grid", lambda: scenes.plot_scene_grid([image] * 3, [label] * 3, names, palette)
    yield "plot_feature_pca", lambda: features.plot_feature_pca(image, {k: rng.random((8, 16, 32)) for k in "abcd"})
    yield "plot_direction_map", lambda: maps.plot_direction_map(image, direction, 32, label, palette, names)
    yield "plot_region_ce", lambda: maps.plot_region_ce(image, region, region, 32)
    yield "plot_region_bsd", lambda: maps.plot_region_bsd(image, label, region, region, direction, names, palette, 32)
    yield "plot_pixel_reliability", lambda: maps.plot_pixel_reliability(image, *masks)
    yield "plot_kl_map", lambda: maps.plot_kl_map(image, rng.random((64, 128)), masks[0])
    yield "plot_pixel_bsd", lambda: maps.plot_pixel_bsd(image, *masks, rng.random((64, 128)))
    yield "plot_per_class_iou", lambda: bars.plot_per_class_iou({"CNN": [0.5] * 11, "ViT": [0.4] * 11}, names)
    yield "plot_iou_gap", lambda: bars.plot_iou_gap([0.5] * 11, [0.4] * 11, names)
    yield "plot_teaching_by_class", lambda: bars.plot_teaching_by_class([0.3] * 11, [0.3] * 11, names)
    yield "plot_training_overview", lambda: curves.plot_training_overview(HISTORY)
    yield "plot_miou_by_configuration", lambda: results.plot_miou_by_configuration(frame)
    yield "plot_per_class_gain", lambda: results.plot_per_class_gain(frame, "cnn", names)
    yield "plot_class_heatmap", lambda: results.plot_class_heatmap(
        pd.DataFrame(rng.random((6, 11)), columns=names), "share")


@pytest.mark.parametrize("name, make", list(all_figures()), ids=[name for name, _ in all_figures()])
def test_no_figure_is_wider_than_ten_inches(name, make):
    """JupyterLab shrinks wider figures to the page, and their legends become unreadable."""
    fig = make()
    width = fig.get_size_inches()[0]
    assert width <= maps_width_limit() + 1e-9, f"{name}: {width:.2f} in wide"
    # what the notebook shows: the inline backend saves with bbox_inches="tight", legends outside the axes count
    fig.canvas.draw()
    shown = fig.get_tightbbox(fig.canvas.get_renderer()).width
    assert shown <= maps_width_limit() + 0.3, f"{name}: {shown:.2f} in wide as shown (tight box)"


def maps_width_limit():
    from collab_lib.viz._arrays import MAX_FIGURE_WIDTH

    assert MAX_FIGURE_WIDTH == 10.0
    return MAX_FIGURE_WIDTH


def test_plot_selection_shows_what_the_selection_keeps():
    """The selection figure: the kept share of each direction's KL is the KL on that direction's mask over all of it."""
    from collab_lib.losses import DMLLoss, PixelBSDLoss

    g = torch.Generator().manual_seed(0)
    z_c, z_v = torch.randn(1, 3, 8, 8, generator=g) * 3, torch.randn(1, 3, 8, 8, generator=g) * 3
    target = torch.randint(0, 3, (1, 8, 8), generator=g)
    target[0, :2] = 255
    _, on = PixelBSDLoss()(z_c, z_v, target)
    _, dml = DMLLoss()(z_c, z_v, target)
    valid = target[0] != 255
    kl_v, kl_c = dml["kl_vit_learns"][0], dml["kl_cnn_learns"][0]
    kept = maps.kept_share(kl_v, on["cnn_teaches"][0], valid)
    assert 0 < kept < 1 and kept == pytest.approx(float(kl_v[on["cnn_teaches"][0]].sum() / kl_v[valid].sum()))
    assert maps.kept_share(kl_v, valid, valid) == pytest.approx(1.0) and maps.kept_share(kl_v * 0, valid, valid) == 0.0
    fig = maps.plot_selection(np.zeros((8, 8, 3), np.uint8), on["cnn_teaches"][0], on["vit_teaches"][0], kl_v, kl_c, valid)
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert titles[0].startswith("selection on") and f"keeps {kept:.0%} of this KL" in titles[1]
    assert f"keeps {maps.kept_share(kl_c, on['vit_teaches'][0], valid):.0%}" in titles[2]
    plt.close(fig)
