"""Direction partitions of the paper's unseen-direction experiment (Li et al., TACL 2024, "unseen" directions), from a run's training
directions. No torch here.

Let S be the languages seen as a source in training and T those seen as a target. An evaluated direction a-b is

- ``seen``: a in S and b in T (each language in the role it had in training);
- ``reversed``: not seen, a in T and b in S (both languages in the opposite role);
- ``one_side_reversed``: both languages seen in training, one of them in a role it never had;
- ``src_unseen``: a never seen, b seen;  ``tgt_unseen``: a seen, b never seen;  ``both_unseen``: neither seen.

For the paper's split (seen_both {en,ko,sw}, src_only {zh,fi}, tgt_only {de,hi}, 6 unseen) this reproduces the
membership of the reference code ``evaluate_partition_score.py`` exactly (22/16/4/42/42/30 of 156 directions;
tested). For training sets that are not a product of a source and a target set (e.g. English-centric), ``seen``
also holds untrained pairs whose languages each appeared in that role (de-fr after en-centric training).
"""

from __future__ import annotations

from collections.abc import Iterable

from mfti_lightning.core.languages import Direction, direction_str, parse_direction
from mfti_lightning.core.metric_key import MetricKey

PARTITIONS = ("seen", "reversed", "one_side_reversed", "src_unseen", "tgt_unseen", "both_unseen")


def partition_of(direction: Direction, src_seen: set[str], tgt_seen: set[str]) -> str:
    a, b = direction
    seen = src_seen | tgt_seen
    if a not in seen and b not in seen:
        return "both_unseen"
    if a not in seen:
        return "src_unseen"
    if b not in seen:
        return "tgt_unseen"
    if a in src_seen and b in tgt_seen:
        return "seen"
    if a in tgt_seen and b in src_seen:
        return "reversed"
    return "one_side_reversed"


def partitions(train_dirs: Iterable[Direction], eval_dirs: Iterable[Direction]) -> dict[str, list[str]]:
    """``{partition: [direction, ...]}`` for every partition name (possibly empty), in eval order."""
    train_dirs = list(train_dirs)
    src_seen = {a for a, _ in train_dirs}
    tgt_seen = {b for _, b in train_dirs}
    out: dict[str, list[str]] = {p: [] for p in PARTITIONS}
    for d in eval_dirs:
        out[partition_of(tuple(d), src_seen, tgt_seen)].append(direction_str(d))
    return out


def partition_metrics(
    metrics: dict[str, float], parts: dict[str, list[str]], split: str, metric_names: Iterable[str]
) -> dict[str, float]:
    """``<split>/<metric>/partition/<name>``: the plain mean of the per-direction scores (as the reference),
    for every non-empty partition whose directions all have a score."""
    out = {}
    for metric in metric_names:
        for name, dirs in parts.items():
            vals = [metrics.get(str(MetricKey(split, metric, d))) for d in dirs]
            if dirs and all(v is not None for v in vals):
                out[str(MetricKey.partition(split, metric, name))] = sum(vals) / len(vals)
    return out


def partition_directions(spec, lang_pairs=None) -> list | None:
    """The training directions an evaluation is partitioned by (``train_directions=``): None or ``none``: no
    partitions; ``lang_pairs``: the directions ``lang_pairs.train`` names (e.g. the paper's unseen split, for an
    ICL run on it); a list of ``src-tgt``; or the run directory of an mFTI run (its results.json's
    ``directions.train``), so that an ICL baseline is split exactly like the mFTI model it is compared with (the
    reference code's ``--few-shot`` mode)."""
    from pathlib import Path

    from mfti_lightning.core.errors import ConfigError
    from mfti_lightning.core.results_schema import RunResults

    if spec is None or spec == "none":
        return None
    if spec == "lang_pairs" and lang_pairs is not None:
        from mfti_lightning.core.directions import train_directions

        return train_directions(lang_pairs)
    if isinstance(spec, str):
        rec = RunResults.read(spec) if Path(spec).is_dir() else None
        dirs = rec.directions.train if rec else None
        if not dirs:
            raise ConfigError(
                f"train_directions={spec!r}: give a list ([de-en,en-fr]) or the run directory of a training run "
                "(its results.json lists directions.train); this is neither."
            )
        return [parse_direction(d) for d in dirs]
    return [parse_direction(str(d)) for d in spec]
