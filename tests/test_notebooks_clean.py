"""The committed course: notebooks without outputs, on the kit's kernel, with exercises that carry solutions.

- no outputs or execution counts (strip them before committing);
- every notebook asks for the `collab-kit` kernel;
- the primer, the method notebooks and the results (00-04, 06) each end with at least three exercises: a
  markdown heading "Exercise N: ..." whose title is `collab_lib.exercises`' exercise N of that notebook, a
  hint (`qN.hint()`), a cell where the learner's answer goes to `qN.check`, and a worked solution in a code
  cell collapsed by default (`"jupyter": {"source_hidden": true}`, tag `solution`) that asserts
  `qN.check(its answer)` (nbval runs it, so the reference solutions are proven right by the same check);
- 00-06 open with two to four learning objectives ("You will be able to", a numbered list) and close with
  a "## Summary" after the exercises;
- nothing in the course cites a file outside the repository.
"""
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
WITH_EXERCISES = ("00_", "01_", "02_", "03_", "04_", "06_")
WITH_OBJECTIVES = ("00_", "01_", "02_", "03_", "04_", "05_", "06_")
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


def _plain(title: str) -> str:
    """A heading's title as the exercises module spells it: no Markdown maths, code or quote marks."""
    return " ".join(re.sub(r"[$`\"\\]", "", title).split())


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name.startswith(WITH_EXERCISES)], ids=lambda p: p.name)
def test_exercises_have_a_hint_a_check_and_a_hidden_solution_that_passes_it(path):
    from collab_lib.exercises import load

    found = exercises(nbformat.read(path, as_version=4))
    assert len(found) >= 3, f"{path.name}: {len(found)} exercises, expected at least 3 (markdown '### Exercise N: ...')"
    assert [number for number, _, _ in found] == list(range(1, len(found) + 1)), f"{path.name}: exercises not numbered 1..n"
    module = load(path.stem)
    assert len(module) == len(found), f"{path.name}: {len(found)} exercises, collab_lib.exercises has {len(module)}"
    for (number, source, code_cells), exercise in zip(found, module):
        where = f"{path.name}, exercise {number}"
        title = _plain(EXERCISE_HEADING.search(source).string[EXERCISE_HEADING.search(source).end() - 1:].splitlines()[0])
        assert title == exercise.title, f"{where}: heading {title!r}, collab_lib.exercises says {exercise.title!r}"
        assert f"*Hint:* `q{number}.hint()`" in source, f"{where}: no '*Hint:* `q{number}.hint()`' in its text"
        tries = [c for c in code_cells if "solution" not in c.metadata.get("tags", [])]
        assert any(f"q{number}.check(" in c.source for c in tries), f"{where}: no cell where the learner's answer goes to q{number}.check"
        solutions = [c for c in code_cells if "solution" in c.metadata.get("tags", [])]
        assert len(solutions) == 1, f"{where}: {len(solutions)} code cells tagged 'solution' after it, expected 1"
        cell = solutions[0]
        assert cell.metadata.get("jupyter", {}).get("source_hidden") is True, f"{where}: the solution is not collapsed"
        assert f"assert q{number}.check(" in cell.source, f"{where}: the solution does not assert q{number}.check(its answer)"


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name.startswith(WITH_OBJECTIVES)], ids=lambda p: p.name)
def test_notebook_opens_with_objectives_and_closes_with_a_summary(path):
    notebook = nbformat.read(path, as_version=4)
    first = notebook.cells[0].source
    assert "**You will be able to**" in first, f"{path.name}: the first cell states no learning objectives"
    items = re.findall(r"^\d+\. ", first.split("**You will be able to**", 1)[1].split("\n\n", 1)[0], re.MULTILINE)
    assert 2 <= len(items) <= 4, f"{path.name}: {len(items)} learning objectives, expected two to four"
    summaries = [i for i, c in enumerate(notebook.cells) if c.cell_type == "markdown" and c.source.startswith("## Summary")]
    assert len(summaries) == 1, f"{path.name}: {len(summaries)} '## Summary' cells, expected one"
    headings = [i for i, c in enumerate(notebook.cells) if c.cell_type == "markdown" and EXERCISE_HEADING.search(c.source)]
    assert not headings or summaries[0] > max(headings), f"{path.name}: the summary comes before the last exercise"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_course_cites_nothing_outside_the_repository(path):
    notebook = nbformat.read(path, as_version=4)
    for index, cell in enumerate(notebook.cells):
        for needle in ("shared/", "lessons.md"):
            assert needle not in cell.source, f"{path.name}, cell {index}: cites {needle!r}, which is not in the repository"
