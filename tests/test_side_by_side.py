"""tests/side_by_side.py: two pytest sessions at once, one exit status, both reports shown."""
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import side_by_side  # noqa: E402

SCRIPT = Path(side_by_side.__file__)


@pytest.mark.parametrize("first, second, want", [
    (0, 0, 0), (1, 0, 1), (0, 1, 1), (2, 1, 2), (5, 0, 0), (0, 5, 0), (5, 5, 5), (5, 1, 1), (1, 5, 1),
])
def test_one_exit_status_for_two_sessions(first, second, want):
    assert side_by_side.combined_exit(first, second) == want


@pytest.mark.parametrize("argv", [[], ["log"], ["log", "a", "b"], ["log", "a", "--beside", "b", "--beside"]])
def test_a_malformed_line_says_what_is_expected(argv):
    with pytest.raises(SystemExit, match="one --beside expected"):
        side_by_side.split_arguments(argv)


def test_split_keeps_each_sessions_arguments_in_order():
    log, first, second = side_by_side.split_arguments(["out.log", "tests", "-k", "x", "--beside", "notebooks", "-q"])
    assert (log, first, second) == (Path("out.log"), ["tests", "-k", "x"], ["notebooks", "-q"])


def test_a_failure_beside_fails_the_run_and_its_report_is_printed(tmp_path):
    (tmp_path / "test_passes.py").write_text("def test_one():\n    assert True\n")
    (tmp_path / "test_fails.py").write_text("def test_two():\n    assert 1 == 2, 'the session beside failed'\n")
    log = tmp_path / "logs" / "beside.log"
    common = ["-p", "no:cacheprovider", "--rootdir", str(tmp_path)]
    result = subprocess.run([sys.executable, str(SCRIPT), str(log), str(tmp_path / "test_passes.py"), *common,
                             "--beside", str(tmp_path / "test_fails.py"), *common],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed" in result.stdout and "1 failed" in result.stdout  # both reports, the logged one printed
    assert "the session beside failed" in log.read_text()
    assert result.stdout.index("1 passed") < result.stdout.index("1 failed")  # the live one first
    assert "the first session exits 0, the one beside it 1" in result.stdout
