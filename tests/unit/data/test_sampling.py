"""The streaming sampler: seeded, uniform, duplicate-free, memory bounded by N (not by the corpus)."""

from __future__ import annotations

import collections
import tracemalloc

import pytest

from mfti_lightning.data import corpora, sampling


def _gen(n_lines: int, dup_every: int = 0):
    for i in range(n_lines):
        j = i % dup_every if dup_every else i
        yield f"source sentence number {j} with some words", f"target sentence number {j} with some words"


def _write_corpus(path_prefix, n_lines: int):
    with open(f"{path_prefix}.de", "w", encoding="utf-8") as a, open(f"{path_prefix}.en", "w", encoding="utf-8") as b:
        for s, t in _gen(n_lines):
            a.write(s + "\n")
            b.write(t + "\n")


def test_seeded_deterministic_and_in_corpus_order():
    a, n_a = sampling.reservoir_sample(_gen(5000), 100, seed=1)
    b, _ = sampling.reservoir_sample(_gen(5000), 100, seed=1)
    c, _ = sampling.reservoir_sample(_gen(5000), 100, seed=2)
    assert a == b and a != c and n_a == 5000 and len(a) == 100
    idx = [int(s.split()[3]) for s, _ in a]
    assert idx == sorted(idx) and len(set(idx)) == 100


def test_small_corpus_returns_everything():
    sample, n = sampling.reservoir_sample(_gen(30), 100, seed=0)
    assert n == 30 and sample == list(_gen(30))


def test_uniform_inclusion():
    """Every line is sampled with probability n/N: position buckets get equal shares (loose bound, 400 runs)."""
    counts = collections.Counter()
    for seed in range(400):
        sample, _ = sampling.reservoir_sample(_gen(1000), 50, seed=seed)
        for s, _ in sample:
            counts[int(s.split()[3]) // 100] += 1
    expected = 400 * 50 / 10
    assert all(abs(counts[b] - expected) < 0.1 * expected for b in range(10)), counts


def test_filter_counts_and_dedup_within_sample():
    stats: dict = {}
    keep = sampling.make_filter(
        {"max_len_ratio": 3, "max_tokens": 50}, "de", "en", {"source sentence number 3 with some words"}, stats
    )
    pairs = list(_gen(200, dup_every=20)) + [("", "x"), ("a", "b" * 50), (" ".join(["w"] * 60), " ".join(["w"] * 60))]
    sample, available = sampling.reservoir_sample(pairs, 15, seed=3, keep=keep, stats=stats)
    assert len(sample) == 15 and len(set(sample)) == 15
    assert stats["empty"] == 1 and stats["length_ratio"] == 1 and stats["too_long"] == 1
    assert stats["in_eval_sets"] == 10  # line 3 of each of the 10 repetitions
    assert stats["duplicate"] > 0 and available + stats["duplicate"] == 190
    # only 19 distinct pairs survive the filters: asking for more returns each once
    everything, _ = sampling.reservoir_sample(list(_gen(200, dup_every=20)), 50, seed=0)
    assert len(everything) == 20 == len(set(everything))


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_memory_grows_with_n_not_with_the_corpus(tmp_path):
    small, big = tmp_path / "small", tmp_path / "big"
    _write_corpus(small, 10_000)
    _write_corpus(big, 100_000)
    keep = lambda: sampling.make_filter({"max_len_ratio": 3, "max_tokens": 200}, "de", "en", set(), {})  # noqa: E731

    def sample(prefix, n):
        return lambda: sampling.reservoir_sample(corpora.iter_moses(prefix, "de", "en"), n, 7, keep())

    p_small, p_big = _peak(sample(small, 500)), _peak(sample(big, 500))
    assert p_big < 1.3 * p_small + 256_000, (p_small, p_big)  # 10x the corpus, same memory
    p_big_n = _peak(sample(big, 5000))
    assert p_big_n - p_big > 1_000_000, (p_big, p_big_n)  # 4500 more pairs of ~45-char lines: memory follows N
    # the bound is a real one: reading everything grows with the corpus
    p_all = _peak(lambda: list(corpora.iter_moses(big, "de", "en")))
    assert p_all > 10 * p_big, (p_big, p_all)
