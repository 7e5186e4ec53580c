"""Provenance: what config.json records about how a run was made.

    run_info(config, device, precision, world_size) -> dict   (config.json, written by rank 0)

Besides the full TrainConfig (whose `recipe` names the collab_lib.experiments recipe
when the grid runner started the run) it records:
  git_commit          the commit of the code this process imported (CODE_COMMIT, read once at import:
                      a grid worker keeps running the code it imported while the checkout moves on)
  git_head_at_start   the checkout's commit when the run started
  git_dirty           whether that checkout had uncommitted changes (working_tree(): tracked files, and
                      untracked files in collab_lib/), git_changes the `git status --porcelain` lines,
                      git_diff_sha1 the sha1 of `git diff HEAD` (None when clean): two runs with the
                      same hash ran the same edits
  command             how this process was started (`command_line()`): sys.argv, and inside a Jupyter
                      kernel also the command of the process that started the kernel (e.g. papermill's
                      command line), where the operating system tells it (Linux /proc)
  versions, device, precision, world_size, host, started (UTC)
  machine             what decides how the arithmetic rounds (`machine_info()`): the processor, the CPU
                      kernels torch picked (AVX2, AVX512, ...), a hash of the CPU's feature flags, the
                      number of threads, and the GPU's name on CUDA. The same run is bit-identical on one
                      machine; on another processor its numbers drift (docs/evidence.md, "Reproducing
                      committed runs"), so runs compared pair by pair should share this record
Every git field is None outside a git checkout or without git.

A resumed run's config.json describes its latest session; "earlier_sessions" keeps SESSION_FIELDS of
each earlier one (`earlier_sessions`), and `other_machine` says when the last one ran elsewhere.
"""
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .progress import in_jupyter_kernel

CODE_FOLDER = Path(__file__).resolve().parent


def _git(*args) -> str | None:
    """stdout of `git <args>` run in the library's folder; None when git fails or is missing."""
    try:
        result = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, cwd=CODE_FOLDER)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def git_head() -> str | None:
    """The commit checked out where this file lies (None outside a git checkout)."""
    return (_git("rev-parse", "HEAD") or "").strip() or None


# Read once, when the library is imported: a long-lived process (a grid worker training run after run)
# keeps executing the code it imported even after the checkout moves on to later commits.
CODE_COMMIT = git_head()


def working_tree() -> dict:
    """{"git_dirty", "git_changes", "git_diff_sha1"} of the checkout the library lies in.

    Dirty = a tracked file anywhere differs from HEAD, or an untracked file lies in the library's own
    folder. Untracked files elsewhere are not counted: run directories (results/..., runs/...) are
    untracked while they are being written. git_changes: `git status --porcelain` lines (at most 50);
    git_diff_sha1: sha1 of `git diff HEAD` (tracked changes), None when clean. All None without git."""
    tracked = _git("status", "--porcelain", "--untracked-files=no")
    library = _git("status", "--porcelain", "--", ".")  # run in collab_lib/: its untracked files too
    if tracked is None or library is None:
        return {"git_dirty": None, "git_changes": None, "git_diff_sha1": None}
    changes = sorted(set(tracked.splitlines()) | set(library.splitlines()))
    if not changes:
        return {"git_dirty": False, "git_changes": [], "git_diff_sha1": None}
    diff = _git("diff", "HEAD") or ""
    return {"git_dirty": True, "git_changes": changes[:50], "git_diff_sha1": hashlib.sha1(diff.encode()).hexdigest()}


def _parent_command() -> list | None:
    """The command line of this process's parent (Linux only; None elsewhere or when unreadable)."""
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part] or None


def command_line() -> dict:
    """{"argv": sys.argv, "orig_argv": the interpreter's own command line (e.g. python -m collab_lib.train
    --steps 9; Python >= 3.10)} and, inside a Jupyter kernel (argv is then only the kernel's launcher),
    "kernel": True, "parent": the command that started the kernel (papermill's own command line under
    papermill; the Jupyter server's in JupyterLab) and "notebook" (JPY_SESSION_NAME, which Jupyter
    servers set to the notebook's path; papermill does not)."""
    info = {"argv": list(sys.argv), "orig_argv": list(getattr(sys, "orig_argv", []))}
    if in_jupyter_kernel():
        info.update(kernel=True, parent=_parent_command(), notebook=os.environ.get("JPY_SESSION_NAME"))
    return info


def _cpu_fields() -> dict:
    """{"model name": ..., "flags": ...} of the first processor in /proc/cpuinfo (Linux); {} elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor only
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def machine_info(device) -> dict:
    """What makes the same run round differently from one machine to another (config.json "machine").

    processor: /proc/cpuinfo's model name (platform.processor() elsewhere; None if unknown);
    cpu_capability: the kernel family torch dispatches CPU operations to ("AVX2", "AVX512", "DEFAULT", ...;
    None where torch does not say); cpu_flags_sha1: the first 12 hex digits of the sha1 of the CPU's feature
    flags (None off Linux); threads: torch's intra-op threads; gpu: the CUDA device's name, None on a CPU.
    """
    cpu = _cpu_fields()
    flags = cpu.get("flags") or cpu.get("Features")  # x86 / ARM
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # older torch
        capability = None
    device = torch.device(device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {"processor": cpu.get("model name") or platform.processor() or None, "cpu_capability": capability,
            "cpu_flags_sha1": hashlib.sha1(" ".join(sorted(flags.split())).encode()).hexdigest()[:12] if flags else None,
            "threads": torch.get_num_threads(), "gpu": gpu}


def machine_differences(first: dict | None, second: dict | None) -> str:
    """"field: first -> second" for each field of two config.json "machine" records that differs (threads
    included: they change how sums are split); "" when they agree or when either is missing (a run made
    before the record existed)."""
    if not first or not second:
        return ""
    return ", ".join(f"{key}: {first.get(key)} -> {second.get(key)}" for key in dict.fromkeys([*first, *second])
                     if first.get(key) != second.get(key))


def run_info(config, device, precision, world_size) -> dict:
    """config.json: everything needed to know what produced a run (see the module docstring)."""
    import timm
    return {
        "config": config.to_dict(),
        "seed": config.seed,
        "recipe": config.recipe,
        "command": command_line(),
        "versions": {"collab_lib": __version__, "python": platform.python_version(), "torch": torch.__version__,
                     "timm": timm.__version__, "numpy": np.__version__},
        "git_commit": CODE_COMMIT, "git_head_at_start": git_head(), **working_tree(),
        "device": str(device), "precision": precision, "world_size": world_size,
        "host": platform.node(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(device),
    }


# What config.json keeps of each earlier session of a resumed run: who ran it, with which code, where.
SESSION_FIELDS = ("started", "git_commit", "git_head_at_start", "git_dirty", "git_diff_sha1", "command", "host",
                  "device", "precision", "world_size", "machine", "resumed_from_step")


def earlier_sessions(config_json: Path) -> list:
    """The sessions before this one, oldest first, from the config.json about to be rewritten: the fields that
    say who ran each and with which code (SESSION_FIELDS). [] when there is none or it cannot be read."""
    try:
        old = json.loads(config_json.read_text())
    except (OSError, ValueError):
        return []
    return [*old.get("earlier_sessions", []), {k: old[k] for k in SESSION_FIELDS if k in old}]


def other_machine(sessions: list, machine: dict) -> str:
    """machine_differences between the last of the earlier `sessions` and this one's `machine`."""
    return machine_differences((sessions[-1] if sessions else {}).get("machine"), machine)
