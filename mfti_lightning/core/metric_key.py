"""The name of one score: ``<split>/<metric>/<scope>``, as written in results.json (``metrics``, ``signatures``),
the per-step validation files and the loggers. No torch here.

- ``split``: which evaluation. ``val_init`` (dev subset before finetuning), ``val`` (dev subset, last validation),
  ``test`` (devtest); ``<split>_clean`` is the same decode with the ``reference`` hypotheses cut after the fact.
- ``metric``: the score. ``bleu``, ``spbleu``, ``chrf``, ``chrf++``, ``comet``, or ``rate_<category>`` (the share of
  one error-analysis category).
- ``scope``: what it is computed over. A direction ``<src>-<tgt>``; ``avg``, the mean of the per-direction scores;
  ``pooled``, one corpus score over all directions together; ``partition/<name>``, the mean over the directions of
  one seen/unseen partition.

For example ``test/spbleu/de-en``, ``val/chrf/avg``, ``val/spbleu/pooled``, ``test/chrf/partition/both_unseen``.
"""

from __future__ import annotations

from dataclasses import dataclass

from mfti_lightning.core.languages import DIRECTION_PATTERN

SPLITS = ("val_init", "val", "test")  # in the order they happen in a run
AVG, POOLED, PARTITION = "avg", "pooled", "partition"
RATE = "rate_"  # metric prefix of the error-analysis shares: rate_<category>
FORM = "<split>/<metric>/<scope> (scope: <src>-<tgt>, avg, pooled or partition/<name>)"


@dataclass(frozen=True)
class MetricKey:
    split: str
    metric: str
    scope: str

    def __post_init__(self):
        problem = _problem(self.split, self.metric, self.scope)
        if problem:
            raise ValueError(
                f"metric key {'/'.join((self.split, self.metric, self.scope))!r}: {problem}; expected {FORM}"
            )

    def __str__(self) -> str:
        return f"{self.split}/{self.metric}/{self.scope}"

    @classmethod
    def parse(cls, key: str) -> MetricKey:
        """The key's three parts; ValueError naming the key and the expected form if it is not one."""
        parts = str(key).split("/", 2)
        if len(parts) != 3:
            raise ValueError(f"metric key {key!r}: has {len(parts)} part(s), not 3; expected {FORM}")
        return cls(*parts)

    @classmethod
    def find(cls, key: str) -> MetricKey | None:
        """The parsed key, or None for a name that is not a score's (``train/loss``, ``lr-AdamW``, ...): for
        callers that read every name a logger or a record holds."""
        try:
            return cls.parse(key)
        except ValueError:
            return None

    @classmethod
    def partition(cls, split: str, metric: str, name: str) -> MetricKey:
        return cls(split, metric, f"{PARTITION}/{name}")

    @property
    def is_direction(self) -> bool:
        """A per-direction score (not an average, pooled or partition one)."""
        return bool(DIRECTION_PATTERN.match(self.scope))

    @property
    def is_error_rate(self) -> bool:
        return self.metric.startswith(RATE)

    @property
    def is_summary(self) -> bool:
        """One number for the whole split: the mean over directions or a partition's mean (the W&B summary)."""
        return self.scope == AVG or self.scope.startswith(f"{PARTITION}/")


def _problem(split: str, metric: str, scope: str) -> str | None:
    if split.removesuffix("_clean") not in SPLITS:
        return f"split {split!r} is not one of {', '.join(SPLITS)} (or <split>_clean)"
    if not metric or "/" in metric:
        return f"metric {metric!r} must be a non-empty name without '/'"
    name = scope.removeprefix(f"{PARTITION}/")
    if name != scope:
        return None if name and "/" not in name else f"partition name {name!r} must be a non-empty name without '/'"
    if scope in (AVG, POOLED) or DIRECTION_PATTERN.match(scope):
        return None
    return f"scope {scope!r} is not a direction <src>-<tgt>, avg, pooled or partition/<name>"
