"""What a W&B run carries, read from the results.json record: its tags and config, the flat summary fields for
scaling plots, and the rows of its per-direction, error-type and sample-translation tables. No wandb here."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from mfti_lightning.core.keys import swept_label
from mfti_lightning.core.metric_key import SPLITS, MetricKey
from mfti_lightning.core.results_schema import RunResults
from mfti_lightning.core.schema import SWEPT
from mfti_lightning.eval.analysis import CATEGORIES as ERROR_CATEGORIES
from mfti_lightning.track.redact import clean_config
from mfti_lightning.track.run_values import method_of


def run_tags(cfg, record: dict) -> list[str]:
    """Tags from the config groups: the swept values (their labels: ``shots:k8``), plus the other groups chosen."""
    tags = [f"{s.name}:{swept_label(cfg, s)}" for s in SWEPT if s.tagged]
    tags += [f"method:{method_of(RunResults.of(record).swept)}", f"task:{cfg.task_name}"]
    try:
        from hydra.core.hydra_config import HydraConfig

        choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    except Exception:
        choices = {}
    for group in ("data", "trainer", "experiment", "debug", "hydra/launcher"):
        value = choices.get(group)
        if value and value not in ("null", "basic"):
            tags.append(f"{group.split('/')[-1]}:{value}")
    return [t[:64] for t in tags]


def wandb_config(record: dict) -> dict:
    r = RunResults.of(record)
    cfg = clean_config(r.config)
    cfg["swept"] = dict(record.get("swept", {}))  # as recorded
    cfg["swept"]["method"] = method_of(r.swept)
    cfg["swept"]["num_train_directions"] = len(r.directions.train)
    return cfg


def _cost_fields(r: RunResults) -> dict:
    """The parameter counts, throughput and training fields of the summary."""
    tp, out = dataclasses.asdict(r.throughput), {}
    for key in ("params_total", "params_trainable"):
        if tp[key] is not None:
            out[key] = tp[key]
    for key, value in tp.items():
        if isinstance(value, (int, float, str, bool)) and value is not None:
            out[f"throughput/{key}"] = value
    for key in ("steps", "loss_first", "loss_last", "loss_first_10pct", "loss_last_10pct", "train_time_s"):
        if getattr(r.training, key) is not None:
            out[f"training/{key}"] = getattr(r.training, key)
    if r.best_step is not None:
        out["training/best_step"] = r.best_step
    return out


def summary_fields(record: dict) -> dict:
    """Flat summary fields for one-click scaling plots, read from a results.json record."""
    r = RunResults.of(record)
    out = {
        **dataclasses.asdict(r.swept),  # model, lang_pairs, template, shots, num_examples, seed
        "method": method_of(r.swept),
        "num_train_directions": len(r.directions.train),
        "num_eval_directions": len(r.directions.eval),
        "status": r.status,
        "task": r.task,
        "sweep_name": r.sweep_name,
        "wall_time_s": r.wall_time_s,
    }
    out.update(_cost_fields(r))
    for key, value in r.metrics.items():
        if (parsed := MetricKey.find(key)) and parsed.is_summary:
            out[key] = value
    out["git_commit"], out["git_dirty"] = r.provenance.git_commit, r.provenance.git_dirty
    if r.error:
        out["error"] = str(r.error)[:1000]
    return {k: v for k, v in out.items() if v is not None}


def direction_rows(record: dict) -> list[dict]:
    """One row per (split, direction): every metric of that direction, trained or not, its partition."""
    r = RunResults.of(record)
    trained = set(r.directions.train)
    part_of = {d: name for name, ds in r.partitions.items() for d in ds}
    rows: dict[tuple[str, str], dict] = {}
    for name, value in r.metrics.items():
        key = MetricKey.find(name)
        if not (key and key.is_direction):
            continue
        split, metric, d = key.split, key.metric, key.scope
        row = rows.setdefault(
            (split, d),
            {
                "split": split,
                "direction": d,
                "src": d.split("-")[0],
                "tgt": d.split("-")[1],
                "trained": d in trained,
                "partition": part_of.get(d, ""),
            },
        )
        row[metric] = value
    return [rows[k] for k in sorted(rows, key=lambda k: (SPLITS.index(k[0]) if k[0] in SPLITS else 9, k[1]))]


def error_rows(record: dict) -> list[dict]:
    """One row per (split, direction) of the error analysis: n and the count of each category."""
    out = []
    for split, by_dir in RunResults.of(record).errors.items():
        for d in sorted(by_dir):
            e = by_dir[d] or {}
            counts = e.get("counts", {})
            cats = list(ERROR_CATEGORIES) + sorted(set(counts) - set(ERROR_CATEGORIES))
            out.append({"split": split, "direction": d, "n": e.get("n", 0), **{c: counts.get(c, 0) for c in cats}})
    return out


def sample_rows(run_dir: Path | None, per_direction: int = 3, limit: int = 500) -> list[dict]:
    """The first translations of each direction from ``<run_dir>/translations/*.jsonl``."""
    if run_dir is None or per_direction <= 0:
        return []
    out = []
    for path in sorted((Path(run_dir) / "translations").glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f):
                if i >= per_direction or len(out) >= limit:
                    break
                item = json.loads(line)
                out.append(
                    {
                        "direction": path.stem,
                        "source": item.get("source", ""),
                        "reference": item.get("reference", ""),
                        "hypothesis": item.get("hypothesis", ""),
                        "error": item.get("error") or "",
                        "prompt": str(item.get("prompt", ""))[-2000:],
                    }
                )
    return out
