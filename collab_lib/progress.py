"""What a training run shows while it runs: a tqdm bar, plain log lines, or nothing.

Progress(mode, total, initial, enabled):
  "bar"  a tqdm bar (the notebook widget inside Jupyter); loss summaries in its postfix
  "log"  plain lines on stderr, flushed at once: a terminal, a log file, or a headless
         kernel (papermill shows a kernel's stderr with --log-output, never a widget)
  "none" silent
  "auto" "bar" inside Jupyter or when stdout and stderr are both a terminal, else "log".
`enabled=False` (every DDP rank but rank 0) is "none" whatever the mode.
`loss_text(...)` writes what the trainer shows at each log step.
"""
import sys


def in_jupyter_kernel() -> bool:
    """True inside a Jupyter kernel (JupyterLab, nbval, papermill): IPython runs with a kernel attached.
    (`"ipykernel" in sys.modules` is not enough: test runners and plugins import it without being a kernel.)"""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and getattr(shell, "kernel", None) is not None


class Progress:
    """tqdm bar (notebook flavour inside Jupyter) on a terminal, plain log lines on stderr otherwise."""

    def __init__(self, mode: str, total: int, initial: int, enabled: bool):
        if mode == "auto":
            mode = "bar" if in_jupyter_kernel() or (sys.stdout.isatty() and sys.stderr.isatty()) else "log"
        self.mode = mode if enabled else "none"
        self.bar = None
        if self.mode == "bar":
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def show(self, summary: str, line: str) -> None:
        """summary: short, for the bar's postfix; line: the full plain log line."""
        if self.bar is not None:
            self.bar.set_postfix_str(summary, refresh=False)
        elif self.mode == "log":
            print(line, file=sys.stderr, flush=True)

    def write(self, message: str) -> None:
        """A message that stays (evaluations, resuming, stopping): above the bar, or a log line."""
        if self.bar is not None:
            self.bar.write(message)
        elif self.mode != "none":
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def format_seconds(seconds: float) -> str:
    """12.7 -> "0m12s", 3725 -> "1h02m"."""
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def loss_text(step: int, steps: int, means: dict, lr_cnn: float, lr_vit: float, images_per_s: float,
              eta_s: float) -> tuple[str, str]:
    """(summary, line) for Progress.show at a log step: the bar's postfix (the loss terms without the
    teaching shares and the ramp, 3 decimals) and the log line (every term, the learning rates, the speed)."""
    shown = {k: v for k, v in means.items() if not k.endswith("teaches") and k != "ramp"}
    summary = " ".join(f"{k} {v:.3f}" for k, v in shown.items())
    line = (f"step {step}/{steps} | " + " ".join(f"{k} {v:.4f}" for k, v in means.items())
            + f" | lr {lr_cnn:.2e}/{lr_vit:.2e} | {images_per_s:.1f} img/s | eta {format_seconds(eta_s)}")
    return summary, line
