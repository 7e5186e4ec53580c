"""Puts the checkout's root on sys.path, so that the tests can import the research ledger (`research/`),
which is not part of the installed library."""
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
