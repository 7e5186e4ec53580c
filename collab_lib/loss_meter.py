"""The loss terms of the steps since the last log, and the check that they are finite.

The values stay on the device until `read`: reading a GPU value waits for the GPU to finish, so the
trainer reads them once per log interval (one host-device sync), not every step.
"""
import time

import torch


class LossMeter:
    """Collects each step's loss terms (a dict of 0-dim device tensors) until `read` averages them."""

    def __init__(self):
        self.pending, self.names, self.steps = [], None, 0
        self.restart_clock()

    def add(self, terms: dict) -> None:
        if self.names is None:
            self.names = list(terms)
        self.pending.append(torch.stack([terms[n].float() for n in self.names]))  # stays on the device
        self.steps += 1

    def restart_clock(self) -> None:
        """Throughput counts training only: restart after evaluations and checkpoints."""
        self.start = time.perf_counter()

    def check_finite(self, step: int, kept: str) -> torch.Tensor:
        """The pending values (steps, terms) on the host; FloatingPointError naming the first bad step and
        term, and `kept`, the last good checkpoint (the trainer checks before every checkpoint)."""
        values = torch.stack(self.pending).cpu()
        bad = ~torch.isfinite(values)
        if bad.any():
            row = int(bad.any(dim=1).nonzero()[0])
            names = [n for n, b in zip(self.names, bad[row]) if b]
            raise FloatingPointError(
                f"loss is not finite at step {step - len(self.pending) + 1 + row}: {', '.join(names)} = "
                f"{', '.join(str(float(values[row, self.names.index(n)])) for n in names)}. Training stopped; "
                f"last good checkpoint: {kept}. Try a lower learning rate, smaller loss weights or precision='fp32'.")
        return values

    def read(self, step: int, kept: str) -> tuple[dict, float]:
        """(mean of each term, seconds since the clock started); empties the meter."""
        means = dict(zip(self.names, self.check_finite(step, kept).mean(dim=0).tolist()))
        elapsed = time.perf_counter() - self.start
        self.pending, self.steps = [], 0
        self.restart_clock()
        return means, elapsed
