"""What the report reads off one run's results record: its method, parameter count, model family, template,
extraction mode, the label of its series in a figure, and which swept values vary among runs."""

from __future__ import annotations

import json
import re

from mfti_lightning.core.families import FAMILIES
from mfti_lightning.core.keys import SWEPT_NAMES
from mfti_lightning.core.metric_key import AVG, MetricKey

SWEPT = SWEPT_NAMES  # core/schema.py's SWEPT: the report's columns
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([mb])(\d*)$", re.I)  # 564m, 1.7b, and BLOOM's 1b7 / 7b1


def method_of(swept: dict) -> str:
    """``mFTI`` (finetuned), ``ICL`` (no finetuning, k>0 demonstrations) or ``zero-shot`` (neither)."""
    if int(swept.get("num_examples") or 0) > 0:
        return "mFTI"
    return "ICL" if int(swept.get("shots") or 0) > 0 else "zero-shot"


def params_of(rec: dict) -> float | None:
    """Parameter count: measured (``throughput.params_total``), else read off the model name (xglm-564m,
    qwen2.5-1.5b, bloom-7b1)."""
    tp = rec.get("throughput") or {}
    if tp.get("params_total"):
        return float(tp["params_total"])
    m = _SIZE.search(str(rec.get("swept", {}).get("model", "")))
    if m:
        number = float(f"{m.group(1)}.{m.group(3)}" if m.group(3) and "." not in m.group(1) else m.group(1))
        return number * (1e6 if m.group(2).lower() == "m" else 1e9)
    return None


def bleu_metric(records: list[dict], split: str = "test", choice: str = "auto") -> str:
    if choice != "auto":
        return choice
    return "spbleu" if any(str(MetricKey(split, "spbleu", AVG)) in r.get("metrics", {}) for r in records) else "bleu"


def family_of(rec: dict) -> str:
    """The model family's label (core/families.py); runs from before families existed were all XGLM."""
    name = ((rec.get("config") or {}).get("model") or {}).get("family") or "xglm"
    return FAMILIES[name].label if name in FAMILIES else str(name)


def template_factor(rec: dict) -> str:
    """What a template of sweeps/template_space.yaml varies (``template.factor``), "" for the others."""
    return str(((rec.get("config") or {}).get("template") or {}).get("factor") or "")


def short_template(rec: dict) -> str:
    t = ((rec.get("config") or {}).get("template") or {}).get("short")
    return t or str(rec.get("swept", {}).get("template", "?")).split("_")[0]


def extraction_of(rec: dict) -> str:
    """The run's ``eval.extraction`` as results.json records it (``unknown`` for files written before it was)."""
    return str(rec.get("extraction") or "unknown")


def run_label(rec: dict, vary: set[str], x_key: str = "") -> str:
    """``mFTI``/``ICL k8``/``zero-shot`` plus the swept values that differ among the runs of a figure (never the
    figure's x variable ``x_key``)."""
    sw = rec.get("swept", {})
    method = method_of(sw)
    parts = [method]
    if x_key != "shots" and (method == "ICL" or (method == "mFTI" and int(sw.get("shots") or 0) > 0)):
        parts.append(f"k{sw.get('shots')}")
    if method == "mFTI" and "num_examples" in vary:
        parts.append(f"n{sw.get('num_examples')}")
    if "model" in vary:
        parts.append(str(sw.get("model")))
    if "lang_pairs" in vary:
        parts.append(str(sw.get("lang_pairs")))
    if "template" in vary:
        parts.append(short_template(rec))
    if "extraction" in vary:  # never one series over two extraction modes (eval.extraction)
        parts.append(f"[extraction {extraction_of(rec)}]")
    return " ".join(parts)


def varying(records: list[dict], exclude: tuple[str, ...]) -> set[str]:
    """The swept values (seed aside, and ``extraction``) that differ among ``records``."""
    vary = {
        k
        for k in SWEPT
        if k not in exclude and k != "seed" and len({json.dumps(r.get("swept", {}).get(k)) for r in records}) > 1
    }
    return vary | ({"extraction"} if len({extraction_of(r) for r in records}) > 1 else set())
