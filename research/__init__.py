"""The kit's research ledger: which committed runs make which study, the rules the replication rounds
fixed before their runs, and the checks that tie docs/evidence.md to the committed runs.

Not part of the installed library (pyproject installs `collab_lib*` only): import it from a checkout,
with the repository root on sys.path (the root conftest.py does that for the tests).
"""
