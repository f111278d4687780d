"""From config to data: training examples (sampled, filtered, rendered) and evaluation items. No torch here."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from mfti_lightning.core import languages
from mfti_lightning.core.directions import eval_directions, train_directions
from mfti_lightning.core.errors import ConfigError, DataError
from mfti_lightning.core.languages import Direction, direction_str
from mfti_lightning.core.template import Template
from mfti_lightning.data import corpora, sampling
from mfti_lightning.data.cache import CACHE_VERSION, discard, read_cache, write_cache

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


def val_from_end(cfg) -> bool:
    """Validation takes the last ``val_size`` dev sentences (``eval.select=mean``) or, as the reference code does
    for its checkpoint choice, the first (``eval.select=reference``)."""
    return cfg.eval.select != "reference"


def eval_sets(cfg, split: str, directions: list[Direction] | None = None) -> list[EvalSet]:
    """``val``: the last ``lang_pairs.val_size`` FLORES dev sentences (the first under ``eval.select=reference``);
    ``test``: the first ``test_size`` FLORES devtest sentences (``null`` = all). The k-shot pool is FLORES dev
    minus the evaluated sentences."""
    lp, data = cfg.lang_pairs, cfg.data
    directions = directions if directions is not None else eval_directions(lp)
    flores_split, size, from_end = {
        "val": ("dev", lp.get("val_size"), val_from_end(cfg)),
        "test": ("devtest", lp.get("test_size"), False),
    }[split]
    out = []
    for src, tgt in directions:
        pairs = corpora.read_flores_pairs(data.flores_root, flores_split, src, tgt, data.flores_layout)
        chosen = pairs[_slice(len(pairs), size, from_end)]
        evaluated = {s for s, _ in chosen}
        pool = []
        if cfg.shots.k > 0:
            pool_pairs = corpora.read_flores_pairs(data.flores_root, cfg.shots.pool, src, tgt, data.flores_layout)
            pool = [p for p in pool_pairs if p[0] not in evaluated]
            if len(pool) < cfg.shots.k:
                raise ConfigError(
                    f"shots.k={cfg.shots.k} but the pool for {src}-{tgt} has only {len(pool)} pairs "
                    f"(FLORES {cfg.shots.pool} minus the evaluated sentences). Lower shots.k."
                )
        out.append(EvalSet((src, tgt), split, [s for s, _ in chosen], [t for _, t in chosen], pool))
    return out


def shots_for(eval_set: EvalSet, index: int, k: int, seed: int) -> list[tuple[str, str]]:
    """The k demonstrations for sentence ``index``: seeded per (seed, direction, index), identical on every
    machine, process and rank (``random.Random`` with an integer seed, no salted ``hash()``), drawn without
    replacement (the reference code draws with replacement), never containing the test sentence itself."""
    if k <= 0:
        return []
    src, tgt = eval_set.direction
    rng = random.Random(sampling.direction_seed(seed, src, tgt) * 100_003 + index)
    test_source = eval_set.sources[index].strip()
    pool = eval_set.pool
    if len(pool) > k:  # one spare draw covers the test sentence being in the pool
        drawn = [p for p in rng.sample(pool, k + 1) if p[0].strip() != test_source]
        return drawn[:k]
    candidates = [p for p in pool if p[0].strip() != test_source]
    if len(candidates) < k:
        raise ConfigError(
            f"shots.k={k} but the pool for {src}-{tgt} has only {len(candidates)} pairs that are "
            "not the test sentence. Lower shots.k or use a larger pool (shots.pool)."
        )
    return rng.sample(candidates, k)


def eval_prompts(eval_set: EvalSet, template: Template, k: int, seed: int) -> list[str]:
    src, tgt = eval_set.direction
    return [
        template.render_prompt(s, src, tgt, shots_for(eval_set, i, k, seed)) for i, s in enumerate(eval_set.sources)
    ]


def _run_languages(cfg) -> list[str]:
    dirs = set(train_directions(cfg.lang_pairs)) | set(eval_directions(cfg.lang_pairs))
    return sorted({c for d in dirs for c in d})


def _eval_exclusions(cfg) -> set[str]:
    """Every FLORES sentence the run evaluates on (validation and test slices), in all languages involved."""
    excluded: set[str] = set()
    dirs = sorted(set(train_directions(cfg.lang_pairs)) | set(eval_directions(cfg.lang_pairs)))
    for split in ("val", "test"):
        for es in _eval_sets_without_pool(cfg, split, dirs):
            excluded.update(x.strip() for x in es.sources)
            excluded.update(x.strip() for x in es.references)
    return excluded


def _flores_exclusions(cfg) -> set[str]:
    """Every FLORES dev and devtest sentence of every language of the run (evaluation sets and k-shot pool)."""
    data = cfg.data
    excluded: set[str] = set()
    for code in _run_languages(cfg):
        for split in ("dev", "devtest"):
            excluded.update(x.strip() for x in corpora.read_flores(data.flores_root, split, code, data.flores_layout))
    return excluded


def _eval_sets_without_pool(cfg, split, dirs):
    """Eval sets without k-shot pools (not needed to know which sentences to exclude from training)."""
    from omegaconf import OmegaConf

    light = OmegaConf.merge(cfg, {"shots": {"k": 0}})
    return eval_sets(light, split, dirs)


def _plain(node):
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _specs(cfg) -> list[dict]:
    specs = [dict(_plain(s)) for s in cfg.data.corpora or []]
    if not specs:
        raise ConfigError("data.corpora is empty: give at least one training corpus (see conf/data/*.yaml).")
    for i, s in enumerate(specs):
        corpora.check_spec(s, i)
    return specs


def _corpus_for(specs: list[dict], src: str, tgt: str) -> dict:
    """The first corpus in data.corpora that has data for this pair (WikiMatrix, then MultiCCAligned, ...)."""
    for spec in specs:
        if corpora.corpus_available(spec, src, tgt):
            return spec
    tried = [corpora.describe_spec(s, src, tgt) for s in specs]
    raise DataError(
        f"No training corpus for {src}-{tgt}: none of data.corpora has data for this pair (tried {tried}). "
        "X-Y directions without direct data need a corpus for that pair: add one to data.corpora (its path may "
        "use {pair}, {src}, {tgt}), or remove the direction from lang_pairs.train."
    )


def training_examples(cfg, template: Template) -> tuple[list[dict], dict]:
    """Sample ``num_examples.n`` pairs per training direction and render them (one streaming pass each).

    Filters (``data.filters``): empty lines, length ratio, too many tokens, duplicates (within the sample, see
    :func:`sampling.reservoir_sample`) and evaluation sentences: for FLORES-format training corpora (the demo)
    the validation/test slices of the run; for every other corpus all FLORES dev and devtest sentences of the
    run's languages. Returns ``(examples, report)``; the report has per-direction counts and what was dropped.
    """
    n = cfg.num_examples.n
    if n < 0:
        raise ConfigError(f"num_examples.n={n}: give 0 (no finetuning) or a positive number of pairs per direction.")
    dirs = train_directions(cfg.lang_pairs)
    report: dict = {"requested_per_direction": n, "directions": {}, "total": 0}
    if n == 0:
        return [], report
    specs = _specs(cfg)
    chosen = {(s, t): _corpus_for(specs, s, t) for s, t in dirs}  # fail on a missing pair before reading any
    excluded = _excluder(cfg)
    examples: list[dict] = []
    for src, tgt in dirs:
        sample = _sample_direction(cfg, chosen[(src, tgt)], src, tgt, excluded, report)
        fraction = cfg.data.noise.misaligned
        if fraction:
            sample, replaced = misalign(sample, fraction, sampling.direction_seed(cfg.seed, src, tgt) + 1)
            report["directions"][direction_str((src, tgt))]["misaligned"] = replaced
        examples += [
            {"src_lang": src, "tgt_lang": tgt, "source": s, "target": t,
             "prompt": template.render_prefix(s, src, tgt), "text": template.render_example(s, t, src, tgt)}
            for s, t in sample
        ]  # fmt: skip
    report["total"] = len(examples)
    return examples, report


def misalign(pairs: list, fraction: float, seed: int) -> tuple[list, int]:
    """``data.noise.misaligned``: ``round(fraction x len(pairs))`` pairs, chosen with ``seed``, get the target of
    another line of the same sample (drawn with ``seed``; never their own line). Returns the new list and how many
    targets were replaced. Deterministic; the sources, their order and the other pairs are untouched."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"data.noise.misaligned={fraction}: give a fraction between 0 and 1.")
    n = len(pairs)
    k = round(fraction * n) if n > 1 else 0
    if k == 0:
        return list(pairs), 0
    rng = random.Random(seed)
    chosen = rng.sample(range(n), k)
    out = list(pairs)
    for i in chosen:
        j = rng.randrange(n - 1)
        j += j >= i  # any other line
        out[i] = (pairs[i][0], pairs[j][1])
    return out, k


def _excluder(cfg):
    """``spec -> sentences its pairs must not contain``: the run's evaluation sentences for a FLORES corpus, all
    FLORES dev/devtest sentences of the run's languages for any other (``data.filters.exclude_eval``)."""
    exclusions: dict[str, set[str]] = {}

    def excluded(spec) -> set[str]:
        if not cfg.data.filters.exclude_eval:
            return set()
        kind = "evaluated" if spec["format"] == "flores" else "flores_all"
        if kind not in exclusions:
            exclusions[kind] = (
                _eval_exclusions(cfg) if kind == "evaluated" else (_flores_exclusions(cfg) | _eval_exclusions(cfg))
            )
        return exclusions[kind]

    return excluded


def _sample_direction(cfg, spec: dict, src: str, tgt: str, excluded, report: dict) -> list:
    """The filtered, seeded sample of one direction (a DataError when there are too few pairs, unless
    ``num_examples.allow_fewer``); its counts go to ``report``."""
    n, filters, stats = cfg.num_examples.n, cfg.data.filters, {}
    keep = sampling.make_filter(filters, src, tgt, excluded(spec), stats)
    seed = sampling.direction_seed(cfg.seed, src, tgt)
    sample, available = sampling.reservoir_sample(
        corpora.iter_corpus(spec, src, tgt), n, seed, keep, dedup=bool(filters.get("dedup", True)), stats=stats
    )
    where = corpora.describe_spec(spec, src, tgt)
    if not sample:
        raise DataError(
            f"{src}-{tgt}: no pairs left after filtering {where} (dropped: {stats}). Check the "
            "corpus, or loosen data.filters (max_len_ratio, max_tokens)."
        )
    if len(sample) < n:
        msg = (
            f"{src}-{tgt}: num_examples.n={n} but only {len(sample)} pairs are available in {where} "
            f"after filtering (dropped: {stats})."
        )
        if not cfg.num_examples.allow_fewer:
            raise DataError(
                msg + " Lower num_examples.n, add data for the pair, or set "
                "num_examples.allow_fewer=true to train on what there is."
            )
        log.warning(msg + " Using %d (num_examples.allow_fewer=true).", len(sample))
        report.setdefault("fewer_than_requested", {})[direction_str((src, tgt))] = len(sample)
    report["directions"][direction_str((src, tgt))] = {
        "sampled": len(sample),
        "available": available,
        "dropped": stats,
        "corpus": where,
    }
    return sample


# ---- cache of prepared data ------------------------------------------------------------------------------
def data_key(cfg, template: Template) -> dict:
    """Everything the prepared training data depends on (hashed into the cache key)."""
    dirs = train_directions(cfg.lang_pairs)
    files = {}
    if cfg.num_examples.n > 0:
        specs = _specs(cfg)
        for s, t in dirs:
            for spec in specs:
                found = corpora.corpus_files(spec, s, t)
                if found is not None:
                    files[direction_str((s, t))] = [
                        [str(Path(f).resolve()), Path(f).stat().st_size, Path(f).stat().st_mtime_ns] for f in found
                    ]
                    break
    return {
        "version": CACHE_VERSION,
        "n": cfg.num_examples.n,
        "allow_fewer": cfg.num_examples.allow_fewer,
        "seed": cfg.seed,
        "train": [direction_str(d) for d in dirs],
        "eval": [direction_str(d) for d in eval_directions(cfg.lang_pairs)],
        "val_size": cfg.lang_pairs.val_size,
        "val_from_end": val_from_end(cfg),
        "noise": _plain(cfg.data.noise),
        "test_size": cfg.lang_pairs.test_size,
        "corpora": _plain(cfg.data.corpora),
        "filters": _plain(cfg.data.filters),
        "flores_root": str(Path(cfg.data.flores_root).resolve()) if cfg.data.flores_root else None,
        "flores_layout": cfg.data.flores_layout,
        "template": template.to_dict(),
        "files": files,
    }


def data_hash(cfg, template: Template) -> str:
    blob = json.dumps(data_key(cfg, template), sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def load_or_prepare(cfg, template: Template) -> tuple[list[dict], dict]:
    """:func:`training_examples`, cached under ``data.cache_dir/<hash of the data config>/``.

    Sweep jobs that share the data config (model, shots, optimizer ... may differ) read the cache instead of
    re-reading the corpora. The cache entry is written to a temporary directory and renamed into place, so
    concurrent jobs never see a half-written entry (the first rename wins; the others discard theirs). A cached
    entry is used only when its files match ``check.json``; a damaged one is rebuilt with a warning naming it.
    """
    cache_root = cfg.data.cache_dir
    if cfg.num_examples.n == 0 or not cache_root:
        examples, report = training_examples(cfg, template)
        report["cache"] = None
        return examples, report
    key = data_hash(cfg, template)
    entry = Path(cache_root) / key
    if entry.exists():
        cached = read_cache(entry)
        if cached is not None:
            examples, report = cached
            report["cache"] = {"key": key, "path": str(entry), "hit": True}
            log.info("Prepared data from cache %s (%d examples)", entry, len(examples))
            return examples, report
        discard(entry)
    examples, report = training_examples(cfg, template)
    write_cache(entry, examples, report, data_key(cfg, template))
    report["cache"] = {"key": key, "path": str(entry), "hit": False}
    return examples, report


def check_languages(cfg) -> None:
    """Every language code in the run exists (fails before anything is loaded)."""
    for d in set(train_directions(cfg.lang_pairs)) | set(eval_directions(cfg.lang_pairs)):
        for c in d:
            languages.get(c)


def check_directions(cfg, evaluates: bool = True) -> None:
    """Training pairs asked for (``num_examples.n > 0``) need training directions, and a job that evaluates needs
    a direction to evaluate: an empty list fails here, naming the key, before anything is read or loaded."""
    n = cfg.num_examples.n
    if n > 0 and not train_directions(cfg.lang_pairs):
        raise ConfigError(
            f"lang_pairs.train is empty but num_examples.n={n} asks for {n} training pairs per direction. List the "
            "directions to train on (lang_pairs.train=[de-en,en-fr]), or set num_examples=n0 to evaluate without "
            "finetuning."
        )
    if evaluates and not eval_directions(cfg.lang_pairs):
        why = "is empty" if cfg.lang_pairs.eval is not None else "is null (the training directions: none)"
        raise ConfigError(
            f"Nothing to evaluate: lang_pairs.eval {why}. List the directions to evaluate: "
            "lang_pairs.eval=[de-en,en-de]."
        )
