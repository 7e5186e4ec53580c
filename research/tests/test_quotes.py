"""The numbers the write-ups quote in prose about the committed runs, each recomputed from results/.

test_ledger.py pins whole tables. Prose cannot be regenerated, so here each quote is a short fragment of
the document's sentence with every number in it filled in from the runs' metrics.json (points x100,
rounded to 0.1 and signed where the text signs them), and the fragment must occur in the document.
A changed number in a document, or a run that no longer says what it quotes, makes its fragment absent,
and the test lists every such fragment: the file (and notebook cell), the fragment the runs give, the
recomputed values and the document's nearest text. Whitespace is collapsed before comparing (line breaks
in Markdown prose are free); notebook markdown is matched by cell id. Class names quoted as a set
("the ViT leads on road, sidewalk and vegetation") are looked up as written and compared as sets.

The quotes are built once per test (`_grid_class_quotes(quotes)`, ...) and checked against the documents
by `Quotes.missing()`, so the same lists can be checked against altered copies of the documents.

Not pinned, for want of committed data: the teaching shares of the collab runs ("on car pixels the CNN
teaches 75 % of the region area and 57 % of the pixels, the ViT 25 % / 8 %" in docs/evidence.md, "about
three quarters of the region area" in notebook 01 cell-00, "the CNN teaches most of the car regions and the
ViT a good share of road and sidewalk" in notebook 03 cell-20) need the runs' checkpoints, not committed.
Round 15's teaching shares are checked against the report written from its reruns' checkpoints
(results/sweeps/overfit-confirm/augoff-n50-rerun/SUMMARY.md), not recomputed.
"""
import json
import re
import statistics

from research import ledger

ROOT = ledger.REPO_ROOT
EVIDENCE, SWEEPS = ledger.EVIDENCE, ledger.SWEEPS
NB00 = "notebooks/00_primer.ipynb"
NB01 = "notebooks/01_data_and_students.ipynb"
NB04 = "notebooks/04_pixel_bsd.ipynb"
README = "README.md"

CPU = "results/cpu"
GRID = {name: f"{CPU}/{name}" for name in ("independent", "dml", "kdcl", "collab", "collab_no_hfd")}
LONG = ledger.LONG_STUDY
PLACEBO = "independent, channels_last=True (placebo)"
TWO_DRAWS = ("independent", PLACEBO)  # the baseline "the mean of its two draws"
WORDS = dict(enumerate("zero one two three four five six seven eight nine ten".split()))


# ---- formatting as the write-ups round ---------------------------------------------------------------------
def sg(x: float) -> str:
    """A signed number of points, 0.1 (as paired_gain_table prints a gain)."""
    return f"{x:+.1f}"


def pt(x: float) -> str:
    """An unsigned number of points, 0.1."""
    return f"{x:.1f}"


def ms(s: dict) -> str:
    """A paired gain's mean ± standard error."""
    return f"{sg(s['mean'])} ± {pt(s['se'])}"


def cost(s: dict) -> str:
    """A paired gain quoted as a cost: its negated mean ± standard error ("costs the CNN 0.7 ± 0.2")."""
    return f"{pt(-s['mean'])} ± {pt(s['se'])}"


def beyond(s: dict) -> str:
    """How the write-ups size a mean: "beyond" the spread when further from 0 than twice its standard error."""
    return "beyond" if abs(s["mean"]) > 2 * s["se"] else "within"


def _difference(a: dict, b: dict) -> dict:
    """The difference of two independent paired gains (a - b): mean and standard error."""
    return {"mean": a["mean"] - b["mean"], "se": (a["se"] ** 2 + b["se"] ** 2) ** 0.5}


def seeds_of(s: dict) -> str:
    """The per-seed gains, in seed order."""
    return ", ".join(sg(g) for g in s["gains"].values())


def same(*texts: str) -> str:
    """One number quoted for several measurements ("+0.2 on both"): the text when they agree, else all of them
    (which the document cannot contain, so the quote fails naming them)."""
    return texts[0] if len(set(texts)) == 1 else " / ".join(texts) + " (differ)"


def listed(names) -> str:
    """"a", "a and b", "a, b and c"."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def gain(name, student, baseline="independent", split="test", runs=LONG) -> dict:
    return ledger.paired_gain_summary(runs, name, student, baseline, split, root=ROOT)


# ---- looking the quotes up ---------------------------------------------------------------------------------
def _flat(text: str) -> str:
    return " ".join(text.split())


def _nearest(text: str, fragment: str) -> str:
    """The document's words where the fragment's longest present beginning or ending is, as many as the fragment's."""
    words = fragment.split()
    for k in range(len(words), 0, -1):
        at = text.find(" ".join(words[:k]))
        if at >= 0:
            return " ".join(text[at:].split()[:len(words)])
        at = text.find(" ".join(words[-k:]))
        if at >= 0:
            end = at + len(" ".join(words[-k:]))
            return " ".join(text[:end].split()[-len(words):])
    return "(nothing alike)"


class Quotes:
    """The fragments the committed runs give for a document's quotes, and the claims that need no document.

    expect(document, template, cell=None, **values): `template` filled with `values` (already formatted
    strings) must occur in the document (a notebook's markdown cell `cell`); the values are named in the
    failure. names(...): a fragment naming classes, looked up as written, whose names must be the set the
    runs give. missing(root): every failure, each naming its file; root: where the documents are read.
    """

    def __init__(self):
        self.expected, self.claims = [], []

    def expect(self, document, template, cell=None, **values):
        self.expected.append((document, cell, _flat(template.format(**values)),
                              "; ".join(f"{k} = {v}" for k, v in values.items()) or "-"))

    def names(self, document, fragment, quoted, recomputed, what, cell=None):
        self.expect(document, fragment, cell)
        if set(quoted) != set(recomputed):
            self.claims.append(f"{_where(document, cell)}: «{fragment}» names {sorted(quoted)} as {what}; "
                               f"the runs give {sorted(recomputed)}")

    def missing(self, root=ROOT) -> list:
        texts, out = {}, list(self.claims)
        for document, cell, fragment, values in self.expected:
            if (document, cell) not in texts:
                texts[document, cell] = document_text(root, document, cell)
            text = texts[document, cell]
            if fragment not in text:
                out.append(f"{_where(document, cell)}: the runs give «{fragment}» (recomputed: {values}); "
                           f"the document's nearest text: «{_nearest(text, fragment)}»")
        return out

    def check(self):
        missing = self.missing()
        assert not missing, "quotes that differ from the committed runs:\n" + "\n".join(missing)


def _where(document, cell) -> str:
    return document + (f", cell {cell}" if cell else "")


def document_text(root, document, cell=None) -> str:
    """A document's text, or a notebook's markdown cell (by id), whitespace collapsed."""
    path = root / document
    if cell is None:
        return _flat(path.read_text())
    cells = [c for c in json.loads(path.read_text())["cells"] if c.get("id") == cell]
    assert len(cells) == 1 and cells[0]["cell_type"] == "markdown", f"{document}: no markdown cell with id {cell!r}"
    return _flat("".join(cells[0]["source"]))


# ---- the CPU grid (results/cpu: 400 steps, 3 seeds, test split) --------------------------------------------
def _complementarity(folder=CPU):
    from collab_lib.analysis import complementarity_table
    from collab_lib.experiments import collect_results

    return complementarity_table(collect_results(ROOT / folder))


def _leads(table, student) -> list:
    return [c for c in table.index if table.lead[c] == student]


def _grid_recipe(folder=CPU) -> dict:
    """What every run of the grid trained (image size, training scenes, steps) and its seeds per configuration,
    as the write-ups print them; a field on which the runs differ is given as all its values (quoted nowhere)."""
    runs = {path: json.loads(path.read_text())["config"] for path in sorted((ROOT / folder).glob("*/seed*/config.json"))}
    configs, seeds = list(runs.values()), {}
    for path, c in runs.items():
        seeds.setdefault(path.parent.parent.name, set()).add(c["seed"])
    values = {"size": {"x".join(map(str, c["image_size"])) for c in configs},
              "scenes": {str(c["train_samples"]) for c in configs}, "steps": {str(c["steps"]) for c in configs},
              "seeds": {str(len(v)) for v in seeds.values()}}
    return {k: same(*sorted(v)) for k, v in values.items()}


def _grid_class_quotes(q: Quotes):
    """Per-class gains of collab (and DML, KDCL) over independent, paired by seed, test IoU points."""
    table = _complementarity()
    vit_leads, cnn_leads, ties = _leads(table, "vit"), _leads(table, "cnn"), _leads(table, "-")
    cnn, vit = (ledger.class_gains(GRID, "collab", s, root=ROOT) for s in ("cnn", "vit"))
    # the classes each student leads, ordered by what the other student gains on them, as the write-ups list them
    by_cnn_gain = sorted(vit_leads, key=lambda c: -cnn[c])
    by_vit_gain = sorted(cnn_leads, key=lambda c: -vit[c])
    cnn_on_vit = ", ".join(f"{c} {sg(cnn[c])}" for c in by_cnn_gain)
    vit_on_cnn = ", ".join(f"{c} {sg(vit[c])}" for c in by_vit_gain)
    # only classes on which the learner gains may be named as "the classes it gains on"
    gained_cnn = ", ".join(c for c in by_cnn_gain if cnn[c] > 0)
    gained_vit = ", ".join(c for c in by_vit_gain if vit[c] > 0)
    recipe = _grid_recipe()
    del gained_cnn, gained_vit  # the headline's per-class bullet, with spreads and beside DML and KDCL: _class_side_quotes
    q.expect(EVIDENCE, "the CNN gains on the classes the ViT leads ({a}) and the ViT on those the CNN leads ({b});",
             a=cnn_on_vit, b=vit_on_cnn)
    # on the ties, the class each student gains most on
    best_cnn, best_vit = max(ties, key=cnn.get), max(ties, key=vit.get)
    q.expect(EVIDENCE, "on {c1} and {c2}, ties between the independent students, the CNN gains {g1} on {c1} and the "
                       "ViT {g2} on {c2}.",
             c1=best_cnn, c2=best_vit, g1=pt(cnn[best_cnn]), g2=pt(vit[best_vit]))
    # the CNN's largest lead (car): DML and KDCL lift the ViT there and cost the CNN
    top = max(cnn_leads, key=lambda c: table.gap[c])
    dml_cnn, dml_vit, kdcl_cnn, kdcl_vit = (ledger.class_gains(GRID, m, s, root=ROOT)[top]
                                            for m in ("dml", "kdcl") for s in ("cnn", "vit"))
    q.expect(EVIDENCE, "DML and KDCL also lift the ViT's {top} ({v}) but cost the CNN {d} / {k} points of {top}; "
                       "collab costs it {c}.",
             top=top, v=same(sg(dml_vit), sg(kdcl_vit)), d=pt(-dml_cnn), k=pt(-kdcl_cnn), c=pt(-cnn[top]))
    # where collab loses most (fence), and that class's spread: the independent students' larger seed std
    worst = min(cnn, key=cnn.get)
    spread = 100 * max(table.cnn_std[worst], table.vit_std[worst])
    q.expect(EVIDENCE, "({w} {c} / {v}, a rare class with a spread of {s} points)",
             w=worst, c=sg(cnn[worst]), v=sg(vit[worst]), s=f"{spread:.0f}")
    q.expect(EVIDENCE, "Single-class gains over {n} seeds are weak evidence", n=recipe["seeds"])
    # the classes neither student learns in any configuration of the grid (mean test IoU 0.0)
    from collab_lib.analysis import per_class_table
    from collab_lib.experiments import collect_results

    df = collect_results(ROOT / CPU)
    per_class = per_class_table(df, configurations=sorted(set(df.configuration)))
    zero = [c for c in per_class.index if all(pt(100 * v) == "0.0" for v in per_class.loc[c])]
    q.expect(EVIDENCE, "{zero} stay at 0 IoU for both students at this budget ({size} pixels, {steps} steps)",
             zero=listed(zero), size=recipe["size"], steps=recipe["steps"])


def _complementarity_quotes(q: Quotes):
    """complementarity_table of the CPU grid's independent runs: who leads per class, by how much."""
    table = _complementarity()
    vit_leads, cnn_leads = _leads(table, "vit"), _leads(table, "cnn")
    n = len(ledger.seed_metrics(GRID["independent"], "test", ROOT))
    recipe = _grid_recipe()
    q.expect(EVIDENCE, "Measured on the CPU grid's independent runs ({size}, {scenes} training scenes, {steps} steps, "
                       "from scratch; test split, mean ± std over {n} seeds", n=n, **recipe)
    # the ViT's leads in the class order, the CNN's by size (as docs/evidence.md lists them); gaps signed as leads
    vit_text = listed(f"{c} ({sg(-100 * table.gap[c])})" for c in vit_leads)
    cnn_text = listed(f"{c} ({sg(100 * table.gap[c])})" for c in sorted(cnn_leads, key=lambda c: -table.gap[c]))
    q.expect(EVIDENCE, "({n} seeds, a lead only beyond both spreads): the ViT leads on {v}, the context classes "
                       "the generator was built around; the CNN on {c}.", n=n, v=vit_text, c=cnn_text)
    # docs/evidence.md's own complementarity table (its header is free text), its rows as a whole: mean ± std,
    # a class that no run of either student learns as a bare 0.0
    rows = []
    for name, row in table.iterrows():
        learned = pt(100 * row.cnn_mean) != "0.0" or pt(100 * row.vit_mean) != "0.0"
        cell = lambda m, s: pt(100 * m) + (f" ± {pt(100 * s)}" if learned else "")  # noqa: E731
        lead = {"cnn": "CNN", "vit": "ViT"}.get(row.lead, "-")
        rows.append(f"| {name} | {cell(row.cnn_mean, row.cnn_std)} | {cell(row.vit_mean, row.vit_std)} | {lead} |")
    q.expect(EVIDENCE, "{rows}", rows=" ".join(rows))
    # the same leads named in prose
    q.names(EVIDENCE, "the ViT leads on the classes that share one appearance and differ by layout "
                      "(road and sidewalk, vegetation)", ["road", "sidewalk", "vegetation"], vit_leads,
            "the classes the ViT leads")
    q.names(EVIDENCE, "the CNN's lead is on cars and sky instead", ["car", "sky"], cnn_leads, "the classes the CNN leads")
    q.names(NB01, "with the full recipe the ViT leads on road, sidewalk and vegetation", ["road", "sidewalk", "vegetation"],
            vit_leads, "the classes the ViT leads", cell="cell-22")
    q.names(NB01, "the CNN on car and sky)", ["car", "sky"], cnn_leads, "the classes the CNN leads", cell="cell-22")
    # the first grid (recipe cpu-v1): the ViT led on no class
    v1 = _leads(_complementarity("results/cpu-v1"), "vit")
    q.names(EVIDENCE, "In `results/cpu-v1` (usual learning rates, undertrained students) the ViT led on nothing",
            [], v1, "the classes the ViT leads in results/cpu-v1")
    q.names(EVIDENCE, "(recipe `cpu-v1`) the ViT led on no class at all", [], v1, "the classes the ViT leads in results/cpu-v1")


def _grid_miou_quotes(q: Quotes):
    """The CPU grid's mIoU gains in prose (paired by seed, test): collab, DML and KDCL against independent."""
    recipe = _grid_recipe()
    steps, n = recipe["steps"], recipe["seeds"]
    g = {(m, s): gain(m, s, runs=GRID) for m in ("collab", "dml", "kdcl", "collab_no_hfd") for s in ("cnn", "vit")}
    c_cnn, c_vit = sg(g["collab", "cnn"]["mean"]), sg(g["collab", "vit"]["mean"])
    d_cnn, k_cnn = sg(g["dml", "cnn"]["mean"]), sg(g["kdcl", "cnn"]["mean"])
    q.expect(EVIDENCE, "(CNN {c}, ViT {v} points, inside the seed spread)", c=c_cnn, v=c_vit)
    vs = {(m, s): gain("collab", s, baseline=m, runs=GRID) for m in ("dml", "kdcl") for s in ("cnn", "vit")}
    q.expect(EVIDENCE, "It beats DML ({a}) and KDCL ({b}) for the CNN, beyond the spread; for the ViT it is level "
                       "with DML ({c}) and slightly behind KDCL ({d}, inside the spread). Plain DML and KDCL still "
                       "drag the stronger CNN down ({e}, {f})",
             a=sg(vs["dml", "cnn"]["mean"]), b=sg(vs["kdcl", "cnn"]["mean"]), c=sg(vs["dml", "vit"]["mean"]),
             d=sg(vs["kdcl", "vit"]["mean"]), e=d_cnn, f=k_cnn)
    # without HFD against collab, paired by seed; the two ViT mIoUs as mean ± std over seeds
    no_hfd = gain("collab_no_hfd", "vit", baseline="collab", runs=GRID)
    miou = {m: [100 * r["vit"]["miou"] for r in ledger.seed_metrics(GRID[m], "test", ROOT).values()]
            for m in ("collab_no_hfd", "collab")}
    mean_std = {m: f"{pt(statistics.mean(v))} ± {pt(statistics.stdev(v))}" for m, v in miou.items()}
    q.expect(EVIDENCE, "without HFD the ViT is even {g} higher ({a} vs {b})", g=pt(no_hfd["mean"]),
             a=mean_std["collab_no_hfd"], b=mean_std["collab"])


# ---- the placebo and the two-draw baseline (1200 steps, seeds 0-6: LONG_STUDY) -----------------------------
def _all_or_count(s: dict, sign: int, all_text: str) -> str:
    """`all_text` when every seed's gain has `sign`, else "k of n" (which the document's wording will not match)."""
    k = s["positive"] if sign > 0 else s["negative"]
    return all_text if k == s["seeds"] else f"{k} of {s['seeds']}"


def _placebo_quotes(q: Quotes):
    """docs/evidence.md, "Longer training": what the placebo does, and gains against it and against the mean of
    the two baseline draws (test and val; paired_gain_table(LONG_STUDY, baseline=...))."""
    val, test = "final_val", "test"
    # the first bullet under the 1200-step table: collab, DML and KDCL against independent and against the placebo
    c_val, c_test = gain("collab", "cnn", split=val), gain("collab", "cnn")
    c_vit = gain("collab", "vit")
    val_seeds = c_val["gains"].values()
    q.expect(EVIDENCE, "({m} on test, below independent on {below} seeds, {hi} to {lo} on val; against the placebo "
                       "{p_t} test, {pv} val) and does not help the ViT ({v}, seeds {vlo} to {vhi}).",
             m=sg(c_test["mean"]), below=_all_or_count(c_test, -1, f"all {c_test['seeds']}"),
             hi=sg(max(val_seeds)), lo=sg(min(val_seeds)), p_t=sg(gain("collab", "cnn", PLACEBO)["mean"]),
             pv=sg(gain("collab", "cnn", PLACEBO, val)["mean"]), v=sg(c_vit["mean"]),
             vlo=sg(min(c_vit["gains"].values())), vhi=sg(max(c_vit["gains"].values())))
    d, k = gain("dml", "cnn"), gain("kdcl", "cnn")
    q.expect(EVIDENCE, "Plain DML and KDCL cost it much more ({d} and {k}, {every}, and {dp} / {kp} against the placebo) "
                       "while lifting the ViT about as much as the best collab variants ({dv}, {kv}; against the "
                       "placebo {dvp}, {kvp})",
             d=sg(d["mean"]), k=sg(k["mean"]),
             every=same(_all_or_count(d, -1, "every seed"), _all_or_count(k, -1, "every seed")),
             dp=sg(gain("dml", "cnn", PLACEBO)["mean"]), kp=sg(gain("kdcl", "cnn", PLACEBO)["mean"]),
             dv=sg(gain("dml", "vit")["mean"]), kv=sg(gain("kdcl", "vit")["mean"]),
             dvp=sg(gain("dml", "vit", PLACEBO)["mean"]), kvp=sg(gain("kdcl", "vit", PLACEBO)["mean"]))

    # the placebo against independent: its paired "gains"
    p = {(s, split): gain(PLACEBO, s, split=split) for s in ("cnn", "vit") for split in (val, test)}
    cnn_val = p["cnn", val]
    moved = [abs(g) for g in cnn_val["gains"].values() if pt(abs(g)) != "0.0"]  # the seeds it moves by 0.1 or more
    q.expect(EVIDENCE, "Its paired \"gains\", {n} seeds: CNN {cv} val (below on {below}, {k} of {n} by {lo}-{hi};",
             n=cnn_val["seeds"], cv=ms(cnn_val), below=_all_or_count(cnn_val, -1, "every seed"), k=len(moved),
             lo=pt(min(moved)), hi=pt(max(moved)))
    up_to = {s: max(abs(g) for split in (val, test) for g in p[s, split]["gains"].values()) for s in ("cnn", "vit")}
    spread = {s: sorted(p[s, split]["sd"] for split in (val, test)) for s in ("cnn", "vit")}
    q.expect(EVIDENCE, "and {ct} test; ViT {vv} val and {vt} test. One seed's gain moves by up to {uc} (CNN) and {uv} "
                       "points (ViT), with a per-seed spread of {sc0}-{sc1} (CNN) and {sv0}-{sv1} (ViT).",
             ct=ms(p["cnn", test]), vv=ms(p["vit", val]), vt=ms(p["vit", test]), uc=pt(up_to["cnn"]),
             uv=pt(up_to["vit"]), sc0=pt(spread["cnn"][0]), sc1=pt(spread["cnn"][1]), sv0=pt(spread["vit"][0]),
             sv1=pt(spread["vit"][1]))
    # the seeds where the independent ViT is low: the placebo's two largest ViT "gains" (val), and hfd_only's there
    low = sorted(sorted(p["vit", val]["gains"], key=p["vit", val]["gains"].get)[-2:])
    hfd_val = gain("hfd_only", "vit", split=val)
    q.expect(EVIDENCE, "the `independent` ViT of seeds {a} and {b} is low (the placebo \"gains\" {pa} / {pb} there on "
                       "val, as `hfd_only` does {ha} / {hb})",
             a=low[0], b=low[1], pa=sg(p["vit", val]["gains"][low[0]]), pb=sg(p["vit", val]["gains"][low[1]]),
             ha=sg(hfd_val["gains"][low[0]]), hb=sg(hfd_val["gains"][low[1]]))
    # the "In more detail" summary: the ViT "gains" of the placebo (test, val) and its largest one-seed move
    q.expect(EVIDENCE, "the ViT seemed to gain {lo}-{hi} points; but a placebo,",
             lo=pt(min(gain(m, "vit", split=s)["mean"] for m in ("hfd_only", "collab_no_pixel") for s in (val, test))),
             hi=pt(max(gain(m, "vit", split=s)["mean"] for m in ("hfd_only", "collab_no_pixel") for s in (val, test))))
    vit_means = sorted(p["vit", split]["mean"] for split in (val, test))
    q.expect(EVIDENCE, "\"gains\" {lo} to {hi} on its own and moves a single seed by up to {up} points.",
             lo=sg(vit_means[0]), hi=sg(vit_means[1]), up=f"{up_to['vit']:.0f}")

    # against the placebo
    vs = {(m, s, split): gain(m, s, PLACEBO, split)
          for m in ("hfd_only", "collab_no_pixel", "collab, w_pixel=0.03", "collab", "dml", "kdcl", "collab, T=2",
                    "collab, require_learner_wrong") for s in ("cnn", "vit") for split in (val, test)}
    costs = [vs[m, "cnn", split]["mean"] for m in ("dml", "kdcl", "collab, T=2", "collab, require_learner_wrong")
             for split in (val, test)]
    q.expect(EVIDENCE, "the ViT's gains shrink: `hfd_only` {hv} val / {ht} test, `collab_no_pixel` {nv} / {nt} "
                       "(± {nse}), w_pixel 0.03 {wv} / {wt} (± {wse}); the CNN's costs of DML, KDCL, T = 2 and the "
                       "learner-wrong variant stay ({hi} to {lo} on both splits), the full objective's shrinks to "
                       "{cv} val / {ct} test.",
             hv=ms(vs["hfd_only", "vit", val]), ht=ms(vs["hfd_only", "vit", test]),
             nv=sg(vs["collab_no_pixel", "vit", val]["mean"]), nt=sg(vs["collab_no_pixel", "vit", test]["mean"]),
             nse=same(pt(vs["collab_no_pixel", "vit", val]["se"]), pt(vs["collab_no_pixel", "vit", test]["se"])),
             wv=sg(vs["collab, w_pixel=0.03", "vit", val]["mean"]), wt=sg(vs["collab, w_pixel=0.03", "vit", test]["mean"]),
             wse=same(pt(vs["collab, w_pixel=0.03", "vit", val]["se"]), pt(vs["collab, w_pixel=0.03", "vit", test]["se"])),
             hi=sg(max(costs)), lo=sg(min(costs)), cv=sg(vs["collab", "cnn", val]["mean"]),
             ct=sg(vs["collab", "cnn", test]["mean"]))

    # against the mean of the two draws of the baseline
    two = {(m, s, split): gain(m, s, TWO_DRAWS, split)
           for m in ("hfd_only", "collab_no_pixel", "collab", "hfd_only, channels_last=True (placebo)")
           for s in ("cnn", "vit") for split in (val, test)}
    hv, ht = two["hfd_only", "vit", val], two["hfd_only", "vit", test]
    nv, nt = two["collab_no_pixel", "vit", val], two["collab_no_pixel", "vit", test]
    cv, ct = two["collab", "cnn", val], two["collab", "cnn", test]
    q.expect(EVIDENCE, "`hfd_only`'s ViT gain is positive on {every}: {hv} val ({hvlo} to {hvhi}), {ht} test "
                       "({htlo} to {hthi}), CNN {hc} on both; `collab_no_pixel` {nv} / {nt} ({nvk} and {ntk} of {n} "
                       "seeds), the full objective CNN {c} on both ({cevery}).",
             every=same(_all_or_count(hv, +1, "every seed"), _all_or_count(ht, +1, "every seed")),
             hv=ms(hv), hvlo=sg(min(hv["gains"].values())), hvhi=sg(max(hv["gains"].values())),
             ht=ms(ht), htlo=sg(min(ht["gains"].values())), hthi=sg(max(ht["gains"].values())),
             hc=same(sg(two["hfd_only", "cnn", val]["mean"]), sg(two["hfd_only", "cnn", test]["mean"])),
             nv=sg(nv["mean"]), nt=sg(nt["mean"]), nvk=nv["positive"], ntk=nt["positive"],
             n=same(str(nv["seeds"]), str(nt["seeds"])), c=same(sg(cv["mean"]), sg(ct["mean"])),
             cevery=same(_all_or_count(cv, -1, "every seed"), _all_or_count(ct, -1, "every seed")))
    second = {(s, split): two["hfd_only, channels_last=True (placebo)", s, split] for s in ("cnn", "vit")
              for split in (val, test)}
    q.expect(EVIDENCE, "(channels-last, seeds {first}-{last}, last row) against the same baseline: ViT {vv} val ({vvs}) "
                       "and {vt} test ({all_vt}), CNN {cv} val and {ct} test ({cts}).",
             first=min(second["vit", val]["gains"]), last=max(second["vit", val]["gains"]),
             vv=ms(second["vit", val]), vvs=seeds_of(second["vit", val]), vt=ms(second["vit", test]),
             all_vt=_all_or_count(second["vit", test], +1, f"all {second['vit', test]['seeds']} positive"),
             cv=ms(second["cnn", val]), ct=ms(second["cnn", test]), cts=seeds_of(second["cnn", test]))
    # collab seed 0 rerun after the region term's gather, against the first run of seed 0
    rerun = {s: gain("rerun", s, "collab", runs={"rerun": "results/sweeps/long1200-rerun/collab", "collab": LONG["collab"]})
             for s in ("cnn", "vit")}
    q.expect(EVIDENCE, "moved the CNN by {c} and the ViT by {v} points on test.",
             c=pt(abs(rerun["cnn"]["mean"])), v=pt(abs(rerun["vit"]["mean"])))


def _sweeps_item8_quotes(q: Quotes):
    """results/sweeps/README.md item 8 (round 4), on final val unless it says test."""
    val, test = "final_val", "test"
    p = {(s, split): gain(PLACEBO, s, split=split) for s in ("cnn", "vit") for split in (val, test)}
    cnn_val, cnn_test, vit_val, vit_test = p["cnn", val], p["cnn", test], p["vit", val], p["vit", test]
    moved = [abs(g) for g in cnn_val["gains"].values() if pt(abs(g)) != "0.0"]
    at_or_below = all(g <= 0 for g in cnn_val["gains"].values())
    mixed = cnn_test["positive"] and cnn_test["negative"]
    q.expect(SWEEPS, "The placebo's paired \"gains\" (val, {n} seeds): CNN {cv} ({every} at or below 0, {k} of them by "
                     "{lo}-{hi}; on test {ct}, {signs}), ViT {vv} (seeds {vhi} to {vlo}; on test {vt}, {thi} to {tlo}). "
                     "Per-seed spread {sc} (CNN) and {sv} (ViT) on val.",
             n=cnn_val["seeds"], cv=ms(cnn_val), every="every seed" if at_or_below else "not every seed",
             k=WORDS.get(len(moved), len(moved)), lo=pt(min(moved)), hi=pt(max(moved)), ct=ms(cnn_test),
             signs="mixed signs" if mixed else "one sign", vv=ms(vit_val),
             vhi=sg(max(vit_val["gains"].values())), vlo=sg(min(vit_val["gains"].values())), vt=ms(vit_test),
             thi=sg(max(vit_test["gains"].values())), tlo=sg(min(vit_test["gains"].values())),
             sc=pt(cnn_val["sd"]), sv=pt(vit_val["sd"]))
    feature = [gain(m, "vit", split=val)["mean"] for m in ("hfd_only", "collab_no_pixel")]
    vs = {(m, s): gain(m, s, PLACEBO, val) for m in ("hfd_only", "collab_no_pixel", "collab, w_pixel=0.03", "dml",
                                                       "kdcl", "collab, T=2", "collab, require_learner_wrong", "collab")
          for s in ("cnn", "vit")}
    q.expect(SWEEPS, "So the ViT gains of the feature-space configurations ({lo} to {hi}) are partly the baseline's",
             lo=sg(min(feature)), hi=sg(max(feature)))
    q.expect(SWEEPS, "they are `hfd_only` {h}, `collab_no_pixel` {n}, w_pixel 0.03 {w}; the costs to the CNN of DML "
                     "({d}), KDCL ({k}), T = 2 ({t}) and the learner-wrong variant ({lw}) stay, the full objective's "
                     "shrinks to {c}.",
             h=ms(vs["hfd_only", "vit"]), n=ms(vs["collab_no_pixel", "vit"]), w=ms(vs["collab, w_pixel=0.03", "vit"]),
             d=sg(vs["dml", "cnn"]["mean"]), k=sg(vs["kdcl", "cnn"]["mean"]), t=sg(vs["collab, T=2", "cnn"]["mean"]),
             lw=sg(vs["collab, require_learner_wrong", "cnn"]["mean"]), c=sg(vs["collab", "cnn"]["mean"]))
    two = {(m, s, split): gain(m, s, TWO_DRAWS, split)
           for m in ("hfd_only", "collab_no_pixel", "collab", "dml", "kdcl", "hfd_only, channels_last=True (placebo)")
           for s in ("cnn", "vit") for split in (val, test)}
    hv, ht = two["hfd_only", "vit", val], two["hfd_only", "vit", test]
    nv, cc = two["collab_no_pixel", "vit", val], two["collab", "cnn", val]
    q.expect(SWEEPS, "`hfd_only` ViT {hv}, positive on {hvk} (test {ht}, also {htk} of {htn}), CNN {hc}; "
                     "`collab_no_pixel` ViT {nv} ({nvk} of {nvn}), CNN {nc}; `collab` CNN {cc} ({cck} of {ccn}); DML "
                     "and KDCL CNN {d} and {k}.",
             hv=ms(hv), hvk=_all_or_count(hv, +1, f"all {hv['seeds']} seeds"), ht=ms(ht), htk=ht["positive"],
             htn=ht["seeds"], hc=ms(two["hfd_only", "cnn", val]), nv=ms(nv), nvk=nv["positive"], nvn=nv["seeds"],
             nc=sg(two["collab_no_pixel", "cnn", val]["mean"]), cc=ms(cc), cck=cc["negative"], ccn=cc["seeds"],
             d=sg(two["dml", "cnn", val]["mean"]), k=sg(two["kdcl", "cnn", val]["mean"]))
    second = {(s, split): two["hfd_only, channels_last=True (placebo)", s, split] for s in ("cnn", "vit")
              for split in (val, test)}
    q.expect(SWEEPS, "Against the two-draw baseline: ViT {vv} ({vvs}; test {vt}, {all_vt}), CNN {cv}.",
             vv=ms(second["vit", val]), vvs=seeds_of(second["vit", val]), vt=ms(second["vit", test]),
             all_vt=_all_or_count(second["vit", test], +1, f"all {second['vit', test]['seeds']} positive"),
             cv=ms(second["cnn", val]))
    # w_pixel 0.03 against independent, seven seeds: seeds 0-1 from round 2, 2-6 new in this round
    w = gain("collab, w_pixel=0.03", "cnn", split=val)
    new = [g for seed, g in w["gains"].items() if seed >= 2]  # round 4 ran seeds 2-6 (the item's command)
    signs = {f: statistics.mean(100 * r["cnn"]["iou"]["traffic sign"] for r in
                                ledger.seed_metrics(LONG[f], val, ROOT).values())
             for f in ("collab, w_pixel=0.03", "independent")}
    q.expect(SWEEPS, "w_pixel 0.03 with {n} seeds: CNN {c} (its {k} new seeds {hi} to {lo}, so the level reading of "
                     "{old} seeds did not hold), ViT {v}; signs {s} instead of {s0}.",
             n=WORDS[w["seeds"]], c=ms(w), k=WORDS[len(new)], hi=sg(max(new)), lo=sg(min(new)),
             old=WORDS[w["seeds"] - len(new)], v=ms(gain("collab, w_pixel=0.03", "vit", split=val)),
             s=pt(signs["collab, w_pixel=0.03"]), s0=pt(signs["independent"]))


# ---- round 15: when distillation pays (results/sweeps/overfit-confirm, fresh seeds 14-18, test) -------------
OVERFIT = "research/overfitting.md"
NB06, NB06_OUTCOME = "notebooks/06_results.ipynb", "a7c31e52"


def _teaching_shares(summary) -> dict:
    """{class: (region CNN, region ViT, pixel CNN, pixel ViT) in %} from a report's teaching table (SUMMARY.md,
    written by analysis.write_report from the runs' checkpoints, which are not committed)."""
    text = summary.read_text().split("## Which classes each student teaches", 1)[1]
    rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    return {cells[0].strip(): tuple(float(c) for c in cells[1:]) for cells in rows[1:]}


FIRST_MACHINE_SEED16 = f"9d3df72:{ledger.ROUND15_RECIPE_STUDY['independent']}/seed16/metrics.json"


def _round15_history_quotes(q: Quotes, text: str):
    """What research/overfitting.md quotes of `independent` seed 16 of the recipe's cell made on the first machine
    (replaced by one made on the second; `text`: its metrics.json, from the history at FIRST_MACHINE_SEED16)."""
    recipe = ledger.ROUND15_RECIPE_STUDY
    r = {s: gain("collab", s, runs=recipe) for s in ("cnn", "vit")}
    # independent seed 16 of the recipe's cell, made on the first machine (kept in history) and again on the second
    first16 = json.loads(text)
    second16 = json.loads((ROOT / recipe["independent"] / "seed16" / "metrics.json").read_text())
    q.expect(OVERFIT, "made on both machines: the CNN {c}, the ViT {v}.",
             c=sg(100 * (second16["test"]["cnn"]["miou"] - first16["test"]["cnn"]["miou"])),
             v=sg(100 * (second16["test"]["vit"]["miou"] - first16["test"]["vit"]["miou"])))
    # S read with the first machine's independent seed 16 instead
    collab16 = json.loads((ROOT / recipe["collab"] / "seed16" / "metrics.json").read_text())
    alt = {}
    for st in ("cnn", "vit"):
        gains = dict(r[st]["gains"])
        gains[16] = 100 * (collab16["test"][st]["miou"] - first16["test"][st]["miou"])
        values = list(gains.values())
        alt[st] = {"mean": statistics.mean(values), "se": statistics.stdev(values) / len(values) ** 0.5}
    q.expect(OVERFIT, "S would read {c} for the CNN (fails) and {v} for the ViT (holds, {spread} the spread)",
             c=ms(alt["cnn"]), v=ms(alt["vit"]),
             spread="just beyond" if alt["vit"]["mean"] > 2 * alt["vit"]["se"] else "within")


def _round15_quotes(q: Quotes):
    """The gains, gaps and mIoU that research/overfitting.md, docs/evidence.md, sweeps item 19 and notebook 06
    quote for round 15 (the verdict table itself: test_ledger.py)."""
    from collab_lib.analysis import complementarity_table, generalisation_gaps
    from collab_lib.experiments import collect_results

    picked, recipe = ledger.ROUND15_STUDY, ledger.ROUND15_RECIPE_STUDY
    g = {(n, s, b): gain(n, s, b, runs=picked) for n, b in (("collab", "independent"), ("dml", "independent"),
                                                            ("kdcl", "independent"), ("collab", "dml"), ("collab", "kdcl"))
         for s in ("cnn", "vit")}
    r = {s: gain("collab", s, runs=recipe) for s in ("cnn", "vit")}
    r6 = {s: gain("collab", s, runs=ledger.ROUND6_STUDY) for s in ("cnn", "vit")}
    pooled = list(r6["vit"]["gains"].values()) + list(r["vit"]["gains"].values())
    pooled_se = statistics.stdev(pooled) / len(pooled) ** 0.5
    gap = {(cell, s): statistics.mean(generalisation_gaps(runs["independent"], s, ROOT).values())
           for cell, runs in (("picked", picked), ("recipe", recipe)) for s in ("cnn", "vit")}
    miou = {(cell, s): statistics.mean(100 * m[s]["miou"] for m in ledger.seed_metrics(runs["independent"], "test", ROOT).values())
            for cell, runs in (("picked", picked), ("recipe", recipe)) for s in ("cnn", "vit")}
    best = {s: max(g[n, s, "independent"]["mean"] for n in ("collab", "dml", "kdcl")) for s in ("cnn", "vit")}
    lead = complementarity_table(collect_results(ROOT / ledger.OVERFIT_CONFIRM / ledger.ROUND15_CELL))["lead"]
    cnn_leads, vit_leads = int((lead == "cnn").sum()), int((lead == "vit").sum())
    m = lambda n, s, b="independent": sg(g[n, s, b]["mean"])  # noqa: E731
    collab_vit = g["collab", "vit", "independent"]["gains"].values()
    aug = {s: miou["recipe", s] - miou["picked", s] for s in ("cnn", "vit")}
    # research/overfitting.md
    q.expect(OVERFIT, "The ViT gains most: {c} (collab, every seed between {lo} and {hi}), {d} (DML), {k} (KDCL)",
             c=m("collab", "vit"), lo=sg(min(collab_vit)), hi=sg(max(collab_vit)), d=m("dml", "vit"), k=m("kdcl", "vit"))
    def spread(name):  # as the text words a holding gain: beyond twice its s.e., "just" beyond within 10 %
        summary = g[name, "cnn", "independent"]
        ratio = summary["mean"] / (2 * summary["se"])
        return "beyond" if ratio > 1.1 else "just beyond" if ratio > 1 else "within"

    lost14 = [n for n in ("dml", "collab") if g[n, "cnn", "independent"]["gains"][14] < 0]
    q.expect(OVERFIT, "The CNN gains about half a point with each ({c} / {d} / {k}): {ks} the spread for KDCL, "
                      "{ds} it for DML and {cs} it for collab ({lost} on seed 14)",
             c=m("collab", "cnn"), d=m("dml", "cnn"), k=m("kdcl", "cnn"), ks=spread("kdcl"), ds=spread("dml"),
             cs=spread("collab"), lost="both lose" if lost14 == ["dml", "collab"] else f"losing on 14: {lost14}")
    q.expect(OVERFIT, "(R: {rc}, not settled; R': {rkc}, fails). For the ViT DML is better (R fails, {rv}, no seed "
                      "above) and KDCL is worse (R' holds, {rkv})",
             rc=ms(g["collab", "cnn", "dml"]), rkc=ms(g["collab", "cnn", "kdcl"]), rv=ms(g["collab", "vit", "dml"]),
             rkv=ms(g["collab", "vit", "kdcl"]))
    q.expect(OVERFIT, "(S fails: {sc}, {k} of 5 seeds below, as round 6 found with seven other seeds, {r6c})",
             sc=ms(r["cnn"]), k=r["cnn"]["negative"], r6c=ms(r6["cnn"]))
    q.expect(OVERFIT, "({sv}: {per})", sv=ms(r["vit"]), per=seeds_of(r["vit"]))
    q.expect(OVERFIT, "gave the ViT {r6v}, the twelve together {p} ± {pse} ({k} of 12 above)",
             r6v=ms(r6["vit"]), p=sg(statistics.mean(pooled)), pse=pt(pooled_se), k=sum(x > 0 for x in pooled))
    q.expect(OVERFIT, "the CNN {pc} at a gap of {gpc} points against {rc} at {grc}, the ViT {pv} at {gpv} against {rv} at {grv}",
             pc=m("collab", "cnn"), gpc=f"{gap['picked', 'cnn']:.0f}", rc=sg(r["cnn"]["mean"]), grc=f"{gap['recipe', 'cnn']:.0f}",
             pv=m("collab", "vit"), gpv=f"{gap['picked', 'vit']:.0f}", rv=sg(r["vit"]["mean"]), grv=f"{gap['recipe', 'vit']:.0f}")
    q.expect(OVERFIT, "The independent CNN leads on {c} of the 11 classes and the ViT on none",
             c=cnn_leads if vit_leads == 0 else f"{cnn_leads} (the ViT leads on {vit_leads})")
    q.expect(OVERFIT, "(a lead must exceed the two seed spreads; `complementarity_table`), where in the recipe cell the "
                      "ViT leads on road. Without augmentation the ViT trails by about as much ({v} against {c}; {rv} against "
                      "{rc} with it)",
             v=pt(miou["picked", "vit"]), c=pt(miou["picked", "cnn"]), rv=pt(miou["recipe", "vit"]),
             rc=pt(miou["recipe", "cnn"]))
    q.expect(OVERFIT, "the independent students gain {ac} / {av} test points from augmentation ({rc} / {rv} against "
                      "{pc} / {pv}), the best distillation without it {bc} / {bv}.",
             ac=pt(aug["cnn"]), av=pt(aug["vit"]), rc=pt(miou["recipe", "cnn"]), rv=pt(miou["recipe", "vit"]),
             pc=pt(miou["picked", "cnn"]), pv=pt(miou["picked", "vit"]), bc=pt(best["cnn"]), bv=pt(best["vit"]))
    # docs/evidence.md
    # "DML as much or more, KDCL the CNN as much and the ViT less" (to the printed 0.1)
    r1 = lambda n, s: round(g[n, s, "independent"]["mean"], 1)  # noqa: E731
    if not (r1("dml", "cnn") >= r1("collab", "cnn") and r1("dml", "vit") >= r1("collab", "vit")
            and r1("kdcl", "cnn") >= r1("collab", "cnn") and r1("kdcl", "vit") < r1("collab", "vit")):
        q.claims.append(f"{EVIDENCE}, README.md, {OVERFIT}: 'DML as much or more, KDCL the CNN as much and the ViT "
                        f"less' than collab no longer holds: {[(n, s, r1(n, s)) for n in ('collab', 'dml', 'kdcl') for s in ('cnn', 'vit')]}")
    q.expect(EVIDENCE, "The ViT gains {c} with collab (every seed {lo} to {hi}), {d} with DML, {k} with KDCL; the CNN "
                       "about half a point with each ({cc} / {dc} / {kc};",
             c=m("collab", "vit"), lo=sg(min(collab_vit)), hi=sg(max(collab_vit)), d=m("dml", "vit"), k=m("kdcl", "vit"),
             cc=m("collab", "cnn"), dc=m("dml", "cnn"), kc=m("kdcl", "cnn"))
    q.expect(EVIDENCE, "below DML ({rv}) and above KDCL ({rkv}).", rv=ms(g["collab", "vit", "dml"]),
             rkv=ms(g["collab", "vit", "kdcl"]))
    q.expect(EVIDENCE, "({sc}, within the spread this round; round 6 found {r6c}). The ViT's {sv} holds by the rule, "
                       "within the spread; round 6's "
                       "seven fresh seeds gave it {r6v}, the twelve together {p} ± {pse},",
             sc=ms(r["cnn"]), r6c=ms(r6["cnn"]), sv=ms(r["vit"]), r6v=ms(r6["vit"]), p=sg(statistics.mean(pooled)),
             pse=pt(pooled_se))
    diff = {s: _difference(g["collab", s, "independent"], r[s]) for s in ("cnn", "vit")}
    q.expect(EVIDENCE, "(CNN {pc} at {gpc} points against {rc} at {grc}, a difference of {dc}, {wc} the spread; ViT {pv} "
                       "at {gpv} against {rv} at {grv}, {dv}, {wv} it)",
             pc=m("collab", "cnn"), gpc=f"{gap['picked', 'cnn']:.0f}", rc=sg(r["cnn"]["mean"]), grc=f"{gap['recipe', 'cnn']:.0f}",
             pv=m("collab", "vit"), gpv=f"{gap['picked', 'vit']:.0f}", rv=sg(r["vit"]["mean"]), grv=f"{gap['recipe', 'vit']:.0f}",
             dc=ms(diff["cnn"]), wc=beyond(diff["cnn"]), dv=ms(diff["vit"]), wv=beyond(diff["vit"]))
    q.expect(OVERFIT, "For the CNN the difference, {dc}, is {wc} the spread; for the ViT, {dv}, it is {wv} it.",
             dc=ms(diff["cnn"]), wc=beyond(diff["cnn"]), dv=ms(diff["vit"]), wv=beyond(diff["vit"]))
    q.expect(EVIDENCE, "three methods: {ac} / {av} test points for the independent students.",
             ac=sg(aug["cnn"]), av=sg(aug["vit"]))
    q.expect(EVIDENCE, "the independent CNN leads on {c} of the 11 classes, the ViT on none.",
             c=cnn_leads if vit_leads == 0 else f"{cnn_leads} (the ViT leads on {vit_leads})")
    # results/sweeps/README.md item 19
    q.expect(SWEEPS, "(collab {cc} / {cv}, DML {dc} / {dv}, KDCL {kc} / {kv}, CNN / ViT)",
             cc=m("collab", "cnn"), cv=m("collab", "vit"), dc=m("dml", "cnn"), dv=m("dml", "vit"), kc=m("kdcl", "cnn"),
             kv=m("kdcl", "vit"))
    q.expect(SWEEPS, "in the recipe's cell collab costs the CNN {c} and the ViT's {v}, both within the spread.",
             c=pt(-r["cnn"]["mean"]), v=sg(r["vit"]["mean"]))
    # the picked cell's collab made again on a second machine: what the machine moves, and the teaching shares
    rerun = ledger.seed_metrics(f"{ledger.OVERFIT_CONFIRM}/augoff-n50-rerun/collab", "test", ROOT)
    first = ledger.seed_metrics(picked["collab"], "test", ROOT)
    moved = {s: [100 * (rerun[k][s]["miou"] - first[k][s]["miou"]) for k in sorted(rerun)] for s in ("cnn", "vit")}
    q.expect(OVERFIT, "against the committed runs: the CNN's test mIoU {c} points, the ViT's within {v} of it;",
             c=", ".join(sg(x) for x in moved["cnn"]), v=pt(max(abs(x) for x in moved["vit"])))
    q.expect(EVIDENCE, "differ by {lo} to {hi} points of the CNN's test mIoU ({n}) and at most {v} of the ViT's;",
             lo=sg(min(moved["cnn"])), hi=sg(max(moved["cnn"])),
             n=f"all {WORDS[len(rerun)]} seeds up" if all(x > 0 for x in moved["cnn"]) else "not all up",
             v=pt(max(abs(x) for x in moved["vit"])))
    shares = _teaching_shares(ROOT / ledger.OVERFIT_CONFIRM / "augoff-n50-rerun" / "SUMMARY.md")
    region_cnn = [row[0] for row in shares.values()]
    vit_more = [c for c, row in shares.items() if row[3] > row[2] and row[3] > 10]
    q.expect(OVERFIT, "region-wise the CNN teaches {lo}-{hi} % of every class's area (car {car} %); pixel-wise the two "
                      "split the large classes, the ViT teaching more of the {vm} pixels, and the CNN teaches car "
                      "({pc} % of its pixels against {pv} %).",
             lo=f"{min(region_cnn):.0f}", hi=f"{max(region_cnn):.0f}", car=f"{shares['car'][0]:.0f}",
             vm=listed(vit_more), pc=f"{shares['car'][2]:.0f}", pv=f"{shares['car'][3]:.0f}")
    q.expect(EVIDENCE, "the CNN teaches {lo}-{hi} % of every class's region area; pixel-wise the two split the large "
                       "classes and the CNN teaches car ({pc} % of its pixels against the ViT's {pv} %).",
             lo=f"{min(region_cnn):.0f}", hi=f"{max(region_cnn):.0f}", pc=f"{shares['car'][2]:.0f}",
             pv=f"{shares['car'][3]:.0f}")
    pooled_cnn = list(r6["cnn"]["gains"].values()) + list(r["cnn"]["gains"].values())
    q.expect(OVERFIT, "it costs the CNN {c} points (within the spread this round; with round 6's seeds {p} ± {pse}, {k} of "
                      "{n} below)",
             c=pt(-r["cnn"]["mean"]), p=sg(statistics.mean(pooled_cnn)),
             pse=pt(statistics.stdev(pooled_cnn) / len(pooled_cnn) ** 0.5), k=sum(x < 0 for x in pooled_cnn),
             n=len(pooled_cnn))
    q.expect(NB06, "(independent, 50 scenes: {rc} / {rv} with it, {pc} / {pv} without)", NB06_OUTCOME,
             rc=pt(miou["recipe", "cnn"]), rv=pt(miou["recipe", "vit"]), pc=pt(miou["picked", "cnn"]),
             pv=pt(miou["picked", "vit"]))
    _round15_sized_quotes(q, g, r, r6, gap, diff, spread)


# ---- sized result sentences: the course, the README and the evidence headline (issue #33) -------------------
def _class_side_quotes(q: Quotes):
    """Per-class gains of collab, DML and KDCL side by side with their spreads (400 steps, 3 seeds, test IoU,
    paired by seed; collab_lib.per_class.class_gain_table), as notebook 01 and the evidence headline quote them."""
    from collab_lib.per_class import class_gain_table

    table = _complementarity()
    vit_leads, cnn_leads = _leads(table, "vit"), _leads(table, "cnn")
    runs = {name: GRID[name] for name in ("independent", "dml", "kdcl", "collab")}
    gains = {s: class_gain_table(runs, ("collab", "dml", "kdcl"), s, root=ROOT) for s in ("cnn", "vit")}
    cg = lambda s, c, m: f"{sg(gains[s].loc[c, m])} ± {pt(gains[s].loc[c, m + ' se'])}"  # noqa: E731
    by_cnn_gain = sorted(vit_leads, key=lambda c: -gains["cnn"].loc[c, "collab"])
    listed_cnn = ", ".join(f"{c} {cg('cnn', c, 'collab')}" for c in by_cnn_gain)
    others = sg(max(gains["cnn"].loc[c, m] for c in vit_leads for m in ("dml", "kdcl")))
    top = max(cnn_leads, key=lambda c: table.gap[c])
    if not all(gains["cnn"].loc[c, "collab"] > max(gains["cnn"].loc[c, "dml"], gains["cnn"].loc[c, "kdcl"]) for c in vit_leads):
        q.claims.append(f"{NB01}, {EVIDENCE}: 'collab lifts the CNN on the ViT's classes more than DML or KDCL' no longer holds")
    if not gains["vit"].loc[top, "collab"] < min(gains["vit"].loc[top, "dml"], gains["vit"].loc[top, "kdcl"]):
        q.claims.append(f"{NB01}, {EVIDENCE}: 'DML and KDCL lift the ViT's {top} more than collab' no longer holds")
    q.expect(NB01, "on the classes the ViT leads, collab lifts the CNN ({a} IoU) where DML and KDCL lift it by at most "
                   "{o}; on the CNN's lead, {top}, every online method lifts the ViT, DML and KDCL more than collab ({d} "
                   "and {k} against {c}).", "cell-00", a=listed_cnn, o=others, top=top, d=cg("vit", top, "dml"),
             k=cg("vit", top, "kdcl"), c=cg("vit", top, "collab"))
    q.expect(NB01, "collab spares the CNN's {top} (collab {c}, DML {d}, KDCL {k})", "cell-00", top=top,
             c=cg("cnn", top, "collab"), d=cg("cnn", top, "dml"), k=cg("cnn", top, "kdcl"))
    q.expect(EVIDENCE, "Collab lifts the CNN on the classes the ViT leads ({a} IoU) where DML and KDCL lift it by at most "
                       "{o}; on {top}, the CNN's lead, DML and KDCL lift the ViT more than collab ({d} / {k} against {c}) "
                       "while costing the CNN {dc} / {kc} points of {top} (collab {cc}).",
             a=listed_cnn, o=others, top=top, d=cg("vit", top, "dml"), k=cg("vit", top, "kdcl"), c=cg("vit", top, "collab"),
             dc=pt(-gains["cnn"].loc[top, "dml"]), kc=pt(-gains["cnn"].loc[top, "kdcl"]),
             cc=pt(-gains["cnn"].loc[top, "collab"]))
    q.expect(README, "collab lifts the CNN on the ViT's classes (DML and KDCL at most {o}); on the CNN's {top} all three "
                     "lift the ViT, DML and KDCL more than collab.", o=others, top=top)


def _sized_result_quotes(q: Quotes):
    """The 400-step grid and the 1200-step fresh seeds, with spreads, in notebooks 00, 01 and 04, the README's
    evidence paragraph and the evidence headline."""
    recipe = _grid_recipe()
    grid = {(m, s): gain(m, s, runs=GRID) for m in ("collab", "dml", "kdcl") for s in ("cnn", "vit")}
    r6 = {(m, s): gain(m, s, runs=ledger.ROUND6_STUDY) for m in ("collab", "collab_no_pixel") for s in ("cnn", "vit")}
    dml, kdcl = gain("dml", "cnn", runs=ledger.ROUND7_STUDY), gain("kdcl", "cnn", runs=ledger.ROUND12_STUDY)
    dml_v, kdcl_v = gain("dml", "vit", runs=ledger.ROUND7_STUDY), gain("kdcl", "vit", runs=ledger.ROUND12_STUDY)
    w3 = {s: gain("collab, w_pixel=0.03", s, runs=ledger.ROUND13_STUDY) for s in ("cnn", "vit")}
    level = same(beyond(grid["collab", "cnn"]), beyond(grid["collab", "vit"]))
    costly = same(beyond(grid["dml", "cnn"]), beyond(grid["kdcl", "cnn"]))
    below = same(*(f"{grid[m, 'cnn']['negative']} of {grid[m, 'cnn']['seeds']}" for m in ("dml", "kdcl")))
    c6 = r6["collab", "cnn"]
    all_below = _all_or_count(c6, -1, f"{c6['seeds']} of {c6['seeds']}")
    # notebook 01, the result up front
    q.expect(NB01, "from scratch, {size} scenes, {scenes} training scenes, test split;", "cell-00", **recipe)
    q.expect(NB01, "**The CPU recipe ({steps} steps, augmented, {n} seeds)**: collab moves the CNN by {c} and the ViT by "
                   "{v} points of mIoU: level with independent training, {w} the spread. DML and KDCL cost the CNN, the "
                   "stronger student, {d} and {k} points ({b} seeds below for each, {dw} the spread).", "cell-00",
             steps=recipe["steps"], n=recipe["seeds"], c=ms(grid["collab", "cnn"]), v=ms(grid["collab", "vit"]), w=level,
             d=cost(grid["dml", "cnn"]), k=cost(grid["kdcl", "cnn"]), b=below, dw=costly)
    q.expect(NB01, "**Three times longer (1200 steps, augmented, {n} fresh seeds)**: collab costs the CNN {c} points ({a} "
                   "seeds below, {w} the spread) and moves the ViT by {v} ({vw}); the pixel-wise term is why: without it "
                   "the CNN is level, {p}", "cell-00", n=c6["seeds"], c=cost(c6), a=all_below, w=beyond(c6),
             v=ms(r6["collab", "vit"]), vw=beyond(r6["collab", "vit"]), p=ms(r6["collab_no_pixel", "cnn"]))
    # notebook 04, "What the kit found", and its summary
    q.expect(NB04, "at the default {steps} steps ({n} seeds) collab moves the CNN by {c} points: level, {w} the spread;",
             "cell-17", steps=recipe["steps"], n=recipe["seeds"], c=ms(grid["collab", "cnn"]), w=beyond(grid["collab", "cnn"]))
    q.expect(NB04, "at 1200 steps ({n} fresh seeds) the whole objective costs the CNN, the stronger student, {c} points, "
                   "every seed below independent, {w} the spread; without the pixel-wise term the CNN is level ({p}, the "
                   "same {n} seeds).", "cell-17", n=c6["seeds"], c=cost(c6), w=beyond(c6), p=ms(r6["collab_no_pixel", "cnn"]))
    long = {name: gain(name, "cnn") for name in ("collab, T=2", "collab, require_correct=False", "collab, warmup=0.5",
                                                  "collab, require_learner_wrong")}
    larger = same(*("made it larger" if long[n]["mean"] < c6["mean"] - 2 * long[n]["se"] else "did not make it larger"
                    for n in ("collab, T=2", "collab, require_learner_wrong")))
    q.expect(NB04, "at 1200 steps on {n} seeds each, no change of the rule is shown to remove that cost: $T = 2$ (CNN {t}) "
                   "and the kit's variant `require_learner_wrong=True` ({lw}) {larger}, dropping the correctness condition "
                   "({rc}) left it about as large, and a longer warm-up ({wu}) is {wuw} the spread; a much smaller weight "
                   "did remove it (`w_pixel = 0.03`, {n3} fresh seeds: CNN {wc}, level; ViT {wv}, {ww} the spread).",
             "cell-17", n=same(*(str(s["seeds"]) for s in long.values())), t=ms(long["collab, T=2"]), larger=larger,
             rc=ms(long["collab, require_correct=False"]), wu=ms(long["collab, warmup=0.5"]),
             wuw=beyond(long["collab, warmup=0.5"]), lw=ms(long["collab, require_learner_wrong"]), n3=w3["cnn"]["seeds"],
             wc=ms(w3["cnn"]), wv=ms(w3["vit"]), ww=beyond(w3["vit"]))
    q.expect(NB04, "({c} points, {a} fresh seeds)", "cell-25", c=cost(c6), a=all_below)
    # notebook 00, section 2: the one change of temperature measured in training (1200 steps, seeds 0-6's study)
    t2, t1 = gain("collab, T=2", "cnn"), gain("collab", "cnn")
    q.expect(NB00, "$T = 2$ cost the CNN {t2} points of test mIoU ({n2} seeds, each one below independent training), "
                   "where $T = 1$ cost it {t1} ({n1} seeds of the same study;", "cell-05",
             t2=cost(t2) if t2["negative"] == t2["seeds"] else "not every seed below", n2=t2["seeds"], t1=cost(t1),
             n1=t1["seeds"])
    # the README's evidence paragraph
    q.expect(README, "At {steps} steps ({n} seeds) collab is level with independent training for both students ({c} / "
                     "{v}), while DML and KDCL cost the stronger CNN {dw} the spread", steps=recipe["steps"],
             n=recipe["seeds"], c=ms(grid["collab", "cnn"]), v=ms(grid["collab", "vit"]), dw=costly)
    q.expect(README, "every online method costs the CNN, collab least ({c}, {a} seeds below)", c=cost(c6), a=all_below)
    # the evidence headline
    q.expect(EVIDENCE, "**On the kit's CPU recipe ({steps} steps, augmented, {n} seeds) collab is level with independent "
                       "training**: CNN {c}, ViT {v}, both {w} the spread.", steps=recipe["steps"], n=recipe["seeds"],
             c=ms(grid["collab", "cnn"]), v=ms(grid["collab", "vit"]), w=level)
    q.expect(EVIDENCE, "down: {d} / {k} at {steps} steps ({b} seeds below each, {dw} the spread); at 1200 steps, on fresh "
                       "seeds written down first, {d2} (DML, {db} seeds below) and {k2} (KDCL, {kb}), while moving the ViT "
                       "by less than the spread ({dv} / {kv}).",
             d=ms(grid["dml", "cnn"]), k=ms(grid["kdcl", "cnn"]), steps=recipe["steps"], b=below, dw=costly, d2=ms(dml),
             db=_all_or_count(dml, -1, f"{dml['seeds']} of {dml['seeds']}"), k2=ms(kdcl),
             kb=_all_or_count(kdcl, -1, f"{kdcl['seeds']} of {kdcl['seeds']}"),
             dv=ms(dml_v) if beyond(dml_v) == "within" else "beyond", kv=ms(kdcl_v) if beyond(kdcl_v) == "within" else "beyond")
    q.expect(EVIDENCE, "at 1200 steps the full objective costs the CNN {c} points ({a} fresh seeds below, {w} the spread), "
                       "and the pixel-wise term is why: without it ({p}) or at a tenth of its weight ({w3}; {n} fresh "
                       "seeds each) the CNN is level.", c=cost(c6), a=all_below, w=beyond(c6), p=ms(r6["collab_no_pixel", "cnn"]),
             w3=ms(w3["cnn"]), n=same(str(r6["collab_no_pixel", "cnn"]["seeds"]), str(w3["cnn"]["seeds"])))


def _round15_sized_quotes(q: Quotes, g, r, r6, gap, diff, spread):
    """Round 15 with spreads: the evidence headline, notebook 01, notebook 06's outcome cell and the README."""
    m = lambda n, s, b="independent": ms(g[n, s, b])  # noqa: E731
    lifts_vit = same(*(beyond(g[n, "vit", "independent"]) for n in ("collab", "dml", "kdcl")))
    q.expect(EVIDENCE, "collab lifts the ViT {cv} ({vw} the spread) and the CNN {cc} ({cw} it); DML lifts them as much or "
                       "more ({dv} / {dc}), KDCL the ViT less and the CNN as much ({kv} / {kc}). Whether the gain grows with "
                       "the generalisation gap rests on two cells per student; for the ViT the difference is {dw} the "
                       "spread.",
             cv=m("collab", "vit"), vw=beyond(g["collab", "vit", "independent"]), cc=m("collab", "cnn"),
             cw=beyond(g["collab", "cnn", "independent"]), dv=m("dml", "vit"), dc=m("dml", "cnn"), kv=m("kdcl", "vit"),
             kc=m("kdcl", "cnn"), dw=beyond(diff["vit"]))
    q.expect(NB01, "collab lifts the ViT {cv} ({vw} the spread) and the CNN {cc} ({cw} it); plain DML lifts them as much or "
                   "more ({dv} / {dc})", "cell-00", cv=m("collab", "vit"), vw=beyond(g["collab", "vit", "independent"]),
             cc=m("collab", "cnn"), cw=beyond(g["collab", "cnn", "independent"]), dv=m("dml", "vit"), dc=m("dml", "cnn"))
    q.expect(README, "Without augmentation (one cell, {n} seeds) collab lifts the ViT {cv} and the CNN {cc} ({cw} the "
                     "spread)", n=g["collab", "cnn", "independent"]["seeds"], cv=m("collab", "vit"), cc=m("collab", "cnn"),
             cw=beyond(g["collab", "cnn", "independent"]))
    collab = g["collab", "cnn", "independent"]
    q.expect(NB06, "overfit their 50 scenes by {gc} / {gv} points (CNN / ViT), **every method lifts the ViT {vw} the "
                   "spread**: collab by {cv}, DML by {dv}, KDCL by {kv} points of test mIoU. The CNN gains about half a "
                   "point with each: collab {cc} ({cs} the spread, {ca} of {n} seeds above), DML {dc} ({ds} it), KDCL {kc} "
                   "({ks}).", NB06_OUTCOME, gc=f"{gap['picked', 'cnn']:.0f}", gv=f"{gap['picked', 'vit']:.0f}",
             vw=lifts_vit, cv=m("collab", "vit"), dv=m("dml", "vit"), kv=m("kdcl", "vit"), cc=m("collab", "cnn"),
             cs=spread("collab"), ca=collab["positive"], n=collab["seeds"], dc=m("dml", "cnn"), ds=spread("dml"),
             kc=m("kdcl", "cnn"), ks=spread("kdcl"))
    q.expect(NB06, "for the CNN collab is level with DML ({rc}) and KDCL ({rkc}); for the ViT it sits between them, below "
                   "DML ({rv}) and above KDCL ({rkv}).", NB06_OUTCOME, rc=m("collab", "cnn", "dml"),
             rkc=m("collab", "cnn", "kdcl"), rv=m("collab", "vit", "dml"), rkv=m("collab", "vit", "kdcl"))
    q.expect(NB06, "(augmentation on, 50 scenes, gaps {gc} / {gv}) collab costs the CNN {c} points ({cw} the spread on "
                   "these five seeds; seven other fresh seeds gave {r6c}); the ViT's {v} is {vw} the spread, and the seven "
                   "other fresh seeds gave it {r6v}.", NB06_OUTCOME, gc=f"{gap['recipe', 'cnn']:.0f}",
             gv=f"{gap['recipe', 'vit']:.0f}", c=cost(r["cnn"]), cw=beyond(r["cnn"]), r6c=ms(r6["cnn"]), v=ms(r["vit"]),
             vw=beyond(r["vit"]), r6v=ms(r6["vit"]))
    q.expect(NB06, "for the CNN the difference between them ({dc} points, from a gap of {g1} to {g2}) is {wc} the spread, "
                   "for the ViT ({dv}, from {g3} to {g4}) it is {wv} it.", NB06_OUTCOME, dc=ms(diff["cnn"]),
             g1=f"{gap['recipe', 'cnn']:.0f}", g2=f"{gap['picked', 'cnn']:.0f}", wc=beyond(diff["cnn"]), dv=ms(diff["vit"]),
             g3=f"{gap['recipe', 'vit']:.0f}", g4=f"{gap['picked', 'vit']:.0f}", wv=beyond(diff["vit"]))


# ---- the tests ---------------------------------------------------------------------------------------------
def test_cpu_grid_per_class_gains_quoted_are_the_committed_runs():
    """docs/evidence.md (headline, "What this says") and notebook 01 (cell-00): collab's per-class gains over
    independent on results/cpu (test IoU, paired by seed), on the classes each student leads, on the ties,
    DML's and KDCL's on car, fence, and the classes no student learns."""
    q = Quotes()
    _grid_class_quotes(q)
    q.check()


def test_cpu_grid_complementarity_quoted_is_the_committed_runs():
    """complementarity_table(results/cpu): the leads and gaps in docs/evidence.md's prose, its own complementarity
    table row by row, the lead classes named in the headline, in notebook 01 (cell-22), and results/cpu-v1's."""
    q = Quotes()
    _complementarity_quotes(q)
    q.check()


def test_cpu_grid_miou_prose_is_the_committed_runs():
    """The CPU grid's mIoU gains quoted in prose (docs/evidence.md headline and "What this says", notebook 01
    cell-00); the grid's table itself is pinned by test_ledger.py."""
    q = Quotes()
    _grid_miou_quotes(q)
    q.check()


def test_placebo_and_two_draw_baseline_prose_in_the_evidence_is_the_committed_runs():
    """docs/evidence.md, "Longer training": every number quoted against the placebo and against the mean of the
    two baseline draws (and the placebo's own "gains"), test and val, recomputed from LONG_STUDY."""
    q = Quotes()
    _placebo_quotes(q)
    q.check()


def test_sweeps_readme_item8_is_the_committed_runs():
    """results/sweeps/README.md item 8 (round 4): the placebo, gains against it and against the two-draw baseline,
    the second draw of hfd_only and w_pixel 0.03 at seven seeds (final val unless marked test)."""
    q = Quotes()
    _sweeps_item8_quotes(q)
    q.check()


def test_paired_gain_summary_is_what_paired_gain_table_prints():
    """The quotes above read `ledger.paired_gain_summary`; the write-ups cite paired_gain_table: the two agree
    cell by cell for the baselines quoted (independent, the placebo, the mean of both), on both splits."""
    from collab_lib.analysis import paired_gain_table

    names = ["independent", PLACEBO, "dml", "kdcl", "collab", "collab_no_pixel", "hfd_only", "collab, w_pixel=0.03",
             "collab, T=2", "collab, require_learner_wrong", "hfd_only, channels_last=True (placebo)"]
    runs = {name: LONG[name] for name in names}
    for baseline in ("independent", PLACEBO, TWO_DRAWS):
        for split in ("final_val", "test"):
            rows = {row.split(" | ")[0].strip("| "): row.split(" | ")
                    for row in paired_gain_table(runs, baseline, split, root=ROOT).splitlines()[2:]}
            for name in names:
                if name in ((baseline,) if isinstance(baseline, str) else baseline):
                    continue
                for column, student in ((4, "cnn"), (5, "vit")):
                    s = gain(name, student, baseline, split)
                    assert rows[name][column] == f"{ms(s)} ({seeds_of(s)})", (name, student, baseline, split)
                    assert s["seeds"] == int(rows[name][1])


def _alter_a_number(raw: str, fragment: str, nth: int = 0):
    """`raw` with the last digit of the fragment's `nth` number changed where the fragment occurs (its words
    separated by any whitespace there), and the number before and after."""
    match = re.search(r"\s+".join(map(re.escape, fragment.split())), raw)
    assert match, f"not in the text: {fragment}"
    number = list(re.finditer(r"\d+(?:\.\d+)?", match.group(0)))[nth]
    old = number.group(0)
    new = old[:-1] + str((int(old[-1]) + 1) % 10)
    at = match.start() + number.start()
    return raw[:at] + new + raw[at + len(old):], old, new


def test_a_changed_number_in_a_document_fails_its_quote(tmp_path):
    """The mechanism, on altered copies of the documents under tmp_path: one digit of one quoted number changed
    is reported once, naming the file (and cell), the fragment the runs give and the recomputed value."""
    q = Quotes()
    _placebo_quotes(q)
    assert q.missing() == []
    fragment = next(f for d, _, f, _ in q.expected if d == EVIDENCE and f.startswith("the ViT's gains shrink"))
    text = (ROOT / EVIDENCE).read_text()
    altered, old, new = _alter_a_number(text, fragment, nth=0)
    (tmp_path / "docs").mkdir()
    (tmp_path / EVIDENCE).write_text(altered)
    missing = q.missing(root=tmp_path)
    assert len(missing) == 1 and missing[0].startswith(f"{EVIDENCE}: the runs give «{fragment}» (recomputed: hv = ")
    assert re.search(rf"hv = [+-]{re.escape(old)} ", missing[0])  # the recomputed value
    assert re.search(rf"nearest text: «the ViT's gains shrink: `hfd_only` [+-]{re.escape(new)} ", missing[0])
    # a notebook's markdown cell, found by its id
    q = Quotes()
    _class_side_quotes(q)
    fragment = next(f for d, c, f, _ in q.expected if d == NB01 and c == "cell-00" and f.startswith("collab spares"))
    notebook = json.loads((ROOT / NB01).read_text())
    cell = next(c for c in notebook["cells"] if c.get("id") == "cell-00")
    source, old, new = _alter_a_number("".join(cell["source"]), fragment, nth=-1)
    cell["source"] = source.splitlines(keepends=True)
    (tmp_path / "notebooks").mkdir()
    (tmp_path / NB01).write_text(json.dumps(notebook))
    (tmp_path / EVIDENCE).write_text(text)
    (tmp_path / README).write_text((ROOT / README).read_text())
    missing = q.missing(root=tmp_path)
    assert len(missing) == 1 and missing[0].startswith(f"{NB01}, cell cell-00: the runs give «{fragment}»")
    recomputed, nearest = missing[0].split("the document's nearest text")
    assert re.search(rf"; k = [+-][\d.]+ ± {re.escape(old)}\)", recomputed) and re.search(rf"± {re.escape(new)}\)", nearest)


def test_sized_result_sentences_are_the_committed_runs():
    """Notebooks 00, 01 and 04, the README's evidence paragraph and the evidence headline: each result sentence with
    its regime, seeds and spread, recomputed (400-step grid; rounds 6, 7, 12 and 13; the temperature study)."""
    q = Quotes()
    _sized_result_quotes(q)
    q.check()


def test_per_class_gains_side_by_side_are_the_committed_runs():
    """Notebook 01 and the evidence headline: collab's, DML's and KDCL's per-class gains with their spreads."""
    q = Quotes()
    _class_side_quotes(q)
    q.check()


def test_round15_prose_is_the_committed_runs():
    """Round 15's gains, gaps, per-class leads and mIoU as research/overfitting.md, docs/evidence.md, sweeps item 19
    and notebook 06's outcome cell quote them."""
    q = Quotes()
    _round15_quotes(q)
    q.check()


def test_round15_prose_about_the_replaced_run_is_its_history():
    """The first machine's `independent` seed 16 of the recipe's cell, kept in history (commit 9d3df72): what a
    machine change did to it, and S read with it instead of the second machine's run."""
    import pytest

    import subprocess

    # `git show <commit>:<path>` (the ledger no longer reads git history itself); None where the clone lacks it
    shown = subprocess.run(["git", "show", FIRST_MACHINE_SEED16], cwd=ROOT, capture_output=True, text=True)
    text = shown.stdout if shown.returncode == 0 else None
    if text is None:
        pytest.skip(f"{FIRST_MACHINE_SEED16} is not in this clone (a shallow clone): its quotes cannot be checked")
    q = Quotes()
    _round15_history_quotes(q, text)
    q.check()


# ---- rounds 16-17: does the selection matter? (research/selectivity.md) ------------------------------------
SELECTIVITY = "research/selectivity.md"
NB04_SELECTION, NB04_SUMMARY = "cell-13v", "cell-25"
NB06_MEANING, NB06_SUMMARY = "bb470c1e", "5d0e8b22"


def _selectivity_quotes(q: Quotes):
    """Round 17's gains as research/selectivity.md, docs/evidence.md, the README and notebooks 01, 04 and 06 quote
    them (the tables themselves: test_selectivity.py; the README's row: test_ledger.py)."""
    from research import selectivity

    cell = "mnv2-augoff-n50"
    study = selectivity.study_runs(cell)
    g = {(n, s, b): gain(n, s, b, runs=study) for n, b in (("collab", "collab_nonselective"), ("collab", "dml_w0.3"),
                                                           ("collab", "independent"), ("dml_w0.3", "dml"),
                                                           ("collab_nonselective", "dml_w0.3"))
         for s in ("cnn", "vit")}
    val = {s: gain("collab", s, "collab_nonselective", split="final_val", runs=study) for s in ("cnn", "vit")}
    h1c, h1v = g["collab", "cnn", "collab_nonselective"], g["collab", "vit", "collab_nonselective"]
    # the verdicts the prose words: H1 for the ViT a cost beyond the spread, for the CNN within it
    if not (h1v["mean"] + 2 * h1v["se"] < 0 and h1c["mean"] - 2 * h1c["se"] < 0 < h1c["mean"]):
        q.claims.append(f"{SELECTIVITY}: H1 no longer reads 'a cost for the ViT, not settled for the CNN'")
    for n, b in (("collab", "dml_w0.3"), ("collab", "independent")):
        for s in ("cnn", "vit"):
            if beyond(g[n, s, b]) != "beyond" or g[n, s, b]["mean"] <= 0:
                q.claims.append(f"{SELECTIVITY}: {n} over {b} for the {s} is no longer a gain beyond the spread")
    ci = g["collab", "cnn", "independent"]["gains"].values()
    sh = selectivity.teaching_shares(study["collab"])
    pc = lambda key: f"{100 * sh[key][0]:.0f}"  # noqa: E731
    h = lambda n, s, b: ms(g[n, s, b])  # noqa: E731
    costv = cost(h1v)
    q.expect(SELECTIVITY, "the selection costs it {c} points of test mIoU ({k} of 8 seeds above; mean + 2 s.e. < 0, "
                          "beyond the spread). For the CNN it is **not settled**: {hc} on test ({vc} val, {kc} of 8 seeds above)",
             c=costv, k=h1v["positive"], hc=ms(h1c), vc=ms(val["cnn"]), kc=h1c["positive"])
    q.expect(SELECTIVITY, "(collab minus independent from {lo} to {hi} points)", lo=sg(min(ci)), hi=sg(max(ci)))
    q.expect(SELECTIVITY, "collab beats DML at the same pixel weight by {c} for the CNN ({kc} of 8 seeds) and {v} for "
                          "the ViT ({kv} of 8)", c=h("collab", "cnn", "dml_w0.3"), kc=g["collab", "cnn", "dml_w0.3"]["positive"],
             v=h("collab", "vit", "dml_w0.3"), kv=g["collab", "vit", "dml_w0.3"]["positive"])
    q.expect(SELECTIVITY, "collab lifts the CNN {c} ({kc} of 8 seeds) and the ViT {v} ({kv} of 8)",
             c=h("collab", "cnn", "independent"), kc=g["collab", "cnn", "independent"]["positive"],
             v=h("collab", "vit", "independent"), kv=g["collab", "vit", "independent"]["positive"])
    q.expect(SELECTIVITY, "For the ViT it is worse, {v} ({kv} of 8 seeds above); for the CNN {c} (level)",
             v=h("dml_w0.3", "vit", "dml"), kv=g["dml_w0.3", "vit", "dml"]["positive"], c=h("dml_w0.3", "cnn", "dml"))
    q.expect(SELECTIVITY, "HFD and the region term lift the ViT {v} over DML at the same pixel weight ({kv} of 8 seeds) "
                          "and leave the CNN level ({c})", v=h("collab_nonselective", "vit", "dml_w0.3"),
             kv=g["collab_nonselective", "vit", "dml_w0.3"]["positive"], c=h("collab_nonselective", "cnn", "dml_w0.3"))
    q.expect(SELECTIVITY, "the ViT teaches {rv} % of the valid regions and the CNN {rc} %; pixel-wise they split the "
                          "pixels about evenly (CNN {pc_} %, ViT {pv} %", rv=pc("region_frac_vit_teaches"),
             rc=pc("region_frac_cnn_teaches"), pc_=pc("pixel_frac_cnn_teaches"), pv=pc("pixel_frac_vit_teaches"))
    q.expect(SELECTIVITY, "and for the CNN the selection's apparent {c} is within the spread", c=sg(h1c["mean"]))
    # the same run on both machines (seed 27): the superseded AMD runs against the study's
    amd = "results/sweeps/selectivity-superseded/mnv2-augoff-n50-seed27-amd"
    test = lambda folder, s: 100 * json.loads((ROOT / folder / "seed27/metrics.json").read_text())["test"][s]["miou"]  # noqa: E731
    arms = ("collab", "collab_nonselective", "independent", "dml_w0.3")
    diff = {s: max(abs(test(f"{amd}/{a}", s) - test(study[a], s)) for a in arms) for s in ("cnn", "vit")}
    h1_27 = {(m, s): (test(f"{root}/collab", s) - test(f"{root}/collab_nonselective", s))
             for m, root in (("intel", study["collab"].rsplit("/", 1)[0]), ("amd", amd)) for s in ("cnn", "vit")}
    q.expect(SELECTIVITY, "differs between them by up to {c} points for the CNN (collab: {ci} Intel, {ca} AMD) and by at "
                          "most {v} for the ViT", c=pt(diff["cnn"]), ci=pt(test(study["collab"], "cnn")),
             ca=pt(test(f"{amd}/collab", "cnn")), v=pt(diff["vit"]))
    q.expect(SELECTIVITY, "(CNN {a} Intel / {b} AMD; ViT {c} / {d})", a=sg(h1_27["intel", "cnn"]), b=sg(h1_27["amd", "cnn"]),
             c=sg(h1_27["intel", "vit"]), d=sg(h1_27["amd", "vit"]))
    # docs/evidence.md: the headline and the section
    q.expect(EVIDENCE, "Collab lifts the CNN {c} and the ViT {v} over independent training, and beats DML at the same "
                       "pixel weight by {dc} / {dv}, all beyond the spread.", c=h("collab", "cnn", "independent"),
             v=h("collab", "vit", "independent"), dc=h("collab", "cnn", "dml_w0.3"), dv=h("collab", "vit", "dml_w0.3"))
    q.expect(EVIDENCE, "the selection costs it {c} (beyond the spread). For the CNN the selection's {hc} is within the "
                       "spread (not settled).", c=costv, hc=ms(h1c))
    q.expect(EVIDENCE, "the selection costs it {c} points (beyond the spread). For the CNN, H1 is not settled: {hc} ({k} "
                       "of 8 seeds above)", c=costv, hc=ms(h1c), k=h1c["positive"])
    q.expect(EVIDENCE, "(collab minus independent from {lo} to {hi})", lo=sg(min(ci)), hi=sg(max(ci)))
    q.expect(EVIDENCE, "the CNN {c}, the ViT {v} over independent training (H3), and {dc} / {dv} over DML at the same "
                       "pixel weight (H2).", c=h("collab", "cnn", "independent"), v=h("collab", "vit", "independent"),
             dc=h("collab", "cnn", "dml_w0.3"), dv=h("collab", "vit", "dml_w0.3"))
    q.expect(EVIDENCE, "HFD and the region term add {v} to DML at weight 0.3 ({kv} of 8 seeds; for the CNN {c}).",
             v=h("collab_nonselective", "vit", "dml_w0.3"), kv=g["collab_nonselective", "vit", "dml_w0.3"]["positive"],
             c=h("collab_nonselective", "cnn", "dml_w0.3"))
    q.expect(EVIDENCE, "weight 0.3 leaves the CNN level ({c}) and costs the ViT {v}.", c=h("dml_w0.3", "cnn", "dml"),
             v=cost(g["dml_w0.3", "vit", "dml"]))
    q.expect(EVIDENCE, "the ViT teaches {rv} % of the valid regions and the CNN {rc} %; per pixel they split about evenly "
                       "({pc_} % / {pv} %)", rv=pc("region_frac_vit_teaches"), rc=pc("region_frac_cnn_teaches"),
             pc_=pc("pixel_frac_cnn_teaches"), pv=pc("pixel_frac_vit_teaches"))
    q.expect(EVIDENCE, "differ by up to {c} points of the CNN's test mIoU, without changing a verdict", c=pt(diff["cnn"]))
    # the README's paragraph, notebooks 01, 04 and 06
    q.expect(README, "does {c} better for the ViT, and the selection's {hc} for the CNN is within the spread",
             c=costv, hc=ms(h1c))
    q.expect(NB01, "does {c} points better for the ViT, and the selection's {hc} for the CNN is within the spread",
             "cell-00", c=costv, hc=ms(h1c))
    q.expect(NB04, "collab lifts both students over independent training (CNN {c}, ViT {v}) and over DML at the same "
                   "pixel weight (CNN {dc}, ViT {dv}), all beyond the spread", NB04_SELECTION,
             c=h("collab", "cnn", "independent"), v=h("collab", "vit", "independent"), dc=h("collab", "cnn", "dml_w0.3"),
             dv=h("collab", "vit", "dml_w0.3"))
    q.expect(NB04, "the selection costs it {c} points (beyond the spread). For the CNN the selection's {hc} is within "
                   "the spread ({k} of 8 seeds above; not settled)", NB04_SELECTION, c=costv, hc=ms(h1c), k=h1c["positive"])
    q.expect(NB04, "HFD and the region term add {v} to DML at the same pixel weight", NB04_SELECTION,
             v=h("collab_nonselective", "vit", "dml_w0.3"))
    for document, where in ((NB04, NB04_SUMMARY), (NB06, NB06_SUMMARY)):
        q.expect(document, "it costs the ViT {c} points, and its {hc} for the CNN is within the spread", where,
                 c=costv, hc=ms(h1c))
    q.expect(NB06, "(it costs the ViT {c} points; its {hc} for the CNN is within the spread)", NB06_MEANING,
             c=costv, hc=ms(h1c))


def test_selectivity_prose_is_the_committed_runs():
    """Round 17's gains, verdict wording, teaching shares and machine comparison as the write-ups, the README and
    notebooks 01, 04 and 06 quote them."""
    q = Quotes()
    _selectivity_quotes(q)
    q.check()
