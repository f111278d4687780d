"""One evaluation path for validation, final test and mfti-eval: prompts -> translations -> sacrebleu scores."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from mfti_lightning import metrics as mt
from mfti_lightning.generation import gather_translations, shard, translate
from mfti_lightning.languages import direction_str
from mfti_lightning.prepare import EvalSet, eval_prompts
from mfti_lightning.template import Template

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    metrics: dict[str, float] = field(default_factory=dict)  # "<split>/<metric>/<src>-<tgt>" and ".../avg"
    signatures: dict[str, str] = field(default_factory=dict)  # same keys as the per-direction metrics
    rows: dict[str, list[dict]] = field(default_factory=dict)  # "<src>-<tgt>" -> one dict per sentence


def build_prompts(sets: list[EvalSet], template: Template, shots: int, seed: int) -> list[tuple[int, int, str]]:
    """``(set index, sentence index, prompt)`` for every sentence of every set, in a fixed order."""
    return [(si, j, p) for si, es in enumerate(sets) for j, p in enumerate(eval_prompts(es, template, shots, seed))]


def score_translations(
    sets: list[EvalSet], prompts: list[tuple[int, int, str]], hyps: list[str], split: str,
    bleu_tokenize: str = "auto",
) -> EvalResult:
    """Per-direction rows and corpus scores (``<split>/<metric>/<src>-<tgt>``) plus their averages."""
    result = EvalResult()
    per_metric: dict[str, list[float]] = {}
    by_set: dict[int, list[tuple[int, str, str]]] = {}
    for (si, j, prompt), hyp in zip(prompts, hyps):
        by_set.setdefault(si, []).append((j, prompt, hyp))
    for si, es in enumerate(sets):
        d = direction_str(es.direction)
        items = sorted(by_set.get(si, []))
        result.rows[d] = [
            {"source": es.sources[j], "reference": es.references[j], "prompt": p, "hypothesis": h}
            for j, p, h in items
        ]
        dir_hyps = [h for _, _, h in items]
        for metric, (value, sig) in mt.score(dir_hyps, es.references, es.direction[1], bleu_tokenize).items():
            result.metrics[f"{split}/{metric}/{d}"] = value
            result.signatures[f"{split}/{metric}/{d}"] = sig
            per_metric.setdefault(metric, []).append(value)
    for metric, values in per_metric.items():
        result.metrics[f"{split}/{metric}/avg"] = sum(values) / len(values)
    return result


def evaluate(
    model,
    tokenizer,
    template: Template,
    sets: list[EvalSet],
    *,
    split: str,
    shots: int = 0,
    seed: int = 0,
    num_beams: int = 1,
    max_new_tokens: int = 150,
    batch_tokens: int = 4096,
    bleu_tokenize: str = "auto",
    max_prompt_tokens: int | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> EvalResult:
    """Translate every sentence of ``sets`` exactly once (sharded over ranks) and score each direction."""
    prompts = build_prompts(sets, template, shots, seed)
    mine = shard(len(prompts), rank, world_size)
    local = translate(
        model, tokenizer, template, [prompts[i][2] for i in mine], num_beams=num_beams,
        max_new_tokens=max_new_tokens, batch_tokens=batch_tokens, max_prompt_tokens=max_prompt_tokens,
    )
    hyps = gather_translations(dict(zip(mine, local)), len(prompts), world_size)
    return score_translations(sets, prompts, hyps, split, bleu_tokenize)
