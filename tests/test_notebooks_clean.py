"""The committed course: notebooks without outputs, on the kit's kernel, with exercises that carry solutions.

- no outputs or execution counts (strip them before committing);
- every notebook asks for the `collab-kit` kernel;
- the primer and the method notebooks (00-04) each end with at least three exercises: a markdown heading
  "Exercise N: ...", a hint, and a worked solution in a code cell collapsed by default
  (`"jupyter": {"source_hidden": true}`, tag `solution`) that checks what it finds (nbval runs it);
- nothing in the course cites a file outside the repository.
"""
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
WITH_EXERCISES = ("00_", "01_", "02_", "03_", "04_")
EXERCISE_HEADING = re.compile(r"^#+ Exercise (\d+): \S", re.MULTILINE)


def test_the_course_has_its_notebooks():
    names = [path.name for path in NOTEBOOKS]
    for prefix in ("00_", "01_", "02_", "03_", "04_", "05_", "06_"):
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


def exercises(notebook):
    """[(number, markdown source, [the code cells up to the next exercise or markdown heading])]."""
    found = []
    for index, cell in enumerate(notebook.cells):
        match = EXERCISE_HEADING.search(cell.source) if cell.cell_type == "markdown" else None
        if match:
            found.append((int(match.group(1)), cell.source, []))
        elif found and cell.cell_type == "code":
            found[-1][2].append(cell)
        elif found and cell.cell_type == "markdown" and cell.source.lstrip().startswith("#"):
            found.append((None, cell.source, []))  # a heading that is not an exercise ends the last one
    return [item for item in found if item[0] is not None]


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name.startswith(WITH_EXERCISES)], ids=lambda p: p.name)
def test_exercises_have_a_hint_and_a_hidden_checked_solution(path):
    found = exercises(nbformat.read(path, as_version=4))
    assert len(found) >= 3, f"{path.name}: {len(found)} exercises, expected at least 3 (markdown '### Exercise N: ...')"
    assert [number for number, _, _ in found] == list(range(1, len(found) + 1)), f"{path.name}: exercises not numbered 1..n"
    for number, source, code_cells in found:
        where = f"{path.name}, exercise {number}"
        assert "*Hint:*" in source, f"{where}: no '*Hint:*' in its text"
        solutions = [c for c in code_cells if "solution" in c.metadata.get("tags", [])]
        assert solutions, f"{where}: no code cell tagged 'solution' after it"
        for cell in solutions:
            assert cell.metadata.get("jupyter", {}).get("source_hidden") is True, f"{where}: the solution is not collapsed"
            assert "assert" in cell.source, f"{where}: the solution checks nothing (no assert): it could go stale unseen"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_course_cites_nothing_outside_the_repository(path):
    notebook = nbformat.read(path, as_version=4)
    for index, cell in enumerate(notebook.cells):
        for needle in ("shared/", "lessons.md"):
            assert needle not in cell.source, f"{path.name}, cell {index}: cites {needle!r}, which is not in the repository"
