"""Paired significance per direction: sacrebleu's paired bootstrap resampling (``sacrebleu.significance``, the
same test as ``sacrebleu REF -i BASELINE SYSTEM --paired-bs``) between two runs' translations of the same test
sentences. No torch here.

For each direction and metric: both corpus scores, the difference ``system - baseline``, its 95% interval (from
the same bootstrap resamples sacrebleu draws: same seed, same sentence indices) and sacrebleu's p-value. The
p-value and the scores come from :class:`sacrebleu.significance.PairedTest` itself, so they equal sacrebleu's
command line on the same files with the same ``SACREBLEU_SEED`` and number of resamples (tested).

The interval of the difference needs per-sentence sufficient statistics, which sacrebleu has no public API for:
this module is the one place that calls its private ``_extract_corpus_statistics`` / ``_compute_score_from_stats``
(what ``sacrebleu.significance`` itself calls), checked against sacrebleu :data:`SACREBLEU_CHECKED_WITH`;
``tests/test_library_internals.py`` fails, naming this module, when summed statistics stop giving the corpus score.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from mfti_lightning.core.layout import TRANSLATIONS_DIR
from mfti_lightning.core.results import read_jsonl
from mfti_lightning.eval.metrics import metric_for

ALPHA = 0.05
SEED = 12345  # sacrebleu's default SACREBLEU_SEED
SAMPLES = 1000  # sacrebleu's default --paired-bs-n
SACREBLEU_CHECKED_WITH = "2.6.0"  # sacrebleu version whose private sufficient-statistics methods are used here


@contextlib.contextmanager
def _sacrebleu_seed(seed: int):
    """sacrebleu's significance module reads its seed from ``SACREBLEU_SEED`` (its only interface for it)."""
    old = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SACREBLEU_SEED", None)
        else:
            os.environ["SACREBLEU_SEED"] = old


def _difference_interval(metric, baseline, system, references, n_samples: int, seed: int) -> tuple[float, float]:
    """The 95% interval of ``system - baseline`` over the resamples sacrebleu's paired bootstrap draws (the same
    ``default_rng(seed).choice`` indices), bounds as sacrebleu's own ``estimate_ci`` takes them (n // 40)."""
    import numpy as np

    idxs = np.random.default_rng(seed).choice(len(system), size=(n_samples, len(system)), replace=True)
    # sacrebleu's per-sentence sufficient statistics (the API its significance module itself uses)
    stats = [np.array(metric._extract_corpus_statistics(h, [references]), dtype="float32") for h in (baseline, system)]
    diffs = np.sort(
        [
            metric._compute_score_from_stats(stats[1][i].sum(0)).score
            - metric._compute_score_from_stats(stats[0][i].sum(0)).score
            for i in idxs
        ]
    )
    k = n_samples // 40
    return float(diffs[k]), float(diffs[n_samples - k - 1])


def paired_bootstrap(
    baseline: list[str],
    system: list[str],
    references: list[str],
    metrics: list[str],
    tgt_lang: str,
    n_samples: int = SAMPLES,
    seed: int = SEED,
) -> dict[str, dict]:
    """``{metric: {baseline_score, system_score, diff, diff_low, diff_high, p_value, better, signature,
    system_bootstrap_mean, system_bootstrap_ci}}`` for one direction (the last two: sacrebleu's own);
    ``better`` is ``system``/``baseline`` when p < 0.05, else None."""
    from sacrebleu.significance import PairedTest

    if not (len(baseline) == len(system) == len(references)):
        raise ValueError(f"{len(baseline)} / {len(system)} hypotheses for {len(references)} references")
    out = {}
    for name in metrics:
        with _sacrebleu_seed(seed):
            test = PairedTest(
                [("baseline", baseline), ("system", system)],
                {name: metric_for(name, tgt_lang)},
                references=[references],
                test_type="bs",
                n_samples=n_samples,
            )
            sigs, scores = test()
        (score_name,) = [k for k in scores if k != "System"]
        bl, sy = scores[score_name]
        low, high = _difference_interval(metric_for(name, tgt_lang), baseline, system, references, n_samples, seed)
        diff = sy.score - bl.score
        better = None if sy.p_value >= ALPHA or diff == 0 else ("system" if diff > 0 else "baseline")
        out[name] = {
            "baseline_score": bl.score, "system_score": sy.score, "diff": diff, "diff_low": low, "diff_high": high,
            "p_value": sy.p_value, "better": better, "signature": str(sigs[score_name]),
            "system_bootstrap_mean": sy.mean, "system_bootstrap_ci": sy.ci,
        }  # fmt: skip
    return out


def read_translations(run_dir: str | Path, direction: str) -> list[dict] | None:
    path = Path(run_dir) / TRANSLATIONS_DIR / f"{direction}.jsonl"
    return read_jsonl(path) if path.is_file() else None


def compare_runs(
    baseline_dir, system_dir, directions, metrics, split: str = "test", n_samples: int = SAMPLES, seed: int = SEED
) -> tuple[list[dict], list[str]]:
    """One row per (direction, metric) for two runs, and one note per direction that cannot be compared (missing
    translations, or not the same test sentences in the same order)."""
    field = "hypothesis_clean" if split.endswith("_clean") else "hypothesis"
    rows, notes = [], []
    for d in directions:
        a, b = read_translations(baseline_dir, d), read_translations(system_dir, d)
        if a is None or b is None:
            notes.append(f"{d}: no translations/{d}.jsonl in {baseline_dir if a is None else system_dir}")
            continue
        if [(r["source"], r["reference"]) for r in a] != [(r["source"], r["reference"]) for r in b]:
            notes.append(f"{d}: the two runs translated different test sentences; not compared")
            continue
        if any(field not in r for r in a + b):
            notes.append(f"{d}: translations have no {field!r} (split {split})")
            continue
        res = paired_bootstrap(
            [r[field] for r in a], [r[field] for r in b], [r["reference"] for r in a], metrics, d.split("-")[1],
            n_samples, seed,
        )  # fmt: skip
        rows += [{"direction": d, "metric": m, **v} for m, v in res.items()]
    return rows, notes


def summarize(rows: list[dict]) -> dict[str, dict[str, int]]:
    """Per metric: in how many directions the system, the baseline, or neither is significantly better."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        c = out.setdefault(r["metric"], {"system": 0, "baseline": 0, "neither": 0, "directions": 0})
        c[r["better"] or "neither"] += 1
        c["directions"] += 1
    return out
