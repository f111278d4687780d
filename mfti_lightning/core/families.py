"""The one registry of model families: what differs between XGLM, BLOOM, Llama-architecture models and mGPT.

Torch-free (``mfti-plan`` and the schema use it). Every preset in ``conf/model/`` names its ``model.family``; the
code asks this registry instead of testing for an architecture:

- ``model_types``: the ``config.json`` ``model_type`` values of the family (checked when a model is loaded, so a
  preset pointing at another architecture fails naming both);
- ``block``: the transformer block class FSDP / FSDP2 wrap. It is the model's own ``_no_split_modules``
  (``train/trainer.py`` and ``train/module.py`` read it from the model class); the registry records it so
  ``tests/unit/model/test_families.py`` can check that transformers still declares it;
- ``lora_targets``: the linear layers ``model.peft=lora`` wraps when ``model.lora.target_modules`` is ``[]``;
- ``sdpa``: ``native`` (transformers' ``attn_implementation="sdpa"``), ``patch`` (XGLM: ``model/xglm_sdpa.py``)
  or ``none`` (BLOOM's ALiBi attention has no SDPA path in transformers: ``eager`` only, refused before loading);
- ``special_tokens`` / ``bos``: the tokenizer conventions, which the tiny builds (``model/tiny.py``) reproduce:
  XGLM prepends ``</s>``; BLOOM and mGPT (GPT-2 tokenizer) add no BOS; Llama-3 prepends ``<|begin_of_text|>``.
  Training text and evaluation prompts are encoded by the same ``tokenizer(text)`` call with the tokenizer's own
  special tokens (``data/datamodule.py``, ``eval/generation.py``), so they agree for every family
  (``tests/unit/model/test_families.py::test_prompt_tokenizes_the_same_in_training_and_evaluation``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mfti_lightning.core.errors import ConfigError

SDPA_MODES = ("native", "patch", "none")


@dataclass(frozen=True)
class Family:
    name: str  # the value of model.family
    label: str  # for reports and logs
    model_types: tuple[str, ...]  # config.json model_type values
    block: str  # the transformer block class (FSDP / FSDP2 unit)
    lora_targets: tuple[str, ...]  # linear layers LoRA wraps by default
    sdpa: str  # native | patch | none
    bos: str  # what the tokenizer puts before the text: "</s>" (XGLM), "" (none), "<|begin_of_text|>" (Llama-3)
    special_tokens: dict = field(default_factory=dict)  # bos/eos/pad/unk strings of the tiny build's tokenizer
    tokenizer: str = "bpe"  # the tiny build's tokenizer model: unigram (SentencePiece) | bpe (byte-level)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "xglm", "XGLM", ("xglm",), "XGLMDecoderLayer", ("q_proj", "k_proj", "v_proj", "out_proj"), "patch",
            "</s>", {"bos": "<s>", "eos": "</s>", "pad": "<pad>", "unk": "<unk>"}, "unigram",
        ),
        Family(
            "bloom", "BLOOM", ("bloom",), "BloomBlock", ("query_key_value", "dense"), "none",
            "", {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "pad": "<pad>"},
        ),
        Family(
            "llama", "Llama arch. (Llama-3, Qwen2.5)", ("llama", "qwen2"), "LlamaDecoderLayer",
            ("q_proj", "k_proj", "v_proj", "o_proj"), "native", "<|begin_of_text|>",
            {"bos": "<|begin_of_text|>", "eos": "<|end_of_text|>", "pad": "<|finetune_right_pad_id|>"},
        ),
        Family(
            "mgpt", "mGPT (GPT-2 arch.)", ("gpt2",), "GPT2Block", ("c_attn", "c_proj"), "native",
            "", {"bos": "<s>", "eos": "</s>", "pad": "<pad>", "unk": "<unk>"},
        ),
    )
}  # fmt: skip
# Qwen2 models are Llama-architecture with biased q/k/v; their block class is Qwen2DecoderLayer.
BLOCKS_BY_MODEL_TYPE = {"qwen2": "Qwen2DecoderLayer"}


def get(name: str) -> Family:
    try:
        return FAMILIES[str(name)]
    except KeyError:
        raise ConfigError(f"model.family={name!r}: use one of {sorted(FAMILIES)}.") from None


def of_model_type(model_type: str | None) -> Family | None:
    return next((f for f in FAMILIES.values() if model_type in f.model_types), None)


def block_for(model_type: str) -> str:
    family = of_model_type(model_type)
    return BLOCKS_BY_MODEL_TYPE.get(model_type, family.block if family else "")


def check_attention(family: str, attn_implementation: str) -> None:
    """Refuse ``sdpa`` for a family without it, before anything is loaded."""
    fam = get(family)
    if attn_implementation == "sdpa" and fam.sdpa == "none":
        raise ConfigError(
            f"model.attn_implementation=sdpa: {fam.label} has no scaled-dot-product attention in transformers "
            "(ALiBi biases go through its own eager attention). Use model.attn_implementation=eager."
        )


def check_model_type(family: str, model_type: str | None, path: str) -> None:
    """The loaded ``config.json`` belongs to the preset's family (else the wrong LoRA targets, BOS, SDPA path)."""
    fam = get(family)
    if model_type is not None and model_type not in fam.model_types:
        other = of_model_type(model_type)
        hint = f"model.family={other.name}" if other else f"a model of the {fam.label} family"
        raise ConfigError(
            f"model.name_or_path={path} is a {model_type!r} model but model.family={family} expects "
            f"{list(fam.model_types)}. Set {hint}."
        )


def lora_targets(family: str, configured) -> list[str]:
    """``model.lora.target_modules`` when set, else the family's default."""
    return list(configured) if configured else list(get(family).lora_targets)
