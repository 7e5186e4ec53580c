"""The trainer's data: the loaders of a TrainConfig's splits, sharded over DDP ranks.

    data = build_data(config, dist, device)   # Data: the training loader and its resumable sampler,
                                              # the eval split, the unaugmented training subset, the test split
    images, labels = to_device(images, labels, device, channels_last)

The datasets themselves come from collab_lib.students.make_dataset (what the config describes); here
they get their loaders. Every loader has its own random generator, so building or restarting one
never draws from the global torch RNG (a resumed run sees the same dropout as an uninterrupted one).
"""
import sys
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Subset

from . import distributed
from .config import TrainConfig
from .data import DatasetError
from .errors import SetupError
from .students import make_dataset


def make_loader(dataset, config, sampler=None, shuffle_seed=0, device=torch.device("cpu"), drop_last=False):
    return DataLoader(
        dataset, batch_size=config.batch_size, sampler=sampler, drop_last=drop_last,
        num_workers=config.workers, persistent_workers=config.workers > 0,
        pin_memory=device.type == "cuda",  # page-locked host memory lets .to(device, non_blocking=True) overlap
        # Its own generator: creating a DataLoader iterator must not draw from the global torch RNG,
        # or a resumed run (which creates one more iterator) would see different dropout.
        generator=torch.Generator().manual_seed(shuffle_seed),
    )


def to_device(images, labels, device, channels_last):
    """(B,3,H,W) float32 and (B,H,W) int64 -> on `device`, images channels-last if asked."""
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, labels.to(device, non_blocking=True)


@dataclass
class Data:
    train_set: object
    sampler: distributed.ResumableSampler
    train_loader: DataLoader
    steps_per_epoch: int
    eval_loader: DataLoader                # config.eval_split, this rank's share
    train_eval_loader: DataLoader | None   # the first train_eval_samples training items, unaugmented
    train_eval_samples: int                # how many (0 = off)
    num_classes: int
    ignore_index: int
    class_names: list
    test_set: object | None                # config.test_split (None: no test split), scored once at the end

    def batches(self, epoch: int, position: int):
        """An iterator over this process's training batches of `epoch`, from its batch `position` on."""
        self.sampler.set_position(epoch, position * self.train_loader.batch_size)
        self.train_set.set_epoch(epoch)  # augmentation of epoch e; set before the loader's workers fetch anything
        return iter(self.train_loader)


def build_data(config: TrainConfig, dist: distributed.DistInfo, device: torch.device) -> Data:
    """Datasets and loaders. Evaluation: rank r scores items r, r+N, r+2N, ... (every item exactly once)."""
    train_set = make_dataset(config, "train", train=True)
    eval_set = make_dataset(config, config.eval_split, train=False)
    test_set = None
    if config.test_split:
        # The test split is read once, at the very end: built now, a missing one is found before the training.
        try:
            test_set = make_dataset(config, config.test_split, train=False)
        except DatasetError as error:
            raise SetupError(f"test_split={config.test_split!r}: {error}\nA run without a test split: --test-split none "
                             f"(test_split=None in Python, -p test_split none with papermill)") from None
    if getattr(train_set, "flat", False) and dist.is_main:
        print(f"warning: {config.data_root} has no split sub-folders under images/: the {config.eval_split} and "
              f"test numbers are measured on the training images (fit, not generalisation); give it "
              f"images/train, images/{config.eval_split}, ... and the same under masks/", file=sys.stderr)
    sampler = distributed.ResumableSampler(train_set, dist.world_size, dist.rank, seed=config.seed)
    train_loader = make_loader(train_set, config, sampler, config.seed, device, drop_last=True)
    steps_per_epoch = len(train_loader)  # now, while the sampler starts at 0 (after a resume it starts later)
    if steps_per_epoch == 0:
        raise SetupError(f"the training split has {len(train_set)} items: fewer than one batch of "
                         f"{config.batch_size} per process x {dist.world_size} processes; lower batch_size")
    shard = lambda ds: Subset(ds, range(dist.rank, len(ds), dist.world_size))  # noqa: E731
    eval_loader = make_loader(shard(eval_set), config, device=device)
    # The generalisation gap: the same first N training items at every evaluation, without augmentation.
    # Evaluation draws no random number (eval mode; the loader has its own generator): training is unchanged.
    train_eval_loader, count = None, 0
    if config.train_eval_samples != 0:
        unaugmented = make_dataset(config, "train", train=False)
        count = len(unaugmented)
        if config.train_eval_samples is not None:
            count = min(config.train_eval_samples, count)
        train_eval_loader = make_loader(shard(Subset(unaugmented, range(count))), config, device=device)
    return Data(train_set, sampler, train_loader, steps_per_epoch, eval_loader, train_eval_loader, count,
                train_set.num_classes, train_set.ignore_index, list(train_set.class_names), test_set)
