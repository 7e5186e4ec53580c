"""The two students and their objective, as a TrainConfig describes them.

    cnn, vit = build_students(config, num_classes)
    loss_fn = build_loss(config, cnn, vit, ignore_index)

Used by the trainer (collab_lib/train.py) and by the course helpers that rebuild a
trained run (collab_lib/course.py), so both build exactly the same modules.
"""
from .config import TrainConfig
from .losses import CollaborativeLoss
from .models import build_student


def build_students(config: TrainConfig, num_classes: int):
    """The two students a config describes: (cnn, vit), freshly initialised (or from local/timm weights)."""
    cnn = build_student(config.cnn, num_classes, pretrained=config.pretrained, backbone_weights=config.cnn_weights,
                        aspp_channels=config.cnn_decoder_channels, decoder_channels=config.cnn_decoder_channels)
    vit = build_student(config.vit, num_classes, pretrained=config.pretrained, backbone_weights=config.vit_weights,
                        decoder_channels=config.vit_decoder_channels)
    return cnn, vit


def build_loss(config: TrainConfig, cnn, vit, ignore_index: int = 255) -> CollaborativeLoss:
    """The objective of `config.method` for these students: an nn.Module owning HFD's projectors and the
    region connectors (its parameters are trained with the ViT's AdamW, collab_lib/optim.py)."""
    return CollaborativeLoss(
        cnn, vit, method=config.method, w_hfd=config.w_hfd, w_region=config.w_region, w_pixel=config.w_pixel,
        use_hfd=config.use_hfd, use_region=config.use_region, use_pixel=config.use_pixel,
        region_size=config.region_size, temperature=config.temperature, require_correct=config.require_correct,
        require_learner_wrong=config.require_learner_wrong, warmup=config.warmup, ignore_index=ignore_index,
    )
