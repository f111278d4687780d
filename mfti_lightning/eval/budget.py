"""``eval.batch_tokens: auto``: the largest generation token budget that fits the accelerator's free memory.

A budget counts ``rows x (longest prompt + max_new_tokens) x beams`` tokens (generation.token_budget_batches).
Each of those tokens holds its key and value in every layer: ``2 x layers x d_model x dtype bytes`` (XGLM-7.5B in
bf16: 2 x 32 x 4096 x 2 = 0.5 MiB; models with grouped-query attention scale by kv heads / heads), held
``cache_copies`` times at the peak (Hugging Face beam search reorders the cache into a new one each step). Each row
and beam also holds a few vocabulary-sized fp32 rows (logits, log-softmax, scores); as rows x beams <= budget /
max_new_tokens that is at most ``3 x 4 x vocab / max_new_tokens`` bytes per budget token. The rest of the memory
after the weights (if they are not loaded yet) and a margin (a fraction of the card plus a fixed amount) is what
the budget may use. :func:`auto_batch_tokens` is the pure function; :func:`resolve_batch_tokens` feeds it the
figures of a loaded model. On a CPU ``auto`` is :data:`DEFAULT_BATCH_TOKENS`, the fixed default.

The estimate need not be exact: a batch that still runs out of memory is split in half and retried
(generation.decode_splitting), nothing already translated is lost.
"""

from __future__ import annotations

DEFAULT_BATCH_TOKENS = 4096  # the fixed budget; also what batch_tokens=auto resolves to on a CPU
MIN_AUTO_BATCH_TOKENS = 256
GiB = 2**30


def batch_tokens_setting(value) -> int | str:
    """``eval.batch_tokens`` as translate() takes it: ``"auto"`` or an int."""
    return "auto" if value == "auto" else int(value)


def auto_batch_tokens(
    *,
    free_bytes: float,
    total_bytes: float,
    kv_bytes_per_token: float,
    max_new_tokens: int,
    weights_bytes: float = 0.0,
    vocab_size: int = 0,
    cache_copies: int = 2,
    margin_frac: float = 0.10,
    margin_bytes: float = 2 * GiB,
    minimum: int = MIN_AUTO_BATCH_TOKENS,
) -> int:
    """The token budget for the given memory figures (bytes). ``weights_bytes``: weights still to be loaded
    (0 when ``free_bytes`` is measured with the model in memory)."""
    if kv_bytes_per_token <= 0:
        raise ValueError(f"kv_bytes_per_token={kv_bytes_per_token}: must be > 0")
    available = free_bytes - weights_bytes - margin_frac * total_bytes - margin_bytes
    per_token = kv_bytes_per_token * cache_copies + 3 * 4 * vocab_size / max(int(max_new_tokens), 1)
    return max(int(minimum), int(available // per_token))


def kv_bytes_per_token(config, dtype_bytes: int) -> int:
    """Key + value bytes of one token over all layers, from a Hugging Face config (XGLM's ``num_layers`` /
    ``d_model`` or the usual ``num_hidden_layers`` / ``hidden_size``; grouped-query attention by kv heads)."""
    layers = getattr(config, "num_layers", None) or config.num_hidden_layers
    width = getattr(config, "d_model", None) or config.hidden_size
    heads = getattr(config, "attention_heads", None) or getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    if heads and kv_heads:
        width = width * kv_heads // heads
    return 2 * int(layers) * int(width) * int(dtype_bytes)


def model_memory_figures(model) -> dict | None:
    """``{"device", "kv_bytes_per_token", "vocab_size"}`` of a loaded model on an accelerator, or None on a CPU."""
    if hasattr(model, "kv_bytes_per_token"):  # eval.ct2_generation.CT2Engine
        if model.device_type != "cuda" or not model.kv_bytes_per_token():
            return None
        import torch

        device = torch.device("cuda", model.device_index)
        return {"device": device, "kv": model.kv_bytes_per_token(), "vocab": model.vocab_size}
    param = next(model.parameters())
    if param.device.type != "cuda":
        return None
    config = getattr(model, "config", None)
    return {
        "device": param.device,
        "kv": kv_bytes_per_token(config, param.element_size()),
        "vocab": int(getattr(config, "vocab_size", 0) or 0),
    }


def resolve_batch_tokens(batch_tokens, model, max_new_tokens: int, world_size: int = 1) -> int:
    """A number as it is; ``auto``: :func:`auto_batch_tokens` from this device's free memory (the smallest over
    the ranks, so that every rank plans the same batches), :data:`DEFAULT_BATCH_TOKENS` on a CPU."""
    if batch_tokens != "auto":
        return int(batch_tokens)
    figures = model_memory_figures(model)
    if figures is None:
        return DEFAULT_BATCH_TOKENS
    import torch

    free, total = torch.cuda.mem_get_info(figures["device"])
    budget = auto_batch_tokens(
        free_bytes=free,
        total_bytes=total,
        kv_bytes_per_token=figures["kv"],
        vocab_size=figures["vocab"],
        max_new_tokens=max_new_tokens,
    )
    if world_size > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            budgets: list = [None] * world_size
            dist.all_gather_object(budgets, budget)
            budget = min(budgets)
    return budget
