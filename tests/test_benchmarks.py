"""The benchmark scripts still run and report what they say they time (tiny settings; no timing is asserted).

Speed targets are read from the scripts' output by a person (benchmarks/RESULTS.md), never by a
test; these tests only keep the scripts from rotting and check their arithmetic and bookkeeping.
"""
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from hang_guard import HUNG_AFTER_S

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # two short subprocess runs of the scripts


def run_script(name: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *args],
                            capture_output=True, text=True, timeout=HUNG_AFTER_S, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_bench_train_interleaved_times_both_methods_and_pairs_their_rounds():
    out = run_script("bench_train.py", "--interleave", "--json", "--steps", "3", "--warmup", "1",
                     "--size", "64", "64", "--batch", "2", "--decoder-channels", "32",
                     "--loader-batches", "1", "--workers", "0")
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    row = next(r for r in rows if r["what"] == "interleaved")
    times = row["times_s"]
    assert len(times["independent"]) == len(times["collab"]) == 3  # warm-up rounds not timed
    # What was timed: the collab step computed the three collab terms, the independent step none of them.
    assert {"hfd", "region", "pixel"} <= set(row["terms"]["collab"])
    assert not {"hfd", "region", "pixel"} & set(row["terms"]["independent"])
    assert row["layout"] == "nchw" and row["decoder_channels"] == 32
    paired = [c / i for c, i in zip(times["collab"], times["independent"])]
    assert row["paired_ratios"] == pytest.approx(paired)
    assert row["median_paired_ratio"] == pytest.approx(statistics.median(paired))
    medians = {m: statistics.median(t) for m, t in times.items()}
    assert row["ratio_of_medians"] == pytest.approx(medians["collab"] / medians["independent"])
    assert any(r["what"] == "loader" and r["images_per_s"] > 0 for r in rows)


def test_bench_train_times_each_method_in_its_own_process_per_layout():
    out = run_script("bench_train.py", "--json", "--steps", "2", "--warmup", "0", "--size", "64", "64",
                     "--batch", "2", "--decoder-channels", "32", "--layouts", "nchw", "nhwc",
                     "--loader-batches", "1", "--workers", "0")
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    steps = [(r["method"], r["layout"]) for r in rows if r["what"] == "step"]
    assert steps == [("independent", "nchw"), ("collab", "nchw"), ("independent", "nhwc"), ("collab", "nhwc")]
    for row in (r for r in rows if r["what"] == "step"):
        assert len(row["times_s"]) == 2 and row["median_s"] == pytest.approx(statistics.median(row["times_s"]))
        assert row["peak_mib"] > 0 and row["decoder_channels"] == 32


def test_bench_losses_reports_every_variant_and_the_step_ratio():
    out = run_script("bench_losses.py", "--threads", "1", "--warmup", "0", "--repeats", "1", "--size", "32",
                     "--batch", "2", "--decoder-channels", "32", "--terms", "--dense", "--count-ops")
    for phase in ("loss", "step"):
        for variant in ("independent", "collab", "collab-dense", "hfd-only", "region-only", "pixel-only"):
            assert re.search(rf"^{phase}\s+{variant}\s+[\d.]+ ", out, re.M), f"{phase} {variant} missing:\n{out}"
    step = {m: float(re.search(rf"^step\s+{m}\s+([\d.]+)", out, re.M).group(1)) for m in ("independent", "collab")}
    ratio = float(re.search(r"step ratio \(medians\): ([\d.]+)", out).group(1))
    assert ratio == pytest.approx(step["collab"] / step["independent"], abs=2e-3)  # from the printed (rounded) ms
    # --count-ops: every variant counted; each term adds operators to independent's CE, all three add the most
    ops = {m: [int(v) for v in re.search(rf"^ops\s+{m}\s+forward\s+(\d+)\s+backward\s+(\d+)\s+total\s+(\d+)", out,
                                         re.M).groups()] for m in ("independent", "collab", "hfd-only", "region-only", "pixel-only")}
    assert all(f + b == total for f, b, total in ops.values())
    terms = [ops[t][2] for t in ("hfd-only", "region-only", "pixel-only")]
    assert ops["independent"][2] < min(terms) and max(terms) < ops["collab"][2]


def test_a_failing_setting_is_reported_and_the_next_ones_still_run(capsys):
    """bench_train.run_child: a setting whose process fails (a compiler error on a GPU, say) prints the
    end of its stderr and gives None, instead of stopping the settings after it."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_train
    finally:
        sys.path.pop(0)
    failing = [sys.executable, "-c", "import sys; print('compiler said no', file=sys.stderr); sys.exit(3)"]
    assert bench_train.run_child(failing) is None
    printed = capsys.readouterr().out
    assert "# FAILED (exit 3)" in printed and "compiler said no" in printed
    assert bench_train.run_child([sys.executable, "-c", "print('{\"ok\": 1}')"]).strip() == '{"ok": 1}'


def test_cudagraphs_setting_compiles_every_piece_in_reduce_overhead_mode_and_marks_each_step(monkeypatch):
    """bf16+cudagraphs (for a GPU): both students and each loss term go to torch.compile with
    mode="reduce-overhead", and every step starts with cudagraph_mark_step_begin (a CUDA graph's outputs
    are overwritten by its next replay). Read on the CPU with a stand-in for torch.compile that records
    its arguments and compiles nothing; the eager setting compiles nothing and marks no step."""
    import argparse

    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_train

    calls, marks = [], []

    def fake_compile(fn, *args, **kwargs):
        calls.append(kwargs.get("mode"))
        return fn
    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    for setting, expected_calls, expected_marks in (("eager", [], []), ("cudagraphs", ["reduce-overhead"] * 5, [1, 1])):
        calls.clear()
        marks.clear()
        args = argparse.Namespace(device="cpu", batch=2, size=[64, 64], layout="nchw", decoder_channels=32,
                                  precision="fp32", compile=setting)
        config, device, memory_format, cnn, vit, images, labels = bench_train.build_students_and_batch(args)
        step = bench_train.build_step(args, config, "collab", device, memory_format, cnn, vit, images, labels)
        for _ in range(2):
            assert torch.isfinite(step()["loss"])
        # two students + three collab terms (HFD, region and pixel BSD)
        assert calls == expected_calls and marks == expected_marks, setting


def test_bench_startup_times_every_command_and_reports_the_median():
    out = run_script("bench_startup.py", "--repeats", "1", "--json")
    rows = {row["what"]: row for row in (json.loads(line) for line in out.splitlines() if line.startswith("{"))}
    assert set(rows) == {"python (nothing imported)", "import torch (the floor)", "import collab_lib.config",
                         "import collab_lib.losses", "import timm", "python -m collab_lib.train --help"}
    assert all(len(r["times_s"]) == 1 and r["median_s"] == r["times_s"][0] > 0 for r in rows.values())
