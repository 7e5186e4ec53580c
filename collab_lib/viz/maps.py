"""Where knowledge moves: region-wise and pixel-wise BSD drawn over the image.

One colour convention for the whole course, defined here and nowhere else
(`bars`, `curves` and `results` import it), so that a reader learns it once:

    CNN teaches   orange fill  (CNN_COLOR; a pair that colour-blind readers tell apart
    ViT teaches   blue fill     (VIT_COLOR;  from the orange)
    no transfer   grey hatching, no fill (NONE_COLOR, NONE_HATCH): the image shows through
    ignore (255)  nothing drawn: the plain image

`transfer_legend_handles` draws the legend of that convention for every figure.
Region maps are (Hr, Wr) arrays with one value per region; a region covers
`region_pixels` x `region_pixels` input pixels (region_size feature cells x the
stride 4), the last row / column may be cut by the image border.
Pixel maps are (H, W) arrays at label resolution.
"""
import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LinearSegmentedColormap, to_rgba
from matplotlib.patches import Patch, PathPatch, Rectangle
from matplotlib.path import Path

from ._arrays import figure_size, to_numpy
from .scenes import class_legend_handles, label_to_rgba, present_classes

# ---- the convention ------------------------------------------------------------------------
CNN_COLOR = "#E66100"  # orange
VIT_COLOR = "#1A85FF"  # blue
NONE_COLOR = "#7F7F7F"  # grey: the hatching of "no transfer"
NONE_HATCH = "///"
DIRECTION_COLORS = {1: CNN_COLOR, -1: VIT_COLOR}  # 1 = CNN teaches, -1 = ViT teaches, 0 = no transfer
TRANSFER_NAMES = {1: "CNN teaches, ViT learns", -1: "ViT teaches, CNN learns", 0: "no transfer",
                  "ignore": "ignore (255): not painted"}
# Diverging scale for "which student is more reliable": blue (ViT) - white - orange (CNN).
VIT_TO_CNN_CMAP = LinearSegmentedColormap.from_list("vit_to_cnn", [VIT_COLOR, "#FFFFFF", CNN_COLOR])

# Who is right at a pixel (pixel-wise BSD), light tints of the students' colours for "only one right".
BOTH_RIGHT_COLOR = "#BFE3B4"  # pale green
ONLY_CNN_RIGHT_COLOR = "#F7B98B"  # light orange
ONLY_VIT_RIGHT_COLOR = "#9CCBFF"  # light blue
BOTH_WRONG_COLOR = "#3B0F4F"  # dark purple
CORRECTNESS_COLORS = {0: BOTH_RIGHT_COLOR, 1: ONLY_CNN_RIGHT_COLOR, 2: ONLY_VIT_RIGHT_COLOR, 3: BOTH_WRONG_COLOR}
CORRECTNESS_NAMES = {0: "both right", 1: "only the CNN right", 2: "only the ViT right", 3: "both wrong"}


def transfer_legend_handles(suffixes=None, ignore: bool = False):
    """Legend patches of the convention: CNN teaches, ViT teaches, no transfer (and ignore when asked).

    suffixes: optional {1: text, -1: text, 0: text} appended to the names (counts, shares).
    """
    suffixes = suffixes or {}

    def name(key):
        return TRANSFER_NAMES[key] + suffixes.get(key, "")

    handles = [
        Patch(facecolor=CNN_COLOR, edgecolor="white", label=name(1)),
        Patch(facecolor=VIT_COLOR, edgecolor="white", label=name(-1)),
        Patch(facecolor="white", edgecolor=NONE_COLOR, hatch=NONE_HATCH, label=name(0)),
    ]
    if ignore:
        handles.append(Patch(facecolor="white", edgecolor="black", linewidth=0.5, linestyle=":",
                             label=TRANSFER_NAMES["ignore"]))
    return handles


def add_class_legend(ax, label_maps, class_names, palette, ignore_index: int = 255, ncol: int = 4):
    """A legend under `ax` naming (in the palette's colours) the classes present in `label_maps`."""
    classes = present_classes(*label_maps, num_classes=len(class_names), ignore_index=ignore_index)
    return ax.legend(handles=class_legend_handles(classes, class_names, palette), loc="upper center",
                     bbox_to_anchor=(0.5, -0.02), ncol=ncol, frameon=False, fontsize="x-small",
                     handlelength=1.0, columnspacing=0.8)


def mask_path(mask) -> Path:
    """The pixels of a bool (H, W) mask as one path of row runs (pixel edges at +-0.5, as imshow draws)."""
    verts, codes = [], []
    for row in range(mask.shape[0]):
        line = np.concatenate([[False], mask[row], [False]])
        edges = np.flatnonzero(line[1:] != line[:-1])
        for start, stop in zip(edges[::2], edges[1::2]):
            x0, x1, y0, y1 = start - 0.5, stop - 0.5, row - 0.5, row + 0.5
            verts += [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
            codes += [Path.MOVETO, Path.LINETO, Path.LINETO, Path.LINETO, Path.CLOSEPOLY]
    return Path(np.asarray(verts, float).reshape(-1, 2), codes or None)


def hatch_no_transfer(ax, mask):
    """Grey hatching, no fill, over the True pixels of `mask` (bool (H, W)); None when it is empty."""
    mask = to_numpy(mask).astype(bool)
    if not mask.any():
        return None
    return ax.add_patch(PathPatch(mask_path(mask), fill=False, hatch=NONE_HATCH, edgecolor=NONE_COLOR, linewidth=0))


# ---- region-wise BSD -------------------------------------------------------------------------
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
    Regions with 0 get grey hatching and no fill, so the image shows.
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
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), w, h, fill=False, hatch=NONE_HATCH,
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
    return transfer_legend_handles({k: f" ({n})" for k, n in counts.items()} if counts is not None else None)


def plot_direction_map(image, direction, region_pixels=None, label=None, palette=None, class_names=None,
                       ignore_index: int = 255, title=None) -> plt.Figure:
    """Region-wise BSD's decision over the image: one colour per direction, hatched where nothing moves.

    With `label`, `palette` and `class_names` the labels are overlaid faintly and a second legend names the classes.
    """
    image = to_numpy(image)
    aspect = image.shape[1] / image.shape[0]
    fig, ax = plt.subplots(figsize=figure_size(min(3.0 * aspect, 9) + 0.5, 3.8), layout="constrained")
    counts = draw_direction_map(ax, image, direction, region_pixels, label=label, palette=palette,
                                ignore_index=ignore_index)
    ax.add_artist(ax.legend(handles=direction_legend_handles(counts), loc="upper center",
                            bbox_to_anchor=(0.5, -0.02), ncol=3, frameon=False, fontsize="small"))
    if label is not None and palette is not None and class_names is not None:
        classes = present_classes(label, num_classes=len(class_names), ignore_index=ignore_index)
        fig.legend(handles=class_legend_handles(classes, class_names, palette), loc="outside right center",
                   frameon=False, fontsize="x-small")
    ax.set_title(title or "region-wise BSD: who teaches each region")
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
    panel = min(1.3 * aspect, 2.6)  # three panels and two colour bars in <= 10 in
    fig, axes = plt.subplots(1, 3, figsize=figure_size(3 * panel + 1.5, panel / aspect + 1.2), layout="constrained")
    for ax, values, name in zip(axes[:2], (ce_cnn, ce_vit), ("CNN", "ViT")):
        mappable = draw_region_values(ax, image, values, region_pixels, vmin=0.0, vmax=vmax)
        ax.set_title(f"{name}: CE per region", fontsize="small")
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
    """The whole region-wise decision on one figure: labels (with a class legend) | CE_cnn | CE_vit | direction map."""
    image = to_numpy(image)
    ce_cnn, ce_vit = to_numpy(ce_cnn).astype(np.float64), to_numpy(ce_vit).astype(np.float64)
    aspect = image.shape[1] / image.shape[0]
    panel = min(1.8 * aspect, 4.0)  # a panel's width (in); its height follows the image, plus titles and legends
    fig, axes = plt.subplots(2, 2, figsize=figure_size(2 * panel + 1.4, 2 * panel / aspect + 2.6), layout="constrained")
    axes = axes.ravel()
    axes[0].imshow(image)
    axes[0].imshow(label_to_rgba(label, palette, ignore_index, 0.6))
    axes[0].set_title("ground truth")
    axes[0].set_axis_off()
    add_class_legend(axes[0], [label], class_names, palette, ignore_index)
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


# ---- pixel-wise BSD --------------------------------------------------------------------------
def reliability_categories(cnn_teaches, vit_teaches, cnn_right, vit_right, valid=None):
    """Two integer maps (H, W) from the pixel masks (bool (H, W)); -1 = not a valid pixel.

    teaching: 0 = no transfer, 1 = CNN teaches, 2 = ViT teaches.
    correctness: 0 = both right, 1 = only the CNN right, 2 = only the ViT right, 3 = both wrong.
    cnn_right / vit_right: each student's argmax equals the label. `valid`
    defaults to every pixel; pass `target != ignore_index`.
    """
    cnn_teaches, vit_teaches = to_numpy(cnn_teaches).astype(bool), to_numpy(vit_teaches).astype(bool)
    cnn_right, vit_right = to_numpy(cnn_right).astype(bool), to_numpy(vit_right).astype(bool)
    valid = np.ones_like(cnn_teaches) if valid is None else to_numpy(valid).astype(bool)
    teaching = np.where(cnn_teaches, 1, np.where(vit_teaches, 2, 0))
    correctness = np.select([cnn_right & vit_right, cnn_right, vit_right], [0, 1, 2], default=3)
    return np.where(valid, teaching, -1), np.where(valid, correctness, -1)


def _category_rgba(categories, colors, alpha):
    rgba = np.zeros(categories.shape + (4,))
    for value, color in colors.items():
        rgba[categories == value] = to_rgba(color, alpha)
    return rgba


def draw_pixel_teaching(ax, image, teaching, alpha: float = 0.8):
    """Who teaches each pixel, in the course's convention: orange / blue fill, grey hatching where nothing moves.

    teaching: int (H, W) from `reliability_categories` (0 none, 1 CNN, 2 ViT, -1 ignore: not painted).
    Legend: each state's share of the valid pixels.
    """
    ax.imshow(image)
    ax.imshow(_category_rgba(teaching, {1: CNN_COLOR, 2: VIT_COLOR}, alpha), interpolation="nearest")
    hatch_no_transfer(ax, teaching == 0)
    total = max(int((teaching >= 0).sum()), 1)
    share = {key: f" {(teaching == value).sum() / total:.0%}" for key, value in ((1, 1), (-1, 2), (0, 0))}
    ax.legend(handles=transfer_legend_handles(share, ignore=bool((teaching < 0).any())), loc="upper center",
              bbox_to_anchor=(0.5, -0.02), ncol=2, frameon=False, fontsize="x-small")
    ax.set_axis_off()


def draw_correctness(ax, image, correctness, alpha: float = 0.8):
    """Who is right at each pixel: both, only the CNN, only the ViT, neither (-1: ignore, not painted)."""
    ax.imshow(image)
    ax.imshow(_category_rgba(correctness, CORRECTNESS_COLORS, alpha), interpolation="nearest")
    total = max(int((correctness >= 0).sum()), 1)
    handles = [Patch(facecolor=CORRECTNESS_COLORS[v], edgecolor="black", linewidth=0.5,
                     label=f"{CORRECTNESS_NAMES[v]} {(correctness == v).sum() / total:.0%}") for v in CORRECTNESS_COLORS]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2, frameon=False,
              fontsize="x-small")
    ax.set_axis_off()


def plot_pixel_reliability(image, cnn_teaches, vit_teaches, cnn_right, vit_right, valid=None,
                           alpha: float = 0.8, title=None) -> plt.Figure:
    """Pixel-wise BSD's masks over the image: who teaches (left) and who is right (right).

    Masks are bool (H, W). Invalid (ignore) pixels are not painted. Legend
    entries carry the share of valid pixels in each category.
    """
    image = to_numpy(image)
    teaching, correctness = reliability_categories(cnn_teaches, vit_teaches, cnn_right, vit_right, valid)
    aspect = image.shape[1] / image.shape[0]
    panel = min(2.25 * aspect, 4.5)
    fig, axes = plt.subplots(1, 2, figsize=figure_size(2 * panel + 0.6, panel / aspect + 1.6), layout="constrained")
    draw_pixel_teaching(axes[0], image, teaching, alpha)
    axes[0].set_title("who teaches (pixel-wise BSD)")
    draw_correctness(axes[1], image, correctness, alpha)
    axes[1].set_title("who is right")
    if title:
        fig.suptitle(title)
    return fig


def plot_kl_map(image, kl_map, transfer_mask=None, valid=None, vmax=None, title=None) -> plt.Figure:
    """Per-pixel KL (H, W, nats) over the image; with `transfer_mask`, a second panel keeps only transferred pixels.

    The colour scale is shared between panels; by default it ends at the 99th
    percentile of the valid values so that a few outliers do not wash it out.
    Pixels outside `valid` are not painted; in the second panel the pixels that
    transfer nothing are hatched grey (the course's "no transfer").
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
    panel = min(2.1 * aspect, 4.2)
    fig, axes = plt.subplots(1, len(panels), figsize=figure_size(len(panels) * panel + 1.2, panel / aspect + 1.1),
                             squeeze=False, layout="constrained")
    for ax, (heading, mask) in zip(axes[0], panels):
        ax.imshow(image)
        mappable = ax.imshow(np.ma.masked_where(~mask, kl_map), cmap="viridis", vmin=0.0, vmax=vmax,
                             interpolation="nearest")
        if mask is not valid:
            hatch_no_transfer(ax, valid & ~mask)
        ax.set_title(f"{heading}\nmean {kl_map[mask].mean() if mask.any() else 0.0:.3f} nats", fontsize="small")
        ax.set_axis_off()
    fig.colorbar(mappable, ax=axes[0].tolist(), shrink=0.8, label="KL (nats)")
    if title:
        fig.suptitle(title)
    return fig


def plot_pixel_bsd(image, cnn_teaches, vit_teaches, cnn_right, vit_right, kl_map, valid=None,
                   temperature: float = 1.0, vmax=None, alpha: float = 0.8, title=None) -> plt.Figure:
    """Pixel-wise BSD on one figure: who teaches | who is right | the KL it transfers.

    Masks bool (H, W) (cnn_right / vit_right: the student's argmax equals the
    label); kl_map float (H, W), nats at `temperature`, 0 where nothing moves.
    The KL panel paints only transferring pixels (the others hatched grey), on a
    fixed scale [0, vmax] (pass the same vmax to compare temperatures; default:
    the 99th percentile of these values); its title gives the mean transferred
    KL and this scene's L_pixel = T^2 * (mean KL where the CNN teaches + mean KL
    where the ViT teaches), each direction averaged on its own as in PixelBSDLoss.
    """
    image = to_numpy(image)
    teaching, correctness = reliability_categories(cnn_teaches, vit_teaches, cnn_right, vit_right, valid)
    kl_map = to_numpy(kl_map).astype(np.float64)
    moving = teaching > 0
    shown = kl_map[moving]
    if vmax is None:
        vmax = float(np.percentile(shown, 99)) if shown.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    aspect = image.shape[1] / image.shape[0]
    panel = min(1.45 * aspect, 2.9)  # three panels and a colour bar in <= 10 in
    fig, axes = plt.subplots(1, 3, figsize=figure_size(3 * panel + 1.0, panel / aspect + 1.7), layout="constrained")
    draw_pixel_teaching(axes[0], image, teaching, alpha)
    axes[0].set_title("who teaches")
    draw_correctness(axes[1], image, correctness, alpha)
    axes[1].set_title("who is right")
    axes[2].imshow(image)
    mappable = axes[2].imshow(np.ma.masked_where(~moving, kl_map), cmap="viridis", vmin=0.0, vmax=vmax,
                              interpolation="nearest")
    hatch_no_transfer(axes[2], teaching == 0)
    mean = float(shown.mean()) if shown.size else 0.0
    per_direction = [float(kl_map[teaching == who].mean()) if (teaching == who).any() else 0.0 for who in (1, 2)]
    loss = temperature ** 2 * sum(per_direction)
    axes[2].set_title(f"transferred KL at T={temperature:g}: mean {mean:.3f} nats\n"
                      f"L_pixel = T^2 (CNN teaches {per_direction[0]:.3f} + ViT teaches {per_direction[1]:.3f}) = {loss:.3f}",
                      fontsize="small")
    axes[2].set_axis_off()
    fig.colorbar(mappable, ax=axes[2], shrink=0.8, label="KL (nats)")
    if title:
        fig.suptitle(title)
    return fig


def kept_share(kl_map, mask, valid) -> float:
    """The share of a direction's KL over the valid pixels that falls on `mask` (what the selection keeps)."""
    kl_map, mask, valid = to_numpy(kl_map).astype(np.float64), to_numpy(mask).astype(bool), to_numpy(valid).astype(bool)
    total = kl_map[valid].sum()
    return float(kl_map[valid & mask].sum() / total) if total > 0 else 0.0


def plot_selection(image, cnn_teaches, vit_teaches, kl_vit_learns, kl_cnn_learns, valid, vmax=None,
                   title=None) -> plt.Figure:
    """What pixel-wise BSD's selection removes from DML: who teaches with it | each direction's KL without it.

    Masks bool (H, W) from `PixelBSDLoss` (selection on); kl_vit_learns = KL(sg(p_c) || p_v) and
    kl_cnn_learns = KL(sg(p_v) || p_c), float (H, W) nats at every valid pixel: what the non-selective
    control arm (`selective=False`, = DML) transfers. Middle and right panels: one direction's KL on every
    valid pixel (selection off), hatched where the selection stops it; each title gives the share of that
    direction's KL the selection keeps. One colour scale for both (default: their 99th percentile).
    """
    image = to_numpy(image)
    valid = to_numpy(valid).astype(bool)
    teaching, _ = reliability_categories(cnn_teaches, vit_teaches, cnn_teaches, vit_teaches, valid)
    maps_and_masks = ((to_numpy(kl_vit_learns).astype(np.float64), to_numpy(cnn_teaches).astype(bool), "CNN -> ViT"),
                      (to_numpy(kl_cnn_learns).astype(np.float64), to_numpy(vit_teaches).astype(bool), "ViT -> CNN"))
    if vmax is None:
        values = np.concatenate([kl[valid] for kl, _, _ in maps_and_masks])
        vmax = float(np.percentile(values, 99)) if values.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    aspect = image.shape[1] / image.shape[0]
    panel = min(1.45 * aspect, 2.9)
    fig, axes = plt.subplots(1, 3, figsize=figure_size(3 * panel + 1.0, panel / aspect + 1.7), layout="constrained")
    draw_pixel_teaching(axes[0], image, teaching)
    axes[0].set_title("selection on: who teaches", fontsize="small")
    for ax, (kl, mask, name) in zip(axes[1:], maps_and_masks):
        ax.imshow(image)
        mappable = ax.imshow(np.ma.masked_where(~valid, kl), cmap="viridis", vmin=0.0, vmax=vmax, interpolation="nearest")
        hatch_no_transfer(ax, valid & ~mask)
        ax.set_title(f"{name}, selection off: every valid pixel\nhatched: stopped by the selection, which keeps "
                     f"{kept_share(kl, mask, valid):.0%} of this KL", fontsize="small")
        ax.set_axis_off()
    fig.colorbar(mappable, ax=axes[2], shrink=0.8, label="KL (nats)")
    if title:
        fig.suptitle(title)
    return fig
