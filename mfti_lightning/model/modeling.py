"""Loading models and tokenizers: one path for hub names, local directories and the built tiny model."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from mfti_lightning.core import families
from mfti_lightning.core.choices import ATTN_IMPLEMENTATIONS
from mfti_lightning.core.config import hub_offline
from mfti_lightning.core.errors import ModelLoadError

log = logging.getLogger(__name__)

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}


def resolve_model_path(model_cfg) -> str:
    """The directory or hub name to load; builds a tiny model (of ``model.family``) on first use."""
    path = str(model_cfg.name_or_path)
    build = model_cfg.build
    if build:
        from mfti_lightning.model.tiny import ensure_tiny

        ensure_tiny(path, dict(build), model_cfg.family)
    return path


def check_loadable(model_cfg) -> str:
    """Fail early (before any GPU time) when the model cannot be found. Returns the path or hub name."""
    path = resolve_model_path(model_cfg)
    if Path(path).is_dir():
        if not (Path(path) / "config.json").exists():
            raise ModelLoadError(f"model.name_or_path={path} is a directory without config.json: not a model.")
        return path
    if path.startswith(("/", "./", "../", "~")) or (os.sep in path and not _looks_like_hub_id(path)):
        raise ModelLoadError(f"model.name_or_path={path} does not exist.")
    if hub_offline():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(path, "config.json")
        except Exception:  # pragma: no cover - very old hub versions
            cached = None
        if not isinstance(cached, str):
            raise ModelLoadError(_offline_message(path))
    return path


def _looks_like_hub_id(path: str) -> bool:
    parts = path.split("/")
    return len(parts) == 2 and all(parts) and not Path(path).exists()


def _offline_message(path: str) -> str:
    return (
        f"Cannot load model {path!r}: the Hugging Face hub is offline (HF_HUB_OFFLINE=1) and it is not in the "
        f"local cache ({os.environ.get('HF_HOME', '~/.cache/huggingface')}). On a machine with network run "
        f"`huggingface-cli download {path}` (same HF_HOME), or set model.name_or_path=<local directory>."
    )


def load_tokenizer(path: str, model_path: str | None = None):
    """The tokenizer in ``path``, checked against the model it will feed (``model_path``, default ``path``)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path)
    except OSError as e:
        raise ModelLoadError(f"Cannot load the tokenizer of {path!r}: {e}\n{_offline_message(path)}") from e
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    check_vocabulary(tok, path, model_path or path)
    return tok


def check_vocabulary(tokenizer, tokenizer_path: str, model_path: str) -> None:
    """A tokenizer with more tokens than the model has embeddings fails only when a text first produces one of
    the extra ids (``IndexError: index out of range in self``, deep inside a forward pass); refuse it before any
    model is built. Reads the model's config.json only; a model whose config cannot be read is not checked here."""
    try:
        from transformers import AutoConfig

        vocab = getattr(AutoConfig.from_pretrained(model_path), "vocab_size", None)
    except Exception:
        return
    n = len(tokenizer)
    if vocab and n > int(vocab):
        model = "the model there" if str(tokenizer_path) == str(model_path) else f"the model {model_path}"
        raise ModelLoadError(
            f"The tokenizer in {tokenizer_path} has {n} tokens but {model} has only {vocab} embeddings (config.json "
            f"vocab_size): token ids {vocab}..{n - 1} would fail inside the model (IndexError). Use the tokenizer "
            f"the model was trained with (its tokenizer files next to its config.json), or a model with "
            f"vocab_size >= {n}."
        )


def model_type(path: str) -> str | None:
    """``model_type`` from the config of a local directory or cached hub model (None when unknown)."""
    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(path).model_type
    except Exception:
        return None


def load_model(path: str, dtype: str = "float32", attn_implementation: str = "eager", peft: dict | None = None):
    """``AutoModelForCausalLM.from_pretrained`` with the attention implementation and optional LoRA.

    The family's ``sdpa`` mode (core/families.py) decides how ``sdpa`` is served: ``patch`` (XGLM, which
    transformers ships with eager attention only) goes through :mod:`mfti_lightning.model.xglm_sdpa`; ``native``
    (Llama, Qwen2, GPT-2) is transformers' own ``attn_implementation``; ``none`` (BLOOM) is refused.
    ``peft={"name": "lora", "r": .., "alpha": .., "dropout": .., "target_modules": [..]}`` wraps the model.
    """
    import torch
    from transformers import AutoModelForCausalLM

    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise ModelLoadError(f"model.attn_implementation={attn_implementation!r}: use one of {ATTN_IMPLEMENTATIONS}.")
    torch_dtype = getattr(torch, _DTYPES.get(str(dtype), str(dtype)))
    kwargs = {"dtype": torch_dtype}
    family = families.of_model_type(model_type(path))
    sdpa_mode = family.sdpa if family else "native"
    if sdpa_mode == "none" and attn_implementation == "sdpa":
        raise ModelLoadError(f"{path}: {family.label} has no SDPA attention in transformers; use eager.")
    xglm = sdpa_mode == "patch"
    if not xglm:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as e:
        raise ModelLoadError(f"Cannot load model {path!r}: {e}\n{_offline_message(path)}") from e
    if xglm and attn_implementation == "sdpa":
        from mfti_lightning.model import xglm_sdpa

        xglm_sdpa.enable(model)
    if peft:
        model = apply_peft(model, peft)
    return model


def peft_settings(model_cfg) -> dict | None:
    """The LoRA block of a model config as plain data (None when ``model.peft`` is null)."""
    name = model_cfg.peft
    if not name:
        return None
    if name != "lora":
        raise ModelLoadError(f"model.peft={name!r}: only lora (or null) is supported.")
    lora = model_cfg.lora  # defaults: core/schema_experiment.py LoraConfig
    return {
        "name": "lora",
        "r": lora.r,
        "alpha": lora.alpha,
        "dropout": lora.dropout,
        "target_modules": families.lora_targets(model_cfg.family, lora.target_modules),
    }


def apply_peft(model, settings: dict):
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:  # pragma: no cover - peft is installed in CI
        raise ModelLoadError("model.peft=lora needs peft: pip install 'mfti-lightning[lora]'.") from e
    cfg = LoraConfig(
        r=settings["r"],
        lora_alpha=settings["alpha"],
        lora_dropout=settings["dropout"],
        target_modules=settings["target_modules"],
        task_type="CAUSAL_LM",
        bias="none",
    )
    return get_peft_model(model, cfg)
