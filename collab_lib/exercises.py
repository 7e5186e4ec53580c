"""Exercises that answer back: `check(answer)`, `hint()` and `solution()` for every exercise of the course.

After Kaggle Learn's learntools (`q1.check()`, `q1.hint()`, `q1.solution()`). In a notebook:

    from collab_lib.exercises import load
    q1, q2, q3 = load("01")        # the exercises of notebook 01, in order
    q1.check(answer)                 # True or False; prints what is right, or the likely mistake
    q1.hint()                        # a nudge, never the answer
    q1.solution()                    # the answer and why (the collapsed cell below it has the worked code)

An answer is whatever the exercise asks for: a number, a dict of numbers, one of a few words (a
prediction is an answer too), or a function, which `check` runs on cases of its own beside the
reference and beside the mistaken versions of `collab_lib.mistakes`, to name the mistake your
function reproduces. A few checks also need what the notebook computed (`check(answer, labels=...)`);
the exercise's cell shows how. A wrong type, `None` or a function that raises gets a message, never a
traceback. `all_exercises()` lists every exercise (notebook, number, title).
"""
from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from . import mistakes

REPO_ROOT = Path(__file__).resolve().parents[1]
_NOTHING = object()


class Wrong(Exception):
    """A checker's verdict that the answer is not right; the message says what is wrong with it."""


@dataclass(frozen=True)
class Exercise:
    notebook: str  # the notebook's file stem, e.g. "00_primer"
    number: int
    title: str
    hint_text: str = field(repr=False)
    solution_text: str = field(repr=False)
    checker: Callable = field(repr=False)  # (answer, **context) -> message; raises Wrong
    needs: tuple = ()  # keyword arguments `check` needs besides the answer

    def check(self, answer=_NOTHING, **context) -> bool:
        """True when `answer` is right. Prints what is right, or what is wrong and the likely mistake."""
        if answer is _NOTHING or answer is None or answer is Ellipsis:
            return _say(False, f"no answer yet: write yours, then `q{self.number}.check(answer)` "
                               f"(`q{self.number}.hint()` for a hint)")
        missing = [name for name in self.needs if name not in context]
        if missing:
            return _say(False, "this check also needs " + ", ".join(f"`{n}=...`" for n in missing)
                        + " (as the exercise's cell passes them)")
        try:
            return _say(True, self.checker(answer, **context))
        except Wrong as verdict:
            return _say(False, str(verdict))
        except Exception as exc:  # an answer of a shape no message foresaw: still a message, not a traceback
            return _say(False, f"your answer could not be checked ({_describe(exc)}); `q{self.number}.hint()` "
                               "says what form it takes")

    def hint(self) -> None:
        print(f"Hint ({self.notebook}, exercise {self.number}): {self.hint_text}")

    def solution(self) -> None:
        print(f"Solution ({self.notebook}, exercise {self.number}): {self.solution_text}\n"
              "The collapsed cell below the exercise has the worked code.")


def _say(ok: bool, message: str) -> bool:
    print(("Correct: " if ok else "Not yet: ") + message)
    return ok


def _describe(exc: BaseException) -> str:
    # "TypeError (text)", never "TypeError: text", which reads as a crash in a notebook's output
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__} ({text})" if text else type(exc).__name__


# ---- reading answers --------------------------------------------------------------------------------------
def _key(k):
    """A dict key as compared: a number when it reads as one ('T = 0.01' -> 0.01), else lower-case words."""
    if isinstance(k, bool):
        return k
    if isinstance(k, (int, float)):
        return float(k)
    text = " ".join(str(k).lower().replace("_", " ").replace("-", " ").split())
    try:
        return float(text.replace("t", "").replace("=", "").strip())
    except ValueError:
        return text


def _entries(answer, keys, what="your answer") -> dict:
    """{key: value} for the expected keys (numbers or lower-case words), from a dict answer."""
    if not isinstance(answer, dict):
        raise Wrong(f"{what} should be a dict with the keys {', '.join(map(repr, keys))}; you gave {answer!r}")
    given = {_key(k): v for k, v in answer.items()}
    missing = [k for k in keys if _key(k) not in given]
    if missing:
        raise Wrong(f"{what} lacks the key(s) {', '.join(map(repr, missing))} (it has {', '.join(map(repr, answer))})")
    return {k: given[_key(k)] for k in keys}


def _number(value, what: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict, str)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Wrong(f"{what} should be a number; you gave {value!r}")
    return float(value)


def _vector(value, what: str, length: int) -> list:
    if isinstance(value, torch.Tensor):
        value = value.detach().flatten().tolist()
    elif hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or len(value) != length:
        raise Wrong(f"{what} should be {length} numbers; you gave {value!r}")
    return [_number(v, what) for v in value]


def _choice(value, what: str, choices: dict) -> str:
    """One of the canonical words in `choices` ({canonical: (synonyms...)}), from any of its spellings."""
    if not isinstance(value, str):
        raise Wrong(f"{what} should be one of {', '.join(map(repr, choices))}; you gave {value!r}")
    text = " ".join(value.lower().replace("_", " ").replace("-", " ").split())
    for canonical, synonyms in choices.items():
        if text == canonical or text in synonyms:
            return canonical
    raise Wrong(f"{what}: {value!r} is not one of {', '.join(map(repr, choices))}")


def _function(value, what: str):
    if not callable(value):
        raise Wrong(f"{what} should be a function (pass its name, without calling it); you gave {value!r}")
    return value


def _call(fn, *args):
    try:
        result = fn(*args)
    except Wrong:
        raise
    except Exception as exc:
        raise Wrong(f"your function stopped with {_describe(exc)} when called as in the exercise") from None
    if result is None:
        raise Wrong("your function returns None: write its body (it should return its answer), then check again")
    return result


def _mask(value, shape, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dtype != torch.bool or tuple(value.shape) != tuple(shape):
        got = f"{value.dtype} of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
        raise Wrong(f"{what} should be a bool tensor of the labels' shape {tuple(shape)}; you gave {got}")
    return value


def _names(value, what: str) -> set:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise Wrong(f"{what} should be a list (or set) of names; you gave {value!r}")
    return set(value)


def _close(a: float, b: float, tol: float) -> bool:
    return math.isfinite(a) and abs(a - b) <= tol


# ---- diagnosing a function against the mistaken versions ---------------------------------------------------
def _same(a, b, tol=1e-4) -> bool:
    """Outputs equal: nested lists of tensors / numbers / bools, numbers within `tol` (relative and absolute)."""
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        if not isinstance(b, torch.Tensor) or a.shape != b.shape:
            return False
        if a.dtype == torch.bool or b.dtype == torch.bool:
            return torch.equal(a.bool(), b.bool())
        return torch.allclose(a.double(), b.double(), rtol=tol, atol=tol, equal_nan=True)
    return abs(float(a) - float(b)) <= tol * (1 + abs(float(b)))


def _diagnose(outputs, reference, variants: dict, what: str):
    """Raise Wrong naming the mistake (or the pair of mistakes) whose outputs equal `outputs`, else a plain
    difference. variants: {name: (outputs of the mistaken version, message)}."""
    if _same(outputs, reference):
        return
    for name, (out, message) in variants.items():
        if _same(outputs, out):
            raise Wrong(message)
    raise Wrong(what)


def _with_grads(fn, cases, *, result: Callable = lambda out: out):
    """For each case (tensors..., extra args...): [value, masks..., grad wrt each tensor] of fn's answer.

    result(out) -> (loss tensor, [masks]) picks the parts of the answer."""
    rows = []
    for tensors, extra in cases:
        leaves = [t.clone().requires_grad_() for t in tensors]
        loss, masks = result(_call(fn, *leaves, *extra))
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise Wrong("your function should return the loss as a one-number tensor (not a float: the gradient "
                        f"flows through the tensor); you gave {type(loss).__name__}"
                        + (f" of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else ""))
        if not loss.requires_grad:
            raise Wrong("your loss carries no gradient: compute it from the logits you were given, without "
                        ".item(), .detach() on the learner's side or torch.no_grad()")
        grads = torch.autograd.grad(loss.reshape(()), leaves, allow_unused=True)
        rows.append([loss.detach().reshape(()), *masks,
                     *[torch.zeros_like(t) if g is None else g for t, g in zip(leaves, grads)]])
    return rows


# ---- 00 primer ---------------------------------------------------------------------------------------------
PRIMER_LOGITS = (4.0, 2.5, 0.5, -1.0)  # road, sidewalk, car, pole (notebook 00, section 1)


def _primer_1(answer):
    parts = _entries(answer, (0.01, 1000))
    cold, hot = (_vector(parts[T], f"p^T at T = {T:g}", 4) for T in (0.01, 1000))
    for T, p in ((0.01, cold), (1000, hot)):
        if min(p) < -1e-6 or abs(sum(p) - 1) > 0.02:
            raise Wrong(f"p^T at T = {T:g} is not a distribution (entries >= 0 summing to 1; yours sums to {sum(p):.3f})")
    one_hot, uniform = [1.0, 0.0, 0.0, 0.0], [0.25] * 4
    near = lambda p, q: max(abs(a - b) for a, b in zip(p, q)) < 0.01  # noqa: E731
    at_one = F.softmax(torch.tensor(PRIMER_LOGITS), 0).tolist()
    if near(cold, uniform) and near(hot, one_hot):
        raise Wrong("the two limits are swapped: dividing by a small T magnifies the logits' differences (one class "
                    "takes everything), dividing by a large T shrinks them towards 0 (every class alike)")
    if not near(cold, one_hot):
        if max(cold) > 0.99:
            raise Wrong("at T = 0.01 the mass goes to the class with the LARGEST logit: road, the first")
        if near(cold, at_one):
            raise Wrong("that is the softmax at T = 1; at T = 0.01 the differences of the logits are multiplied by 100")
        raise Wrong(f"at T = 0.01 you gave {[round(v, 3) for v in cold]}; what happens to exp(z_i / T) for the largest "
                    "z_i against the others as T -> 0?")
    if not near(hot, uniform):
        if near(hot, at_one):
            raise Wrong("that is the softmax at T = 1; at T = 1000 every z_i / T is close to 0")
        raise Wrong(f"at T = 1000 you gave {[round(v, 3) for v in hot]}; with every z_i / T close to 0, how do the "
                    "exponentials compare?")
    return ("T = 0.01 puts all the mass on road, the largest logit (the argmax as a one-hot); T = 1000 gives every "
            "class 1/K = 0.25. The temperature sharpens or flattens; it never changes the order of the classes.")


def _primer_2(answer):
    ratio = _number(answer, "your factor")
    if 3.8 <= ratio <= 4.2:
        return (f"{ratio:.2f}: doubling T divides the gradient by about 2^2 = 4 at large T, one 1/T from the chain rule "
                "of z / T and one because the softened distributions themselves move closer. T^2 undoes both, but only "
                "in that limit: at T = 1 -> 2 the factor is about 3.2 (section 2's table)")
    if 0.2 <= ratio <= 0.3:
        raise Wrong("you gave the ratio the wrong way round: the gradient shrinks as T grows, so |grad| at T = 16 "
                    "divided by |grad| at T = 32 is larger than 1")
    if 1.8 <= ratio <= 2.2:
        raise Wrong("2 is one power of T: the 1/T of the chain rule. The difference p_student^T - p_teacher^T "
                    "shrinks like 1/T too")
    if 0.9 <= ratio <= 1.1:
        raise Wrong("1 is what you get WITH the T^2 factor (that is its purpose); the question is the KL alone")
    if ratio > 4.2:
        raise Wrong(f"{ratio:g} is too large: count the powers of 1/T in the large-T formula of section 2")
    raise Wrong(f"{ratio:g} is not the factor; the large-T formula of section 2 says how the gradient scales with T")


def _distill_cases():
    g = torch.Generator().manual_seed(11)
    pairs = [(3 * torch.randn(7, generator=g), 3 * torch.randn(7, generator=g)) for _ in range(2)]
    return [((zt, zs), (T,)) for T in (1.0, 2.0, 4.0) for zt, zs in pairs]


def _primer_3(answer):
    fn = _function(answer, "your answer")
    cases = _distill_cases()
    single = lambda out: (out, [])  # noqa: E731
    mine = _with_grads(fn, cases, result=single)
    reference = _with_grads(mistakes.distill_term, cases, result=single)
    switches = {"reverse": dict(reverse=True), "t_power=0": dict(t_power=0), "t_power=1": dict(t_power=1),
                "detach=False": dict(detach=False), "soft_ce": dict(soft_ce=True),
                "temperature_on=learner": dict(temperature_on="learner")}
    combos = [(name,) for name in switches] + list(itertools.combinations(switches, 2))
    variants = {}
    for combo in combos:
        kwargs = {k: v for name in combo for k, v in switches[name].items()}
        message = (mistakes.MISTAKES[combo[0]] if len(combo) == 1 else
                   "two things: " + "; and ".join(mistakes.MISTAKES[name] for name in combo))
        variants[" + ".join(combo)] = (_with_grads(lambda t, s, T, kw=kwargs: mistakes.distill_term(t, s, T, **kw),
                                                   cases, result=single), message)
    values = ", ".join(f"T = {c[1][0]:g}: {float(m[0]):.4f} (reference {float(r[0]):.4f})"
                       for c, m, r in list(zip(cases, mine, reference))[::2])
    _diagnose(mine, reference, variants, f"your values or gradients differ from T^2 KL(sg(p_teacher^T) || p_student^T): "
                                         f"{values}")
    return ("T^2 * KL(sg(p_teacher^T) || p_student^T): the teacher first (it weighs the classes), detached, both "
            "sides at T, times T^2. Its value and both gradients match the reference at T = 1, 2 and 4.")


def _primer_4(answer):
    parts = _entries(answer, ("iou", "miou"))
    iou = parts["iou"]
    if iou is not None and not (isinstance(iou, float) and math.isnan(iou)):
        value = _number(iou, "the new class's IoU")
        if value == 0:
            raise Wrong("0 would say the class was missed; it was never there (TP = FP = FN = 0): its IoU is 0/0, "
                        "undefined. Write None (the kit's ConfusionMatrix does)")
        raise Wrong(f"the new class has TP = FP = FN = 0: its IoU is 0/0, not {value:g}. Write None")
    miou = _number(parts["miou"], "the mIoU")
    right = (2 / 3 + 1 / 2 + 0.0) / 3
    if _close(miou, right, 1e-3):
        return (f"the absent class has no IoU (None) and the mIoU stays {right:.4f}, the mean over the three classes "
                "present in labels or predictions (class 2 counts with IoU 0: it is in the labels)")
    if _close(miou, (2 / 3 + 1 / 2) / 4, 1e-3):
        raise Wrong("you averaged over four classes: the absent class is left out of the mean, not counted as 0")
    if _close(miou, (2 / 3 + 1 / 2) / 2, 1e-3):
        raise Wrong("class 2 is in the labels (and never predicted right): it is present, its IoU 0 counts")
    if math.isnan(miou):
        raise Wrong("NaN: the mean must skip the class that has no IoU")
    raise Wrong(f"the mIoU is not {miou:.4f}: average the IoUs of the classes present in labels or predictions")


PRIMER_TOY = {  # notebook 00's six pixels (2 x 3), three classes: label, CNN logits, ViT logits
    "labels": [[0, 1, 2], [0, 1, 255]],
    "cnn": [[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [2.0, 0.0, 0.5], [2.0, 2.2, -3.0], [0.0, 0.5, 1.0], [0.0, 0.0, 0.0]],
    "vit": [[1.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.0, 2.0, 0.0], [0.3, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 0.0]],
}


def _toy_tensors(toy: dict):
    """A six-pixel toy as tensors: (logits_cnn (1, 3, 2, 3), logits_vit, labels (1, 2, 3))."""
    as_map = lambda rows: torch.tensor(rows).T.reshape(1, 3, 2, 3).contiguous()  # noqa: E731
    return as_map(toy["cnn"]), as_map(toy["vit"]), torch.tensor([toy["labels"]])


def primer_toy():
    """Notebook 00's toy as tensors: (logits_cnn (1, 3, 2, 3), logits_vit, labels (1, 2, 3))."""
    return _toy_tensors(PRIMER_TOY)


def _random_logits(seed: int, shape, scale: float = 1.0):
    """(logits_cnn, logits_vit, labels) of `shape` (B, K, H, W), some labels 255: a random case for a check."""
    g = torch.Generator().manual_seed(seed)
    z_c, z_v = scale * torch.randn(*shape, generator=g), scale * torch.randn(*shape, generator=g)
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    target[-1, :, :2] = 255
    return z_c, z_v, target


def _mask_cases():
    return [primer_toy(), _random_logits(5, (2, 4, 5, 6))]


def _primer_5(answer):
    fn = _function(answer, "your answer")
    mine, reference, variants = [], [], {}
    messages = {
        "bsd": "you compared the two CEs: that is BSD. Selective DML lets every student that is right teach, both "
               "ways where both are right",
        "swapped": "your masks are swapped: the first is where the CNN teaches (the CNN is right there)",
        "wrong": "your masks mark where a student is WRONG: a student teaches where it is right",
        "dml": "every valid pixel both ways is DML itself: selective DML keeps only the right students",
        "one right": "you left out the pixels where both are right: selective DML transfers both ways there",
    }
    for z_c, z_v, target in _mask_cases():
        out = _call(fn, z_c, z_v, target)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise Wrong("return two masks: (where the CNN teaches, where the ViT teaches)")
        mine.append([_mask(m, target.shape, f"mask {k + 1}") for k, m in enumerate(out)])
        right_c, right_v = mistakes.is_right(z_c, target), mistakes.is_right(z_v, target)
        valid = target != 255
        _, bsd_c, bsd_v = mistakes.pixel_bsd(z_c, z_v, target)
        reference.append([right_c, right_v])
        for name, masks in (("bsd", [bsd_c, bsd_v]), ("swapped", [right_v, right_c]),
                            ("wrong", [valid & ~right_c, valid & ~right_v]), ("dml", [valid, valid]),
                            ("one right", [right_c & ~right_v, right_v & ~right_c])):
            variants.setdefault(name, ([], messages[name]))[0].append(masks)
    _diagnose(mine, reference, variants, "your masks differ from 'each student teaches wherever it is right' on some "
                                         "pixels: print them beside `who` on the toy")
    return ("each student teaches wherever its argmax is the label, both ways where both are right; BSD keeps one "
            "direction there (the lower CE), so the two differ exactly on the both-right pixels")


# ---- 01 data and students ----------------------------------------------------------------------------------
def _data_1(answer, labels, class_names, ignore_index=255):
    from .metrics import ConfusionMatrix

    parts = _entries(answer, ("road iou", "miou"))
    road_iou, miou = _number(parts["road iou"], "road's IoU"), _number(parts["miou"], "the mIoU")
    road = list(class_names).index("road")
    matrix = ConfusionMatrix(len(class_names), ignore_index)
    matrix.update(torch.full_like(labels, road), labels)
    result = matrix.compute()
    true_road, true_miou, present = result["iou"][road], result["miou"], sum(result["present"])
    if not _close(road_iou, true_road, 1e-3):
        if _close(road_iou, 1.0, 1e-6):
            raise Wrong("road's IoU is TP / (TP + FP + FN): every non-road pixel predicted road is a false positive")
        raise Wrong(f"road's IoU is not {road_iou:.4f}: TP / (TP + FP + FN) with every valid pixel predicted road")
    if _close(miou, true_road / len(class_names), 1e-3) and present != len(class_names):
        raise Wrong(f"you divided by all {len(class_names)} classes: the mean runs over the {present} classes present "
                    "in the labels or the predictions")
    if _close(miou, true_road, 1e-3):
        raise Wrong("the other classes present count too, each with IoU 0 (TP = 0)")
    if not _close(miou, true_miou, 1e-3):
        raise Wrong(f"the mIoU is not {miou:.4f}: road's IoU and a 0 for each other class present, averaged")
    return (f"road's IoU {true_road:.3f} is the share of valid pixels that are road; every other class scores 0, so "
            f"the mIoU is {true_miou:.3f} = road's IoU / {present} classes present, at most 1 / {present}: the chance line")


@functools.lru_cache(maxsize=None)
def _cnn_parts() -> tuple:
    from .models import build_student, count_parameters

    counts = []
    for width in (128, 256):
        student = build_student("deeplabv3plus_resnet18", 11, aspp_channels=width, decoder_channels=width)
        counts.append({name: count_parameters(module) for name, module in student.named_children()})
    return counts[0], counts[1]


def _data_2(answer):
    given = {str(n).lower() for n in _names(answer, "your answer")}
    narrow, wide = _cnn_parts()
    grows = {name for name in narrow if wide[name] != narrow[name]}
    unknown = given - set(narrow)
    if unknown:
        raise Wrong(f"{sorted(unknown)} are not parts of the model: its parts are {sorted(narrow)}")
    if "backbone" in given:
        raise Wrong("the backbone does not depend on the decoder's width: ResNet-18 is the same at 128 and 256")
    if "skip" in given:
        raise Wrong("the skip is a 1x1 convolution from the backbone's stride-4 features to 48 channels: no decoder width")
    if "classifier" in grows and "classifier" not in given:
        raise Wrong("one part is missing: the classifier reads the decoder's features, so its input grows with the width")
    if given != grows:
        raise Wrong(f"not those parts: look at which parts' parameter counts differ between the two widths")
    largest = max(grows, key=lambda n: wide[n] - narrow[n])
    return (f"{', '.join(sorted(grows))} grow (most: {largest}, {narrow[largest] / 1e6:.2f} M -> {wide[largest] / 1e6:.2f} M); "
            f"the backbone ({narrow['backbone'] / 1e6:.1f} M) and the skip do not")


def _data_3(answer):
    fn = _function(answer, "your answer")
    names = ["a", "b", "c", "d", "e", "f"]
    cnn = [0.5, 0.2, None, 0.3, 0.0, 0.7]
    vit = [0.4, 0.6, 0.1, 0.3, None, 0.9]
    out = _call(fn, cnn, vit, names)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise Wrong("return two lists: (the classes where the ViT is better, those where the CNN is better)")
    vit_better, cnn_better = _names(out[0], "the ViT's list"), _names(out[1], "the CNN's list")
    if (vit_better, cnn_better) == ({"a"}, {"b", "f"}):
        raise Wrong("your lists are swapped: the first is where the ViT's IoU is higher")
    if "c" in vit_better or "e" in cnn_better:
        raise Wrong("a class with IoU None is absent from the split for that student: it belongs to neither list "
                    "(None is not 0)")
    if "d" in vit_better | cnn_better:
        raise Wrong("a tie (equal IoU) belongs to neither list")
    if (vit_better, cnn_better) != ({"b", "f"}, {"a"}):
        raise Wrong(f"on IoUs CNN {cnn} and ViT {vit} (classes {names}) you gave ViT better {sorted(vit_better)}, CNN "
                    f"better {sorted(cnn_better)}")
    return "strictly higher IoU only, classes with a None on either side and ties in neither list"


# ---- 02 HFD ------------------------------------------------------------------------------------------------
def _hfd_1(answer):
    parts = _entries(answer, ("scaled", "negated", "shifted"))
    scaled, negated, shifted = (_number(parts[k], f"d for {k}") for k in ("scaled", "negated", "shifted"))
    if not _close(negated, 4.0, 0.01):
        if _close(negated, 0.0, 0.01):
            raise Wrong("standardising removes the scale and the offset, not the sign: -x is perfectly anti-correlated "
                        "with x (rho = -1)")
        if _close(negated, 2.0, 0.05):
            raise Wrong("2 is the value for unrelated features (rho = 0); -x is perfectly anti-correlated, rho = -1")
        raise Wrong(f"d(-x, x) is not {negated:g}: with d = 2 - 2 rho, what is rho between x and -x?")
    for name, value in (("scaled", scaled), ("shifted", shifted)):
        if not _close(value, 0.0, 0.01):
            raise Wrong(f"d for the {name} map is not {value:g}: each location's vector is standardised (its mean "
                        "removed, divided by its spread) before the comparison")
    return "0, 4, 0: d sees only the pattern across channels at each location (d = 2 - 2 rho), not scale or offset"


def _hfd_2(answer):
    parts = _entries(answer, ("full at", "pixel weight at 20"))
    full_at, weight = _number(parts["full at"], "the step"), _number(parts["pixel weight at 20"], "the weight")
    if full_at != 80:
        if full_at == 20:
            raise Wrong("20 % is a fraction of the training, not a number of steps: 20 % of 400 steps")
        raise Wrong(f"r(t) = min(1, t / (0.2 * 400)) reaches 1 at another step than {full_at:g}")
    if _close(weight, 0.075, 1e-6):
        return "r reaches 1 at step 80 (20 % of 400); at step 20, r = 0.25 and the pixel term weighs 0.25 x 0.3 = 0.075"
    if _close(weight, 0.3, 1e-6):
        raise Wrong("0.3 is w_pixel at full weight: at step 20 the ramp is still below 1")
    if _close(weight, 0.25, 1e-6):
        raise Wrong("0.25 is r(t) alone: the term's weight is r(t) times w_pixel")
    if _close(weight, 0.015, 1e-6):
        raise Wrong("r(t) = t / (tau t_max) (the ramp ends at 20 % of the steps), not t / t_max")
    raise Wrong(f"the pixel term's weight at step 20 is not {weight:g}: r(20) times w_pixel")


def _hfd_3(answer):
    from .losses import feature_distance

    fn = _function(answer, "your answer")
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(2, 8, 4, 5, generator=g), torch.randn(2, 8, 4, 5, generator=g) + 0.5
    b = b + 0.7 * a  # correlated, so that rho and the distances differ clearly
    out = _call(fn, a, b)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, 4, 5):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise Wrong(f"return one value per location, shape (B, h, w) = (2, 4, 5) here; you gave {got}: the correlation "
                    "runs over the channels, dim 1")
    kit = feature_distance(a.permute(0, 2, 3, 1), b.permute(0, 2, 3, 1))
    cosine = F.cosine_similarity(a, b, dim=1)
    rho = F.cosine_similarity(a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True), dim=1)
    _diagnose(out, kit, {"cos": (2 - 2 * cosine, "Pearson's rho centres each vector first (subtract its mean over "
                                                 "channels); the plain cosine does not"),
                         "1-rho": (1 - rho, "off by a factor of 2: d = 2 - 2 rho"),
                         "rho": (rho, "that is rho itself; d = 2 - 2 rho")},
              "your values differ from the kit's feature_distance by more than the epsilon of the standardisation")
    return "2 - 2 rho over channels equals the kit's d up to its epsilon: standardise-then-MSE is a correlation"


def _hfd_4(answer):
    parts = _entries(answer, ("rotated", "noise"))
    rotated, noise = _number(parts["rotated"], "CKA with the rotated features"), _number(parts["noise"], "CKA with noise")
    if not _close(rotated, 1.0, 1e-3):
        raise Wrong("linear CKA is invariant to an orthogonal transform of the channels: a rotated copy carries the "
                    "same representation")
    if not 0.0 <= noise < 0.2:
        raise Wrong(f"{noise:g} is too high for noise: independent random features share (almost) no structure "
                    "with the CNN's")
    return "1 for the rotated copy (CKA ignores rotations and scale) and close to 0 for unrelated noise"


# ---- 03 region-wise BSD ------------------------------------------------------------------------------------
def _region_1(answer):
    choice = _choice(answer, "your prediction", {
        "unchanged": ("same", "the same", "no change"), "flipped": ("flip", "flips", "every decision flips",
                                                                     "reversed", "sign flips"),
        "nothing": ("none", "nothing transfers", "zero", "all zero")})
    if choice == "unchanged":
        raise Wrong("the direction reads only the two regions' CEs, and swapping the logits swaps the CEs: who was "
                    "lower is now higher")
    if choice == "nothing":
        raise Wrong("the CEs do not become equal, they trade places: a decision remains, the other way round")
    return ("every decision flips sign (1 <-> -1); ties and regions without a valid pixel stay 0: the rule is "
            "antisymmetric in the two CEs")


EMBED_CELLS = (16, 32)  # the kit's 64x128 scenes at stride 4


def _region_2(answer):
    sizes = (8, 4, 2, 1, 3)
    parts = _entries(answer, sizes)
    h, w = EMBED_CELLS
    for size in sizes:
        given = _number(parts[size], f"the number of regions at region_size {size}")
        right = math.ceil(h / size) * math.ceil(w / size)
        if given == right:
            continue
        if given == (h // size) * (w // size):
            raise Wrong(f"at region_size {size} the partial regions at the border count too: ceil, not floor")
        if given == h * w / size ** 2:
            raise Wrong(f"at region_size {size}: regions are whole, count the rows and the columns of regions")
        raise Wrong(f"at region_size {size} a {h}x{w}-cell embed has another number of regions than {given:g}")
    return ("8, 32, 128, 512 and 66 regions: ceil(16 / S) x ceil(32 / S); at S = 3 the last row and column are partial "
            "regions (1 x 3 and 3 x 2 cells), each a region of its own")


def _region_ce_case():
    g = torch.Generator().manual_seed(8)
    ce = torch.rand(1, 10, 10, generator=g) * 2 + 0.1  # non-zero everywhere, also under ignore
    valid = torch.ones(1, 10, 10, dtype=torch.bool)
    valid[0, :4, :4] = False  # a region with no valid pixel
    valid[0, 4:8, :3] = False  # a region with a few
    valid[0, 8:, 6:] = False  # a partial border region, partly ignore
    return ce, valid, 4


def _region_3(answer):
    fn = _function(answer, "your answer")
    ce, valid, size = _region_ce_case()
    out = _call(fn, ce, valid, size)
    right = mistakes.region_ce(ce, valid, size)
    if not isinstance(out, torch.Tensor):
        raise Wrong(f"return a tensor of region CEs, shape {tuple(right.shape)} here; you gave {type(out).__name__}")
    if tuple(out.shape) != tuple(right.shape):
        if tuple(out.shape) == tuple(mistakes.region_ce(ce, valid, size, grid="floor").shape):
            raise Wrong(mistakes.MISTAKES["grid=floor"])
        raise Wrong(f"a 10x10 map in regions of 4x4 pixels has {tuple(right.shape)} regions (B, rows, columns); you "
                    f"gave {tuple(out.shape)}")
    area = torch.where(valid, ce, torch.zeros_like(ce))
    area = F.avg_pool2d(area[:, None], size, size, ceil_mode=True, divisor_override=size * size)[:, 0]
    _diagnose(out, right, {
        "count_ignore": (mistakes.region_ce(ce, valid, size, count_ignore=True), mistakes.MISTAKES["count_ignore"]),
        "empty=0": (mistakes.region_ce(ce, valid, size, empty="0"), mistakes.MISTAKES["empty=0"]),
        "area": (torch.where(torch.isnan(right), right, area), "you divided by a full region's area: divide by the "
                 "number of valid pixels the region has (a border region is partial, ignore pixels do not count)"),
    }, "your region CEs differ from the mean over each region's valid pixels on this 10x10 case: print both")
    return "the mean over each region's valid pixels, partial regions at the border, NaN where a region has none"


def _entropy_case():
    """Label-resolution logits (1, 3, 8, 8), regions of 4 pixels: in the left regions the CNN is sure, in the right
    regions the ViT; in the bottom right the ViT is sure on average but split (a sharp and a flat half)."""
    z_c, z_v = torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    z_c[0, 0, :, :4] = 6.0          # the CNN: sharp on the left
    z_c[0, 1, :, 4:] = 0.5          # the CNN: soft on the right
    z_v[0, 2, :, :4] = 0.3          # the ViT: flat on the left
    z_v[0, 1, :4, 4:] = 5.0         # the ViT: sharp top right
    z_v[0, 1, 4:, 4:6] = 9.0        # bottom right: half very sharp ...
    z_v[0, 1, 4:, 6:] = 0.0         # ... half uniform
    return z_c, z_v, 4


def _mean_entropy(logits, size, *, of_mean=False):
    log_p = F.log_softmax(logits, dim=1)
    if of_mean:
        p = F.avg_pool2d(log_p.exp(), size, size, ceil_mode=True)
        return -(p * p.clamp_min(1e-12).log()).sum(1)
    return F.avg_pool2d(-(log_p.exp() * log_p).sum(1, keepdim=True), size, size, ceil_mode=True)[:, 0]


def _region_4(answer):
    fn = _function(answer, "your answer")
    z_c, z_v, size = _entropy_case()
    out = _call(fn, z_c, z_v, size)
    right = torch.sign(_mean_entropy(z_v, size) - _mean_entropy(z_c, size)).long()
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(right.shape):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise Wrong(f"return the direction per region, shape {tuple(right.shape)} here (B, rows, columns); you gave {got}")
    confidence = lambda z: F.avg_pool2d(F.softmax(z, 1).amax(1, keepdim=True), size, size, ceil_mode=True)[:, 0]  # noqa: E731
    _diagnose(out.long(), right, {
        "reversed": (-right, "the direction is reversed: the student with the LOWER mean entropy (the more confident "
                             "one) teaches, +1 where that is the CNN"),
        "of mean": (torch.sign(_mean_entropy(z_v, size, of_mean=True) - _mean_entropy(z_c, size, of_mean=True)).long(),
                    "you took the entropy of the region's mean prediction; the task averages each pixel's entropy"),
        "max prob": (torch.sign(confidence(z_c) - confidence(z_v)).long(),
                     "you measured confidence by the top probability; the task measures it by the mean entropy"),
    }, "your directions differ from sign(mean entropy of the ViT - mean entropy of the CNN) on a crafted case")
    return "+1 where the CNN's mean entropy is lower, -1 where the ViT's is; no label needed, and none consulted"


# ---- 04 pixel-wise BSD -------------------------------------------------------------------------------------
def _pixel_1(answer):
    parts = _entries(answer, ("masks", "kl", "kl x t^2"))
    masks = _choice(parts["masks"], "(a)", {"same": ("unchanged", "the same", "no change"),
                                           "change": ("changes", "different", "changed")})
    kl = _choice(parts["kl"], "(b)", {"down": ("smaller", "decreases", "falls", "goes down"),
                                     "up": ("larger", "increases", "rises", "goes up"), "same": ("unchanged",)})
    scaled = _choice(parts["kl x t^2"], "(c)", {
        "approaches a constant": ("settles", "levels off", "tends to a constant", "approaches"),
        "constant": ("the same", "unchanged", "exactly constant", "same"),
        "falls like the kl": ("falls", "down", "goes down", "decreases")})
    if masks != "same":
        raise Wrong("(a) the decision is taken at T = 1 (the CE against the label); T only changes how much moves")
    if kl != "down":
        raise Wrong("(b) softer distributions differ less: the softened KL shrinks as T grows")
    if scaled == "constant":
        raise Wrong("(c) only in the large-T limit: T^2 undoes a 1/T^2 that holds for large T; on the primer's "
                    "example |grad| x T^2 is 1.09, 1.35, 1.40 at T = 1, 2, 4")
    if scaled == "falls like the kl":
        raise Wrong("(c) times T^2 the shrinking is undone, at least for large T: it does not fall like the KL itself")
    return ("(a) the same pixels, the decision is at T = 1; (b) the KL falls; (c) times T^2 it settles towards a "
            "constant as T grows, which is what T^2 is for, exactly only in the large-T limit")


PIXEL_TOY = {  # notebook 04's six pixels (2 x 3), three classes: label, CNN logits, ViT logits
    "labels": [[0, 1, 2], [0, 1, 255]],
    "cnn": [[3.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [2.0, 2.2, -3.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    "vit": [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 2.0, 1.0], [0.3, 0.0, 0.0], [0.0, 3.0, 0.0], [1.0, 0.0, 0.0]],
}


def pixel_toy():
    """Notebook 04's toy as tensors: (logits_cnn (1, 3, 2, 3), logits_vit, labels (1, 2, 3))."""
    return _toy_tensors(PIXEL_TOY)


def _learner_wrong_cases():
    z_c, z_v, target = _random_logits(21, (2, 4, 6, 7), scale=2.0)
    toy_c, toy_v, toy_t = pixel_toy()
    return [((toy_c, toy_v), (toy_t, T)) for T in (1.0, 2.0)] + [((z_c, z_v), (target, T)) for T in (1.0, 2.0)]


def _pixel_2(answer):
    fn = _function(answer, "your answer")
    cases = _learner_wrong_cases()

    def parts(out):
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise Wrong("return (loss, cnn_teaches, vit_teaches), as pixel_bsd_from_scratch does")
        return out[0], [m.bool() if isinstance(m, torch.Tensor) else m for m in out[1:]]

    mine = _with_grads(fn, cases, result=parts)
    for row, ((_, _), (target, _)) in zip(mine, cases):
        for k, m in enumerate(row[1:3]):
            _mask(m, target.shape, ("cnn_teaches", "vit_teaches")[k])
    base = dict(learner_wrong=True)
    run = lambda **kw: _with_grads(lambda c, v, t, T: mistakes.pixel_bsd(c, v, t, T, **{**base, **kw}), cases,  # noqa: E731
                                   result=lambda out: (out[0], list(out[1:])))
    variants = {name: (run(**kw), mistakes.MISTAKES[name]) for name, kw in (
        ("learner_wrong=False", dict(learner_wrong=False)), ("learner_right", dict(learner_wrong=False, learner_right=True)),
        ("require_correct=False", dict(require_correct=False)), ("reverse", dict(reverse=True)),
        ("t_power=0", dict(t_power=0)), ("t_power=1", dict(t_power=1)), ("detach=False", dict(detach=False)),
        ("normaliser=valid", dict(normaliser="valid")), ("normaliser=sum", dict(normaliser="sum")),
        ("decide_at_T", dict(decide_at_T=True)), ("swap_masks", dict(swap_masks=True)))}
    _diagnose(mine, run(), variants, "your loss, masks or gradients differ from PixelBSDLoss(require_learner_wrong=True) "
                                     "on the toy or on a random batch (T = 1 and 2)")
    return ("the paper's masks with one more condition each (the learner wrong there); value, masks and gradients "
            "match PixelBSDLoss(require_learner_wrong=True) at T = 1 and 2")


def _pixel_3(answer):
    choice = _choice(answer, "your prediction", {"equal": ("the same", "same", "equal numbers", "identical"),
                                                 "t^2 times": ("t2 times", "t squared times", "times t^2"),
                                                 "half": ("half of it", "one half")})
    if choice == "t^2 times":
        raise Wrong("both maps are per-pixel KLs in nats at temperature T; the T^2 factor multiplies the loss, "
                    "not the maps")
    if choice == "half":
        raise Wrong("DML's loss adds the two directions, but each direction's per-pixel KL is the same map "
                    "KL(sg(p_c^T) || p_v^T): nothing is halved")
    return ("equal: where BSD transfers CNN -> ViT it moves exactly DML's per-pixel KL; BSD only chooses the pixels "
            "(and averages over its own)")


def _sharpening_cases():
    teaches = torch.tensor([[True, True, True, True, False, False, True, False]])
    learner_right = torch.tensor([[True, True, True, False, True, True, False, True]])
    return [(teaches, learner_right), (torch.zeros(1, 8, dtype=torch.bool), learner_right)]


def _pixel_4(answer):
    fn = _function(answer, "your answer")
    (teaches, right), (empty, _) = _sharpening_cases()
    share = _number(_call(fn, teaches, right), "your share")
    expected = 3 / 5
    if not _close(share, expected, 1e-6):
        wrong = {3 / 8: "you divided by all the pixels: the share is among the pixels where the teacher teaches",
                 2 / 5: "that is the share of corrections (the learner wrong); the question asks where the learner "
                        "was already right",
                 3 / 6: "you divided by the pixels where the learner is right: the share is among the teaching pixels",
                 3.0: "that is a count; divide by the number of teaching pixels"}
        for value, message in wrong.items():
            if _close(share, value, 1e-6):
                raise Wrong(message)
        raise Wrong(f"on 5 teaching pixels of which 3 have the learner right you gave {share:g}")
    empty_share = _call(fn, empty, right)
    empty_value = float(empty_share) if isinstance(empty_share, (int, float, torch.Tensor)) else None
    if empty_value is None or not (math.isnan(empty_value) or empty_value == 0.0):
        raise Wrong("with no teaching pixel there is no share: return NaN (or 0), without dividing by zero")
    return "the pixels where the teacher teaches and the learner was already right, over the teaching pixels"


def _pixel_5(answer):
    choice = _choice(answer, "your prediction", {"sharpening": ("sharpen", "polishing", "already right"),
                                                 "correcting": ("corrections", "correct", "correction")})
    if choice == "correcting":
        raise Wrong("measured on the kit's 1200-step pairs it is the other way: most pixels the CNN learns from are "
                    "pixels both students already get right (docs/evidence.md, 'Polishing or corrections?')")
    return ("sharpening: on the kit's 1200-step pairs most pixels the CNN learns from are ones it already gets right "
            "(docs/evidence.md, 'Polishing or corrections?'); the kit's variant require_learner_wrong keeps only "
            "the corrections, and it cost the CNN more, not less")


# ---- 06 results --------------------------------------------------------------------------------------------
NO_AUG_CELL = "results/sweeps/overfit-confirm/augoff-n50"


def _no_aug_runs(root=REPO_ROOT):
    return {m: f"{NO_AUG_CELL}/{m}" for m in ("independent", "dml", "kdcl", "collab")}


def _results_1(answer):
    import warnings

    from .analysis import paired_gains

    parts = _entries(answer, ("seed below", "vit seeds above dml"))
    seed, above = _number(parts["seed below"], "the seed"), _number(parts["vit seeds above dml"], "the count")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cnn = paired_gains(_no_aug_runs(), "collab", "cnn", root=REPO_ROOT)
        vit = paired_gains(_no_aug_runs(), "collab", "vit", baseline="dml", root=REPO_ROOT)
    below = [s for s, g in cnn.items() if g < 0]
    if seed not in below:
        raise Wrong(f"on seed {seed:g} collab's CNN gain is {cnn.get(int(seed), float('nan')):+.1f}: look for the seed "
                    "whose gain is below 0 in the 'CNN minus independent' column (seeds in order)")
    right_above = sum(g > 0 for g in vit.values())
    if above != right_above:
        raise Wrong(f"count the seeds whose 'ViT minus dml' gain is above 0: it is not {above:g}")
    return (f"seed {int(seed)} ({cnn[int(seed)]:+.1f}) pulls the CNN's mean down to within twice its standard error; "
            f"against DML, {right_above} seeds lift the ViT above DML's: DML distils more into it")


def _results_2(answer):
    from .analysis import complementarity_table
    from .experiments import collect_results

    parts = _entries(answer, ("vit leads", "cnn leads", "gains most"))
    vit_leads, cnn_leads = _number(parts["vit leads"], "the ViT's count"), _number(parts["cnn leads"], "the CNN's count")
    gains = _choice(parts["gains most"], "which student gains most", {"vit": ("the vit", "segformer"),
                                                                     "cnn": ("the cnn", "deeplab")})
    lead = complementarity_table(collect_results(REPO_ROOT / NO_AUG_CELL))["lead"]
    right_vit, right_cnn = int((lead == "vit").sum()), int((lead == "cnn").sum())
    if (vit_leads, cnn_leads) != (right_vit, right_cnn):
        raise Wrong(f"count the 'lead' column of complementarity_table: a lead must exceed both seed spreads; you "
                    f"gave ViT {vit_leads:g}, CNN {cnn_leads:g}")
    if gains != "vit":
        raise Wrong("the student with something to learn gains most: here the CNN leads and the ViT learns "
                    "(notebook 06's verdicts: the ViT gains more than the CNN with every method)")
    return (f"the ViT leads on {right_vit} classes and the CNN on {right_cnn}: knowledge can only flow from the CNN, "
            "and the ViT is the one that gains")


def _results_3(answer, runs, root=REPO_ROOT):
    from .analysis import gain_against_gap, generalisation_gaps

    parts = _entries(answer, ("gap", "gain", "one seed enough"))
    gap = {s: _number(_entries(parts["gap"], ("cnn", "vit"), "the gap")[s], f"the {s} gap") for s in ("cnn", "vit")}
    gain = {s: _number(_entries(parts["gain"], ("cnn", "vit"), "the gain")[s], f"the {s} gain") for s in ("cnn", "vit")}
    enough = parts["one seed enough"]
    table = gain_against_gap({"new": runs}, split="final_val", root=root).set_index("student")
    for s in ("cnn", "vit"):
        right_gap, right_gain = table.loc[s, "gap"], table.loc[s, "gain"]
        if not _close(gap[s], right_gap, 0.05):
            if _close(gap[s], -right_gap, 0.05):
                raise Wrong("the gap is training mIoU minus val mIoU: positive where the students overfit")
            collab_gap = sum(generalisation_gaps(runs["collab"], s, root).values()) / len(runs)
            if _close(gap[s], collab_gap, 0.05):
                raise Wrong("the gap is the independent students' (how much they overfit without distillation)")
            raise Wrong(f"the {s.upper()}'s gap is not {gap[s]:.1f} points: read it from gain_against_gap")
        if not _close(gain[s], right_gain, 0.05):
            if _close(gain[s], -right_gain, 0.05):
                raise Wrong("the gain is collab minus independent, not the other way round")
            raise Wrong(f"the {s.upper()}'s gain is not {gain[s]:+.1f} points (val, paired by seed): read it from "
                        "gain_against_gap with split='final_val'")
    if not isinstance(enough, bool):
        raise Wrong("'one seed enough' should be True or False")
    if enough:
        raise Wrong("one seed cannot tell a gain from noise: a placebo moves one seed's gain by up to 2 points "
                    "(docs/evidence.md); it takes fresh seeds and a rule written down before the runs")
    return "gap and gain read right; and one seed is a hypothesis for fresh seeds, not a result"


# ---- the list ----------------------------------------------------------------------------------------------
_P0, _P1, _P2, _P3, _P4, _P6 = ("00_primer", "01_data_and_students", "02_hfd", "03_region_bsd", "04_pixel_bsd",
                                "06_results")
_ALL = (
    Exercise(_P0, 1, "predict, then check: the two limits of the temperature",
             "write p_i^T as 1 / sum_j exp((z_j - z_i) / T): what does each exponent do when T is tiny, and when huge?",
             "T = 0.01: [1, 0, 0, 0], all the mass on road (the largest logit); T = 1000: [0.25, 0.25, 0.25, 0.25].",
             _primer_1),
    Exercise(_P0, 2, "why T^2, on your own",
             "count the factors of 1/T in the large-T formula of section 2: where does each come from?",
             "about 4 = 2^2: the gradient of the softened KL shrinks like 1/T^2 at large T (one 1/T from the chain rule, "
             "one from the distributions moving closer); at small T the factor differs (about 3.2 from T = 1 to 2).",
             _primer_2),
    Exercise(_P0, 3, "write the distillation term, the teacher first",
             "the teacher's distribution is the target: it weighs the classes, as the one-hot label weighs them in the "
             "CE, and it is a constant for the student. Then remember section 2's factor.",
             "def distill_kl(z_teacher, z_student, T): log_q = F.log_softmax(z_teacher / T, 0).detach(); "
             "return T**2 * (log_q.exp() * (log_q - F.log_softmax(z_student / T, 0))).sum()",
             _primer_3),
    Exercise(_P0, 4, "mIoU over the classes present",
             "write out TP, FP and FN for the new class. What is 0 / 0, and what should a mean do with a value that "
             "does not exist?",
             "{'iou': None, 'miou': 0.3889}: the absent class has no IoU and is left out of the mean (mmsegmentation "
             "does the same); the mean over the three present classes does not change.",
             _primer_4),
    Exercise(_P0, 5, "implement a variant: selective DML",
             "start from the rule table's 'CNN right' and 'ViT right' columns: what does selective DML NOT compare?",
             "return right_c, right_v (each student's argmax equals the label, at valid pixels); it transfers more than "
             "BSD by exactly the both-right pixels, where BSD keeps one direction.",
             _primer_5),
    Exercise(_P1, 1, "predict, then check: what does a constant guess score?",
             "for each class, which of TP, FP and FN can be non-zero when every pixel is predicted road? Then recall "
             "which classes the mean runs over.",
             "road's IoU = the share of valid pixels that are road; every other class present scores 0; the mIoU is "
             "road's IoU divided by the number of classes present: at most 1 / (classes present).",
             _data_1, needs=("labels", "class_names")),
    Exercise(_P1, 2, "where do the CNN's parameters sit?",
             "build the student at both widths and compare count_parameters part by part (named_children); which "
             "parts read or write the decoder's channels?",
             "aspp, fuse and classifier grow (the ASPP most); the ResNet-18 backbone and the 48-channel skip do not.",
             _data_2),
    Exercise(_P1, 3, "where is each student better?",
             "what should happen to a class whose IoU is None for one student, and to a tie?",
             "ViT better: classes with both IoUs known and vit > cnn; CNN better: cnn > vit; None on either side and "
             "ties in neither list.",
             _data_3),
    Exercise(_P2, 1, "predict, then check: what d cannot see",
             "d standardises each location's vector over channels before comparing: which changes survive that?",
             "scaled 0, negated 4, shifted 0: d = 2 - 2 rho, blind to scale and offset, not to sign.",
             _hfd_1),
    Exercise(_P2, 2, "r(t) in numbers",
             "r reaches 1 when the fraction of training done equals `warmup`; a term's weight is its w times r(t).",
             "{'full at': 80, 'pixel weight at 20': 0.075}: r = min(1, t / (0.2 * 400)), and 0.25 * 0.3 at step 20.",
             _hfd_2),
    Exercise(_P2, 3, "implement a variant: d as a correlation",
             "the Pearson correlation is the cosine of the two vectors after each has had its own mean removed.",
             "def d_pearson(a, b): c = lambda t: t - t.mean(1, keepdim=True); return 2 - 2 * F.cosine_similarity(c(a), "
             "c(b), dim=1)",
             _hfd_3),
    Exercise(_P2, 4, "CKA does not care about rotations",
             "an orthogonal Q preserves every inner product between locations: what does that leave of CKA's Gram "
             "matrices?",
             "{'rotated': 1.0, 'noise': about 0}: linear CKA is invariant to rotations and scale; noise shares nothing.",
             _hfd_4),
    Exercise(_P3, 1, "predict, then check: swap the students",
             "the direction map is built from one comparison per region: what does the swap do to its two sides?",
             "'flipped': every decision changes sign; ties and label-less regions stay 0.",
             _region_1),
    Exercise(_P3, 2, "predict, then check: how many regions?",
             "a region grid covers every cell, also the ones left over at the right and bottom edges.",
             "{8: 8, 4: 32, 2: 128, 1: 512, 3: 66}: ceil(16 / S) x ceil(32 / S).",
             _region_2),
    Exercise(_P3, 3, "implement the region's reliability",
             "pool a sum of the valid pixels' CE and a count of valid pixels over the same blocks, then divide; keep "
             "apart the regions whose count is 0.",
             "sum of CE x valid over each block / number of valid pixels in it (F.avg_pool2d with ceil_mode=True on "
             "both, the divisor cancels), NaN where the count is 0.",
             _region_3),
    Exercise(_P3, 4, "implement a variant: a direction without labels",
             "per pixel the entropy -sum_i p_i log p_i; average it over each region (all pixels: no label needed), then "
             "compare the two students' averages.",
             "torch.sign(region mean entropy of the ViT - region mean entropy of the CNN): +1 where the CNN is the "
             "more confident.",
             _region_4),
    Exercise(_P4, 1, "predict, then check: what the temperature does",
             "which part of pixel-wise BSD reads T, the decision or the transfer? And what did the primer's table show "
             "for |grad| x T^2 at small T?",
             "{'masks': 'same', 'KL': 'down', 'KL x T^2': 'approaches a constant'}.",
             _pixel_1),
    Exercise(_P4, 2, "implement require_learner_wrong",
             "at a pixel where the CNN teaches, which student is the learner, and what must be true of it there?",
             "pixel_bsd_from_scratch with cnn_teaches & ~right_vit and vit_teaches & ~right_cnn.",
             _pixel_2),
    Exercise(_P4, 3, "DML's KL on every pixel against the KL that BSD transfers",
             "write both per-pixel maps out: which softmax, which temperature, which order inside the KL?",
             "'equal': BSD's kl_map at its CNN-teaches pixels is DML's kl_vit_learns there.",
             _pixel_3),
    Exercise(_P4, 4, "sharpening or correcting: measure it",
             "with the correctness condition the teacher is always right, so only the learner's correctness splits "
             "the teaching pixels.",
             "(teaches & learner_right).sum() / teaches.sum(), NaN when nothing teaches.",
             _pixel_4),
    Exercise(_P4, 5, "predict: which dominates for a trained pair?",
             "where are two trained students most often both right, and what does the correctness condition require "
             "of the teacher there?",
             "'sharpening'.",
             _pixel_5),
    Exercise(_P6, 1, "read a verdict yourself",
             "the per-seed gains are in seed order (14-18); a mean is beyond the spread when it exceeds twice its "
             "standard error.",
             "{'seed below': 14, 'vit seeds above dml': 0}.",
             _results_1),
    Exercise(_P6, 2, "complementarity without augmentation",
             "count the table's 'lead' column; knowledge flows from the student that leads to the one that does not.",
             "{'vit leads': 0, 'cnn leads': 8, 'gains most': 'vit'}.",
             _results_2),
    Exercise(_P6, 3, "a third point on the line",
             "gain_against_gap({'new': runs}, split='final_val', root=...) gives both numbers per student; then ask "
             "how far a placebo moves one seed.",
             "the gap and gain of your cell as gain_against_gap reads them, and 'one seed enough': False.",
             _results_3, needs=("runs",)),
)


def all_exercises() -> list:
    """Every exercise of the course, in notebook order: each has .notebook, .number, .title."""
    return list(_ALL)


def load(notebook: str) -> list:
    """The exercises of one notebook ("00", "00_primer" or its file name), in order: q1, q2, ... = load("00")."""
    key = Path(str(notebook)).stem
    found = [e for e in _ALL if e.notebook == key or e.notebook.split("_", 1)[0] == key]
    if not found:
        raise ValueError(f"no exercises for {notebook!r}; notebooks with exercises: "
                         + ", ".join(dict.fromkeys(e.notebook for e in _ALL)))
    return found
