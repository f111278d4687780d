"""From config to data: training examples (sampled, filtered, rendered) and evaluation items. No torch here."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

from mfti_lightning import corpora, languages
from mfti_lightning.directions import eval_directions, train_directions
from mfti_lightning.errors import ConfigError, DataError
from mfti_lightning.languages import Direction, direction_str
from mfti_lightning.template import Template

log = logging.getLogger(__name__)


@dataclass
class EvalSet:
    """The sentences of one direction and split, with the k-shot pool for it."""

    direction: Direction
    split: str
    sources: list[str]
    references: list[str]
    pool: list[tuple[str, str]] = field(default_factory=list)  # k-shot demonstrations to draw from


def _slice(n_total: int, size, from_end: bool) -> slice:
    if size is None:
        return slice(None)
    size = int(size)
    return slice(n_total - size, None) if from_end else slice(0, size)


def eval_sets(cfg, split: str, directions: list[Direction] | None = None) -> list[EvalSet]:
    """``val``: the last ``lang_pairs.val_size`` FLORES dev sentences; ``test``: the first ``test_size``
    FLORES devtest sentences (``null`` = all). The k-shot pool is FLORES dev minus the evaluated sentences."""
    lp, data = cfg.lang_pairs, cfg.data
    directions = directions if directions is not None else eval_directions(lp)
    flores_split, size, from_end = {
        "val": ("dev", lp.get("val_size"), True),
        "test": ("devtest", lp.get("test_size"), False),
    }[split]
    out = []
    for src, tgt in directions:
        pairs = corpora.read_flores_pairs(data.flores_root, flores_split, src, tgt, data.flores_layout)
        chosen = pairs[_slice(len(pairs), size, from_end)]
        evaluated = {s for s, _ in chosen}
        pool = []
        if int(cfg.shots.k) > 0:
            pool_pairs = corpora.read_flores_pairs(data.flores_root, cfg.shots.pool, src, tgt, data.flores_layout)
            pool = [p for p in pool_pairs if p[0] not in evaluated]
            if len(pool) < int(cfg.shots.k):
                raise ConfigError(
                    f"shots.k={cfg.shots.k} but the pool for {src}-{tgt} has only {len(pool)} pairs "
                    f"(FLORES {cfg.shots.pool} minus the evaluated sentences). Lower shots.k."
                )
        out.append(EvalSet((src, tgt), split, [s for s, _ in chosen], [t for _, t in chosen], pool))
    return out


def shots_for(eval_set: EvalSet, index: int, k: int, seed: int) -> list[tuple[str, str]]:
    """The k demonstrations for sentence ``index``: seeded per (seed, direction, index), identical on every
    machine and rank, drawn without replacement, never the test sentence itself."""
    if k <= 0:
        return []
    src, tgt = eval_set.direction
    rng = random.Random(corpora.direction_seed(seed, src, tgt) * 100_003 + index)
    test_source = eval_set.sources[index]
    candidates = [p for p in eval_set.pool if p[0] != test_source]
    return rng.sample(candidates, k)


def eval_prompts(eval_set: EvalSet, template: Template, k: int, seed: int) -> list[str]:
    src, tgt = eval_set.direction
    return [
        template.render_prompt(s, src, tgt, shots_for(eval_set, i, k, seed)) for i, s in enumerate(eval_set.sources)
    ]


def _eval_exclusions(cfg) -> set[str]:
    """Every FLORES sentence the run evaluates on (validation and test), in all languages involved."""
    excluded: set[str] = set()
    dirs = sorted(set(train_directions(cfg.lang_pairs)) | set(eval_directions(cfg.lang_pairs)))
    for split in ("val", "test"):
        for es in _eval_sets_without_pool(cfg, split, dirs):
            excluded.update(x.strip() for x in es.sources)
            excluded.update(x.strip() for x in es.references)
    return excluded


def _eval_sets_without_pool(cfg, split, dirs):
    """Eval sets without k-shot pools (not needed to know which sentences to exclude from training)."""
    from omegaconf import OmegaConf

    light = OmegaConf.merge(cfg, {"shots": {"k": 0}})
    return eval_sets(light, split, dirs)


def training_examples(cfg, template: Template) -> tuple[list[dict], dict]:
    """Sample ``num_examples.n`` pairs per training direction and render them.

    Returns ``(examples, report)``; the report has per-direction counts and what the filters dropped.
    """
    n = int(cfg.num_examples.n)
    dirs = train_directions(cfg.lang_pairs)
    report: dict = {"directions": {}}
    if n == 0:
        return [], report
    exclude = _eval_exclusions(cfg) if cfg.data.filters.get("exclude_eval", True) else set()
    examples: list[dict] = []
    for src, tgt in dirs:
        specs = [s for s in cfg.data.corpora if corpora.corpus_available(s, src, tgt)]
        if not specs:
            tried = [str(s.get("path") or f"flores:{s.get('split')}") for s in cfg.data.corpora]
            raise DataError(
                f"No training corpus for {src}-{tgt}: none of data.corpora exists for it (tried {tried}). "
                "Add a corpus for this pair to data.corpora, or remove the direction from lang_pairs.train."
            )
        stats: dict = {}
        keep = corpora.make_filter(cfg.data.filters, src, tgt, exclude, stats)
        sample, available = corpora.reservoir_sample(
            corpora.iter_corpus(specs[0], src, tgt), n, corpora.direction_seed(cfg.seed, src, tgt), keep
        )
        if not sample:
            raise DataError(f"{src}-{tgt}: no pairs left after filtering ({stats}) in {dict(specs[0])}.")
        if len(sample) < n:
            msg = (f"{src}-{tgt}: num_examples.n={n} but only {len(sample)} pairs are available after "
                   f"filtering (dropped: {stats}).")
            if not cfg.num_examples.get("allow_fewer", False):
                raise DataError(msg + " Lower num_examples.n or set num_examples.allow_fewer=true.")
            log.warning(msg + " Using %d (num_examples.allow_fewer=true).", len(sample))
        report["directions"][direction_str((src, tgt))] = {
            "sampled": len(sample), "available": available, "dropped": stats,
        }
        for s, t in sample:
            examples.append({
                "src_lang": src, "tgt_lang": tgt, "source": s, "target": t,
                "prompt": template.render_prefix(s, src, tgt),
                "text": template.render_example(s, t, src, tgt),
            })
    report["total"] = len(examples)
    return examples, report


def check_languages(cfg) -> None:
    """Every language code in the run exists (fails before anything is loaded)."""
    for d in set(train_directions(cfg.lang_pairs)) | set(eval_directions(cfg.lang_pairs)):
        for c in d:
            languages.get(c)
