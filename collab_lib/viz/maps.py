"""Where knowledge moves: region-wise and pixel-wise BSD drawn over the image.

Colours are fixed across the course so that a reader learns them once:
CNN teaches = orange, ViT teaches = blue (a pair that colour-blind readers
also tell apart), no transfer = unfilled grey hatching, ignore = nothing drawn.

Region maps are (Hr, Wr) arrays with one value per region; a region covers
`region_pixels` x `region_pixels` input pixels (region_size feature cells x the
stride 4), the last row / column may be cut by the image border.
Pixel maps are (H, W) arrays at label resolution.
"""
import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LinearSegmentedColormap, to_rgba
from matplotlib.patches import Patch, Rectangle

from ._arrays import to_numpy
from .scenes import label_to_rgba

CNN_COLOR = "#E66100"  # orange
VIT_COLOR = "#1A85FF"  # blue
NONE_COLOR = "#7F7F7F"  # grey hatching / edges
DIRECTION_COLORS = {1: CNN_COLOR, -1: VIT_COLOR}
# Diverging scale for "which student is more reliable": blue (ViT) - white - orange (CNN).
VIT_TO_CNN_CMAP = LinearSegmentedColormap.from_list("vit_to_cnn", [VIT_COLOR, "#FFFFFF", CNN_COLOR])
BOTH_RIGHT_COLOR = "#BFE3B4"  # pale green
ONE_RIGHT_COLOR = "#FFE08A"  # pale yellow
BOTH_WRONG_COLOR = "#3B0F4F"  # dark purple


def region_pixels_for(image_shape, region_shape) -> int:
    """Side of one region in input pixels when not given: ceil(H / Hr), the grid then covers the image."""
    return int(math.ceil(image_shape[0] / region_shape[0]))


def region_boxes(region_shape, region_pixels: int, image_shape):
    """Yield (row, col, x0, y0, width, height) of every region, clipped to the image (pixel units)."""
    height, width = image_shape[:2]
    for row in range(region_shape[0]):
        for col in range(region_shape[1]):
            x0, y0 = col * region_pixels, row * region_pixels
            yield row, col, x0, y0, min(region_pixels, width - x0), min(region_pixels, height - y0)


def draw_direction_map(ax, image, direction, region_pixels=None, alpha: float = 0.55, label=None,
                       palette=None, ignore_index: int = 255):
    """Draw the image (optionally its label overlay) and one filled box per transferring region.

    direction: int (Hr, Wr) with 1 = CNN teaches, -1 = ViT teaches, 0 = none.
    Regions with 0 get a grey hatched outline and no fill, so the image shows.
    Returns the counts {1: n, -1: n, 0: n}.
    """
    image = to_numpy(image)
    direction = to_numpy(direction).astype(np.int64)
    if not np.isin(direction, (-1, 0, 1)).all():
        raise ValueError(f"direction values must be in {{-1, 0, 1}}, got {sorted(np.unique(direction).tolist())}")
    region_pixels = region_pixels or region_pixels_for(image.shape, direction.shape)
    ax.imshow(image)
    if label is not None and palette is not None:
        ax.imshow(label_to_rgba(label, palette, ignore_index, 0.35))
    for row, col, x0, y0, w, h in region_boxes(direction.shape, region_pixels, image.shape):
        if w <= 0 or h <= 0:
            continue
        value = int(direction[row, col])
        if value == 0:
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), w, h, fill=False, hatch="///",
                                   edgecolor=NONE_COLOR, linewidth=0.6))
        else:
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), w, h, facecolor=to_rgba(DIRECTION_COLORS[value], alpha),
                                   edgecolor="white", linewidth=0.6))
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    ax.set_axis_off()
    return {v: int((direction == v).sum()) for v in (1, -1, 0)}


def direction_legend_handles(counts=None):
    """Legend patches for the three region states, with counts when given."""
    def name(text, key):
        return f"{text} ({counts[key]})" if counts is not None else text
    return [
        Patch(facecolor=CNN_COLOR, label=name("CNN teaches, ViT learns", 1)),
        Patch(facecolor=VIT_COLOR, label=name("ViT teaches, CNN learns", -1)),
        Patch(facecolor="white", edgecolor=NONE_COLOR, hatch="///", label=name("no transfer", 0)),
    ]


def plot_direction_map(image, direction, region_pixels=None, label=None, palette=None,
                       ignore_index: int = 255, title=None) -> plt.Figure:
    """Region-wise BSD's decision over the image: one colour per direction, hatched where nothing moves."""
    image = to_numpy(image)
    aspect = image.shape[1] / image.shape[0]
    fig, ax = plt.subplots(figsize=(min(3.0 * aspect, 9) + 0.5, 3.4))
    counts = draw_direction_map(ax, image, direction, region_pixels, label=label, palette=palette,
                                ignore_index=ignore_index)
    ax.legend(handles=direction_legend_handles(counts), loc="upper center", bbox_to_anchor=(0.5, -0.02),
              ncol=3, frameon=False, fontsize="small")
    ax.set_title(title or "region-wise BSD: who teaches each region")
    fig.tight_layout()
    return fig


def draw_region_values(ax, image, values, region_pixels=None, vmin=None, vmax=None, cmap="magma", alpha=0.75):
    """Paint one value per region (float (Hr, Wr); NaN = no valid pixel, left unpainted) over the image."""
    image = to_numpy(image)
    values = to_numpy(values).astype(np.float64)
    region_pixels = region_pixels or region_pixels_for(image.shape, values.shape)
    upsampled = np.kron(values, np.ones((region_pixels, region_pixels)))[: image.shape[0], : image.shape[1]]
    ax.imshow(image)
    masked = np.ma.masked_invalid(upsampled)
    mappable = ax.imshow(masked, cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha, interpolation="nearest")
    ax.set_axis_off()
    return mappable


def plot_region_ce(image, ce_cnn, ce_vit, region_pixels=None, title=None) -> plt.Figure:
    """Each student's mean cross-entropy per region (shared colour scale) and their difference.

    ce_cnn, ce_vit: float (Hr, Wr), NaN where the region has no valid pixel.
    Third panel: CE_vit - CE_cnn, positive (orange) where the CNN is the more
    reliable student, negative (blue) where the ViT is.
    """
    ce_cnn, ce_vit = to_numpy(ce_cnn).astype(np.float64), to_numpy(ce_vit).astype(np.float64)
    both = np.concatenate([ce_cnn[np.isfinite(ce_cnn)], ce_vit[np.isfinite(ce_vit)]])
    vmax = float(both.max()) if both.size else 1.0
    image = to_numpy(image)
    aspect = image.shape[1] / image.shape[0]
    fig, axes = plt.subplots(1, 3, figsize=(3 * min(2.6 * aspect, 6) + 1.5, 2.8), layout="constrained")
    for ax, values, name in zip(axes[:2], (ce_cnn, ce_vit), ("CNN", "ViT")):
        mappable = draw_region_values(ax, image, values, region_pixels, vmin=0.0, vmax=vmax)
        ax.set_title(f"{name}: CE per region")
    fig.colorbar(mappable, ax=axes[:2].tolist(), shrink=0.8, label="mean CE (nats)")
    difference = ce_vit - ce_cnn
    limit = float(np.nanmax(np.abs(difference))) if np.isfinite(difference).any() else 1.0
    mappable = draw_region_values(axes[2], image, difference, region_pixels, vmin=-limit, vmax=limit,
                                  cmap=VIT_TO_CNN_CMAP)
    axes[2].set_title("CE_vit - CE_cnn\n(orange: CNN more reliable)", fontsize="small")
    fig.colorbar(mappable, ax=axes[2], shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def plot_region_bsd(image, label, ce_cnn, ce_vit, direction, class_names, palette, region_pixels=None,
                    ignore_index: int = 255, title=None) -> plt.Figure:
    """The whole region-wise decision on one figure: labels | CE_cnn | CE_vit | direction map."""
    image = to_numpy(image)
    ce_cnn, ce_vit = to_numpy(ce_cnn).astype(np.float64), to_numpy(ce_vit).astype(np.float64)
    aspect = image.shape[1] / image.shape[0]
    fig, axes = plt.subplots(2, 2, figsize=(2 * min(3.0 * aspect, 6) + 1.2, 5.4), layout="constrained")
    axes = axes.ravel()
    axes[0].imshow(image)
    axes[0].imshow(label_to_rgba(label, palette, ignore_index, 0.6))
    axes[0].set_title("ground truth")
    axes[0].set_axis_off()
    finite = np.concatenate([ce_cnn[np.isfinite(ce_cnn)], ce_vit[np.isfinite(ce_vit)]])
    vmax = float(finite.max()) if finite.size else 1.0
    for ax, values, name in ((axes[1], ce_cnn, "CNN"), (axes[2], ce_vit, "ViT")):
        mappable = draw_region_values(ax, image, values, region_pixels, vmin=0.0, vmax=vmax)
        ax.set_title(f"{name}: mean CE per region")
    fig.colorbar(mappable, ax=axes.tolist(), shrink=0.6, label="mean CE (nats)")
    counts = draw_direction_map(axes[3], image, direction, region_pixels)
    axes[3].set_title("direction: lower CE teaches")
    axes[3].legend(handles=direction_legend_handles(counts), loc="upper center", bbox_to_anchor=(0.5, -0.02),
                   ncol=1, frameon=False, fontsize="x-small")
    if title:
        fig.suptitle(title)
    return fig


def reliability_categories(cnn_teaches, vit_teaches, both_right, both_wrong, valid=None):
    """Two integer maps (H, W) from the pixel masks (bool (H, W)); -1 = not a valid pixel.

    teaching: 0 = no transfer, 1 = CNN teaches, 2 = ViT teaches.
    correctness: 0 = both right, 1 = exactly one right, 2 = both wrong.
    `valid` defaults to every pixel; pass `target != ignore_index`.
    """
    cnn_teaches, vit_teaches = to_numpy(cnn_teaches).astype(bool), to_numpy(vit_teaches).astype(bool)
    both_right, both_wrong = to_numpy(both_right).astype(bool), to_numpy(both_wrong).astype(bool)
    valid = np.ones_like(cnn_teaches) if valid is None else to_numpy(valid).astype(bool)
    teaching = np.where(cnn_teaches, 1, np.where(vit_teaches, 2, 0))
    correctness = np.where(both_right, 0, np.where(both_wrong, 2, 1))
    return np.where(valid, teaching, -1), np.where(valid, correctness, -1)


def _category_rgba(categories, colors, alpha):
    rgba = np.zeros(categories.shape + (4,))
    for value, color in colors.items():
        rgba[categories == value] = to_rgba(color, alpha)
    return rgba


TEACHING_COLORS = {0: "#FFFFFF", 1: CNN_COLOR, 2: VIT_COLOR}
TEACHING_NAMES = {0: "no transfer", 1: "CNN teaches", 2: "ViT teaches"}
CORRECTNESS_COLORS = {0: BOTH_RIGHT_COLOR, 1: ONE_RIGHT_COLOR, 2: BOTH_WRONG_COLOR}
CORRECTNESS_NAMES = {0: "both right", 1: "one right", 2: "both wrong"}


def plot_pixel_reliability(image, cnn_teaches, vit_teaches, both_right, both_wrong, valid=None,
                           alpha: float = 0.8, title=None) -> plt.Figure:
    """Pixel-wise BSD's masks over the image: who teaches (left) and who is right (right).

    Masks are bool (H, W). Invalid (ignore) pixels are not painted. Legend
    entries carry the share of valid pixels in each category.
    """
    image = to_numpy(image)
    teaching, correctness = reliability_categories(cnn_teaches, vit_teaches, both_right, both_wrong, valid)
    total = max(int((teaching >= 0).sum()), 1)
    aspect = image.shape[1] / image.shape[0]
    fig, axes = plt.subplots(1, 2, figsize=(2 * min(3.0 * aspect, 6) + 0.6, 3.5))
    for ax, categories, colors, names, heading in (
        (axes[0], teaching, TEACHING_COLORS, TEACHING_NAMES, "who teaches (pixel-wise BSD)"),
        (axes[1], correctness, CORRECTNESS_COLORS, CORRECTNESS_NAMES, "who is right"),
    ):
        ax.imshow(image)
        ax.imshow(_category_rgba(categories, colors, alpha), interpolation="nearest")
        ax.set_title(heading)
        ax.set_axis_off()
        handles = [Patch(facecolor=colors[v], edgecolor="black", linewidth=0.5,
                         label=f"{names[v]} {(categories == v).sum() / total:.0%}") for v in colors]
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3,
                  frameon=False, fontsize="x-small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_kl_map(image, kl_map, transfer_mask=None, valid=None, vmax=None, title=None) -> plt.Figure:
    """Per-pixel KL (H, W, nats) over the image; with `transfer_mask`, a second panel keeps only transferred pixels.

    The colour scale is shared between panels; by default it ends at the 99th
    percentile of the valid values so that a few outliers do not wash it out.
    Pixels outside `valid` are not painted.
    """
    image = to_numpy(image)
    kl_map = to_numpy(kl_map).astype(np.float64)
    valid = np.ones(kl_map.shape, bool) if valid is None else to_numpy(valid).astype(bool)
    shown = kl_map[valid & np.isfinite(kl_map)]
    if vmax is None:
        vmax = float(np.percentile(shown, 99)) if shown.size else 1.0
        vmax = vmax if vmax > 0 else 1.0
    panels = [("KL between the students, every pixel", valid)]
    if transfer_mask is not None:
        panels.append(("KL that pixel-wise BSD transfers", valid & to_numpy(transfer_mask).astype(bool)))
    aspect = image.shape[1] / image.shape[0]
    fig, axes = plt.subplots(1, len(panels), figsize=(len(panels) * min(3.0 * aspect, 6) + 1.2, 3.0),
                             squeeze=False, layout="constrained")
    for ax, (heading, mask) in zip(axes[0], panels):
        ax.imshow(image)
        mappable = ax.imshow(np.ma.masked_where(~mask, kl_map), cmap="viridis", vmin=0.0, vmax=vmax,
                             interpolation="nearest")
        ax.set_title(f"{heading}\nmean {kl_map[mask].mean() if mask.any() else 0.0:.3f} nats", fontsize="small")
        ax.set_axis_off()
    fig.colorbar(mappable, ax=axes[0].tolist(), shrink=0.8, label="KL (nats)")
    if title:
        fig.suptitle(title)
    return fig


def plot_pixel_bsd(image, cnn_teaches, vit_teaches, both_right, both_wrong, kl_map, valid=None,
                   temperature: float = 1.0, vmax=None, alpha: float = 0.8, title=None) -> plt.Figure:
    """Pixel-wise BSD on one figure: who teaches | who is right | the KL it transfers.

    Masks bool (H, W); kl_map float (H, W), nats at `temperature`, 0 where
    nothing moves. The KL panel paints only transferring pixels, on a fixed
    scale [0, vmax] (pass the same vmax to compare temperatures; default: the
    99th percentile of these values); its title gives the mean transferred KL
    and the loss's T^2-scaled value.
    """
    image = to_numpy(image)
    teaching, correctness = reliability_categories(cnn_teaches, vit_teaches, both_right, both_wrong, valid)
    kl_map = to_numpy(kl_map).astype(np.float64)
    moving = teaching > 0
    shown = kl_map[moving]
    if vmax is None:
        vmax = float(np.percentile(shown, 99)) if shown.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    total = max(int((teaching >= 0).sum()), 1)
    aspect = image.shape[1] / image.shape[0]
    fig, axes = plt.subplots(1, 3, figsize=(3 * min(2.8 * aspect, 5.5) + 1.0, 3.3), layout="constrained")
    for ax, categories, colors, names, heading in (
        (axes[0], teaching, TEACHING_COLORS, TEACHING_NAMES, "who teaches"),
        (axes[1], correctness, CORRECTNESS_COLORS, CORRECTNESS_NAMES, "who is right"),
    ):
        ax.imshow(image)
        ax.imshow(_category_rgba(categories, colors, alpha), interpolation="nearest")
        ax.set_title(heading)
        handles = [Patch(facecolor=colors[v], edgecolor="black", linewidth=0.5,
                         label=f"{names[v]} {(categories == v).sum() / total:.0%}") for v in colors]
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3,
                  frameon=False, fontsize="x-small")
    axes[2].imshow(image)
    mappable = axes[2].imshow(np.ma.masked_where(~moving, kl_map), cmap="viridis", vmin=0.0, vmax=vmax,
                              interpolation="nearest")
    mean = float(shown.mean()) if shown.size else 0.0
    axes[2].set_title(f"transferred KL at T={temperature:g}\nmean {mean:.3f} nats, x T^2 = {mean * temperature ** 2:.3f}",
                      fontsize="small")
    fig.colorbar(mappable, ax=axes[2], shrink=0.8, label="KL (nats)")
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig
