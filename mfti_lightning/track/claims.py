"""The paper's findings tested on a sweep's runs: the "Claims" section that opens report.md (and the ``claims``
table of the W&B report run). Pure computation on the report's tidy rows (``table.tidy_rows``: one row per run
and direction plus its ``avg``); no drawing, no files, no torch.

Each finding gets the effect measured on these runs with its 95 % interval over seeds (``stats.welch`` between
two seed groups, ``stats.fit_line`` for a trend, ``stats.interval`` of a per-seed quantity), the paired t-test
over matched seeds where both sides ran the same seeds (``stats.paired``), the paper's statement, and a verdict:

- ``supported``: the interval lies on the paper's side of 0; ``contradicted``: it lies entirely on the other side;
- ``inconclusive``: it includes 0, or a side has fewer than 2 seeds (no interval: the seeds are named);
- ``not measured``: these runs do not hold the comparison; the sweep under ``sweeps/`` that does is named.

A seed group is the report's (``stats.seed_groups``): runs whose config differs only in ``seed``.
The paper's magnitudes (``> 3 BLEU``, ``up to +1.7 BLEU``) are spBLEU; they are compared only when the report's
metric is a BLEU, and never decide the verdict, which is about the direction of the effect.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from mfti_lightning.core.languages import LANGUAGES
from mfti_lightning.track.stats import Interval, SeedGroup, correlation, fit_line, interval, paired, welch

GROUP_KEYS = ("method", "model", "lang_pairs", "template", "shots", "num_examples")
PAPER_SHOTS = 8


@dataclass
class Claim:
    claim: str  # the finding, in a few words
    paper: str  # what the paper states
    sweep: str  # the sweep file under sweeps/ that measures it
    compared: str = ""  # the runs compared
    effect: Interval | None = None  # measured, with its 95 % interval over seeds
    seeds: str = ""  # the seeds behind each side
    min_seeds: int = 0
    test: str = ""  # the paired test over matched seeds, where it applies
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.effect is None:
            return f"not measured (sweeps/{self.sweep})"
        if self.min_seeds < 2 or self.effect.low is None:
            return f"inconclusive ({self.seeds}: no interval)"
        if self.effect.low > 0:
            return "supported"
        if self.effect.high < 0:
            return "contradicted"
        return "inconclusive (the interval includes 0)"

    def row(self) -> dict:
        iv = self.effect
        return {
            "claim": self.claim, "compared": self.compared, "effect": None if iv is None else iv.mean,
            "ci_low": None if iv is None else iv.low, "ci_high": None if iv is None else iv.high,
            "seeds": self.seeds, "paired_test": self.test, "paper": self.paper, "verdict": self.verdict,
            "note": self.note,
        }  # fmt: skip


# ---- runs and seed groups from the tidy rows ------------------------------------------------------------------
@dataclass
class Run:
    keys: dict  # method and swept values
    seed: object
    avg: float | None
    scores: dict  # direction -> score
    partition: dict  # direction -> partition name ("" when the run has none)
    params: float | None
    train_directions: int
    run_dir: str
    group: str = ""  # the report's seed group's label (stats.seed_groups)


def runs_of(rows: list[dict], col: str) -> list[Run]:
    """One :class:`Run` per run directory of the tidy rows, with its score column ``col`` (``test/bleu``)."""
    by_run: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_run[str(r.get("run_dir") or r.get("run"))].append(r)
    out = []
    for run_dir, rs in by_run.items():
        first = rs[0]
        dirs = [r for r in rs if r["direction"] != "avg" and r.get(col) is not None]
        out.append(
            Run(
                {k: first.get(k) for k in GROUP_KEYS}, first.get("seed"),
                next((r.get(col) for r in rs if r["direction"] == "avg"), None),
                {r["direction"]: float(r[col]) for r in dirs}, {r["direction"]: r.get("partition") or "" for r in dirs},
                first.get("params"), int(first.get("num_train_directions") or 0), run_dir,
            )
        )  # fmt: skip
    return out


def claim_groups(runs: list[Run], groups: list[SeedGroup]) -> list[list[Run]]:
    """The report's seed groups (:func:`stats.seed_groups`: the config's identity without the seed, so that runs
    alike in their swept values but not in their config are never taken for seeds of one experiment) as lists of
    :class:`Run`, sorted by seed, in the order their first run comes in the tidy rows."""
    group_of = {str(rec.get("_dir")): g for g in groups for rec in g.records}
    by_group: dict[str, list[Run]] = defaultdict(list)
    for r in runs:
        g = group_of.get(r.run_dir)
        r.group = g.label if g else ""
        by_group[g.key if g else r.run_dir].append(r)
    return [sorted(g, key=lambda r: str(r.seed)) for g in by_group.values()]


def describe(group: list[Run]) -> str:
    k = group[0].keys
    shots = f" k{k['shots']}" if k["method"] != "mFTI" or int(k["shots"] or 0) else ""
    examples = f" n{k['num_examples']}" if k["method"] == "mFTI" else ""
    tag = f" ({group[0].group})" if "#" in group[0].group else ""  # one name, two experiments (stats.seed_groups)
    return f"{k['method']}{shots}{examples} {k['model']} {k['lang_pairs']} {k['template']}{tag}"


def _seeds(*groups: list[Run]) -> str:
    return " vs ".join(f"{len(g)} seed{'s' if len(g) != 1 else ''}" for g in groups)


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


# ---- comparisons of two seed groups -------------------------------------------------------------------------------
def compare(claim: Claim, system: list[Run], baseline: list[Run], score) -> Claim:
    """``score(run)`` of ``system`` minus ``baseline``: the Welch interval over seeds, and the paired t-test when
    the two groups ran the same seeds (2 or more)."""
    a, b = [score(r) for r in system], [score(r) for r in baseline]
    claim.effect = welch(a, b)
    claim.seeds, claim.min_seeds = _seeds(system, baseline), min(len(system), len(baseline))
    claim.compared = f"{describe(system)} minus {describe(baseline)}"
    by_seed = {r.seed: score(r) for r in baseline}
    matched = [(score(r), by_seed[r.seed]) for r in system if r.seed in by_seed]
    res = paired([x for x, _ in matched], [y for _, y in matched])
    if res is not None:
        iv, p = res
        claim.test = f"paired t over {iv.n} matched seeds: {iv.mean:+.2f} [{iv.low:+.2f}, {iv.high:+.2f}], p={p:.3g}"
    return claim


def _baseline(groups: list[list[Run]], system: list[Run], directions: set[str]) -> list[Run] | None:
    """The untrained group a finetuned one is compared with: same model and template, scored on ``directions``;
    8-shot ICL first (the paper's baseline), else the most shots, else zero-shot."""
    k = system[0].keys
    cands = [
        g
        for g in groups
        if g[0].keys["method"] != "mFTI"
        and (g[0].keys["model"], g[0].keys["template"]) == (k["model"], k["template"])
        and all(directions <= set(r.scores) for r in g)
    ]
    if not cands:
        return None
    return max(cands, key=lambda g: (int(g[0].keys["shots"] or 0) == PAPER_SHOTS, int(g[0].keys["shots"] or 0), len(g)))


def _magnitude(iv: Interval | None, paper: float, metric: str, what: str) -> str:
    if iv is None or "bleu" not in metric:
        return f"measured in {metric}: the paper's {what} is in spBLEU, not compared" if iv is not None else ""
    if iv.low is None:
        return f"the paper's {what}: {paper:+g}; no interval to compare with"
    where = "above" if iv.low > paper else "below" if iv.high < paper else "includes"
    return f"the interval {'lies ' + where if where != 'includes' else 'includes'} the paper's {what} ({paper:+g})"


def _preference(group: list[Run]) -> tuple:
    """Which mFTI group a claim is tested on, after the most seeds: the largest model, the most training examples,
    then the best average (the summary's headline picks the best-scoring pair too)."""
    return group[0].params or 0, int(group[0].keys["num_examples"] or 0), _mean(r.avg for r in group) or 0.0


def mfti_vs_icl(groups: list[list[Run]], metric: str) -> Claim:
    claim = Claim(
        "mFTI beats 8-shot ICL (average over directions)",
        "mFTI outperforms 8-shot ICL on average, by more than 3 BLEU",
        "main_comparison.yaml",
    )
    best = None
    for g in (g for g in groups if g[0].keys["method"] == "mFTI"):
        base = _baseline([x for x in groups if x[0].keys["method"] == "ICL"], g, set(g[0].scores))
        if base is not None:
            rank = (min(len(g), len(base)), *_preference(g))
            best = max(best or (rank, g, base), (rank, g, base), key=lambda t: t[0])
    if best is None:
        claim.note = "no ICL group with the same model and template scored on the mFTI run's directions"
        return claim
    _, system, base = best
    compare(claim, system, base, lambda r: _mean(r.scores.get(d) for d in system[0].scores))
    shots = int(base[0].keys["shots"] or 0)
    claim.note = "; ".join(
        x
        for x in (
            _magnitude(claim.effect, 3.0, metric, "margin"),
            f"ICL with {shots} shots here (the paper: {PAPER_SHOTS})" if shots != PAPER_SHOTS else "",
        )
        if x
    )
    return claim


def unseen_directions(groups: list[list[Run]], metric: str) -> Claim:
    claim = Claim(
        "finetuning improves unseen directions",
        "mFTI improves directions not seen in finetuning over the untrained model, by up to +1.7 BLEU",
        "unseen.yaml",
    )
    for g in sorted((g for g in groups if g[0].keys["method"] == "mFTI"), key=lambda g: (len(g), *_preference(g)))[
        ::-1
    ]:
        unseen = {d for d, p in g[0].partition.items() if p and p != "seen"}
        base = _baseline(groups, g, unseen) if unseen else None
        if base is None:
            continue
        compare(claim, g, base, lambda r, u=unseen: _mean(r.scores.get(d) for d in u))
        parts = defaultdict(list)
        for d in unseen:
            parts[g[0].partition[d]].append(d)
        by_part = {
            p: _mean(r.scores[d] for r in g for d in ds) - _mean(r.scores[d] for r in base for d in ds)
            for p, ds in parts.items()
        }
        top = max(by_part, key=by_part.get)
        claim.note = (
            f"{len(unseen)} unseen directions; mean difference by partition: "
            + ", ".join(f"{p} {v:+.2f}" for p, v in sorted(by_part.items()))
            + f" (largest: {top} {by_part[top]:+.2f} {metric}; the paper: up to +1.7 BLEU)"
        )
        return claim
    claim.note = "no mFTI run scored on directions outside its training set, with an untrained baseline on them"
    return claim


# ---- per-language quality: similarity to English against pretraining data ----------------------------------------
def _language_scores(run: Run) -> dict[str, float]:
    """Each language's mean score over the run's directions into or out of it."""
    per: dict[str, list[float]] = defaultdict(list)
    for d, v in run.scores.items():
        for lang in d.split("-"):
            per[lang].append(v)
    return {lang: sum(v) / len(v) for lang, v in per.items()}


def _rho_gap(run: Run, similarity: dict[str, float], tokens: dict[str, float]) -> tuple[float | None, int]:
    """Spearman's rho of the per-language score with similarity to English minus that with log10 pretraining
    tokens, over the languages (not English) that have both; and their number."""
    scores = {k: v for k, v in _language_scores(run).items() if k != "en" and k in similarity and k in tokens}
    langs = sorted(scores)
    sim = correlation([similarity[k] for k in langs], [scores[k] for k in langs]).spearman
    tok = correlation([math.log10(tokens[k]) for k in langs], [scores[k] for k in langs]).spearman
    return (None if sim is None or tok is None else sim - tok), len(langs)


def similarity_over_data(groups: list[list[Run]], similarity: dict[str, float], tokens: dict[str, float]) -> Claim:
    claim = Claim(
        "per-language quality follows similarity to English more than pretraining data",
        "a language's mFTI quality correlates more with its similarity to English than with its pretraining data",
        "main_comparison.yaml",
    )
    scored = []
    for g in (g for g in groups if g[0].keys["method"] == "mFTI"):
        gaps = [_rho_gap(r, similarity, tokens) for r in g]
        if gaps and all(gap is not None and n >= 3 for gap, n in gaps):
            scored.append((min(n for _, n in gaps), len(g), g, [gap for gap, _ in gaps]))
    if not scored:
        claim.note = "needs mFTI runs scored on directions of 3 or more non-English languages with both values"
        return claim
    n_langs, _, g, gaps = max(scored, key=lambda t: t[:2])
    claim.effect, claim.min_seeds, claim.seeds = interval(gaps), len(g), _seeds(g)
    claim.compared = f"{describe(g)}: Spearman rho(similarity) - rho(log10 tokens) over {n_langs} languages"
    claim.compared += " (a language's score: the mean over its directions, into and out of it)"
    claim.note = "per seed: " + ", ".join(f"{x:+.2f}" for x in gaps)
    return claim


# ---- trends: model size, training examples, training directions ----------------------------------------------------
def _series(groups: list[list[Run]], vary: tuple[str, ...]) -> list[list[list[Run]]]:
    """mFTI seed groups joined into series that differ only in the ``vary`` keys; 2 or more groups each."""
    by: dict[str, list[list[Run]]] = defaultdict(list)
    for g in (g for g in groups if g[0].keys["method"] == "mFTI"):
        by[repr(sorted((k, v) for k, v in g[0].keys.items() if k not in vary))].append(g)
    return [s for s in by.values() if len(s) > 1]


def log_linear(groups: list[list[Run]], what: str, x, vary: tuple[str, ...], sweep: str) -> Claim:
    """The least-squares slope of the average score on log10 ``x(run)`` over every run of the series with the most
    distinct x values, per tenfold x, with its 95 % interval (``stats.fit_line``)."""
    claim = Claim(f"quality grows log-linearly with {what}", f"mFTI quality grows log-linearly with {what}", sweep)
    series = [s for s in _series(groups, vary) if len({x(g[0]) for g in s if x(g[0])}) >= 2]
    if not series:
        claim.note = f"needs mFTI runs at 2 or more values of {what}, otherwise alike"
        return claim
    s = max(series, key=lambda s: (len({x(g[0]) for g in s}), sum(map(len, s))))
    pts = [(math.log10(x(r)), r.avg) for g in s for r in g if x(r) and r.avg is not None]
    fit = fit_line([p for p, _ in pts], [y for _, y in pts])
    claim.effect = Interval(fit.slope, fit.slope_se, fit.slope_low, fit.slope_high, fit.n)
    claim.min_seeds = min(map(len, s))
    claim.seeds = " / ".join(f"{len(g)}" for g in sorted(s, key=lambda g: x(g[0]))) + " seeds per value"
    claim.compared = f"slope per tenfold {what}: " + ", ".join(describe(g) for g in sorted(s, key=lambda g: x(g[0])))
    claim.note = f"{fit.n} runs at {len(s)} values" + (f", r2 {fit.r2:.2f}" if fit.r2 is not None else "")
    return claim


def more_directions(groups: list[list[Run]]) -> Claim:
    claim = Claim(
        "more training directions help", "training on more directions improves mFTI", "lang_pairs_scaling.yaml"
    )
    series = [s for s in _series(groups, ("lang_pairs",)) if len({g[0].train_directions for g in s}) >= 2]
    if not series:
        claim.note = "needs mFTI runs trained on 2 or more numbers of directions, otherwise alike"
        return claim
    s = max(series, key=lambda s: sum(map(len, s)))
    few, many = (f(s, key=lambda g: g[0].train_directions) for f in (min, max))
    common = set.intersection(*(set(r.scores) for g in (few, many) for r in g))
    compare(claim, many, few, lambda r: _mean(r.scores.get(d) for d in common))
    claim.compared += f" ({many[0].train_directions} vs {few[0].train_directions} training directions)"
    claim.note = f"mean over the {len(common)} directions both evaluated"
    return claim


# ---- all claims -----------------------------------------------------------------------------------------------------
def test_claims(rows: list[dict], metric: str, split: str, similarity: dict[str, float], groups) -> list[Claim]:
    """Every claim, on the tidy rows' ``<split>/<metric>`` scores; ``similarity``: language -> similarity to
    English (the report's ``--similarity``); pretraining tokens come from the language registry. ``groups``: the
    report's seed groups (:class:`stats.SeedGroup`), the one grouping of runs over seeds."""
    groups = claim_groups(runs_of(rows, f"{split}/{metric}"), groups)
    tokens = {c: float(lang.cc100xl_tokens) for c, lang in LANGUAGES.items() if lang.cc100xl_tokens}
    return [
        mfti_vs_icl(groups, metric),
        unseen_directions(groups, metric),
        similarity_over_data(groups, similarity, tokens),
        log_linear(groups, "model size", lambda r: r.params, ("model",), "model_scaling.yaml"),
        log_linear(
            groups,
            "training examples",
            lambda r: r.keys["num_examples"],
            ("num_examples",),
            "num_examples_scaling.yaml",
        ),
        more_directions(groups),
    ]


def _cell(iv: Interval | None) -> str:
    if iv is None:
        return "-"
    return f"{iv.mean:+.2f}" + (f" [{iv.low:+.2f}, {iv.high:+.2f}]" if iv.low is not None else " (no interval)")


def claims_markdown(claims: list[Claim], metric: str, split: str) -> list[str]:
    """report.md's opening section: one row per claim."""
    head = "| claim | the paper | measured (95% CI over seeds) | seeds | paired test | verdict |\n|---|---|---|---|---|---|\n"
    md = [
        "## Claims\n",
        f"The paper's findings tested on these runs ({split} {metric}; effects in {metric} points unless a "
        "correlation or slope). Verdict: supported / contradicted when the 95% interval lies on one side of 0, "
        "inconclusive when it includes 0 or a side has fewer than 2 seeds, not measured with the sweep that would.\n\n",
        head,
    ]
    for c in claims:
        cells = [c.claim, c.paper, _cell(c.effect), c.seeds or "-", c.test or "-", f"**{c.verdict}**"]
        md.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |\n")
    md.append("\n")
    md += [
        f"- {c.claim}: {c.compared}{'; ' if c.compared and c.note else ''}{c.note}\n"
        for c in claims
        if c.compared or c.note
    ]
    return md + ["\n"]
