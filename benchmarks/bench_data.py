"""Throughput of the data pipeline (synthetic streets): generation and DataLoader.

    python benchmarks/bench_data.py            # about a minute on 2 CPU cores

Prints images/s, the median of several repeats:
  - scene generation alone, one thread, at 128x256 and 512x1024;
  - PNG cache read-back at 512x1024 (what cache_dir gives a GPU run);
  - augmentation alone on scenes already in memory, 128x256 and 512x1024;
  - DataLoader with training augmentation (random scale, crop, flip, jitter),
    num_workers 0 and 2, batch 16: fresh scenes (endless, render + augment)
    and the in-memory cache of a finite split (epoch 2+: augment only).
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from collab_lib.data.streets import StreetsDataset, render_item  # noqa: E402
from collab_lib.data.textures import texture_stack  # noqa: E402


def median_rate(work, count, repeats, cpu=False):
    """images/s of work() (which handles `count` images), median over `repeats` timed runs after one warm-up.

    cpu=True also returns images per CPU-second of this process (time.process_time), a figure that
    other jobs competing for the same cores disturb much less than the wall-clock one.
    """
    work()
    rates, cpu_rates = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        work()
        rates.append(count / (time.perf_counter() - start))
        cpu_rates.append(count / max(time.process_time() - start_cpu, 1e-9))
    if cpu:
        return statistics.median(rates), statistics.median(cpu_rates)
    return statistics.median(rates)


def generation(size, count, repeats):
    counter = iter(range(10**9))  # fresh scenes every run, so no cache helps
    def work():
        for _ in range(count):
            render_item(0, "train", next(counter), size)
    return median_rate(work, count, repeats, cpu=True)


def cache_read(size, count, repeats):
    with tempfile.TemporaryDirectory() as folder:
        StreetsDataset(split="val", size=size, num_samples=count, cache_dir=folder, augment=False)
        for index in range(count):  # render to PNG once
            StreetsDataset(split="val", size=size, num_samples=count, cache_dir=folder).load(index)
        def work():
            fresh = StreetsDataset(split="val", size=size, num_samples=count, cache_dir=folder, augment=False)
            for index in range(count):
                fresh.load(index)
        return median_rate(work, count, repeats, cpu=True)


def augment_only(size, count, repeats):
    """Training augmentation (scale, crop, flip, jitter, to tensors) of scenes already in memory."""
    dataset = StreetsDataset(split="train", size=size, crop_size=size, num_samples=count).prerender()
    epoch = iter(range(10**6))
    def work():
        dataset.set_epoch(next(epoch))
        for index in range(count):
            dataset[index]
    return median_rate(work, count, repeats, cpu=True)


def loader(size, workers, endless, batches, repeats, batch_size=16):
    dataset = StreetsDataset(split="train", size=size, crop_size=size, endless=endless,
                             num_samples=None if endless else batch_size * batches)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=False,
                                         persistent_workers=workers > 0)
    epoch = iter(range(10**6))
    def work():
        dataset.set_epoch(next(epoch))
        for i, _ in enumerate(loader):
            if i + 1 == batches:
                break
    if not endless:
        work()  # fill the in-memory cache (each worker its own) before timing epochs 2+
    return median_rate(work, batch_size * batches, repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the one-core figure: no intra-op threads in torch either
    texture_stack()  # load the textures before timing
    r = args.repeats
    print(f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
          f"{os.cpu_count()} CPU cores, cuda available: {torch.cuda.is_available()}")
    print(f"load average (1, 5, 15 min) at start: {os.getloadavg()}")
    print(f"median of {r} repeats; images/s wall-clock (and per CPU-second of this process)")
    rows = [("generation 128x256, 1 thread", generation((128, 256), 60, r)),
            ("generation 512x1024, 1 thread", generation((512, 1024), 6, max(3, r // 2))),
            ("cache_dir PNG read-back 512x1024, 1 thread", cache_read((512, 1024), 6, max(3, r // 2))),
            ("augmentation only 128x256 (in memory), 1 thread", augment_only((128, 256), 32, r)),
            ("augmentation only 512x1024 (in memory), 1 thread", augment_only((512, 1024), 6, max(3, r // 2)))]
    for name, (wall, cpu) in rows:
        print(f"{name + ':':52s}{wall:8.1f}   (per CPU-second {cpu:8.1f})")
    for workers in (0, 2):
        fresh = loader((128, 256), workers, True, 6, r)
        cached = loader((128, 256), workers, False, 6, r)
        print(f"DataLoader 128x256 + augmentation, workers={workers}: fresh scenes {fresh:8.1f}, "
              f"in-memory cache (epoch 2+) {cached:8.1f}")


if __name__ == "__main__":
    main()
