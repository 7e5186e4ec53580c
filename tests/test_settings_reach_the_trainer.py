"""Settings that no recipe or notebook sets reach what the trainer builds (collab_lib/config.py's docstring
shows them): the optimisers' momentum and weight decays, the schedule's poly power and warm-up, the
scenes' seed and cache folder, and local backbone weights."""
import json

import timm
import torch

from collab_lib import students
from collab_lib.config import TrainConfig
from collab_lib.distributed import DistInfo
from collab_lib.loaders import build_data
from collab_lib.optim import poly_lr
from collab_lib.train import train


def small(**overrides) -> TrainConfig:
    settings = dict(image_size=(64, 64), train_samples=4, val_samples=2, test_split=None, train_eval_samples=0,
                    steps=4, batch_size=2, eval_interval=4, log_interval=1, checkpoint_interval=100, method="independent",
                    cnn_decoder_channels=32, vit_decoder_channels=32, workers=0, progress="none", device="cpu")
    return TrainConfig(**{**settings, **overrides})


def test_optimiser_and_schedule_settings_reach_a_run(tmp_path):
    """A 4-step run: last.pt's optimisers hold the momentum and weight decays (none on biases and norms), and
    the learning rate logged at each step is the poly schedule with that power and the ViT's warm-up."""
    config = small(run_dir=str(tmp_path / "run"), momentum=0.5, weight_decay_cnn=2e-4, weight_decay_vit=0.05,
                   lr_warmup=0.5, poly_power=2.0)
    run_dir = train(config)
    checkpoint = torch.load(run_dir / "last.pt", weights_only=True)
    sgd, adamw = checkpoint["opt_cnn"]["param_groups"], checkpoint["opt_vit"]["param_groups"]
    assert [(g["momentum"], g["weight_decay"]) for g in sgd] == [(0.5, 2e-4), (0.5, 0.0)]
    assert sorted({g["weight_decay"] for g in adamw}) == [0.0, 0.05]
    logged = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    logged = [(r["step"], r["lr_cnn"], r["lr_vit"]) for r in logged if r["kind"] == "train"]
    warmup_steps = round(0.5 * 4)
    assert logged == [(s, poly_lr(s - 1, 4, config.lr_cnn, 2.0), poly_lr(s - 1, 4, config.lr_vit, 2.0, warmup_steps))
                      for s in (1, 2, 3, 4)]
    assert logged[1][1] != poly_lr(1, 4, config.lr_cnn, TrainConfig.poly_power)  # another schedule than the default


def first_training_item(config):
    data = build_data(config, DistInfo(), torch.device("cpu"))  # what train() builds its loaders from
    data.train_set.set_epoch(0)
    return data.train_set[0]


def test_data_seed_and_cache_dir_reach_the_scenes(tmp_path):
    """data_seed draws other scenes; cache_dir keeps each rendered scene as PNGs and reads back the same pixels."""
    image, label = first_training_item(small())
    other_image, _ = first_training_item(small(data_seed=1))
    assert not torch.equal(image, other_image)
    cached_image, cached_label = first_training_item(small(cache_dir=str(tmp_path / "scenes")))
    assert sorted(p.name for p in (tmp_path / "scenes").iterdir()) == [
        "streets_v1_train_seed0_64x64", "streets_v1_val_seed0_64x64"]
    assert len(list((tmp_path / "scenes" / "streets_v1_train_seed0_64x64").glob("*.png"))) == 2  # item 0's pair
    again_image, again_label = first_training_item(small(cache_dir=str(tmp_path / "scenes")))  # read back
    for other in (cached_image, again_image):
        assert torch.equal(other, image)
    assert torch.equal(cached_label, label) and torch.equal(again_label, label)
    first_training_item(small(endless=True, cache_dir=str(tmp_path / "endless")))  # fresh scenes: nothing to keep
    assert sorted(p.name for p in (tmp_path / "endless").iterdir()) == ["streets_v1_val_seed0_64x64"]


def test_local_backbone_weights_reach_both_students(tmp_path):
    """cnn_weights / vit_weights: full timm state_dicts loaded into the students' backbones, no network."""
    torch.manual_seed(123)
    resnet = timm.create_model("resnet18", pretrained=False)
    mit = timm.create_model("pvt_v2_b0", pretrained=False, mlp_ratios=(4, 4, 4, 4))  # SegFormer-B0's encoder
    torch.save(resnet.state_dict(), tmp_path / "resnet18.pth")
    torch.save(mit.state_dict(), tmp_path / "mit_b0.pth")
    config = small(cnn_weights=str(tmp_path / "resnet18.pth"), vit_weights=str(tmp_path / "mit_b0.pth"))
    cnn, vit = students.build_students(config, num_classes=11)  # what train() builds its students with
    assert torch.equal(dict(cnn.backbone.named_parameters())["conv1.weight"], resnet.conv1.weight)
    loaded = dict(vit.backbone.named_parameters())
    assert torch.equal(loaded["patch_embed.proj.weight"], mit.patch_embed.proj.weight)
