"""The two students' usual recipes: optimizers and learning-rate schedules.

- CNN student (DeepLabV3+): SGD, momentum 0.9, poly decay
  lr(t) = lr * (1 - t/T) ** power                      (Chen et al., DeepLab)
- ViT student (SegFormer): AdamW, linear warm-up over the first `warmup_steps`,
  then the same poly decay over the rest                (Xie et al., SegFormer)
- The loss module's own parameters (HFD projectors, region connectors) join
  the ViT's AdamW as a separate parameter group: they are small attention/MLP
  blocks, and they need an adaptive optimiser as much as the SegFormer does.
  Look here (`build_optimizers`) to change that.

The schedule is a pure function of the step (as in nanoGPT), so a checkpoint
needs only the step to restore it: there is no scheduler object to save.
"""
import torch
from torch import nn


def poly_lr(step: int, total_steps: int, base_lr: float, power: float = 0.9, warmup_steps: int = 0) -> float:
    """Learning rate for optimizer step `step` (0-based) of `total_steps`.

    Linear warm-up from base_lr/warmup_steps to base_lr over `warmup_steps`
    steps, then poly decay from base_lr towards 0 at `total_steps`.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return base_lr * (1.0 - progress) ** power


def param_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices and conv kernels only (ndim >= 2), never
    on biases and norm scales (decaying a BatchNorm/LayerNorm scale towards 0
    fights the normalisation; nanoGPT and most segmentation recipes do the same)."""
    decay = [p for p in module.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in module.parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizers(cnn: nn.Module, vit: nn.Module, loss: nn.Module, config, device: torch.device):
    """-> (opt_cnn, opt_vit). `config` is a TrainConfig.

    Each param group remembers its base lr in "base_lr" so that `set_lr` can
    apply the schedule. Fused kernels only on CUDA (they exist for CPU in
    recent torch, but are not faster there and are less widely tested).
    """
    fused = device.type == "cuda"
    cnn_groups = param_groups(cnn, config.weight_decay_cnn)
    for g in cnn_groups:
        g["base_lr"] = config.lr_cnn
    opt_cnn = torch.optim.SGD(cnn_groups, lr=config.lr_cnn, momentum=config.momentum, fused=fused or None)

    vit_groups = param_groups(vit, config.weight_decay_vit) + param_groups(loss, config.weight_decay_vit)
    for g in vit_groups:
        g["base_lr"] = config.lr_vit
    opt_vit = torch.optim.AdamW(vit_groups, lr=config.lr_vit, betas=(0.9, 0.999), fused=fused or None)
    return opt_cnn, opt_vit


def set_lr(optimizer: torch.optim.Optimizer, step: int, total_steps: int, power: float, warmup_steps: int = 0) -> float:
    """Apply the schedule for `step` to every param group; returns the first group's lr."""
    for group in optimizer.param_groups:
        group["lr"] = poly_lr(step, total_steps, group["base_lr"], power, warmup_steps)
    return optimizer.param_groups[0]["lr"]
