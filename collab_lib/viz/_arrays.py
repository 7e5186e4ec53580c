"""Turn tensors into numpy arrays for plotting (the one conversion every plot needs)."""
import numpy as np


def to_numpy(value) -> np.ndarray:
    """torch tensor (any device / dtype) or array-like -> numpy array; bfloat16 becomes float32."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()
        value = value.numpy()
    return np.asarray(value)
