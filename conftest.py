"""Puts the checkout's root on sys.path, so that the tests can import the research ledger (`research/`),
which is not part of the installed library; and a writer of tiny run folders both suites use."""
import json
import sys
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


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
