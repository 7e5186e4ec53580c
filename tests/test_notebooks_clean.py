"""Committed notebooks carry no outputs and no execution counts (strip them before committing)."""
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_the_course_has_its_notebooks():
    names = [path.name for path in NOTEBOOKS]
    for prefix in ("01_", "02_", "03_", "04_", "05_", "06_"):
        assert any(name.startswith(prefix) for name in names), f"no notebook {prefix}* in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    dirty = [index for index, cell in enumerate(notebook.cells)
             if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: code cells {dirty} have outputs or execution counts; strip them "
                       f"(nbformat: cell.outputs = [], cell.execution_count = None) before committing")
    assert "widgets" not in notebook.metadata, f"{path.name}: saved widget state in the metadata; strip it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_uses_the_kit_kernel(path):
    spec = nbformat.read(path, as_version=4).metadata.get("kernelspec", {})
    assert spec.get("name") == "collab-kit" and spec.get("display_name") == "Python (collab-kit)", spec
