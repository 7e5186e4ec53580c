"""collab_lib: CNN-Transformer collaborative learning for semantic segmentation.

A small teaching library for Zhu et al., "A Good Student is Cooperative and
Reliable" (ICCV 2023). Students live in `collab_lib.models`, the losses in
`collab_lib.losses`, data in `collab_lib.data`, the metric in
`collab_lib.metrics`, the trainer in `collab_lib.train` and plots in
`collab_lib.viz`.
"""

__version__ = "0.1.0"
