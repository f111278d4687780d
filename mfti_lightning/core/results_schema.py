"""The results record, typed: every key of ``results.json`` with its type and meaning (:class:`RunResults` and its
sections), a typed read (:meth:`RunResults.from_dict`, :meth:`RunResults.read`) and a check of a record against it
(:func:`problems`). No torch here.

What writes each key: ``tasks/job.py`` (the frame: schema .. provenance, status, error, wall_time_s, reevaluation),
``tasks/train.py`` (batch, directions, data, selection, training_length, training, throughput, validation_history,
best_checkpoint, best_step, export_dir), ``tasks/evaluate.py`` (eval_split, checkpoint, directions, model_source,
world_size), ``tasks/evaluate_trained.py`` (eval_world_size), ``eval/decode_and_score.py`` (metrics, signatures,
errors, partitions, direction_rows, resumed_directions), ``track/wandb_run.py`` (wandb), ``eval/analysis.py``
(errors, error_analysis) and ``track/score.py`` (rescored). A writer that adds a key fails the tests that check
real records with :func:`problems` (the demo's, mfti-eval's, a failed job's, mfti-analyze's) until the key is
declared here; docs/results.md's tables are generated from here (a test compares them).

Every key has a default: a record written before a key existed reads with it (None, empty). The sections that hold
free data (``config``, ``data``, ``errors``, ...) stay plain JSON; their meaning is documented, their inside is not
typed. Metric keys: :mod:`mfti_lightning.core.metric_key`. Paths: :mod:`mfti_lightning.core.results`.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ALWAYS = "always"  # field metadata: the frame writes the key in every record (tasks/job.py)


def _f(meaning: str, default=None, factory=None, always: bool = False):
    """A documented field: its one-line ``meaning``; ``always`` when every record has it."""
    meta = {"doc": meaning, ALWAYS: always}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


class _Section:
    """A typed section of the record: built from its JSON object, missing keys at their defaults."""

    @classmethod
    def from_dict(cls, d: dict | None):
        """Keys it does not declare are left out; a missing key, or a null one declared not nullable, reads as its
        default."""
        d = d or {}
        kwargs = {}
        for name, convert, nullable in _readers(cls):
            if name in d and (d[name] is not None or nullable):
                kwargs[name] = d[name] if convert is None or d[name] is None else convert(d[name])
        return cls(**kwargs)


@dataclass
class Swept(_Section):
    """``swept``: the values a sweep varies (``core.schema.SWEPT``), as the config had them."""

    model: str | None = _f("model.name: the model's config name (xglm-564m, tiny, ...)")
    lang_pairs: str | None = _f("lang_pairs.name: the language-pair set (demo, paper, ...)")
    template: str | None = _f("template.name: the instruction template")
    shots: int | None = _f("shots.k: in-context demonstrations per prompt")
    num_examples: int | None = _f("num_examples.n: finetuning examples per direction (0: no finetuning)")
    seed: int | None = _f("seed: the run's random seed")


@dataclass
class Directions(_Section):
    """``directions``: the translation directions of the run, ``<src>-<tgt>``."""

    train: list[str] = _f("directions finetuned on (mfti-eval: those of the evaluated run)", factory=list)
    eval: list[str] = _f("directions evaluated", factory=list)


@dataclass
class Throughput(_Section):
    """``throughput`` (and ``training.throughput``): training speed, counters summed over ranks
    (``train/throughput.py``)."""

    tokens_per_s: float | None = _f("non-padding tokens per second, all ranks")
    samples_per_s: float | None = _f("sequences per second, all ranks")
    mfu: float | None = _f("model FLOPs utilization (None where the device's peak FLOP/s is unknown: CPUs)")
    padding_efficiency: float | None = _f("real tokens / padded tokens")
    peak_memory_gb: float | None = _f("peak accelerator memory of rank 0 in GiB (CPU: peak resident set size)")
    params_total: int | None = _f("parameters of the model")
    params_trainable: int | None = _f("parameters trained")
    device: str | None = _f("device name")
    world_size: int | None = _f("ranks that trained")
    train_seconds: float | None = _f("seconds of training the counters cover")
    real_tokens: int | None = _f("non-padding tokens trained on")
    model_flops: float | None = _f("model FLOPs of training")


@dataclass
class Training(_Section):
    """``training``: the training summary rank 0 writes at the end of fit (``train_summary.json``)."""

    steps: int | None = _f("optimizer steps done")
    loss_first: float | None = _f("loss of the first logged step")
    loss_last: float | None = _f("loss of the last logged step")
    loss_first_10pct: float | None = _f("mean loss over the first tenth of the logged steps")
    loss_last_10pct: float | None = _f("mean loss over the last tenth of the logged steps")
    loss_history: list[list[float]] = _f("[step, loss] per logged step", factory=list)
    train_time_s: float | None = _f("seconds from the start to the end of fit")
    tokens_per_s_rank0: float | None = _f("tokens per second seen by rank 0")
    throughput: Throughput = _f("the throughput record (copied to the top-level ``throughput``)", factory=Throughput)


@dataclass
class Reevaluation(_Section):
    """``reevaluation``: a completed run re-evaluated because its evaluation settings changed (no training)."""

    changed: dict[str, dict[str, Any]] = _f("{setting: {before, now}} that made it re-evaluate", factory=dict)
    previous_results: str | None = _f("the earlier record, archived (``previous_results/<n>.json``)")
    best_checkpoint: str | None = _f("the best checkpoint re-evaluated (None: no training)")
    best_step: int | None = _f("its optimizer step")


@dataclass
class Provenance(_Section):
    """``provenance``: where and from what the job ran (``core/results.py``)."""

    git_commit: str | None = _f("commit of the source tree (None outside a git checkout)")
    git_dirty: bool | None = _f("uncommitted changes in tracked files")
    packages: dict[str, str | None] = _f("{package: version} of the stack (None: not installed)", factory=dict)
    python: str | None = _f("Python version")
    platform: str | None = _f("platform.platform()")
    hostname: str | None = _f("host of rank 0")
    started_at: str | None = _f("ISO time the attempt started (UTC)")
    argv: list[str] = _f("the command line", factory=list)
    slurm_job_id: str | None = _f("SLURM_JOB_ID (None outside SLURM)")


@dataclass
class ModelSource(_Section):
    """``model_source`` (mfti-eval): what was loaded (``model/source.py``)."""

    kind: str | None = _f("hub, dir (a Hugging Face directory) or lightning (a .ckpt file)")
    model_path: str | None = _f("the model (hub id or directory)")
    tokenizer_path: str | None = _f("the tokenizer")
    ckpt_file: str | None = _f("the Lightning checkpoint (kind lightning)")
    run_dir: str | None = _f("the training run the model comes from, when known")


@dataclass
class Wandb(_Section):
    """``wandb``: the W&B run of the job (absent when W&B was off)."""

    mode: str | None = _f("online, offline")
    reason: str | None = _f("why that mode")
    id: str | None = _f("run id (wandb_run_id.txt: a resumed job continues the same run)")
    project: str | None = _f("W&B project")
    entity: str | None = _f("W&B entity")
    group: str | None = _f("group: the sweep name")
    name: str | None = _f("run name")
    job_type: str | None = _f("train or eval")


@dataclass
class Rescore(_Section):
    """One ``rescored`` entry: metrics added later by ``mfti score``."""

    at: str | None = _f("ISO time (UTC)")
    keys: list[str] = _f("metric keys added", factory=list)


@dataclass
class RunResults(_Section):
    """The record in ``results.json`` (schema 1), also in ``failed_attempts/<n>.json`` and
    ``previous_results/<n>.json``."""

    schema: int | None = _f("version of this format (1)", always=True)
    status: str | None = _f("running, completed, failed or interrupted", always=True)
    task: str | None = _f("train or eval", always=True)
    run_name: str | None = _f("the run's name (run identity)", always=True)
    run_dir: str | None = _f("the run directory (relative on disk: '.')", always=True)
    sweep_name: str | None = _f("the sweep (W&B group) the run belongs to", always=True)
    swept: Swept = _f("the swept values", factory=Swept, always=True)
    extraction: str | None = _f("eval.extraction: how hypotheses were cut (clean, reference)", always=True)
    engine: str | None = _f("eval.engine: what decoded them (hf, ctranslate2)", always=True)
    metrics: dict[str, float] = _f(
        "``{<split>/<metric>/<scope>: score}`` (core/metric_key.py)", factory=dict, always=True
    )
    signatures: dict[str, str] = _f("{metric key: sacrebleu signature}", factory=dict, always=True)
    config: dict[str, Any] = _f("the resolved config, secrets redacted", factory=dict, always=True)
    provenance: Provenance = _f("git commit, packages, host", factory=Provenance, always=True)
    wall_time_s: float | None = _f("seconds the attempt took", always=True)
    eval_split: str | None = _f("mfti-eval: devtest or dev")
    checkpoint: str | None = _f("mfti-eval: ckpt_path as given (None: the base model)")
    model_source: ModelSource = _f("mfti-eval: what was loaded", factory=ModelSource)
    world_size: int | None = _f("mfti-eval: ranks that evaluated")
    batch: dict[str, int] = _f("train: the batch plan (core/config.py BatchPlan)", factory=dict)
    directions: Directions = _f("train and eval directions", factory=Directions)
    data: dict[str, Any] = _f(
        "train: per-direction example counts, what the filters dropped, tokenization", factory=dict
    )
    selection: dict[str, Any] = _f("train: how the best checkpoint is chosen (eval.select)", factory=dict)
    training_length: dict[str, Any] = _f("train: steps or epochs, as configured and derived", factory=dict)
    training: Training = _f("train: the training summary", factory=Training)
    throughput: Throughput = _f("train: training speed", factory=Throughput)
    validation_history: dict[str, dict[str, float]] = _f("train: ``{step<n>: metrics}`` per validation", factory=dict)
    best_checkpoint: str | None = _f("train: the checkpoint evaluated (relative on disk)")
    best_step: int | None = _f("train: its optimizer step")
    export_dir: str | None = _f("train: the Hugging Face export of it (hf/)")
    eval_world_size: int | None = _f("train: ranks that dealt the test sentences")
    reevaluation: Reevaluation | None = _f("a re-evaluation without training (absent otherwise)")
    errors: dict[str, dict[str, Any]] = _f("{split: {direction: error-analysis counts}}", factory=dict)
    error_analysis: dict[str, dict[str, Any]] = _f("{split: the settings of mfti-analyze}", factory=dict)
    partitions: dict[str, list[str]] = _f("{seen/unseen partition: directions}", factory=dict)
    direction_rows: dict[str, list[dict[str, Any]]] = _f("{split: per-direction table rows (W&B)}", factory=dict)
    resumed_directions: dict[str, list[str]] = _f("{split: directions read back from an earlier attempt}", factory=dict)
    wandb: Wandb | None = _f("the W&B run (absent without W&B)")
    rescored: list[Rescore] = _f("metrics added later by mfti score", factory=list)
    error: str | None = _f("failed/interrupted: the exception, one line")
    traceback: str | None = _f("failed/interrupted: its traceback")

    @classmethod
    def read(cls, run_dir: str | Path, path: str | Path | None = None) -> RunResults | None:
        """:func:`results.read_results`, typed (its paths absolute); None without a results.json."""
        from mfti_lightning.core.results import read_results

        record = read_results(run_dir, path)
        return None if record is None else cls.from_dict(record)

    @classmethod
    def of(cls, record: dict | RunResults) -> RunResults:
        """``record`` typed (a record already typed as it is): for readers handed the plain records of
        :func:`mfti_lightning.track.runs.collect`."""
        return record if isinstance(record, RunResults) else cls.from_dict(record)

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def config_value(self, *keys: str):
        """``config[k1][k2]...``, None where a level is missing (runs from before the key existed)."""
        node: Any = self.config
        for k in keys:
            node = node.get(k) if isinstance(node, dict) else None
        return node


# ---- types ------------------------------------------------------------------------------------------------
@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _args(hint) -> tuple:
    return typing.get_args(hint)


def _is_union(hint) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _is_section(hint) -> bool:
    return isinstance(hint, type) and issubclass(hint, _Section)


def _nullable(hint) -> bool:
    return hint is Any or (_is_union(hint) and type(None) in _args(hint))


@functools.cache
def _readers(cls) -> tuple:
    """``(name, convert or None, nullable)`` per field of a section, worked out once: a report reads each record
    many times."""
    return tuple(
        (f.name, _converter(_hints(cls)[f.name]), _nullable(_hints(cls)[f.name])) for f in dataclasses.fields(cls)
    )


def _converter(hint):
    """How a JSON value of type ``hint`` becomes its typed value: sections (also in a list, or nullable) become
    their dataclass; None: everything else stays as it is."""
    inner = [a for a in _args(hint) if a is not type(None)] if _is_union(hint) else [hint]
    hint = inner[0] if len(inner) == 1 else hint
    if _is_section(hint):
        return lambda v: hint.from_dict(v) if isinstance(v, dict) else v
    if typing.get_origin(hint) is list and _is_section(item := _args(hint)[0]):
        return lambda v: [item.from_dict(x) if isinstance(x, dict) else x for x in v] if isinstance(v, list) else v
    return None


def problems(record: dict, cls=RunResults, where: str = "") -> list[str]:
    """Why ``record`` (a results.json object) is not one the schema describes: an undeclared key, a key every
    record has missing, or a value not of its declared type; [] when it is. (Reading never needs this: a record
    without a key reads with its default.)"""
    hints = _hints(cls)
    out = [f"{where}{k}: not declared in {cls.__name__} (core/results_schema.py)" for k in record if k not in hints]
    out += [f"{where}{f.name}: missing (every record has it)" for f in _always(cls) if f.name not in record]
    for name, value in record.items():
        if name in hints:
            out += _type_problems(value, hints[name], f"{where}{name}")
    return out


def _always(cls) -> list[dataclasses.Field]:
    """The keys every record has (marked ``always``); a section, where there is one, has all of its keys."""
    return [f for f in dataclasses.fields(cls) if f.metadata[ALWAYS] or cls is not RunResults]


def _type_problems(value, hint, where: str) -> list[str]:
    if hint is Any:
        return []
    if _is_union(hint):
        tries = [_type_problems(value, a, where) for a in _args(hint)]
        return [] if any(not t for t in tries) else min(tries, key=len)
    if hint is type(None):
        return [] if value is None else [f"{where}: {value!r:.60} is not null"]
    origin = typing.get_origin(hint)
    if _is_section(hint):
        return problems(value, hint, f"{where}.") if isinstance(value, dict) else [f"{where}: not an object"]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        return [p for k, v in value.items() for p in _type_problems(v, _args(hint)[1], f"{where}[{k!r}]")]
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: not a list"]
        return [p for i, v in enumerate(value) for p in _type_problems(v, _args(hint)[0], f"{where}[{i}]")]
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),  # JSON writes 2.0 as 2.0, 2 as 2
        str: lambda v: isinstance(v, str),
    }[hint]
    return [] if ok(value) else [f"{where}: {value!r:.60} is not {hint.__name__}"]


# ---- the documentation ------------------------------------------------------------------------------------
def _type_name(hint) -> str:
    if hint is Any:
        return "any"
    if hint is type(None):
        return "null"
    if _is_union(hint):
        return " \\| ".join(_type_name(a) for a in _args(hint))
    origin = typing.get_origin(hint)
    if origin in (dict, list):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in _args(hint))}]"
    return hint.__name__


def sections() -> list[type]:
    """RunResults and every section it holds, in the order they appear."""
    out, todo = [], [RunResults]
    while todo:
        cls = todo.pop(0)
        if cls in out:
            continue
        out.append(cls)
        for hint in _hints(cls).values():
            todo += [a for a in (hint, *_args(hint)) if isinstance(a, type) and issubclass(a, _Section)]
    return out


def markdown() -> str:
    """The tables of docs/results.md (between its ``results-schema`` markers): every key, type and meaning."""
    parts = []
    for cls in sections():
        hints, always = _hints(cls), _always(cls)
        rows = [
            f"| `{f.name}` | {_type_name(hints[f.name])} | {'yes' if f in always else ''} | "
            + f"{f.metadata['doc'].replace('``', '`')} |"
            for f in dataclasses.fields(cls)
        ]
        doc = " ".join(cls.__doc__.split()).replace("``", "`")
        header = "| key | type | always | meaning |\n|---|---|---|---|"
        parts.append(f"### {cls.__name__}\n\n{doc}\n\n{header}\n" + "\n".join(rows))
    return "\n\n".join(parts) + "\n"


BEGIN, END = "<!-- results-schema: begin (generated) -->", "<!-- results-schema: end -->"


def with_tables(doc: str) -> str:
    """``doc`` (docs/results.md) with the text between its markers replaced by :func:`markdown`."""
    head, rest = doc.split(BEGIN, 1)
    return f"{head}{BEGIN}\n\n{markdown()}\n{END}{rest.split(END, 1)[1]}"


if __name__ == "__main__":  # python -m mfti_lightning.core.results_schema docs/results.md: regenerate the tables
    import sys

    doc_path = Path(sys.argv[1])
    doc_path.write_text(with_tables(doc_path.read_text(encoding="utf-8")), encoding="utf-8")
