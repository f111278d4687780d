"""One evaluation path for validation, final test and mfti-eval: prompts -> translations -> sacrebleu scores
-> error analysis.

With ``out_dir`` the evaluation is resumable direction by direction: each finished direction leaves
``translations/<src>-<tgt>.jsonl`` and ``eval_state/<split>/<src>-<tgt>.json`` (its scores, signatures, error
counts and the settings it was made with), both written atomically by rank 0; a restarted evaluation reloads
those and translates only the missing directions (or those made with other settings).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from mfti_lightning.core.languages import direction_str
from mfti_lightning.core.layout import EVAL_STATE_DIR as STATE_DIR
from mfti_lightning.core.layout import TRANSLATIONS_DIR
from mfti_lightning.core.metric_key import AVG, POOLED, MetricKey
from mfti_lightning.core.progress_record import update_progress
from mfti_lightning.core.results import read_jsonl, write_json_atomic, write_jsonl_atomic
from mfti_lightning.core.template import Template
from mfti_lightning.data.prepare import EvalSet, eval_prompts
from mfti_lightning.eval import metrics as mt

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    metrics: dict[str, float] = field(default_factory=dict)  # core.metric_key: per direction, avg, pooled
    signatures: dict[str, str] = field(default_factory=dict)  # same keys as the per-direction metrics
    rows: dict[str, list[dict]] = field(default_factory=dict)  # "<src>-<tgt>" -> one dict per sentence
    errors: dict[str, dict] = field(default_factory=dict)  # "<src>-<tgt>" -> {"n", "counts"} (error analysis)
    resumed: list[str] = field(default_factory=list)  # directions reloaded from out_dir instead of translated

    def table_rows(self, split: str) -> list[dict]:
        """One flat dict per direction (scores and error rates): ready for a W&B table or a CSV."""
        out = []
        for d in self.rows:
            row = {"direction": d, "src": d.split("-")[0], "tgt": d.split("-")[1], "n": len(self.rows[d])}
            for k, v in self.metrics.items():
                key = MetricKey.parse(k)
                if key.split == split and key.scope == d:
                    row[key.metric] = v
            out.append(row)
        return out


@dataclass(frozen=True)
class DecodeSettings:
    """How :func:`evaluate` translates and scores, built once from a validated config (:meth:`from_config`) for
    every caller: mfti-train's validation and test, mfti-eval. Plain values only (:meth:`record`): the training
    module keeps them among its checkpointed hyperparameters, which load with ``weights_only=True``."""

    shots: int  # shots.k: in-context demonstrations per prompt
    seed: int  # seed: the demonstrations' draw
    num_beams: int  # eval.num_beams
    max_new_tokens: int  # eval.max_new_tokens
    batch_tokens: int | str  # eval.batch_tokens: an int, or "auto"
    bleu_tokenize: str  # eval.bleu_tokenize
    extraction: str  # eval.extraction
    analyze_errors: bool | dict  # analysis.analysis_options(cfg.eval): False, or analyze()'s options
    max_prompt_tokens: int | None  # eval.max_prompt_tokens (mfti-eval only; None in a training config)
    comet_model: str | None  # eval.comet_model (mfti-eval only)

    @classmethod
    def from_config(cls, cfg) -> DecodeSettings:
        """The settings of a composed, validated mfti-train or mfti-eval config (its defaults: the schema's)."""
        from omegaconf import OmegaConf

        from mfti_lightning.eval.analysis import analysis_options
        from mfti_lightning.eval.budget import batch_tokens_setting

        e = cfg.eval
        return cls(
            shots=cfg.shots.k, seed=cfg.seed, num_beams=e.num_beams, max_new_tokens=e.max_new_tokens,
            batch_tokens=batch_tokens_setting(e.batch_tokens), bleu_tokenize=e.bleu_tokenize,
            extraction=e.extraction, analyze_errors=analysis_options(e),
            max_prompt_tokens=OmegaConf.select(cfg, "eval.max_prompt_tokens"),
            comet_model=OmegaConf.select(cfg, "eval.comet_model"),
        )  # fmt: skip

    @classmethod
    def from_record(cls, record: dict) -> DecodeSettings:
        """Back from :meth:`record` (keys of other settings beside them are left out)."""
        return cls(**{f.name: record[f.name] for f in dataclasses.fields(cls)})

    def record(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> DecodeSettings:
        return dataclasses.replace(self, **changes)


def build_prompts(sets: list[EvalSet], template: Template, shots: int, seed: int) -> list[tuple[int, int, str]]:
    """``(set index, sentence index, prompt)`` for every sentence of every set, in a fixed order."""
    return [(si, j, p) for si, es in enumerate(sets) for j, p in enumerate(eval_prompts(es, template, shots, seed))]


def score_translations(
    sets: list[EvalSet],
    prompts: list[tuple[int, int, str]],
    hyps: list[str],
    split: str,
    bleu_tokenize: str = "auto",
    analyze_errors: bool | dict = False,
) -> EvalResult:
    """Per-direction rows and corpus scores (``<split>/<metric>/<src>-<tgt>``) plus their averages; with
    ``analyze_errors`` also the error labels (``row["error"]``), counts and ``<split>/rate_<category>/...``."""
    result = EvalResult()
    by_set: dict[int, list[tuple[int, str, str]]] = {}
    for (si, j, prompt), hyp in zip(prompts, hyps):
        by_set.setdefault(si, []).append((j, prompt, hyp))
    for si, es in enumerate(sets):
        d = direction_str(es.direction)
        items = sorted(by_set.get(si, []))
        result.rows[d] = [
            {"source": es.sources[j], "reference": es.references[j], "prompt": p, "hypothesis": h} for j, p, h in items
        ]
        dir_hyps = [h for _, _, h in items]
        for metric, (value, sig) in mt.score(dir_hyps, es.references, es.direction[1], bleu_tokenize).items():
            key = str(MetricKey(split, metric, d))
            result.metrics[key], result.signatures[key] = value, sig
    if analyze_errors:  # True, or the options of analysis.analyze (analysis.analysis_options)
        from mfti_lightning.eval.analysis import analyze

        result.errors, _ = analyze(result.rows, split, **(analyze_errors if isinstance(analyze_errors, dict) else {}))
    add_averages(result, split)
    return result


def add_pooled_score(result: EvalResult, sets, hyps_by_direction: dict[str, list[str]], split: str, bleu_tokenize: str):
    """``<split>/<bleu>/pooled``: one corpus BLEU over every direction's hypotheses and references together (the
    reference code's checkpoint choice). With spBLEU one tokenizer serves all languages; under the ``bleu`` fallback
    the pooled score uses the English default (13a)."""
    hyps, refs = [], []
    for es in sets:
        hyps += hyps_by_direction[direction_str(es.direction)]
        refs += es.references
    for metric, (value, sig) in mt.score(hyps, refs, "en", bleu_tokenize).items():
        if metric not in ("chrf", "chrf++"):
            key = str(MetricKey(split, metric, POOLED))
            result.metrics[key], result.signatures[key] = value, sig


def selection_metric(select: str, bleu_name: str, monitor: str | None = None) -> str:
    """The validation metric that picks the best checkpoint: ``eval.monitor`` if set, else ``val/<bleu>/pooled``
    (``eval.select=reference``) or ``val/<bleu>/avg``, the mean of the per-direction scores (``mean``)."""
    return monitor or str(MetricKey("val", bleu_name, POOLED if select == "reference" else AVG))


def selection_record(select: str, bleu_name: str, monitor, val_size, num_beams: int, val_beams: int) -> dict:
    """What results.json records about the checkpoint choice."""
    reference = select == "reference"
    return {
        "mode": select,
        "metric": selection_metric(select, bleu_name, monitor),
        "num_beams": num_beams if reference else val_beams,
        "extraction": "reference" if reference else "clean",
        "dev_sentences": f"{'first' if reference else 'last'} {val_size if val_size is not None else 'all'}",
        "score": "one corpus score over all directions pooled" if reference else "mean of per-direction scores",
    }


def add_clean_scores(result: EvalResult, sets, prompts, cut: list[str], split: str, bleu_tokenize: str) -> None:
    """The ``reference`` hypotheses cut after the fact (first newline, a new template turn): rows get
    ``hypothesis_clean``, metrics ``<split>_clean/<metric>/...``. One decode, both numbers."""
    clean = score_translations(sets, prompts, cut, f"{split}_clean", bleu_tokenize)
    result.metrics.update(clean.metrics)
    result.signatures.update(clean.signatures)
    for d, rows in result.rows.items():
        for row, c in zip(rows, clean.rows[d]):
            row["hypothesis_clean"] = c["hypothesis"]


def add_averages(result: EvalResult, split: str) -> None:
    """``<split>/<metric>/avg`` (mean over directions) for every per-direction metric, error rates included."""
    from mfti_lightning.eval.analysis import summarize

    if result.errors:
        result.metrics.update(summarize(result.errors, split))
    per_metric: dict[str, list[float]] = {}
    for k, v in result.metrics.items():
        key = MetricKey.parse(k)
        if key.split == split and key.is_direction:
            per_metric.setdefault(key.metric, []).append(v)
    for metric, values in per_metric.items():
        result.metrics[str(MetricKey(split, metric, AVG))] = sum(values) / len(values)


# ---- persistence of finished directions ----------------------------------------------------------------
def _in_direction(key: str, split: str, d: str) -> bool:
    k = MetricKey.parse(key)
    return k.split == split and k.scope == d


def _state_path(out_dir: Path, split: str, d: str) -> Path:
    return Path(out_dir) / STATE_DIR / split / f"{d}.json"


def load_finished(out_dir: Path, split: str, d: str, settings: dict) -> dict | None:
    """The saved state of direction ``d`` if it is complete and was made with ``settings``, else None."""
    state_p, trans_p = _state_path(out_dir, split, d), Path(out_dir) / TRANSLATIONS_DIR / f"{d}.jsonl"
    if not (state_p.exists() and trans_p.exists()):
        return None
    try:
        state = json.loads(state_p.read_text(encoding="utf-8"))
        rows = read_jsonl(trans_p)
    except (OSError, ValueError):
        return None
    if state.get("settings") != settings or len(rows) != state.get("n"):
        log.warning("%s: saved results were made with other settings or are incomplete; redoing it", d)
        return None
    state["rows"] = rows
    return state


def save_finished(out_dir: Path, split: str, d: str, result: EvalResult, settings: dict) -> None:
    """Translations first, then the state file that marks the direction finished (both atomic)."""
    rows = result.rows[d]
    write_jsonl_atomic(Path(out_dir) / TRANSLATIONS_DIR / f"{d}.jsonl", rows)
    state = {
        "direction": d,
        "n": len(rows),
        "settings": settings,
        "metrics": {k: v for k, v in result.metrics.items() if _in_direction(k, split, d)},
        "signatures": {k: v for k, v in result.signatures.items() if MetricKey.parse(k).scope == d},
        "errors": result.errors.get(d),
    }
    write_json_atomic(_state_path(out_dir, split, d), state)


# ---- the evaluation ------------------------------------------------------------------------------------
def evaluate(
    model,
    tokenizer,
    template: Template,
    sets: list[EvalSet],
    *,
    split: str,
    decode: DecodeSettings,
    rank: int = 0,
    world_size: int = 1,
    out_dir: str | Path | None = None,
    settings: dict | None = None,
    synced_gpus: bool | None = None,
) -> EvalResult:
    """Translate every sentence of ``sets`` exactly once (batches dealt over ranks) and score each direction.

    ``decode``: how (:class:`DecodeSettings`). With its ``extraction`` (generation.EXTRACTION_MODES) ``reference``,
    hypotheses are the whole continuation up to EOS; they are also cut after the fact as ``clean`` would and
    scored as ``<split>_clean/...`` (same decode).

    Every rank must call this with the same arguments; every rank returns the same metrics. With ``out_dir``,
    directions already finished there (same ``settings``) are reloaded, not translated again, and each newly
    finished direction is saved before the next one starts.
    """
    d, analyze_errors = decode, decode.analyze_errors
    run = {k: v for k, v in d.record().items() if k != "analyze_errors"}  # passed on by name; analyze_errors apart
    run |= dict(rank=rank, world_size=world_size, synced_gpus=synced_gpus)
    if out_dir is None:
        return _evaluate_once(model, tokenizer, template, sets, split, analyze_errors, **run)
    settings = _saved_settings(settings, d, template)
    return _evaluate_resumable(model, tokenizer, template, sets, split, Path(out_dir), settings, analyze_errors, run)


def _saved_settings(settings: dict | None, d: DecodeSettings, template: Template) -> dict:
    """What each finished direction is saved with, and must match to be reloaded: the caller's ``settings`` and how
    this pass decodes, as plain JSON."""
    settings = dict(settings or {}) | {
        "shots": d.shots,
        "seed": d.seed,
        "num_beams": d.num_beams,
        "max_new_tokens": d.max_new_tokens,
        "bleu_tokenize": d.bleu_tokenize,
        "template": template.to_dict(),
        "analyze_errors": d.analyze_errors,
        "extraction": d.extraction,
    }
    return json.loads(json.dumps(settings, default=str))


def _evaluate_once(model, tokenizer, template, sets, split, analyze_errors, *, shots, seed, bleu_tokenize, rank,
                   world_size, comet_model, extraction, **decode) -> EvalResult:  # fmt: skip
    """One pass over ``sets``: prompts, translations (dealt over ranks, gathered), scores."""
    from mfti_lightning.eval.generation import translate

    prompts = build_prompts(sets, template, shots, seed)
    texts = [p[2] for p in prompts]
    hyps = translate(
        model, tokenizer, template, texts, rank=rank, world_size=world_size, extraction=extraction, **decode
    )
    result = score_translations(sets, prompts, hyps, split, bleu_tokenize, analyze_errors)
    if extraction == "reference":
        add_clean_scores(result, sets, prompts, [template.cut(h) for h in hyps], split, bleu_tokenize)
    if comet_model and rank == 0:
        _add_comet(result, split, comet_model)
        add_averages(result, split)
    return result


def _evaluate_resumable(model, tokenizer, template, sets, split, out_dir: Path, settings: dict, analyze_errors: bool,
                        run: dict) -> EvalResult:  # fmt: skip
    """Direction by direction: reload the finished ones (same settings), translate and save the others."""
    rank, world_size = run["rank"], run["world_size"]
    result = EvalResult()
    pending_flags = [load_finished(out_dir, split, direction_str(es.direction), settings) is None for es in sets]
    pending_flags = _broadcast(pending_flags, world_size)  # rank 0 decides: every rank does the same work
    done = pending_flags.count(False)
    if rank == 0:
        update_progress(out_dir, phase="evaluating", directions_done=done, directions_total=len(sets))
    for es, pending in zip(sets, pending_flags):
        d = direction_str(es.direction)
        if not pending:
            state = _broadcast(load_finished(out_dir, split, d, settings) if rank == 0 else None, world_size)
            _restore(result, d, state)
            continue
        one = _evaluate_once(model, tokenizer, template, [es], split, analyze_errors if rank == 0 else False, **run)
        if rank == 0:
            save_finished(out_dir, split, d, one, settings)
            done += 1
            update_progress(out_dir, directions_done=done)
        one = _broadcast(one, world_size) if analyze_errors else one  # rank 0 holds the error labels
        result.rows.update(one.rows)
        result.errors.update(one.errors)
        result.signatures.update(one.signatures)
        result.metrics.update({k: v for k, v in one.metrics.items() if MetricKey.parse(k).scope != AVG})
        keys = [(MetricKey.parse(k), v) for k, v in one.metrics.items()]
        scores = {k.metric: round(v, 2) for k, v in keys if k.scope == d and not k.is_error_rate}
        log.info("%s %s: %s", split, d, scores)
    add_averages(result, split)
    if run["extraction"] == "reference":
        add_averages(EvalResult(metrics=result.metrics), f"{split}_clean")  # no error rates: metrics only
    return result


def _restore(result: EvalResult, d: str, state: dict) -> None:
    """A finished direction reloaded from the run directory into ``result``."""
    result.rows[d] = state["rows"]
    result.metrics.update(state["metrics"])
    result.signatures.update(state["signatures"])
    if state.get("errors"):
        result.errors[d] = state["errors"]
    result.resumed.append(d)


def _broadcast(obj, world_size: int):
    if world_size <= 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _add_comet(result: EvalResult, split: str, model_name: str) -> None:
    for d, rows in result.rows.items():
        c = mt.comet_scores(
            [r["source"] for r in rows], [r["hypothesis"] for r in rows], [r["reference"] for r in rows], model_name
        )
        key = str(MetricKey(split, "comet", d))
        result.metrics[key], result.signatures[key] = c["system"], f"comet:{model_name}"
        for r, s in zip(rows, c["segments"]):
            r["comet"] = s


def record_result(record: dict, result: EvalResult, split: str, train_dirs=None) -> None:
    """Put an evaluation into a results.json record: metrics, signatures, ``errors[split]``, direction
    partitions (from ``train_dirs``; skipped when there are none) and ``direction_rows[split]`` (W&B tables)."""
    from mfti_lightning.core.languages import parse_direction
    from mfti_lightning.eval.partitions import partition_metrics, partitions

    record.setdefault("metrics", {}).update(result.metrics)
    record.setdefault("signatures", {}).update(result.signatures)
    if result.errors:
        record.setdefault("errors", {})[split] = result.errors
    if train_dirs:
        parts = partitions(train_dirs, [parse_direction(d) for d in result.rows])
        record["partitions"] = parts
        keys = [MetricKey.parse(k) for k in result.metrics]
        names = {k.metric for k in keys if k.split == split and not k.is_error_rate}
        record["metrics"].update(partition_metrics(result.metrics, parts, split, sorted(names)))
    record.setdefault("direction_rows", {})[split] = result.table_rows(split)
    if result.resumed:
        record.setdefault("resumed_directions", {})[split] = result.resumed
