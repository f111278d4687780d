"""Tokenization and label masks, overlong handling, length-grouped batches, DDP-correct samplers."""

from __future__ import annotations

import random

import pytest
from conftest import compose

from mfti_lightning.core.errors import ConfigError
from mfti_lightning.core.template import from_config
from mfti_lightning.data import corpora
from mfti_lightning.data.datamodule import (
    IGNORE,
    Collator,
    LengthGroupedBatches,
    MFTIDataModule,
    encode_examples,
    eval_batches,
    padding_efficiency,
)


@pytest.fixture
def template(tmp_path):
    return from_config(compose([], tmp_path).template)


def _examples(template, n=20):
    pairs = corpora.read_flores_pairs(None, "dev", "de", "en")[:n]
    return [
        {
            "src_lang": "de",
            "tgt_lang": "en",
            "source": s,
            "target": t,
            "prompt": template.render_prefix(s, "de", "en"),
            "text": template.render_example(s, t, "de", "en"),
        }
        for s, t in pairs
    ]


def test_labels_full_and_target(tiny_tokenizer, template):
    tok, exs = tiny_tokenizer, _examples(template, 5)
    full, _ = encode_examples(exs, tok, template, 4096, "full", "drop")
    tgt, _ = encode_examples(exs, tok, template, 4096, "target", "drop")
    assert len(full) == len(tgt) == 5
    for ex, f, t in zip(exs, full, tgt):
        assert f.input_ids == t.input_ids and f.input_ids[-1] == tok.eos_token_id
        assert f.labels == f.input_ids  # full: loss on prompt and target (reference code)
        n_prompt = len(tok(ex["prompt"])["input_ids"])
        assert t.labels[:n_prompt] == [IGNORE] * n_prompt and IGNORE not in t.labels[n_prompt:]
        # the unmasked labels are exactly the target and EOS
        assert tok.decode(t.labels[n_prompt:], skip_special_tokens=True).strip() == ex["target"]


def test_overlong_drop_or_truncate_source(tiny_tokenizer, template):
    tok, exs = tiny_tokenizer, _examples(template, 20)
    lengths = [len(tok(e["text"])["input_ids"]) + 1 for e in exs]
    limit = sorted(lengths)[10]
    kept, stats = encode_examples(exs, tok, template, limit, "full", "drop")
    assert stats["dropped_overlong"] == sum(n > limit for n in lengths) == 20 - len(kept)
    trunc, stats = encode_examples(exs, tok, template, limit, "target", "truncate_source")
    assert stats["truncated_source"] > 0 and stats["kept"] == len(trunc)
    assert stats["kept"] + stats["dropped_overlong"] == 20
    for e in trunc:
        assert len(e.input_ids) <= limit
        target_ids = [i for i in e.labels if i != IGNORE]
        # the target is never cut: it is one of the originals, complete
        assert any(tok.decode(target_ids, skip_special_tokens=True).strip() == x["target"] for x in exs)
    with pytest.raises(ConfigError, match="loss_on"):
        encode_examples(exs, tok, template, 256, "prompt", "drop")
    with pytest.raises(ConfigError, match="overlong"):
        encode_examples(exs, tok, template, 256, "full", "cut")


def test_collator_dynamic_padding(tiny_tokenizer, template):
    enc, _ = encode_examples(_examples(template, 4), tiny_tokenizer, template, 4096, "full", "drop")
    batch = Collator(tiny_tokenizer.pad_token_id)(enc)
    width = max(len(e.input_ids) for e in enc)
    assert batch["input_ids"].shape == (4, width)
    assert batch["attention_mask"].sum().item() == sum(len(e.input_ids) for e in enc)
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE).all()


def _lengths(n=1000, seed=0):
    rng = random.Random(seed)
    return [rng.randint(10, 200) for _ in range(n)]


def test_length_grouped_deterministic_per_epoch_and_seed():
    s = LengthGroupedBatches(_lengths(), 8, seed=1, chunk=16)
    e0 = s.all_batches()
    assert e0 == LengthGroupedBatches(_lengths(), 8, seed=1, chunk=16).all_batches()
    s.set_epoch(1)
    assert s.all_batches() != e0
    assert LengthGroupedBatches(_lengths(), 8, seed=2, chunk=16).all_batches() != e0
    assert all(len(b) == 8 for b in e0) and len({i for b in e0 for i in b}) == 8 * len(e0) == 1000


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_length_grouped_ddp_ranks(world):
    lengths = _lengths(1003)
    ranks = [LengthGroupedBatches(lengths, 8, seed=3, chunk=16, rank=r, world_size=world) for r in range(world)]
    batches = [r.all_batches() for r in ranks]
    assert len({len(b) for b in batches}) == 1  # same number of steps on every rank
    seen = [i for b in batches for batch in b for i in batch]
    assert len(seen) == len(set(seen))  # no example on two ranks
    assert len(seen) >= 1003 - 8 * (world + 1)
    ranks[0].start = 2  # resume inside an epoch skips consumed batches once
    assert list(ranks[0]) == batches[0][2:] and list(ranks[0]) == batches[0]


def test_grouping_improves_padding_efficiency():
    lengths = [len(s.split()) + 10 for s in corpora.read_flores(None, "dev", "en")]
    grouped = LengthGroupedBatches(lengths, 8, seed=0, chunk=64).all_batches()
    rng = random.Random(0)
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    rand = [idx[i : i + 8] for i in range(0, len(idx) - 7, 8)]
    assert padding_efficiency(grouped, lengths) > 0.9 > padding_efficiency(rand, lengths)


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [0, 1, 5, 64, 65, 157])
def test_eval_batches_every_sentence_exactly_once(world, n):
    per_rank = [eval_batches(n, r, world, batch_size=16) for r in range(world)]
    flat = sorted(i for batches in per_rank for b in batches for i in b)
    assert flat == list(range(n))  # exactly once, no padding duplicates
    assert len({len(b) for b in per_rank}) == 1  # same number of batches on every rank
    assert all(len(b) <= 16 for batches in per_rank for b in batches)


def test_datamodule_loaders_without_trainer(tiny_tokenizer, template):
    enc, _ = encode_examples(_examples(template, 40), tiny_tokenizer, template, 4096, "full", "drop")
    dm = MFTIDataModule(
        enc, tiny_tokenizer.pad_token_id, micro_batch_size=4, seed=0, chunk=4, n_val_prompts=10, val_batch_size=3
    )
    batches = list(dm.train_dataloader())
    assert len(batches) == 10 and all(b["input_ids"].shape[0] == 4 for b in batches)
    assert sorted(i for b in dm.val_dataloader() for i in b) == list(range(10))
    # fewer examples than one micro batch: one short batch on a single process, none per rank under DDP
    assert [len(b) for b in LengthGroupedBatches([5, 6, 7], 4, seed=0).all_batches()] == [3]
    assert LengthGroupedBatches([5, 6, 7], 4, seed=0, rank=1, world_size=2).all_batches() == []
