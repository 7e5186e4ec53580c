"""Scenes, labels and predictions: image + colour-coded classes with a legend.

Inputs are plain arrays: images uint8 (H, W, 3) (use `denormalize` from
`collab_lib.data` on a dataset item), labels / predictions integer (H, W) with
`ignore_index` (255) for pixels that carry no class. Ignored pixels are never
painted: the image shows through.
"""
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch

from ._arrays import figure_size, to_numpy


def label_to_rgba(label, palette, ignore_index: int = 255, alpha: float = 1.0) -> np.ndarray:
    """Integer label (H, W) -> float RGBA (H, W, 4) in [0, 1]; ignore pixels fully transparent."""
    label = to_numpy(label).astype(np.int64)
    palette = np.asarray(palette, dtype=np.float64) / 255.0
    valid = (label != ignore_index) & (label >= 0) & (label < len(palette))
    rgba = np.zeros(label.shape + (4,), dtype=np.float64)
    rgba[valid, :3] = palette[label[valid]]
    rgba[valid, 3] = alpha
    return rgba


def class_legend_handles(class_ids, class_names, palette):
    """One legend patch per class id, coloured by the palette and named by the class."""
    palette = np.asarray(palette, dtype=np.float64) / 255.0
    return [Patch(facecolor=palette[i], edgecolor="black", linewidth=0.5, label=class_names[i]) for i in class_ids]


def present_classes(*labels, num_classes: int, ignore_index: int = 255):
    """Sorted class ids that occur in any of the label / prediction maps."""
    seen = set()
    for label in labels:
        values = np.unique(to_numpy(label))
        seen.update(int(v) for v in values if v != ignore_index and 0 <= v < num_classes)
    return sorted(seen)


def plot_segmentation(image, maps, class_names, palette, ignore_index: int = 255,
                      alpha: float = 0.6, title=None) -> plt.Figure:
    """Image and one overlay per entry of `maps` (title -> label (H, W)), one legend for all.

    The first panel is the plain image; every following panel paints its map
    over the image with the palette at `alpha`. The legend names only the
    classes that occur in some map (ignore pixels are left unpainted).
    """
    image = to_numpy(image)
    panels = len(maps) + 1
    height, width = image.shape[:2]
    columns = panels if panels <= 3 else -(-panels // 2)  # four or more panels: two rows, so the figure stays readable
    rows = -(-panels // columns)
    fig, grid = plt.subplots(rows, columns, figsize=figure_size(3.2 * columns * max(width / height, 1) / 2 + 1.5,
                                                                3.0 * rows + 0.2), squeeze=False,
                             layout="constrained")
    axes = grid.ravel()
    axes[0].imshow(image)
    axes[0].set_title("image")
    for ax, (name, label) in zip(axes[1:], maps.items()):
        ax.imshow(image)
        ax.imshow(label_to_rgba(label, palette, ignore_index, alpha))
        ax.set_title(name)
    for ax in axes:
        ax.set_axis_off()
    classes = present_classes(*maps.values(), num_classes=len(class_names), ignore_index=ignore_index)
    # inside the figure's width ("outside" the axes, within the figure), so the figure keeps its size
    fig.legend(handles=class_legend_handles(classes, class_names, palette), loc="outside right center",
               frameon=False, fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def plot_scene(image, label, class_names, palette, ignore_index: int = 255, alpha: float = 0.6,
               title=None) -> plt.Figure:
    """Image beside its ground-truth overlay, legend naming the classes present."""
    return plot_segmentation(image, {"ground truth": label}, class_names, palette, ignore_index, alpha, title)


def plot_scene_grid(images, labels, class_names, palette, ignore_index: int = 255, alpha: float = 0.6,
                    title=None) -> plt.Figure:
    """A few scenes, one row each (image | overlay), one legend for the classes present anywhere."""
    rows = len(images)
    fig, axes = plt.subplots(rows, 2, figsize=(7, 1.9 * rows + 0.4), squeeze=False, layout="constrained")
    for row, (image, label) in enumerate(zip(images, labels)):
        image = to_numpy(image)
        axes[row, 0].imshow(image)
        axes[row, 1].imshow(image)
        axes[row, 1].imshow(label_to_rgba(label, palette, ignore_index, alpha))
        for ax in axes[row]:
            ax.set_axis_off()
    axes[0, 0].set_title("image")
    axes[0, 1].set_title("label")
    classes = present_classes(*labels, num_classes=len(class_names), ignore_index=ignore_index)
    fig.legend(handles=class_legend_handles(classes, class_names, palette), loc="outside right center",
               frameon=False, fontsize="small")
    if title:
        fig.suptitle(title)
    return fig
