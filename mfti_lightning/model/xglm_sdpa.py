"""Scaled-dot-product attention for XGLM (transformers 5 ships XGLM with eager attention only).

``enable(model)`` swaps every ``XGLMAttention`` module of a loaded model for :class:`XGLMSdpaAttention` (same
parameters, same state-dict keys: only ``forward`` differs) and switches the model's mask construction to
transformers' ``sdpa`` masks: a boolean mask, or ``None`` when the plain causal pattern suffices, which lets
``torch.nn.functional.scaled_dot_product_attention`` use its fused kernels (flash on GPUs) with ``is_causal``.

Differences to eager are float rounding only, except on *fully padded query rows* (left padding): eager turns
such a row into a uniform average over all keys, SDPA here attends over all keys with the real scores. Those rows
belong to pad tokens; no real token attends to them (causal + padding mask), so logits of real tokens, losses and
generations are unaffected (tests/unit/model/test_sdpa.py compares logits, gradients, greedy and beam search to eager).

``disable(model)`` restores eager (used before ``save_pretrained`` so an exported directory loads anywhere).

This module is the one place that relies on transformers internals, because there is no public way to give XGLM
another attention kernel: it subclasses ``XGLMAttention`` with the same ``forward`` signature and sets the
config's ``_attn_implementation_internal`` (which selects the mask builder). Checked against transformers 5.24.0
(:data:`CHECKED_WITH`); ``tests/unit/model/test_sdpa.py::test_the_transformers_internals_this_module_uses`` fails, naming
this module, when either changes.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers.cache_utils import EncoderDecoderCache
from transformers.models.xglm.modeling_xglm import XGLMAttention

CHECKED_WITH = "5.24.0"  # transformers version whose XGLMAttention.forward and config attribute this module mirrors
# Every SDPA backend but cuDNN's: on an H200 (torch 2.11.0+cu130) torch picked cuDNN attention, which builds an
# execution plan per new shape, and variable-length training batches ran 2.8x slower than with it off (564M shape,
# length-grouped, bf16-mixed: 6186 vs 17399 tokens/s; eager 14651; benchmarks/RESULTS.md, 2026-12-04).
BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
FORWARD_PARAMETERS = ("self", "hidden_states", "key_value_states", "cache", "attention_mask", "kwargs")


class XGLMSdpaAttention(XGLMAttention):
    """XGLMAttention whose forward uses ``F.scaled_dot_product_attention`` (self-attention, with KV cache)."""

    def forward(self, hidden_states, key_value_states=None, cache=None, attention_mask=None, **kwargs):
        if key_value_states is not None:  # cross-attention is not used by XGLMForCausalLM
            return super().forward(
                hidden_states, key_value_states, cache=cache, attention_mask=attention_mask, **kwargs
            )
        if cache is None and "past_key_values" in kwargs:  # deprecated alias, as the decorated eager forward
            cache = kwargs.pop("past_key_values")
        bsz, tgt_len, _ = hidden_states.size()
        shape = (bsz, -1, self.num_heads, self.head_dim)
        query = self.q_proj(hidden_states).view(shape).transpose(1, 2)
        key = self.k_proj(hidden_states).view(shape).transpose(1, 2)
        value = self.v_proj(hidden_states).view(shape).transpose(1, 2)
        if cache is not None:
            curr = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
            key, value = curr.update(key, value, self.layer_idx, kwargs=kwargs)

        mask = attention_mask
        if mask is not None:
            if mask.dtype != torch.bool:  # an eager-style additive mask (e.g. a caller-built 4D mask)
                mask = mask > torch.finfo(mask.dtype).min / 2
            mask = mask[:, :, :, : key.shape[-2]]
            # a fully masked row (a pad query under left padding) would give NaN; let it attend everywhere
            mask = mask | ~mask.any(dim=-1, keepdim=True)
        with sdpa_kernel(BACKENDS):
            out = nn.functional.scaled_dot_product_attention(
                query,
                key,
                value,
                attn_mask=mask,
                dropout_p=self.dropout if self.training else 0.0,
                is_causal=mask is None and tgt_len > 1 and tgt_len == key.shape[-2],
                scale=self.scaling,
            )
        out = out.transpose(1, 2).reshape(bsz, tgt_len, self.embed_dim)
        return self.out_proj(out), None


def _xglm_configs(model):
    """The XGLM config objects of ``model`` (also under a peft wrapper)."""
    seen = {}
    for m in model.modules():
        cfg = getattr(m, "config", None)
        if cfg is not None and getattr(cfg, "model_type", None) == "xglm":
            seen[id(cfg)] = cfg
    return list(seen.values())


def enable(model):
    """Switch a loaded XGLM model to SDPA attention in place; returns the model. Other models: unchanged."""
    n = 0
    for m in model.modules():
        if type(m) is XGLMAttention:
            m.__class__ = XGLMSdpaAttention
            n += 1
    if n:
        for cfg in _xglm_configs(model):
            cfg._attn_implementation_internal = "sdpa"  # mask construction only (the class flags say eager)
    return model


def disable(model):
    """Back to transformers' eager XGLMAttention (before ``save_pretrained``)."""
    for m in model.modules():
        if type(m) is XGLMSdpaAttention:
            m.__class__ = XGLMAttention
    for cfg in _xglm_configs(model):
        if cfg._attn_implementation_internal == "sdpa":
            cfg._attn_implementation_internal = "eager"
    return model


def uses_sdpa(model) -> bool:
    return any(type(m) is XGLMSdpaAttention for m in model.modules())
