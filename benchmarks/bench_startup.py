"""How long the kit takes to start: light imports and the trainer's --help, against torch's own import.

    python benchmarks/bench_startup.py            # about half a minute on 2 CPU cores
    python benchmarks/bench_startup.py --repeats 3 --json

Each command runs in a fresh interpreter (`python -c ...` / `python -m ...`), `--repeats` times, in turns
(so a busy moment of the machine hits every command alike); prints the median wall seconds of each. The
floor is `import torch`: the trainer needs torch, so `--help` can answer no faster than torch imports.
`import collab_lib.config` and `import collab_lib.losses` are meant to stay well below the data generator's
and timm's import (issue #32: config and the losses import neither).
"""
import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "python (nothing imported)": ["-c", "pass"],
    "import torch (the floor)": ["-c", "import torch"],
    "import collab_lib.config": ["-c", "import collab_lib.config"],
    "import collab_lib.losses": ["-c", "import collab_lib.losses"],
    "import timm": ["-c", "import timm"],
    "python -m collab_lib.train --help": ["-m", "collab_lib.train", "--help"],
}


def time_once(args) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh interpreters per command (median reported)")
    parser.add_argument("--json", action="store_true", help="one JSON line per command instead of a table")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    times = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):
        for name, command in COMMANDS.items():
            times[name].append(time_once(command))
    print(f"# {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"{args.repeats} repeats, median wall seconds")
    for name, values in times.items():
        if args.json:
            print(json.dumps({"what": name, "median_s": statistics.median(values), "times_s": values}))
        else:
            print(f"{name:40s} {statistics.median(values):6.2f} s   (min {min(values):.2f}, max {max(values):.2f})")


if __name__ == "__main__":
    main()
