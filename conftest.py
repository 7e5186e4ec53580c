"""Puts the checkout's root on sys.path, so that the tests can import the research ledger (`research/`),
which is not part of the installed library; a writer of tiny run folders both suites use; git isolated
from the machine's configuration; and one torch thread per test process."""
import json
import sys
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """One intra-op thread: the tests' tensors are tiny, and on a small shared CPU a second thread mostly
    waits (a tiny training run measured 3x slower with two). Subprocesses the tests start keep torch's own."""
    import torch

    torch.set_num_threads(1)
    yield


def _write_split_metrics(folder, seed, val, test):
    """folder/seed<N>/metrics.json with the ViT's mIoU `val` on final_val and `test` on test (the CNN fixed at 0.5)."""
    run = Path(folder) / f"seed{seed}"
    run.mkdir(parents=True)
    student = lambda miou: {"miou": miou, "iou": {}}  # noqa: E731
    (run / "metrics.json").write_text(json.dumps({split: {"cnn": student(0.5), "vit": student(value)}
                                                  for split, value in (("final_val", val), ("test", test))}))


@pytest.fixture
def write_split_metrics():
    """The writer above, for tests in tests/ and research/tests alike."""
    return _write_split_metrics


def _run_git(repo, *args, check=True):
    """git in `repo`, isolated from the machine's git configuration: no system, global or XDG config (a
    machine whose git signs commits, runs hooks or lacks a user name must not fail the tests), the PATH
    as it is (git where the machine has it), a fixed author. Returns the CompletedProcess (text)."""
    import os
    import subprocess

    env = {**os.environ, "HOME": str(repo), "XDG_CONFIG_HOME": str(repo), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CONFIG", "GIT_CONFIG_PARAMETERS"):
        env.pop(name, None)  # a test run from inside a git hook must not write into the outer repository
    overrides = ["-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", "-c", f"core.hooksPath={os.devnull}",
                 "-c", "init.defaultBranch=main"]
    return subprocess.run(["git", *overrides, *args], cwd=repo, check=check, capture_output=True, text=True, env=env)


@pytest.fixture
def run_git():
    """`run_git(repo, *args)`: git in a test's own repository, whatever the machine's git configuration."""
    return _run_git
