"""The seeded streaming sampler of training pairs: the pair filter and a uniform one-pass sample whose memory
grows with the sample, not with the corpus (the readers are :mod:`mfti_lightning.data.corpora`). No torch here."""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable, Iterable, Iterator

from mfti_lightning.core.languages import CHARACTER_LANGUAGES
from mfti_lightning.data.corpora import Pair


def make_filter(filters, src: str, tgt: str, exclude: set[str], stats: dict) -> Callable[[Pair], Pair | None]:
    """A function pair -> stripped pair, or None when a rule drops it (counted in ``stats[rule]``).

    Rules, first match wins: ``empty``, ``length_ratio`` (characters; one character of zh/ja/th/my counts as 3,
    roughly the characters of a Latin-script word), ``too_long`` (whitespace tokens, or
    characters / 3 for zh/ja/th/my), ``in_eval_sets`` (source or target is an evaluation sentence). Duplicates
    are handled by the sampler (:func:`reservoir_sample`), so that memory stays bounded by the sample size.
    """
    max_ratio = float(filters.get("max_len_ratio") or 0)
    max_tokens = int(filters.get("max_tokens") or 0)
    src_chars, tgt_chars = src in CHARACTER_LANGUAGES, tgt in CHARACTER_LANGUAGES
    for k in ("empty", "length_ratio", "too_long", "in_eval_sets"):
        stats.setdefault(k, 0)

    def keep(pair: Pair) -> Pair | None:
        s, t = pair[0].strip(), pair[1].strip()
        if not s or not t:
            stats["empty"] += 1
            return None
        ls, lt = len(s), len(t)
        ws, wt = ls * 3 if src_chars else ls, lt * 3 if tgt_chars else lt
        if max_ratio and (ws > wt * max_ratio or wt > ws * max_ratio):
            stats["length_ratio"] += 1
            return None
        # a side has at most len(side) whitespace tokens, so the token count is only needed for long lines
        if max_tokens and (
            (ls > max_tokens and (ls // 3 + 1 if src_chars else s.count(" ") + 1) > max_tokens)
            or (lt > max_tokens and (lt // 3 + 1 if tgt_chars else t.count(" ") + 1) > max_tokens)
        ):
            stats["too_long"] += 1
            return None
        if exclude and (s in exclude or t in exclude):
            stats["in_eval_sets"] += 1
            return None
        return s, t

    return keep


def reservoir_sample(
    pairs: Iterable[Pair],
    n: int,
    seed: int,
    keep: Callable[[Pair], Pair | None] | None = None,
    dedup: bool = True,
    stats: dict | None = None,
) -> tuple[list[Pair], int]:
    """A uniform sample of ``n`` pairs in one streaming pass; memory grows with ``n``, not with the corpus.

    Li's Algorithm L: after the reservoir is full, the index of the next accepted item is drawn directly
    (geometric jumps), so most lines cost one counter comparison besides the filter. Deterministic for a seed.

    ``dedup``: the sample never holds a (source, target) pair twice; a candidate equal to a reservoir entry is
    dropped and counted in ``stats["duplicate"]`` (a lower bound on the corpus's duplicates: pairs never sampled are
    not remembered, so a pair occurring m times is up to m times more likely to be sampled). Returns ``(sample,
    available)``: the sample in corpus order, and how many pairs passed ``keep`` and were not such duplicates.
    """
    rng, reservoir, slots = random.Random(seed), [], {}  # reservoir: [(index, pair)]; slots: pair -> its slot
    stats = stats if stats is not None else {}
    stats.setdefault("duplicate", 0)
    if n <= 0:
        return [], sum(1 for pair in pairs if keep is None or keep(pair) is not None)
    w = math.exp(math.log(rng.random() or 1e-300) / n)
    # accepted candidates, numbered; lazily, so each is checked against the reservoir as it is when its turn comes
    candidates = enumerate(_accepted(pairs, keep, slots if dedup else None, stats))
    for i, pair in candidates:
        if dedup:
            slots[pair] = len(reservoir)
        reservoir.append((i, pair))
        if len(reservoir) == n:
            break
    available = _replace_from(candidates, reservoir, slots if dedup else None, rng, w)
    reservoir.sort(key=lambda x: x[0])
    return [p for _, p in reservoir], available


def _replace_from(candidates, reservoir: list, slots: dict | None, rng: random.Random, w: float) -> int:
    """Algorithm L over the rest of the numbered ``candidates`` once ``reservoir`` is full (with fewer candidates
    than the sample size nothing is left); returns how many candidates there were in all."""
    n = available = len(reservoir)
    nxt = available + _gap(rng, w)  # index of the next candidate that enters the full reservoir
    for i, pair in candidates:
        available = i + 1
        if i == nxt:
            j = rng.randrange(n)
            if slots is not None:
                del slots[reservoir[j][1]]
                slots[pair] = j
            reservoir[j] = (i, pair)
            w *= math.exp(math.log(rng.random() or 1e-300) / n)
            nxt = i + 1 + _gap(rng, w)
    return available


def _accepted(pairs: Iterable[Pair], keep, slots: dict | None, stats: dict) -> Iterator[Pair]:
    """The pairs that pass ``keep`` (stripped by it) and, with ``slots``, are not in the reservoir already."""
    for pair in pairs:
        if keep is not None:
            pair = keep(pair)
            if pair is None:
                continue
        if slots is not None and pair in slots:
            stats["duplicate"] += 1
            continue
        yield pair


def _gap(rng: random.Random, w: float) -> int:
    """Algorithm L's geometric jump: how many accepted candidates to pass before the next one enters."""
    return int(math.log(rng.random() or 1e-300) / math.log1p(-w)) if w < 1 else 0


def direction_seed(seed: int, src: str, tgt: str) -> int:
    """A per-direction seed that is the same on every machine (no ``hash()``, which is salted per process)."""
    return (int(seed) * 1_000_003 + zlib.crc32(f"{src}-{tgt}".encode())) % (2**31)
