"""Small helpers for DistributedDataParallel (DDP) launched by torchrun.

    torchrun --nproc_per_node=N -m collab_lib.train ...

torchrun starts N processes and tells each its place through environment
variables (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Each
process drives one device, sees 1/N of every batch (DistributedSampler) and
DDP averages the gradients during backward. Without those variables
everything here is a no-op, so the same code runs in one plain process.
"""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler


@dataclass
class DistInfo:
    rank: int = 0        # this process among all processes
    local_rank: int = 0  # this process on this machine = the GPU index it drives
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes the run directory and prints."""
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Join the process group when torchrun launched us; nccl for CUDA, gloo for CPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world_size)
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(info.local_rank)  # before init, so nccl binds the right GPU
            dist.init_process_group("nccl", device_id=torch.device("cuda", info.local_rank))
        else:
            dist.init_process_group("gloo")
    return info


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is True on at least one (a stop request, say).

    One tiny all-reduce: call it at log intervals, not every step."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank; a no-op without a process group.

    DDP broadcasts them at the start of each training forward, so after the last one each rank holds the
    statistics of its own batch; an evaluation must use rank 0's, the ones last.pt saves."""
    if dist.is_available() and dist.is_initialized():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def all_gather_objects(obj) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank (pickled; for small things like RNG states)."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


MAX_SHUFFLED = 10**7


class ResumableSampler(DistributedSampler):
    """DistributedSampler that can start mid-epoch.

    The order of epoch e is a permutation seeded by (seed, e), the same on
    every rank; rank r takes every world_size-th index of it. `start` skips
    the first `start` indices of this rank's share, so a resumed run picks up
    exactly where the checkpoint left off. Works without a process group
    (num_replicas=1, rank=0).
    """

    def __init__(self, dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0, shuffle: bool = True):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=True)
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        self.set_epoch(epoch)
        self.start = start

    def __iter__(self):
        if len(self.dataset) > MAX_SHUFFLED:
            # Endless data (a fresh scene per index, 10**9 of them): a permutation would need
            # gigabytes and buys nothing, so walk the indices in order.
            first = self.rank + self.start * self.num_replicas
            return iter(range(first, self.num_samples * self.num_replicas, self.num_replicas))
        return iter(list(super().__iter__())[self.start:])

    def __len__(self) -> int:
        return super().__len__() - self.start
