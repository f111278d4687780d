"""What the report reads off one run's results record: its method, parameter count, model family, template,
extraction mode, the label of its series in a figure, and which swept values vary among runs."""

from __future__ import annotations

import dataclasses
import json
import re

from mfti_lightning.core.families import FAMILIES
from mfti_lightning.core.keys import SWEPT_NAMES
from mfti_lightning.core.metric_key import AVG, MetricKey
from mfti_lightning.core.results_schema import RunResults, Swept

SWEPT = SWEPT_NAMES  # core/schema.py's SWEPT: the report's columns
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([mb])(\d*)$", re.I)  # 564m, 1.7b, and BLOOM's 1b7 / 7b1


def method_of(swept: dict | Swept) -> str:
    """``mFTI`` (finetuned), ``ICL`` (no finetuning, k>0 demonstrations) or ``zero-shot`` (neither)."""
    sw = swept if isinstance(swept, Swept) else Swept.from_dict(swept)
    if int(sw.num_examples or 0) > 0:
        return "mFTI"
    return "ICL" if int(sw.shots or 0) > 0 else "zero-shot"


def params_of(rec: dict | RunResults) -> float | None:
    """Parameter count: measured (``throughput.params_total``), else read off the model name (xglm-564m,
    qwen2.5-1.5b, bloom-7b1)."""
    r = RunResults.of(rec)
    if r.throughput.params_total:
        return float(r.throughput.params_total)
    m = _SIZE.search(str(r.swept.model if r.swept.model is not None else ""))
    if m:
        number = float(f"{m.group(1)}.{m.group(3)}" if m.group(3) and "." not in m.group(1) else m.group(1))
        return number * (1e6 if m.group(2).lower() == "m" else 1e9)
    return None


def bleu_metric(records: list[dict], split: str = "test", choice: str = "auto") -> str:
    if choice != "auto":
        return choice
    if any(str(MetricKey(split, "spbleu", AVG)) in RunResults.of(r).metrics for r in records):
        return "spbleu"
    return "bleu"


def family_of(rec: dict | RunResults) -> str:
    """The model family's label (core/families.py); runs from before families existed were all XGLM."""
    name = RunResults.of(rec).config_value("model", "family") or "xglm"
    return FAMILIES[name].label if name in FAMILIES else str(name)


def template_factor(rec: dict | RunResults) -> str:
    """What a template of sweeps/template_space.yaml varies (``template.factor``), "" for the others."""
    return str(RunResults.of(rec).config_value("template", "factor") or "")


def short_template(rec: dict | RunResults) -> str:
    r = RunResults.of(rec)
    template = "?" if r.swept.template is None else r.swept.template
    return r.config_value("template", "short") or str(template).split("_")[0]


def extraction_of(rec: dict | RunResults) -> str:
    """The run's ``eval.extraction`` as results.json records it (``unknown`` for files written before it was)."""
    return str(RunResults.of(rec).extraction or "unknown")


def run_label(rec: dict | RunResults, vary: set[str], x_key: str = "") -> str:
    """``mFTI``/``ICL k8``/``zero-shot`` plus the swept values that differ among the runs of a figure (never the
    figure's x variable ``x_key``)."""
    sw = RunResults.of(rec).swept
    method = method_of(sw)
    parts = [method]
    if x_key != "shots" and (method == "ICL" or (method == "mFTI" and int(sw.shots or 0) > 0)):
        parts.append(f"k{sw.shots}")
    if method == "mFTI" and "num_examples" in vary:
        parts.append(f"n{sw.num_examples}")
    if "model" in vary:
        parts.append(str(sw.model))
    if "lang_pairs" in vary:
        parts.append(str(sw.lang_pairs))
    if "template" in vary:
        parts.append(short_template(rec))
    if "extraction" in vary:  # never one series over two extraction modes (eval.extraction)
        parts.append(f"[extraction {extraction_of(rec)}]")
    return " ".join(parts)


def varying(records: list[dict], exclude: tuple[str, ...]) -> set[str]:
    """The swept values (seed aside, and ``extraction``) that differ among ``records``."""
    swept = [dataclasses.asdict(RunResults.of(r).swept) for r in records]
    vary = {k for k in SWEPT if k not in exclude and k != "seed" and len({json.dumps(s[k]) for s in swept}) > 1}
    return vary | ({"extraction"} if len({extraction_of(r) for r in records}) > 1 else set())
