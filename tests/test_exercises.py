"""collab_lib.exercises: every exercise's check accepts the right answer, rejects plausible wrong ones with the
message meant for each, answers None and a wrong type with a message (never a traceback), and its hint does
not give the answer away."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from collab_lib import exercises, mistakes
from collab_lib.metrics import ConfusionMatrix

CLASS_NAMES = ["road", "sidewalk", "building", "fence", "pole", "traffic sign", "vegetation", "terrain", "sky",
               "person", "car"]


def _labels():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (2, 8, 8), generator=g)
    labels[0, 0] = 255
    return labels


def _road_guess():
    labels = _labels()
    matrix = ConfusionMatrix(len(CLASS_NAMES))
    matrix.update(torch.zeros_like(labels), labels)
    return matrix.compute()


def _fake_runs(tmp_path):
    """A cell of two one-seed runs (independent, collab) with the metrics gain_against_gap reads."""
    values = {"independent": {"train": (0.60, 0.55), "val": (0.40, 0.35)},
              "collab": {"train": (0.58, 0.54), "val": (0.41, 0.37)}}
    runs = {}
    for name, v in values.items():
        folder = tmp_path / name / "seed0"
        folder.mkdir(parents=True)
        metrics = {split: {"cnn": {"miou": v[key][0]}, "vit": {"miou": v[key][1]}}
                   for split, key in (("final_train", "train"), ("final_val", "val"), ("test", "val"))}
        (folder / "metrics.json").write_text(json.dumps(metrics))
        runs[name] = str(tmp_path / name)
    return runs  # gaps 20 / 20 points; gains +1.0 / +2.0


# ---- answers: functions a learner might write -----------------------------------------------------------
def distill_kl(z_t, z_s, T):
    log_q = F.log_softmax(z_t / T, 0).detach()
    return T ** 2 * (log_q.exp() * (log_q - F.log_softmax(z_s / T, 0))).sum()


def distill_kl_reversed(z_t, z_s, T):
    log_q, log_p = F.log_softmax(z_t / T, 0).detach(), F.log_softmax(z_s / T, 0)
    return T ** 2 * (log_p.exp() * (log_p - log_q)).sum()


def distill_kl_no_t2(z_t, z_s, T):
    return distill_kl(z_t, z_s, T) / T ** 2


def distill_kl_attached(z_t, z_s, T):
    log_q = F.log_softmax(z_t / T, 0)
    return T ** 2 * (log_q.exp() * (log_q - F.log_softmax(z_s / T, 0))).sum()


def selective_dml(z_c, z_v, target):
    valid = target != 255
    return valid & (z_c.argmax(1) == target), valid & (z_v.argmax(1) == target)


def better_classes(cnn, vit, names):
    known = [(n, c, v) for n, c, v in zip(names, cnn, vit) if c is not None and v is not None]
    return [n for n, c, v in known if v > c], [n for n, c, v in known if c > v]


def better_classes_none_as_zero(cnn, vit, names):
    return better_classes([c or 0.0 for c in cnn], [v or 0.0 for v in vit], names)


def d_pearson(a, b):
    centred = lambda t: t - t.mean(1, keepdim=True)  # noqa: E731
    return 2 - 2 * F.cosine_similarity(centred(a), centred(b), dim=1)


def entropy_direction(z_c, z_v, size):
    def h(z):
        log_p = F.log_softmax(z, 1)
        return F.avg_pool2d(-(log_p.exp() * log_p).sum(1, keepdim=True), size, ceil_mode=True)[:, 0]
    return torch.sign(h(z_v) - h(z_c)).long()


def learner_wrong(z_c, z_v, target, T=1.0):
    return mistakes.pixel_bsd(z_c, z_v, target, T, learner_wrong=True)


def sharpening_share(teaches, right):
    count = int(teaches.sum())
    return float((teaches & right).sum()) / count if count else float("nan")


def _road(wrong_miou=False):
    result = _road_guess()
    return {"road IoU": result["iou"][0], "mIoU": result["iou"][0] / 11 if wrong_miou else result["miou"]}


# (notebook, number) -> (right answer, [(wrong answer, words its message must hold)], context factory or None,
#                        words the hint must not hold)
CASES = {
    ("00", 1): ({0.01: [1, 0, 0, 0], 1000: [0.25] * 4},
                [({0.01: [0.25] * 4, 1000: [1, 0, 0, 0]}, "swapped"), ({0.01: [0, 1, 0, 0], 1000: [0.25] * 4}, "LARGEST"),
                 ({0.01: [1, 0, 0], 1000: [0.25] * 4}, "4 numbers")], None, ("0.25", "one-hot")),
    ("00", 2): (4.0, [(2.0, "one power of T"), (0.25, "wrong way round"), (1.0, "WITH the T^2")], None, ("4", "1/T^2")),
    ("00", 3): (distill_kl, [(distill_kl_reversed, "learner to teacher"), (distill_kl_no_t2, "missing T^2"),
                             (distill_kl_attached, "carries gradient"),
                             (lambda z_t, z_s, T: float(distill_kl(z_t, z_s, T)), "one-number tensor")], None,
                (".detach()", "T**2", "log_softmax")),
    ("00", 4): ({"iou": None, "miou": 7 / 18},
                [({"iou": 0.0, "miou": 7 / 18}, "never there"), ({"iou": None, "miou": (2 / 3 + 1 / 2) / 4}, "four classes"),
                 ({"iou": None, "miou": (2 / 3 + 1 / 2) / 2}, "class 2 is in the labels")], None, ("None", "0.3889")),
    ("00", 5): (selective_dml, [(lambda c, v, t: mistakes.pixel_bsd(c, v, t)[1:], "that is BSD"),
                                (lambda c, v, t: selective_dml(c, v, t)[::-1], "swapped"),
                                (lambda c, v, t: (t != 255, t != 255), "DML itself")], None, ("argmax",)),
    ("01", 1): (_road(), [(_road(wrong_miou=True), "all 11 classes"), ({"road IoU": 1.0, "mIoU": 0.1}, "false positive")],
                lambda tmp: {"labels": _labels(), "class_names": CLASS_NAMES}, ("1 /",)),
    ("01", 2): (["aspp", "fuse", "classifier"], [(["aspp", "fuse"], "classifier reads"), (["backbone", "aspp"], "backbone"),
                                                 (["aspp", "fuse", "classifier", "skip"], "skip is a 1x1")], None,
                ("aspp", "fuse", "classifier")),
    ("01", 3): (better_classes, [(better_classes_none_as_zero, "None is not 0"),
                                 (lambda c, v, n: better_classes(c, v, n)[::-1], "swapped")], None, ("neither",)),
    ("02", 1): ({"scaled": 0, "negated": 4, "shifted": 0},
                [({"scaled": 0, "negated": 0, "shifted": 0}, "not the sign"), ({"scaled": 0, "negated": 2, "shifted": 0},
                                                                                "unrelated")], None, ("4", "rho = -1")),
    ("02", 2): ({"full at": 80, "pixel weight at 20": 0.075},
                [({"full at": 20, "pixel weight at 20": 0.075}, "fraction of the training"),
                 ({"full at": 80, "pixel weight at 20": 0.25}, "r(t) alone"),
                 ({"full at": 80, "pixel weight at 20": 0.015}, "not t / t_max")], None, ("80", "0.075")),
    ("02", 3): (d_pearson, [(lambda a, b: 2 - 2 * F.cosine_similarity(a, b, dim=1), "centres each vector"),
                            (lambda a, b: (1 - d_pearson(a, b) / 2) * 1.0, "that is rho itself"),
                            (lambda a, b: d_pearson(a, b).mean(), "one value per location")], None, ("2 - 2",)),
    ("02", 4): ({"rotated": 1.0, "noise": 0.01}, [({"rotated": 0.6, "noise": 0.01}, "invariant"),
                                                  ({"rotated": 1.0, "noise": 0.9}, "too high")], None, ("1.0", "invariant")),
    ("03", 1): ("flipped", [("unchanged", "swaps the CEs"), ("nothing", "trade places")], None, ("flip", "sign")),
    ("03", 2): ({8: 8, 4: 32, 2: 128, 1: 512, 3: 66}, [({8: 8, 4: 32, 2: 128, 1: 512, 3: 50}, "ceil, not floor")], None,
                ("66", "ceil")),
    ("03", 3): (lambda ce, valid, size: mistakes.region_ce(ce, valid, size),
                [(lambda ce, valid, size: mistakes.region_ce(ce, valid, size, count_ignore=True), "counts ignore pixels"),
                 (lambda ce, valid, size: mistakes.region_ce(ce, valid, size, empty="0"), "no CE: NaN"),
                 (lambda ce, valid, size: mistakes.region_ce(ce, valid, size, grid="floor"), "partial regions")], None,
                ("NaN",)),
    ("03", 4): (entropy_direction, [(lambda c, v, s: -entropy_direction(c, v, s), "reversed")], None, ("torch.sign",)),
    ("04", 1): ({"masks": "same", "KL": "down", "KL x T^2": "approaches a constant"},
                [({"masks": "change", "KL": "down", "KL x T^2": "approaches a constant"}, "decision is taken at T = 1"),
                 ({"masks": "same", "KL": "down", "KL x T^2": "constant"}, "only in the large-T limit")], None,
                ("same", "down", "approaches")),
    ("04", 2): (learner_wrong, [(lambda c, v, t, T=1.0: mistakes.pixel_bsd(c, v, t, T), "paper's rule"),
                                (lambda c, v, t, T=1.0: mistakes.pixel_bsd(c, v, t, T, learner_wrong=True, reverse=True),
                                 "learner to teacher"),
                                (lambda c, v, t, T=1.0: mistakes.pixel_bsd(c, v, t, T, learner_wrong=True, t_power=0),
                                 "missing T^2"),
                                (lambda c, v, t, T=1.0: mistakes.pixel_bsd(c, v, t, T, learner_wrong=True, detach=False),
                                 "carries gradient"),
                                (lambda c, v, t, T=1.0: mistakes.pixel_bsd(c, v, t, T, learner_wrong=True,
                                                                           normaliser="valid"), "wrong normaliser")],
                None, ("~right_vit", "~right_cnn")),
    ("04", 3): ("equal", [("T^2 times", "multiplies the loss"), ("half", "nothing is halved")], None, ("equal",)),
    ("04", 4): (sharpening_share, [(lambda t, r: float((t & r).sum()) / t.numel(), "all the pixels"),
                                   (lambda t, r: float((t & ~r).sum()) / max(int(t.sum()), 1), "corrections"),
                                   (lambda t, r: float((t & r).sum()), "a count")], None, (".sum() /",)),
    ("04", 5): ("sharpening", [("correcting", "the other way")], None, ("sharpening",)),
    ("06", 1): ({"seed below": 14, "vit seeds above dml": 0},
                [({"seed below": 16, "vit seeds above dml": 0}, "below 0"), ({"seed below": 14, "vit seeds above dml": 3},
                                                                             "count the seeds")], None, ("seed 14",)),
    ("06", 2): ({"vit leads": 0, "cnn leads": 8, "gains most": "vit"},
                [({"vit leads": 3, "cnn leads": 8, "gains most": "vit"}, "lead"),
                 ({"vit leads": 0, "cnn leads": 8, "gains most": "cnn"}, "something to learn")], None, ("8",)),
    ("06", 3): ({"gap": {"cnn": 20.0, "vit": 20.0}, "gain": {"cnn": 1.0, "vit": 2.0}, "one seed enough": False},
                [({"gap": {"cnn": -20.0, "vit": -20.0}, "gain": {"cnn": 1.0, "vit": 2.0}, "one seed enough": False},
                  "training mIoU minus val"),
                 ({"gap": {"cnn": 20.0, "vit": 20.0}, "gain": {"cnn": -1.0, "vit": -2.0}, "one seed enough": False},
                  "collab minus independent"),
                 ({"gap": {"cnn": 20.0, "vit": 20.0}, "gain": {"cnn": 1.0, "vit": 2.0}, "one seed enough": True},
                  "cannot tell")],
                lambda tmp: {"runs": _fake_runs(tmp)}, ("False",)),
}


def _exercise(key):
    return exercises.load(key[0])[key[1] - 1]


def test_all_exercises_lists_every_exercise_once_numbered_per_notebook():
    rows = [(e.notebook, e.number, e.title) for e in exercises.all_exercises()]
    assert len(rows) == len(set(rows)) == len(CASES)
    for notebook in dict.fromkeys(n for n, _, _ in rows):
        numbers = [k for n, k, _ in rows if n == notebook]
        assert numbers == list(range(1, len(numbers) + 1)), notebook
    assert {(n[:2], k) for n, k, _ in rows} == set(CASES)


@pytest.mark.parametrize("key", list(CASES), ids=[f"{n}-q{k}" for n, k in CASES])
def test_check_accepts_the_right_answer_and_names_each_wrong_ones_mistake(key, tmp_path, capsys):
    right, wrongs, context, _ = CASES[key]
    extra = context(tmp_path) if context else {}
    exercise = _exercise(key)
    assert exercise.check(right, **extra) is True, capsys.readouterr().out
    assert capsys.readouterr().out.startswith("Correct: ")
    for answer, words in wrongs:
        assert exercise.check(answer, **extra) is False
        said = capsys.readouterr().out
        assert said.startswith("Not yet: ") and words in said, (words, said)


@pytest.mark.parametrize("key", list(CASES), ids=[f"{n}-q{k}" for n, k in CASES])
def test_none_a_wrong_type_and_a_raising_function_get_a_message_not_a_traceback(key, tmp_path, capsys):
    _, _, context, _ = CASES[key]
    extra = context(tmp_path) if context else {}
    exercise = _exercise(key)

    def raises(*args):
        raise TypeError("boom")

    for answer in (None, object(), "nonsense", 3, raises):
        assert exercise.check(answer, **extra) is False
        said = capsys.readouterr().out
        assert said.startswith("Not yet: ") and "Traceback" not in said and "Error: " not in said, said
    exercise.check()
    assert "no answer yet" in capsys.readouterr().out


def test_a_check_that_needs_the_notebooks_data_says_so():
    assert exercises.load("01")[0].check({"road IoU": 0.5, "mIoU": 0.1}) is False


@pytest.mark.parametrize("key", list(CASES), ids=[f"{n}-q{k}" for n, k in CASES])
def test_hint_and_solution_print_and_the_hint_gives_nothing_away(key, capsys):
    exercise = _exercise(key)
    exercise.hint()
    hint = capsys.readouterr().out
    exercise.solution()
    solution = capsys.readouterr().out
    assert hint.startswith("Hint") and solution.startswith("Solution") and len(hint) > 40
    for words in CASES[key][3]:
        assert words not in exercise.hint_text, (words, exercise.hint_text)


def test_the_primer_numbers_the_checks_quote_are_the_primers():
    """04's exercise 1 and 00's exercise 2 quote |grad| x T^2 = 1.09, 1.35, 1.40 at T = 1, 2, 4 and a factor of
    about 3.2 from T = 1 to 2: notebook 00's example (seed 0, K = 11), recomputed."""
    torch.manual_seed(0)
    z_t, z_s = 3 * torch.randn(11), 3 * torch.randn(11)
    norms = {}
    for T in (1, 2, 4):
        leaf = z_s.clone().requires_grad_()
        (grad,) = torch.autograd.grad(mistakes.distill_term(z_t, leaf, T, t_power=0), leaf)
        norms[T] = float(grad.norm())
    assert [round(norms[T] * T ** 2, 2) for T in (1, 2, 4)] == [1.09, 1.35, 1.40]
    assert round(norms[1] / norms[2], 1) == 3.2
    assert not math.isnan(norms[4])


def test_a_learners_empty_stub_is_told_to_write_its_body(capsys):
    def distill_kl(z_teacher, z_student, T):
        ...  # the notebook's starter cell, unedited

    assert exercises.load("00")[2].check(distill_kl) is False
    assert "returns None: write its body" in capsys.readouterr().out
