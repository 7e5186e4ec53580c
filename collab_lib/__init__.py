"""collab_lib: CNN-Transformer collaborative learning for semantic segmentation.

A small teaching library for Zhu et al., "A Good Student is Cooperative and
Reliable" (ICCV 2023). Students live in `collab_lib.models`, the losses in
`collab_lib.losses`, data in `collab_lib.data`, the metric in
`collab_lib.metrics`, the trainer in `collab_lib.train` and plots in
`collab_lib.viz`. After training, `collab_lib.evaluate` scores a run's checkpoint
and `collab_lib.predict` segments new images (`collab_lib.load_run`,
`collab_lib.predict_image`).
"""

__version__ = "0.1.0"

_LAZY = {"predict_image": "predict", "load_run": "predict"}  # imported on first use: `import collab_lib` stays cheap


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
