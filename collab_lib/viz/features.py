"""Feature maps as pictures: the first three principal components as RGB.

A feature map (C, h, w) has one C-dimensional vector per cell. PCA over the
h*w cells finds the three directions of largest variance; each cell's
coordinates along them, scaled to [0, 1], become its red, green and blue.
Cells with similar features get similar colours, so the picture shows which
parts of the scene a student's features group together.
"""
import matplotlib.pyplot as plt
import numpy as np

from ._arrays import figure_size, to_numpy


def pca_rgb(features, components: int = 3, basis=None) -> np.ndarray:
    """Features (C, h, w) -> RGB float (h, w, 3) in [0, 1] from the top principal components.

    `basis` (C, 3) reuses a projection (e.g. from `pca_basis` of another
    checkpoint) so that colours stay comparable; by default it is computed
    from these features. Each component is min-max scaled independently; a
    constant component becomes 0.5. Fewer than 3 channels are zero-padded.
    """
    features = to_numpy(features).astype(np.float64)
    channels, height, width = features.shape
    cells = features.reshape(channels, -1).T  # (h*w, C)
    cells = cells - cells.mean(axis=0, keepdims=True)
    if basis is None:
        basis = pca_basis(features, components)
    projected = cells @ basis  # (h*w, k)
    low, high = projected.min(axis=0), projected.max(axis=0)
    span = high - low
    scaled = np.where(span > 1e-12, (projected - low) / np.where(span > 1e-12, span, 1.0), 0.5)
    rgb = np.zeros((height * width, 3))
    rgb[:, : scaled.shape[1]] = scaled[:, :3]
    return rgb.reshape(height, width, 3)


def pca_basis(features, components: int = 3) -> np.ndarray:
    """Top principal directions (C, k) of features (C, h, w), k = min(components, C, h*w); signs fixed."""
    features = to_numpy(features).astype(np.float64)
    channels = features.shape[0]
    cells = features.reshape(channels, -1).T
    cells = cells - cells.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(cells, full_matrices=False)
    basis = vt[:components].T  # (C, k)
    # SVD signs are arbitrary: make the largest-magnitude entry of each direction positive.
    signs = np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(basis.shape[1])])
    return basis * np.where(signs == 0, 1.0, signs)


def explained_variance(features, components: int = 3) -> np.ndarray:
    """Fraction of the total variance (k,) carried by each of the top components."""
    features = to_numpy(features).astype(np.float64)
    cells = features.reshape(features.shape[0], -1).T
    cells = cells - cells.mean(axis=0, keepdims=True)
    singular = np.linalg.svd(cells, compute_uv=False)
    total = (singular**2).sum()
    return (singular[:components] ** 2) / total if total > 0 else np.zeros(min(components, len(singular)))


def plot_feature_pca(image, features, title=None) -> plt.Figure:
    """Image and, per entry of `features` (name -> (C, h, w)), its PCA-RGB picture.

    Each panel's title gives the channel count and the variance share of the
    three components drawn. Feature maps are shown at their own (stride-4)
    resolution stretched over the image's extent.
    """
    image = to_numpy(image)
    panels = len(features) + 1
    columns = min(panels, 3)  # more panels wrap onto further rows: the figure stays <= 10 in wide
    rows = -(-panels // columns)
    fig, grid = plt.subplots(rows, columns, figsize=figure_size(3.3 * columns, 2.4 * rows), squeeze=False)
    axes = grid.ravel()
    height, width = image.shape[:2]
    axes[0].imshow(image)
    axes[0].set_title("image")
    for ax, (name, feature) in zip(axes[1:], features.items()):
        feature = to_numpy(feature)
        share = explained_variance(feature).sum()
        ax.imshow(pca_rgb(feature), extent=(0, width, height, 0), interpolation="nearest")
        ax.set_title(f"{name}\n{feature.shape[0]} ch, top-3 PCA = {share:.0%} of variance", fontsize="small")
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
