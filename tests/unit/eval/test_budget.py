"""eval.batch_tokens=auto from given memory figures, and the split-and-retry path on out-of-memory errors."""

from __future__ import annotations

import pytest
import torch

from mfti_lightning.core.template import Template
from mfti_lightning.eval.budget import (
    DEFAULT_BATCH_TOKENS,
    GiB,
    auto_batch_tokens,
    kv_bytes_per_token,
    resolve_batch_tokens,
)

T1 = Template(name="t1", prefix="Translation: [<srclang>]: <input> [<tgtlang>]:", paper_id=1)


class Shape:  # an XGLM-7.5B config (conf/model/xglm-7.5b.yaml), without transformers
    num_layers, d_model, attention_heads, vocab_size = 32, 4096, 32, 256008


def test_kv_bytes_per_token_of_xglm_7_5b():
    # 32 layers x (key + value) x 4096 x 2 bytes (bf16): the 0.5 MB per token
    assert kv_bytes_per_token(Shape, 2) == 32 * 2 * 4096 * 2 == 2**19


def test_grouped_query_attention_scales_by_kv_heads():
    class Gqa:
        num_hidden_layers, hidden_size, num_attention_heads, num_key_value_heads = 2, 1024, 16, 4

    assert (
        kv_bytes_per_token(Gqa, 2)
        == kv_bytes_per_token(type("M", (), {**vars(Gqa), "num_key_value_heads": 16}), 2) // 4
    )


def test_auto_budget_is_the_largest_that_fits():
    kv = kv_bytes_per_token(Shape, 2)
    figures = dict(total_bytes=141 * GiB, kv_bytes_per_token=kv, vocab_size=Shape.vocab_size, max_new_tokens=150)
    free = 124 * GiB  # an H200 with the 15 GB of bf16 weights loaded
    budget = auto_batch_tokens(free_bytes=free, **figures)
    available = free - 0.10 * figures["total_bytes"] - 2 * GiB
    per_token = 2 * kv + 12 * Shape.vocab_size / 150
    assert budget * per_token <= available < (budget + 1) * per_token
    assert budget >= 16 * DEFAULT_BATCH_TOKENS  # the point of the issue: far wider batches than 4096
    # the weights still to load come out of the same memory; less memory, smaller budget; none: the floor
    assert auto_batch_tokens(free_bytes=free + 15 * GiB, weights_bytes=15 * GiB, **figures) == budget
    assert auto_batch_tokens(free_bytes=free / 2, **figures) < budget
    assert auto_batch_tokens(free_bytes=1 * GiB, **figures, minimum=256) == 256
    with pytest.raises(ValueError):
        auto_batch_tokens(free_bytes=free, total_bytes=free, kv_bytes_per_token=0, max_new_tokens=150)


@pytest.mark.slow
def test_auto_on_cpu_is_the_fixed_default(tiny_model_dir):
    from mfti_lightning.model.modeling import load_model

    model = load_model(str(tiny_model_dir))
    assert resolve_batch_tokens("auto", model, 150) == DEFAULT_BATCH_TOKENS
    assert resolve_batch_tokens(777, model, 150) == 777


def _prompts(n=7):
    from mfti_lightning.assets import FLORES101_DIR

    de = (FLORES101_DIR / "devtest" / "deu.devtest").read_text(encoding="utf-8").splitlines()
    return [T1.render_prompt(" ".join(de[i].split()[: 3 + 3 * i]), "de", "en") for i in range(n)]


@pytest.fixture
def oom_model(tiny_model_dir):
    """The tiny model whose ``generate`` raises torch.OutOfMemoryError for batches of more than 2 rows (as a GPU
    would for a batch too wide), recording the batch sizes it was called with."""
    from mfti_lightning.model.modeling import load_model

    model = load_model(str(tiny_model_dir))
    real = model.generate
    calls = []

    def generate(*args, **kwargs):
        rows = kwargs["input_ids"].shape[0]
        calls.append(rows)
        if rows > 2:
            raise torch.OutOfMemoryError(f"CUDA out of memory (injected: {rows} rows)")
        return real(*args, **kwargs)

    model.generate = generate
    return model, calls


@pytest.mark.slow
@pytest.mark.parametrize("beams", [1, 4])
def test_out_of_memory_splits_the_batch_and_loses_nothing(oom_model, tiny_model_dir, tiny_tokenizer, beams):
    from mfti_lightning.eval.generation import translate
    from mfti_lightning.model.modeling import load_model

    model, calls = oom_model
    prompts = _prompts()
    expected = translate(load_model(str(tiny_model_dir)), tiny_tokenizer, T1, prompts, num_beams=beams,
                         max_new_tokens=10, batch_tokens=10**6)  # fmt: skip
    got = translate(model, tiny_tokenizer, T1, prompts, num_beams=beams, max_new_tokens=10, batch_tokens=10**6)
    assert got == expected
    assert calls == [7, 3, 1, 2, 4, 2, 2]  # one batch planned, refused, halved (3 + 4), halved again where needed
    assert sum(c for c in calls if c <= 2) == len(prompts)  # every sentence decoded once, in the batches that fit


def test_a_sharded_model_cannot_split(oom_model, tiny_tokenizer):
    from mfti_lightning.eval.generation import translate

    model, _ = oom_model
    with pytest.raises(RuntimeError, match="out of memory.*smaller eval.batch_tokens.*sharded model"):
        translate(model, tiny_tokenizer, T1, _prompts(), max_new_tokens=4, batch_tokens=10**6, synced_gpus=True)


def test_other_errors_are_not_retried(tiny_model_dir, tiny_tokenizer):
    from mfti_lightning.eval.generation import translate
    from mfti_lightning.model.modeling import load_model

    model = load_model(str(tiny_model_dir))
    calls = []

    def broken(*a, **k):
        calls.append(1)
        raise RuntimeError("something else")

    model.generate = broken
    with pytest.raises(RuntimeError, match="something else"):
        translate(model, tiny_tokenizer, T1, _prompts(), max_new_tokens=4, batch_tokens=10**6)
    assert calls == [1]


def test_schema_accepts_auto_and_positive_numbers(cfg_factory):
    from mfti_lightning.core.errors import ConfigError
    from mfti_lightning.core.validation import validate

    validate(cfg_factory("eval.batch_tokens=auto"))
    validate(cfg_factory("eval.batch_tokens=8192"))
    for bad in ("eval.batch_tokens=0", "eval.batch_tokens=lots"):
        with pytest.raises(ConfigError, match="eval.batch_tokens=.*allowed values: auto .* or an integer > 0"):
            validate(cfg_factory(bad))


def test_ct2_out_of_memory_is_split_too(tiny_tokenizer):
    """CTranslate2 reports CUDA OOM as a RuntimeError ("CUDA failed with error out of memory"): same split path."""
    from mfti_lightning.eval.ct2_generation import CT2Engine
    from mfti_lightning.eval.generation import translate

    class Engine(CT2Engine):
        def __init__(self, limit):
            self.limit, self.calls = limit, []

        def generate_tokens(self, rows, *, num_beams, max_new_tokens):
            self.calls.append(len(rows))
            if len(rows) > self.limit:
                raise RuntimeError("CUDA failed with error out of memory")
            return [list(r[-3:]) + [tiny_tokenizer.eos_token_id] for r in rows]  # a function of the row alone

    prompts = _prompts()
    unsplit = translate(Engine(100), tiny_tokenizer, T1, prompts, num_beams=4, max_new_tokens=5, batch_tokens=10**6)
    engine = Engine(3)
    assert translate(engine, tiny_tokenizer, T1, prompts, num_beams=4, max_new_tokens=5, batch_tokens=10**6) == unsplit
    assert engine.calls[0] == len(prompts) and sum(c for c in engine.calls if c <= 3) == len(prompts)
