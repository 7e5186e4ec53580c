"""Two pytest sessions side by side, one per core, reported one after the other (`make test`, `make test-fast`).

usage: python tests/side_by_side.py LOG ARGS... --beside ARGS...

The first session's output is shown as it runs; the second one's (after --beside) goes to LOG, which is
printed when both have finished. Each test process uses one torch thread (tests/conftest.py), so on a
2-core machine two sessions take about the time of the longer one instead of the sum.

Exit status: 0 when both pass; otherwise the first failing session's status. "No test collected"
(pytest's 5, e.g. a `-k` that selects tests of one session only) counts as a pass unless both say it.
"""
import subprocess
import sys
from pathlib import Path

NO_TESTS = 5  # pytest.ExitCode.NO_TESTS_COLLECTED


def combined_exit(first: int, second: int) -> int:
    """One exit status for two pytest sessions (see the module's docstring)."""
    if first == NO_TESTS and second == NO_TESTS:
        return NO_TESTS
    for status in (first, second):
        if status not in (0, NO_TESTS):
            return status
    return 0


def split_arguments(argv: list[str]) -> tuple[Path, list[str], list[str]]:
    """LOG, the first session's pytest arguments, the second's; a clear error for a malformed line."""
    if len(argv) < 2 or argv.count("--beside") != 1:
        raise SystemExit("usage: python tests/side_by_side.py LOG ARGS... --beside ARGS... "
                         f"(one --beside expected, got {argv.count('--beside')})")
    log, rest = Path(argv[0]), argv[1:]
    cut = rest.index("--beside")
    return log, rest[:cut], rest[cut + 1:]


def main(argv: list[str]) -> int:
    log, first, second = split_arguments(argv)
    log.parent.mkdir(parents=True, exist_ok=True)
    pytest = [sys.executable, "-m", "pytest"]
    with open(log, "w") as out:
        beside = subprocess.Popen([*pytest, *second], stdout=out, stderr=subprocess.STDOUT)
        print(f"side_by_side: `pytest {' '.join(second)}` runs beside these tests; its report ({log}) follows",
              flush=True)
        try:
            first_status = subprocess.call([*pytest, *first])
        finally:
            second_status = beside.wait()
    print(f"\n{'=' * 20} beside: pytest {' '.join(second)} ({log}) {'=' * 20}", flush=True)
    sys.stdout.write(log.read_text())
    print(f"side_by_side: the first session exits {first_status}, the one beside it {second_status}")
    return combined_exit(first_status, second_status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
