"""The two students, their objective and their data, as a TrainConfig describes them.

    cnn, vit = build_students(config, num_classes)
    loss_fn = build_loss(config, cnn, vit, ignore_index)
    dataset = make_dataset(config, split, train)

Used by the trainer (collab_lib/train.py) and, through `load_students(run_dir)` and `make_dataset`, by
everything that rebuilds a trained run (the course notebooks, collab_lib/analysis.py, evaluation), so all
build exactly the same modules and see exactly the same items.
"""
import json
from pathlib import Path

import torch

from .config import TrainConfig
from .data import build_dataset
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
        require_learner_wrong=config.require_learner_wrong, selective=config.selective, w_dml=config.w_dml,
        warmup=config.warmup, ignore_index=ignore_index,
    )


def make_dataset(config: TrainConfig, split: str, train: bool):
    """The dataset for `split`. Evaluation items are not augmented and come at `image_size`. Training items
    are augmented and cropped to `crop_size` (none: the whole item); real images are first resized to
    `image_size`, so images of any size train at the scale they are evaluated at."""
    options = {}
    if config.dataset == "streets":
        count = {"train": config.train_samples, "val": config.val_samples, "test": config.test_samples}.get(split)
        options = dict(size=config.image_size, endless=config.endless and train)
        if count is not None:
            options["num_samples"] = count
        if config.cache_dir is not None and not options["endless"]:  # an endless split has no scene to keep
            options["cache_dir"] = config.cache_dir
    else:  # real images of varied sizes: one batchable size, the same for training (before its crop) and evaluation
        options["resize_to"] = config.image_size
    if config.dataset == "folder":
        options["class_names"] = config.class_names  # None: the dataset reads ROOT/classes.txt
    return build_dataset(
        config.dataset, root=config.data_root, split=split, seed=config.data_seed,
        crop_size=config.crop_size if train else None,
        augment=config.augment if train else False, **options,
    )


def load_students(run_dir, checkpoint="last.pt", device="cpu"):
    """(cnn, vit, loss_fn, config) from a run: students rebuilt from its config, weights from `checkpoint`.

    `checkpoint`: a file name in run_dir, a path, or None for the untrained
    students (initialised with the run's seed, as training started). All three
    modules are returned in eval mode; loss_fn is the run's CollaborativeLoss
    (HFD projectors, region connectors).
    """
    from .checkpoint import load_checkpoint

    run_dir = Path(run_dir)
    info = json.loads((run_dir / "config.json").read_text())
    config = TrainConfig.from_dict(info.get("config", info))
    metrics = run_dir / "metrics.json"
    num_classes = len(json.loads(metrics.read_text())["class_names"]) if metrics.is_file() else None
    state = None
    if checkpoint is not None:
        path = Path(checkpoint) if Path(checkpoint).is_absolute() or Path(checkpoint).exists() else run_dir / checkpoint
        state = load_checkpoint(path, map_location=device)
    if num_classes is None:
        num_classes = state["cnn"]["classifier.weight"].shape[0] if state else None
    torch.manual_seed(config.seed)  # the untrained students are the ones training started from
    cnn, vit = build_students(config, num_classes)
    loss_fn = build_loss(config, cnn, vit)
    if state is not None:
        cnn.load_state_dict(state["cnn"])
        vit.load_state_dict(state["vit"])
        loss_fn.load_state_dict(state["loss"])
    for module in (cnn, vit, loss_fn):
        module.to(device).eval()
    return cnn, vit, loss_fn, config
