"""The code's shape, checked so that it stays readable: short functions, no backslash continuations,
a trainer that holds the training only, and settings that load without the training stack."""
import ast
import subprocess
import sys
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 60
# The library and the research ledger; research/tests is left out: its quote lists are data, not logic.
CODE = sorted([*(REPO / "collab_lib").rglob("*.py"), *(REPO / "research").glob("*.py")])


def test_no_function_of_the_library_or_the_ledger_is_longer_than_60_lines():
    long = []
    for path in CODE:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "split these functions:\n" + "\n".join(long)


def backslash_continuations(path: Path) -> list:
    """Line numbers where a logical line is continued with a backslash: two tokens on different lines with
    no NEWLINE/NL token between them (inside brackets the tokenizer emits NL; a backslash emits nothing)."""
    found = []
    with open(path, encoding="utf-8") as f:
        tokens = list(tokenize.generate_tokens(f.readline))
    breaks = {tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING}
    for before, after in zip(tokens, tokens[1:]):
        if before.type not in breaks and after.start[0] > before.end[0]:
            found.append(before.end[0])
    return found


def test_no_backslash_continuations_in_the_library_or_the_research_code():
    """Brackets continue a line; a backslash continuation breaks on trailing whitespace and some tools stop
    reading the file at it."""
    files = [*CODE, *(REPO / "research" / "tests").glob("*.py")]
    found = [f"{path.relative_to(REPO)}:{line}" for path in files for line in backslash_continuations(path)]
    assert not found, "continue these lines inside brackets instead:\n" + "\n".join(found)


def test_the_backslash_check_sees_backslashes_and_nothing_else(tmp_path):
    path = tmp_path / "x.py"
    path.write_text('x = 1 + \\\n    2\ny = (1 +\n     2)\nz = """a \\\nb"""\nif x:\n    pass\n')
    assert backslash_continuations(path) == [1]


def test_the_trainer_holds_the_training_only():
    """The run folder, provenance, signals, the NaN check, the loaders and the hardware live in their own modules."""
    lines = len((REPO / "collab_lib" / "train.py").read_text().splitlines())
    assert lines <= 450, f"collab_lib/train.py has {lines} lines"


def test_the_settings_and_the_losses_load_without_the_training_stack():
    """The settings and the losses import neither timm nor the scene generator, and the settings not even
    torch, so `--help`, a config check or a summary start at once; timm loads when a student is built."""
    code = ("import sys\n"
            "import collab_lib.config, collab_lib.experiments\n"
            "print('torch' in sys.modules)\n"
            "import collab_lib.losses\n"
            "print('timm' in sys.modules, 'collab_lib.data' in sys.modules)\n"
            "import collab_lib.train\n"
            "print('timm' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False", "False"]
