"""What every plot needs: tensors as numpy arrays, and a figure size that stays readable."""
import numpy as np

# JupyterLab shrinks a wider figure to the notebook's width, and its legends and titles with it.
MAX_FIGURE_WIDTH = 10.0  # inches, at the default size


def to_numpy(value) -> np.ndarray:
    """torch tensor (any device / dtype) or array-like -> numpy array; bfloat16 becomes float32."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()
        value = value.numpy()
    return np.asarray(value)


def figure_size(width: float, height: float) -> tuple[float, float]:
    """(width, height) in inches, both scaled down together when width exceeds MAX_FIGURE_WIDTH."""
    if width <= MAX_FIGURE_WIDTH:
        return (width, height)
    scale = MAX_FIGURE_WIDTH / width
    return (MAX_FIGURE_WIDTH, height * scale)
