"""Per-class teaching counts, the evidence report and the paired gain table (the kit's own studies and
their checks against the committed runs: research/tests/test_ledger.py)."""
import json

import pytest
import torch
from torch import nn

from collab_lib.analysis import teaching_by_class_counts, write_report
from collab_lib.models import StudentOutput


class HalfRightStudent(nn.Module):
    """Confidently right on one half of the image (the label is 0 left, 1 right), unsure elsewhere."""

    embed_channels = 4

    def __init__(self, right_on: str, kind: str):
        super().__init__()
        self.right_on, self.kind = right_on, kind

    def forward(self, images):
        b, _, h, w = images.shape
        logits = torch.zeros(b, 2, h // 4, w // 4)
        half = w // 8
        if self.right_on == "left":
            logits[:, 0, :, :half] = 5.0
        else:
            logits[:, 1, :, half:] = 5.0
        embed = torch.randn(b, self.embed_channels, h // 4, w // 4)
        return StudentOutput(low=embed, embed=embed, logits=logits, kind=self.kind)


def test_each_student_teaches_the_half_where_it_is_right():
    labels = torch.zeros(2, 64, 128, dtype=torch.long)
    labels[:, :, 64:] = 1
    labels[:, :4, :] = 255  # ignored rows count nowhere
    loader = [(torch.zeros(2, 3, 64, 128), labels)]
    counts = teaching_by_class_counts(HalfRightStudent("left", "cnn"), HalfRightStudent("right", "vit"), loader,
                                      num_classes=2, region_size=8)
    per_class = 2 * 60 * 64
    assert counts["pixels"].tolist() == [per_class, per_class]
    assert counts["region_cnn"].tolist() == [per_class, 0]   # left regions: CNN teaches class 0
    assert counts["region_vit"].tolist() == [0, per_class]
    assert counts["pixel_cnn"].tolist() == [per_class, 0]
    assert counts["pixel_vit"].tolist() == [0, per_class]


@pytest.mark.slow
def test_report_from_a_real_tiny_grid(tmp_path):
    from collab_lib.experiments import run_grid

    run_grid("smoke", tmp_path, overrides=dict(steps=2, eval_interval=2, checkpoint_interval=2))
    path = write_report(tmp_path)
    text = path.read_text()
    assert "| independent | 1 |" in text and "| collab | 1 |" in text
    assert "Which classes each student teaches" in text and "| pole |" in text
    assert (tmp_path / "summary.png").stat().st_size > 5000
    assert (tmp_path / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # written whole, as a PNG
    assert not list(tmp_path.glob(".*.tmp")) and not list(tmp_path.glob("*.tmp"))  # no temp file left behind
    assert "## Complementarity" in text
    # The gain table's road row says collab minus independent, per student, from the runs' own numbers.
    from collab_lib.experiments import collect_results

    df = collect_results(tmp_path).set_index("configuration")
    header = next(line for line in text.splitlines() if line.startswith("| class | dml/cnn") or line.startswith("| class | collab/cnn"))
    road = next(line for line in text.split("## Per-class gain")[1].splitlines() if line.startswith("| road |"))
    cells = dict(zip([c.strip() for c in header.strip("|").split("|")[1:]], [c.strip() for c in road.strip("|").split("|")[1:]]))
    for student in ("cnn", "vit"):
        gain = 100 * (df.loc["collab", f"{student}_iou/road"] - df.loc["independent", f"{student}_iou/road"])
        assert cells[f"collab/{student}"] == f"{gain:+.1f}"
    with pytest.raises(FileNotFoundError, match="no finished run"):
        write_report(tmp_path / "empty")
    # a collab run without its weights (a committed run keeps none) is named and left out of the shares ...
    import shutil

    shutil.copytree(tmp_path / "collab" / "seed0", tmp_path / "collab" / "seed1",
                    ignore=shutil.ignore_patterns("*.pt"))
    text = write_report(tmp_path).read_text()
    assert "mean over 1 runs" in text and "(1 of the 2 collab runs have no last.pt: seed1)" in text
    assert "| class | region: CNN teaches" in text
    # ... and with none left the report says the shares were not computed, and keeps the rest
    (tmp_path / "collab" / "seed0" / "last.pt").unlink()
    text = write_report(tmp_path).read_text()
    assert "Not computed: none of the 2 collab runs here has its last.pt" in text
    assert "| class | region: CNN teaches" not in text
    assert "## Complementarity" in text and "| collab | 2 |" in text
    # the teaching shares need a checkpoint: a clear error where there is none
    from collab_lib.analysis import teaching_table

    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        teaching_table(tmp_path / "collab" / "seed0", checkpoint="missing.pt")


def test_complementarity_leads_only_beyond_the_seed_spread():
    import pandas as pd

    from collab_lib.analysis import complementarity_table

    rows = []
    for seed, (road_c, road_v, car_c, car_v, sky_c, sky_v) in enumerate([(0.80, 0.85, 0.40, 0.10, 0.70, 0.71),
                                                                        (0.81, 0.86, 0.42, 0.12, 0.72, 0.70)]):
        rows.append({"configuration": "independent", "seed": seed, "cnn_iou/road": road_c, "vit_iou/road": road_v,
                     "cnn_iou/car": car_c, "vit_iou/car": car_v, "cnn_iou/sky": sky_c, "vit_iou/sky": sky_v})
    rows.append({"configuration": "collab", "seed": 0, "cnn_iou/road": 0.0, "vit_iou/road": 1.0,
                 "cnn_iou/car": 0.0, "vit_iou/car": 1.0, "cnn_iou/sky": 0.0, "vit_iou/sky": 1.0})  # not read
    table = complementarity_table(pd.DataFrame(rows))
    assert table.loc["road", "lead"] == "vit" and table.loc["car", "lead"] == "cnn"
    assert table.loc["sky", "lead"] == "-"  # 0.71 vs 0.705: inside the spread
    assert table.loc["car", "gap"] == pytest.approx(0.30)
    assert table.loc["road", "cnn_mean"] == pytest.approx(0.805)


def _write_metrics(folder, seed, cnn, vit, sign=0.5):
    run = folder / f"seed{seed}"
    run.mkdir(parents=True)
    student = lambda miou: {"miou": miou, "iou": {"traffic sign": sign, "person": 0.25}}  # noqa: E731
    (run / "metrics.json").write_text(json.dumps({"test": {"cnn": student(cnn), "vit": student(vit)}}))


def test_paired_gain_table_pairs_by_seed(tmp_path):
    from collab_lib.analysis import paired_gain_table

    for seed, (c, v) in enumerate([(0.40, 0.30), (0.50, 0.36)]):
        _write_metrics(tmp_path / "base", seed, c, v)
    # seeds listed out of order on disk must still pair with the same seed of the baseline
    _write_metrics(tmp_path / "other", 1, 0.52, 0.35, sign=0.1)
    _write_metrics(tmp_path / "other", 0, 0.39, 0.33, sign=0.3)
    table = paired_gain_table({"base": "base", "other": "other"}, baseline="base", root=tmp_path).splitlines()
    assert table[0].startswith("| configuration | seeds |") and "CNN minus base" in table[0]
    assert table[2] == "| base | 2 | 45.0 ± 7.1 | 33.0 ± 4.2 | - | - | 50.0 / 25.0 |"
    # gains CNN -1.0, +2.0: mean +0.5, s.e. stdev 2.12 / sqrt(2) = 1.5; ViT +3.0, -1.0: +1.0, s.e. 2.83 / 1.41 = 2.0
    assert table[3] == "| other | 2 | 45.5 ± 9.2 | 34.0 ± 1.4 | +0.5 ± 1.5 (-1.0, +2.0) | +1.0 ± 2.0 (+3.0, -1.0) | 20.0 / 25.0 |"
    # one seed: no standard error, just the gain
    _write_metrics(tmp_path / "single", 0, 0.41, 0.30)
    single = paired_gain_table({"base": "base", "single": "single"}, baseline="base", root=tmp_path).splitlines()
    assert single[3].startswith("| single | 1 | 41.0 | 30.0 | +1.0 | +0.0 |")
    _write_metrics(tmp_path / "extra", 2, 0.5, 0.5)
    with pytest.raises(ValueError, match=r"extra: seeds \[2\] have no 'base' run"):
        paired_gain_table({"base": "base", "extra": "extra"}, baseline="base", root=tmp_path)
    with pytest.raises(ValueError, match="baseline 'nothing'"):
        paired_gain_table({"nothing": "nothing"}, baseline="nothing", root=tmp_path)

    # a baseline of two draws: each seed's baseline is their mean (base2: 0.42 / 0.34 and 0.46 / 0.36,
    # so the means are 0.41 / 0.32 and 0.48 / 0.36; other's CNN -2.0, +4.0: +1.0 ± 3.0; ViT +1.0, -1.0: +0.0 ± 1.0)
    for seed, (c, v) in enumerate([(0.42, 0.34), (0.46, 0.36)]):
        _write_metrics(tmp_path / "base2", seed, c, v)
    runs = {"base": "base", "base2": "base2", "other": "other"}
    two = paired_gain_table(runs, baseline=("base", "base2"), root=tmp_path).splitlines()
    assert "CNN minus mean of base and base2" in two[0]
    assert two[4] == "| other | 2 | 45.5 ± 9.2 | 34.0 ± 1.4 | +1.0 ± 3.0 (-2.0, +4.0) | +0.0 ± 1.0 (+1.0, -1.0) | 20.0 / 25.0 |"
    assert two[2].startswith("| base | 2 | 45.0 ± 7.1 | 33.0 ± 4.2 | +0.5 ± 1.5 (-1.0, +2.0) | -1.0 ± 1.0 (-2.0, +0.0) |")  # each draw vs the mean
    _write_metrics(tmp_path / "base3", 0, 0.4, 0.3)
    with pytest.raises(ValueError, match="do not have the same seeds"):
        paired_gain_table({"base": "base", "base3": "base3"}, baseline=("base", "base3"), root=tmp_path)

    # a tuple of folders pools their seeds: later seeds run elsewhere (more_base seed 2: 0.44 / 0.30,
    # more_other seed 2: 0.47 / 0.29, a gain of +3.0 / -1.0 joining -1.0, +2.0 / +3.0, -1.0)
    _write_metrics(tmp_path / "more_base", 2, 0.44, 0.30)
    _write_metrics(tmp_path / "more_other", 2, 0.47, 0.29)
    pooled = paired_gain_table({"base": ("base", "more_base"), "other": ("more_other", "other")}, baseline="base",
                               root=tmp_path).splitlines()
    # mIoU CNN 39, 52, 47: 46.0 ± 6.6; ViT 33, 35, 29: 32.3 ± 3.1 (stdev sqrt(18.67 / 2) = 3.06)
    # CNN gains -1.0, +2.0, +3.0: mean +1.33, stdev 2.08, s.e. 1.20; ViT +3.0, -1.0, -1.0: +0.33, 2.31, 1.33
    assert pooled[3].startswith("| other | 3 | 46.0 ± 6.6 | 32.3 ± 3.1 | +1.3 ± 1.2 (-1.0, +2.0, +3.0) | +0.3 ± 1.3 (+3.0, -1.0, -1.0) |")
    with pytest.raises(ValueError, match="seed 0 is in more than one of the folders"):
        paired_gain_table({"base": ("base", "base2")}, baseline="base", root=tmp_path)
    # errors name every folder of a pooled baseline
    with pytest.raises(ValueError, match=r"extra: seeds \[2\] have no 'base' run .*base, .*nothing"):
        paired_gain_table({"base": ("base", "nothing"), "extra": "extra"}, baseline="base", root=tmp_path)
    with pytest.raises(ValueError, match=r"baseline 'none': no seed\*/metrics.json under .*nothing, .*nothing2"):
        paired_gain_table({"none": ("nothing", "nothing2")}, baseline="none", root=tmp_path)


def test_paired_gains_are_per_seed_differences(tmp_path, write_split_metrics):
    from collab_lib.analysis import paired_gains

    for seed in range(3):
        write_split_metrics(tmp_path / "base", seed, 0.40, 0.40)
    for seed, g in enumerate([1, -2, 3]):
        write_split_metrics(tmp_path / "up", seed, 0.40, 0.40 + g / 100)
    runs = {"independent": "base", "up": "up"}
    gains = paired_gains(runs, "up", "vit", split="test", root=tmp_path)
    assert gains.keys() == {0, 1, 2} and gains[1] == pytest.approx(-2.0) and gains[2] == pytest.approx(3.0)
    assert paired_gains(runs, "up", "vit", split="final_val", root=tmp_path) == {0: 0.0, 1: 0.0, 2: 0.0}
    assert paired_gains(runs, "up", "cnn", root=tmp_path) == {0: 0.0, 1: 0.0, 2: 0.0}
    with pytest.raises(ValueError, match="student must be 'cnn' or 'vit'"):
        paired_gains(runs, "up", "ViT", root=tmp_path)
    write_split_metrics(tmp_path / "lonely", 9, 0.4, 0.4)
    with pytest.raises(ValueError, match=r"lonely: seeds \[9\] have no 'independent' run"):
        paired_gains({"independent": "base", "lonely": "lonely"}, "lonely", "vit", root=tmp_path)
    with pytest.raises(ValueError, match="'nothing': no seed"):
        paired_gains({"independent": "base", "nothing": "nothing"}, "nothing", "vit", root=tmp_path)


def test_the_library_holds_no_study():
    """The kit's own studies live in research/ledger.py: no results/ folder is named in collab_lib.analysis,
    no function defaults to one, and analysis imports no course helper."""
    import inspect

    from collab_lib import analysis

    source = inspect.getsource(analysis)
    assert "results/sweeps" not in source and "STUDY" not in source
    assert "from .course" not in source and "import course" not in source
    assert inspect.signature(analysis.paired_gain_table).parameters["runs"].default is inspect.Parameter.empty


def test_a_gain_paired_across_machines_is_warned_about(tmp_path, write_split_metrics):
    """Runs paired on a seed whose config.json "machine" records differ (another processor's kernels round
    otherwise) give a warning naming the seed and what differs; one machine, or runs without a record (made
    before it existed), give none."""
    import warnings

    from collab_lib.analysis import paired_gain_table, paired_gains

    here = {"processor": "CPU A", "cpu_capability": "AVX512", "cpu_flags_sha1": "abc", "threads": 1, "gpu": None}
    for seed in (0, 1):
        write_split_metrics(tmp_path / "base", seed, 0.40, 0.40)
        write_split_metrics(tmp_path / "other", seed, 0.42, 0.43)
    runs = {"base": "base", "other": "other"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no records at all: nothing to compare, no warning
        assert paired_gains(runs, "other", "vit", "base", root=tmp_path) == pytest.approx({0: 3.0, 1: 3.0})
        for folder in ("base", "other"):
            for seed in (0, 1):
                (tmp_path / folder / f"seed{seed}" / "config.json").write_text(json.dumps({"machine": here}))
        paired_gains(runs, "other", "vit", "base", root=tmp_path)  # one machine: no warning
        paired_gain_table(runs, baseline="base", classes=(), root=tmp_path)
    (tmp_path / "other" / "seed1" / "config.json").write_text(
        json.dumps({"machine": {**here, "processor": "CPU B", "cpu_capability": "AVX2"}}))
    for read in (lambda: paired_gains(runs, "other", "vit", "base", root=tmp_path),
                 lambda: paired_gain_table(runs, baseline="base", classes=(), root=tmp_path)):
        with pytest.warns(UserWarning, match=r"different machines \(the run under other -> the one it is paired with "
                                             r"under base\): seed 1 \(processor: CPU B -> CPU A, "
                                             r"cpu_capability: AVX2 -> AVX512\)") as caught:
            read()
        assert "seed 0" not in str(caught[0].message)
