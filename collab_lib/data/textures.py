"""Grey texture tiles for the synthetic street scenes, loaded once, lazily.

Three are real photographs that ship inside the scikit-image package (its
`skimage/data` folder, no download); the others are procedural. Every tile
is float32 (TILE, TILE), mean 1, values about 0.5-1.5: a multiplicative
brightness pattern that a surface's tint colours. The tiles repeat
(indices wrap with `& (TILE - 1)`), so a renderer can sample any coordinate.
If scikit-image is missing, the photographs are replaced by procedural noise
and the scenes still render (with less realistic surfaces).
"""

import importlib.util
import os

import numpy as np
from PIL import Image

TILE = 512  # power of two: coordinates wrap with a bitwise and

TEXTURE_LICENCES = {
    "brick.png": "scikit-image sample data 'brick': from CC0Textures (Bricks25), Creative Commons CC0 licence",
    "grass.png": "scikit-image sample data 'grass': from DeviantArt (linolafett, Grass-01), Creative Commons CC0 licence",
    "gravel.png": "scikit-image sample data 'gravel': from CC0Textures (Gravel04), Creative Commons CC0 licence",
}
"""Where the photographic textures come from (quoted from scikit-image's skimage/data/_fetchers.py docstrings)."""

TEXTURE_NAMES = ("brick", "grass", "gravel", "asphalt", "plaster", "clouds", "flat")
TEXTURE_ID = {name: i for i, name in enumerate(TEXTURE_NAMES)}

_STACK = None


def _skimage_data_folder():
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], "data")


def _value_noise(rng, octaves=(8, 16, 32, 64), size=TILE):
    """Smooth periodic noise (size, size), mean 0, std 1: random lattices upsampled and summed."""
    total = np.zeros((size, size), np.float32)
    for cells in octaves:
        lattice = rng.standard_normal((cells, cells)).astype(np.float32)
        tiled = np.tile(lattice, (3, 3))  # periodic: bicubic upsampling of a 3x3 tiling, keep the centre
        big = np.asarray(Image.fromarray(tiled).resize((3 * size, 3 * size), Image.BICUBIC))
        total += big[size:2 * size, size:2 * size] / np.sqrt(cells)
    return (total - total.mean()) / (total.std() + 1e-6)


def _photo(folder, name, rng):
    """A skimage sample photograph as a grey tile, or procedural noise if it cannot be found."""
    path = os.path.join(folder, name) if folder else None
    if path and os.path.exists(path):
        with Image.open(path) as im:
            grey = np.asarray(im.convert("L").resize((TILE, TILE), Image.BILINEAR), np.float32)
        return (grey - grey.mean()) / (grey.std() + 1e-6)
    return _value_noise(rng, octaves=(32, 64, 128))


def texture_stack():
    """All tiles as one float32 array (len(TEXTURE_NAMES), TILE, TILE), built on first use."""
    global _STACK
    if _STACK is None:
        rng = np.random.default_rng(2023)  # fixed: textures are part of the dataset's definition
        folder = _skimage_data_folder()
        normalised = {
            "brick": _photo(folder, "brick.png", rng),
            "grass": _photo(folder, "grass.png", rng),
            "gravel": _photo(folder, "gravel.png", rng),
            "asphalt": _value_noise(rng, octaves=(64, 128, 256)),
            "plaster": _value_noise(rng, octaves=(4, 8, 16)),
            "clouds": _value_noise(rng, octaves=(2, 4, 8)),
            "flat": np.zeros((TILE, TILE), np.float32),
        }
        contrast = {"brick": 0.25, "grass": 0.3, "gravel": 0.22, "asphalt": 0.12,
                    "plaster": 0.08, "clouds": 0.15, "flat": 0.0}
        _STACK = np.stack([1.0 + contrast[n] * np.clip(normalised[n], -2.5, 2.5) for n in TEXTURE_NAMES])
        _STACK = _STACK.astype(np.float32)
    return _STACK
