"""``mfti-score <run or sweep dirs>... --metrics ter,chrf++,...``: add metrics to existing ``results.json`` files
from the saved ``translations/`` alone: no model, no GPU, no torch.

For every run directory (found as ``mfti-report`` finds them) and every split whose translations are saved (the
split of its ``eval_state/<split>/``, plus ``<split>_clean`` when the rows carry ``hypothesis_clean``), each
requested metric missing for a direction is scored with sacrebleu (:func:`mfti_lightning.eval.metrics.metric_for`:
``ter``, ``chrf``, ``chrf++``, ``bleu``, ``bleu-<tok>``, ``spbleu`` once its SentencePiece model is there) or COMET
(``comet``: needs ``pip install 'mfti-lightning[comet]'`` and ``--comet-model <local checkpoint>``), with its
signature; then ``<split>/<metric>/avg`` and the partition means are added. What is already scored is skipped
(a second run writes nothing), ``results.json`` is replaced atomically, the translations are only read, and
``rescored`` in results.json lists what was added when.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

from mfti_lightning.core.errors import ConfigError
from mfti_lightning.core.layout import EVAL_STATE_DIR, TRANSLATIONS_DIR
from mfti_lightning.core.lease import RunLease
from mfti_lightning.core.metric_key import AVG, MetricKey
from mfti_lightning.core.results import read_jsonl, read_results, write_results
from mfti_lightning.core.results_schema import RunResults
from mfti_lightning.eval.metrics import comet_predict, import_comet, metric_for
from mfti_lightning.eval.partitions import partition_metrics
from mfti_lightning.track.runs import collect

log = logging.getLogger("mfti_lightning.track.score")


def parse_metrics(spec: str) -> list[str]:
    """``ter,chrf++`` -> ``["ter", "chrf++"]``, every name checked before any run is touched."""
    names = [m.strip() for m in spec.split(",") if m.strip()]
    if not names:
        raise ConfigError("--metrics is empty; give e.g. --metrics ter,chrf++")
    for m in names:
        if m != "comet":
            metric_for(m, "en")  # raises ConfigError for an unknown name or a missing SPM model
    return names


def load_comet(path: str | None):
    """A COMET model from a local checkpoint (a ``.ckpt`` file or a model dir holding ``checkpoints/model.ckpt``)."""
    if not path:
        raise ConfigError("--metrics comet needs --comet-model <local checkpoint or model dir> (nothing is downloaded)")
    p = Path(path).expanduser()
    ckpt = p if p.is_file() else p / "checkpoints" / "model.ckpt"
    if not ckpt.is_file():
        raise ConfigError(
            f"--comet-model {path}: no COMET checkpoint there (expected a .ckpt or <dir>/checkpoints/model.ckpt)"
        )
    return import_comet().load_from_checkpoint(str(ckpt)), f"comet:{p.name}"


def saved_splits(run_dir: Path, record: dict | RunResults) -> list[tuple[str, str]]:
    """``[(split, hypothesis field)]`` whose hypotheses are in ``translations/``."""
    state = run_dir / EVAL_STATE_DIR
    splits = sorted(p.name for p in state.iterdir() if p.is_dir()) if state.is_dir() else []
    splits = splits or ["test"]
    out = [(s, "hypothesis") for s in splits]
    clean = {m.split for k in RunResults.of(record).metrics if (m := MetricKey.find(k))}
    out += [(f"{s}_clean", "hypothesis_clean") for s in splits if f"{s}_clean" in clean]
    return out


def _score_one(metric: str, rows: list[dict], field: str, tgt: str, comet) -> tuple[float, str]:
    hyps, refs = [r.get(field) or "" for r in rows], [r["reference"] for r in rows]
    if metric == "comet":
        model, sig = comet
        return comet_predict(model, [r["source"] for r in rows], hyps, refs, gpus=0)["system"], sig
    m = metric_for(metric, tgt)
    return m.corpus_score(hyps, [refs]).score, str(m.get_signature())


def _averages(record: dict, split: str, metric: str, directions: list[str]) -> None:
    m = record["metrics"]
    vals = [m.get(str(MetricKey(split, metric, d))) for d in directions]
    if directions and all(v is not None for v in vals):
        m[str(MetricKey(split, metric, AVG))] = sum(vals) / len(vals)
        if parts := RunResults.of(record).partitions:
            m.update(partition_metrics(m, parts, split, [metric]))


def score_run(run_dir: str | Path, metrics: list[str], comet=None) -> list[str]:
    """Add the missing ``metrics`` to one run's results.json; returns the keys added (empty: nothing written)."""
    with RunLease(run_dir):  # it rewrites results.json: never beside a live job of that run
        return _score_run(Path(run_dir), metrics, comet)


def _score_run(run_dir: Path, metrics: list[str], comet) -> list[str]:
    record = read_results(run_dir)
    files = sorted((run_dir / TRANSLATIONS_DIR).glob("*.jsonl"))
    directions = [f.stem for f in files]
    added: list[str] = []
    record.setdefault("metrics", {})
    record.setdefault("signatures", {})
    for split, field in saved_splits(run_dir, record):
        for metric in metrics:
            todo = [f for f in files if str(MetricKey(split, metric, f.stem)) not in record["metrics"]]
            for f in todo:
                rows = read_jsonl(f)
                if any(field not in r for r in rows):
                    continue
                value, sig = _score_one(metric, rows, field, f.stem.split("-")[1], comet)
                key = str(MetricKey(split, metric, f.stem))
                record["metrics"][key], record["signatures"][key] = value, sig
                added.append(key)
            if todo:
                _averages(record, split, metric, directions)
    if added:
        record.setdefault("rescored", []).append(
            {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "keys": added}
        )
        write_results(run_dir, record)
    return added


def score_paths(paths: list[str | Path], metrics: list[str], comet_model: str | None = None) -> dict[str, list[str]]:
    """:func:`score_run` on every run directory under ``paths``: ``{run dir: keys added}``."""
    records, problems = collect(paths)
    for p in problems:
        log.warning("%s", p)
    if not records:
        raise ConfigError("mfti-score: no results.json under " + ", ".join(map(str, paths)))
    comet = load_comet(comet_model) if "comet" in metrics else None
    out = {}
    for rec in records:
        if not (r := RunResults.of(rec)).completed:
            log.warning("%s: status %s, not scored", rec["_dir"], r.status)
            continue
        if not (Path(rec["_dir"]) / TRANSLATIONS_DIR).is_dir():
            log.warning("%s: no %s/ (nothing to score)", rec["_dir"], TRANSLATIONS_DIR)
            continue
        out[rec["_dir"]] = score_run(rec["_dir"], metrics, comet)
    return out
