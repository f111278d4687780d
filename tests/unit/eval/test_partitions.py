"""Partitions of the paper's unseen-direction experiment, against the reference code's membership."""

from __future__ import annotations

from mfti_lightning.core.directions import eval_directions, train_directions
from mfti_lightning.eval.partitions import PARTITIONS, partition_metrics, partitions

# NJUNLP/MFTI instruct_mt/analysis/evaluate_partition_score.py (commit a25f1ab): language splits and the map
# from (source split, target split) to partition, transcribed as data
SPLITS = {
    "mix": ["en", "ko", "sw"],
    "src": ["zh", "fi"],
    "tgt": ["de", "hi"],
    "unseen": ["ru", "fr", "bg", "ar", "ca", "ta"],
}
REFERENCE = {
    ("src", "src"): "one_side_reversed",
    ("src", "tgt"): "seen",
    ("src", "mix"): "seen",
    ("src", "unseen"): "tgt_unseen",
    ("tgt", "src"): "reversed",
    ("tgt", "tgt"): "one_side_reversed",
    ("tgt", "mix"): "reversed",
    ("tgt", "unseen"): "tgt_unseen",
    ("mix", "src"): "reversed",
    ("mix", "tgt"): "seen",
    ("mix", "mix"): "seen",
    ("mix", "unseen"): "tgt_unseen",
    ("unseen", "src"): "src_unseen",
    ("unseen", "tgt"): "src_unseen",
    ("unseen", "mix"): "src_unseen",
    ("unseen", "unseen"): "both_unseen",
}


def reference_membership():
    out = {p: set() for p in PARTITIONS}
    for (a, b), name in REFERENCE.items():
        for s in SPLITS[a]:
            for t in SPLITS[b]:
                if s != t:
                    out[name].add(f"{s}-{t}")
    return out


def test_paper_unseen_split(cfg_factory):
    cfg = cfg_factory("lang_pairs=unseen")
    parts = partitions(train_directions(cfg.lang_pairs), eval_directions(cfg.lang_pairs))
    assert {k: set(v) for k, v in parts.items()} == reference_membership()
    assert [len(parts[p]) for p in PARTITIONS] == [22, 16, 4, 42, 42, 30]
    assert set(parts["seen"]) == {f"{s}-{t}" for s, t in train_directions(cfg.lang_pairs)}


def test_partition_means():
    parts = {"seen": ["de-en", "en-de"], "reversed": [], "both_unseen": ["fr-ru"]}
    m = {"test/bleu/de-en": 10.0, "test/bleu/en-de": 20.0, "test/bleu/fr-ru": 1.0}
    out = partition_metrics(m, parts, "test", ["bleu"])
    assert out == {"test/bleu/partition/seen": 15.0, "test/bleu/partition/both_unseen": 1.0}
