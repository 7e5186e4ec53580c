"""Segmentation metrics from one dataset-level confusion matrix.

As in mmsegmentation and the papers: accumulate a (C, C) confusion matrix over
the whole dataset, then per-class IoU = TP / (TP + FP + FN), and mIoU = the mean
over the classes that occur in the labels or the predictions. A class absent
from both is not counted (it is not an IoU of 0, and it does not turn the mean
into NaN). A mean of per-image IoUs is a different number and is not used.
"""
import torch
import torch.distributed as dist
import torch.nn.functional as F


class ConfusionMatrix:
    """Dataset-level confusion matrix; rows = ground truth, columns = prediction.

    update() takes logits (B, C, h, w) at any stride (upsampled bilinearly to
    the label size, then argmax in float32) or integer predictions (B, H, W);
    targets (B, H, W) int with `ignore_index` for pixels that do not count.
    Stays on the device of the tensors it is given, and update() makes no
    tensor whose size depends on the data (no boolean-mask indexing, no
    bincount, whose output length is the data's maximum): ignored pixels are
    counted into one extra bin that is dropped, so a CUDA update does not wait
    for the GPU.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, device=None):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def reset(self) -> None:
        self.matrix.zero_()

    @torch.no_grad()
    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        if prediction.dim() == 4:
            if prediction.shape[1] != self.num_classes:
                raise ValueError(f"logits have {prediction.shape[1]} classes, the confusion matrix {self.num_classes}")
            if prediction.shape[-2:] != target.shape[-2:]:
                prediction = F.interpolate(prediction.float(), size=target.shape[-2:], mode="bilinear", align_corners=False)
            # argmax of the float logits: never cast logits to integers first (a bug seen in public code).
            prediction = prediction.argmax(dim=1)
        if prediction.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(prediction.shape)} does not match target shape {tuple(target.shape)}")
        if prediction.is_floating_point():
            raise ValueError("prediction must be logits (B, C, h, w) or integer class indices (B, H, W), got a float (B, H, W) tensor")
        if self.matrix.device != target.device:
            self.matrix = self.matrix.to(target.device)
        cells = self.num_classes**2
        valid = target != self.ignore_index
        # Cell truth * C + prediction; an ignored pixel goes to the extra cell C^2, dropped below.
        # Labels outside [0, C) other than the ignore index are a data bug; the data pipeline checks them.
        index = torch.where(valid, target.long() * self.num_classes + prediction.long(), cells).flatten()
        counts = torch.zeros(cells + 1, dtype=torch.int64, device=index.device)
        counts.scatter_add_(0, index, torch.ones_like(index))
        self.matrix += counts[:cells].reshape(self.num_classes, self.num_classes)

    def all_reduce(self) -> None:
        """Sum the matrix over DDP ranks (a no-op without torch.distributed)."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.matrix, op=dist.ReduceOp.SUM)

    def compute(self) -> dict:
        """Return {"iou": [float | None] * C, "miou": float, "pixel_accuracy": float, "present": [bool] * C}.

        None marks a class absent from both labels and predictions. With no valid
        pixel at all, miou and pixel_accuracy are NaN.
        """
        matrix = self.matrix.double().cpu()
        true_positive = matrix.diag()
        labelled = matrix.sum(dim=1)
        predicted = matrix.sum(dim=0)
        union = labelled + predicted - true_positive
        present = union > 0
        iou = torch.where(present, true_positive / union.clamp(min=1), torch.full_like(true_positive, float("nan")))
        total = matrix.sum()
        return {
            "iou": [float(v) if ok else None for v, ok in zip(iou.tolist(), present.tolist())],
            "miou": float(iou[present].mean()) if present.any() else float("nan"),
            "pixel_accuracy": float(true_positive.sum() / total) if total > 0 else float("nan"),
            "present": present.tolist(),
        }
