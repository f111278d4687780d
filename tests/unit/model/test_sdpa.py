"""The SDPA path for XGLM matches transformers' eager attention (logits, gradients, greedy and beam search)."""

from __future__ import annotations

import copy

import pytest
import torch

from mfti_lightning.model import xglm_sdpa
from mfti_lightning.model.modeling import load_model


@pytest.fixture(scope="module")
def models(tiny_model_dir):
    eager = load_model(str(tiny_model_dir), "float32", "eager").eval()
    sdpa = load_model(str(tiny_model_dir), "float32", "sdpa").eval()
    assert xglm_sdpa.uses_sdpa(sdpa) and not xglm_sdpa.uses_sdpa(eager)
    return eager, sdpa


def _left_padded(tok, texts):
    enc = [tok(t)["input_ids"] for t in texts]
    width = max(map(len, enc))
    ids = torch.full((len(enc), width), tok.pad_token_id)
    mask = torch.zeros((len(enc), width), dtype=torch.long)
    for r, e in enumerate(enc):
        ids[r, width - len(e) :] = torch.tensor(e)
        mask[r, width - len(e) :] = 1
    return ids, mask


TEXTS = [
    "English: The cat sat on the mat.\nGerman:",
    "Chinese: 你好\nEnglish:",
    "French: Bonjour à tous, comment allez-vous aujourd'hui ?\nEnglish:",
]


def test_logits_equal_eager_causal_and_left_padded(models, tiny_tokenizer):
    eager, sdpa = models
    ids, mask = _left_padded(tiny_tokenizer, TEXTS)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        a = eager(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        b = sdpa(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        real = mask.bool()
        assert torch.allclose(a[real], b[real], atol=1e-4, rtol=1e-4), (a[real] - b[real]).abs().max()
        a = eager(input_ids=ids[2:]).logits  # no padding: sdpa takes the is_causal path
        b = sdpa(input_ids=ids[2:]).logits
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_training_gradients_close(tiny_model_dir):
    """Right-padded training batch; sdpa without the mask (as the module trains it) vs eager with the mask."""
    eager = load_model(str(tiny_model_dir), "float32", "eager").train()
    sdpa = load_model(str(tiny_model_dir), "float32", "sdpa").train()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, 4000, (4, 20), generator=g)
    lengths = torch.tensor([20, 15, 9, 3])
    mask = (torch.arange(20)[None] < lengths[:, None]).long()
    labels = ids.masked_fill(mask == 0, -100)
    la = eager(input_ids=ids, attention_mask=mask, labels=labels).loss
    lb = sdpa(input_ids=ids, labels=labels).loss
    lc = sdpa(input_ids=ids, attention_mask=mask, labels=labels).loss
    assert torch.allclose(la, lb, atol=1e-5) and torch.allclose(la, lc, atol=1e-5)
    la.backward()
    lb.backward()
    ga = dict(eager.named_parameters())
    for name, p in sdpa.named_parameters():
        assert torch.allclose(p.grad, ga[name].grad, atol=1e-5, rtol=1e-4), name


@pytest.mark.slow
@pytest.mark.parametrize("beams", [1, 4])
def test_generation_equal_eager_left_padded(models, tiny_tokenizer, beams):
    eager, sdpa = models
    ids, mask = _left_padded(tiny_tokenizer, TEXTS)
    kw = dict(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=12,
        num_beams=beams,
        do_sample=False,
        pad_token_id=tiny_tokenizer.pad_token_id,
        eos_token_id=tiny_tokenizer.eos_token_id,
    )
    assert torch.equal(eager.generate(**kw), sdpa.generate(**kw))


def test_disable_restores_eager_and_state_dict_is_unchanged(tiny_model_dir):
    m = load_model(str(tiny_model_dir), "float32", "sdpa")
    keys = set(m.state_dict())
    xglm_sdpa.disable(m)
    assert not xglm_sdpa.uses_sdpa(m) and m.config._attn_implementation == "eager"
    assert set(m.state_dict()) == keys
    assert set(copy.deepcopy(xglm_sdpa.enable(m)).state_dict()) == keys


def test_unknown_attn_implementation_is_refused(tiny_model_dir):
    from mfti_lightning.core.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="attn_implementation='flash'"):
        load_model(str(tiny_model_dir), "float32", "flash")


def test_the_transformers_internals_this_module_uses():
    """mfti_lightning.model.xglm_sdpa mirrors XGLMAttention.forward and sets a private config attribute: if
    transformers changes either, this fails loudly instead of the sdpa path silently diverging from eager."""
    import inspect

    from transformers import XGLMConfig
    from transformers.models.xglm.modeling_xglm import XGLMAttention

    from mfti_lightning.model import xglm_sdpa

    params = tuple(inspect.signature(XGLMAttention.forward).parameters)
    assert params == xglm_sdpa.FORWARD_PARAMETERS, (
        f"XGLMAttention.forward is now {params} (mfti_lightning/model/xglm_sdpa.py was checked against "
        f"transformers {xglm_sdpa.CHECKED_WITH} with {xglm_sdpa.FORWARD_PARAMETERS}): update XGLMSdpaAttention"
    )
    assert hasattr(XGLMConfig(), "_attn_implementation_internal"), (
        "XGLMConfig has no _attn_implementation_internal any more: update mfti_lightning/model/xglm_sdpa.py"
    )


def test_sdpa_leaves_out_the_cudnn_backend(tiny_model_dir, monkeypatch):
    """On an H200 cuDNN attention ran variable-length training batches 2.8x slower than flash (a plan per shape):
    the SDPA call runs with cuDNN's backend off (the flags sdpa_kernel sets are what CUDA's dispatcher reads)."""
    seen = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, **kwargs):
        seen.append((torch.backends.cuda.cudnn_sdp_enabled(), torch.backends.cuda.flash_sdp_enabled()))
        return real(*args, **kwargs)

    model = xglm_sdpa.enable(load_model(tiny_model_dir))
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    model(input_ids=torch.tensor([[0, 5, 6, 7]]))
    assert seen and all(s == (False, True) for s in seen)
