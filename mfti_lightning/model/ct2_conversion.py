"""CTranslate2 conversion: the XGLM loader for CTranslate2's Transformers converter, and a conversion cache.

CTranslate2 (4.8.5) has no XGLM loader. :func:`register_xglm` registers one with
``ctranslate2.converters.transformers.register_loader("XGLMConfig")``, built from the converter's own pieces: the
decoder-only spec used for OPT (``TransformerDecoderModelSpec``, pre-norm, gelu), the Bart decoder layers (fused
q/k/v self-attention, fc1/fc2, the three layer norms) and the M2M100 handling of sinusoidal positions
(``weights[offset:]``, XGLM's offset is 2), with ``scale_embeddings = sqrt(d_model)`` and XGLM's final layer norm.
Every other family goes through the same :class:`~ctranslate2.converters.TransformersConverter`, so the families
CTranslate2 already knows (BLOOM, Llama, Qwen2, OPT, ...) convert with no code here.

:func:`convert_cached` converts once per checkpoint: the converted model lives under
``<paths.cache_dir>/ct2/<key>`` (:data:`mfti_lightning.core.layout.CT2_CACHE_DIR`), ``key`` a hash of the
checkpoint's weight files (names, sizes, mtimes), the CTranslate2 version and the compute type, written to a
temporary directory and renamed, so an interrupted conversion is never used.

ctranslate2 is an optional dependency (``pip install 'mfti-lightning[ct2]'``): :func:`require_ctranslate2` is the
one check, and nothing here imports it at module level.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path

from mfti_lightning.core.errors import ConfigError
from mfti_lightning.core.layout import CT2_CACHE_DIR

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'mfti-lightning[ct2]'"
# compute types offered per device (CTranslate2 supports more; these are the ones this project tests or plans for)
COMPUTE_TYPES = {"cpu": ("float32", "int8"), "cuda": ("float16", "bfloat16", "int8_float16")}
DEFAULT_COMPUTE_TYPE = {"cpu": "float32", "cuda": "bfloat16"}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".ckpt", ".json", ".model")


def require_ctranslate2():
    """The ctranslate2 module, or a ConfigError naming the install command (raised before any model is loaded)."""
    try:
        import ctranslate2
    except ImportError as e:
        raise ConfigError(
            f"eval.engine=ctranslate2 needs the ctranslate2 package, which is not installed ({e}). Install it with "
            f"`{INSTALL_HINT}`, or use eval.engine=hf."
        ) from None
    return ctranslate2


def resolve_compute_type(compute_type: str, device_type: str) -> str:
    """``auto`` -> the device's default; an unsupported type for the device -> ConfigError naming the allowed."""
    kind = "cuda" if device_type in ("cuda", "gpu") else "cpu"
    if compute_type == "auto":
        return DEFAULT_COMPUTE_TYPE[kind]
    if compute_type not in COMPUTE_TYPES[kind]:
        raise ConfigError(
            f"eval.ct2_compute_type={compute_type}: not available on {kind}; allowed there: auto, "
            f"{', '.join(COMPUTE_TYPES[kind])} (on {'cuda' if kind == 'cpu' else 'cpu'}: "
            f"{', '.join(COMPUTE_TYPES['cuda' if kind == 'cpu' else 'cpu'])})."
        )
    return compute_type


# ---- the XGLM loader ---------------------------------------------------------------------------------------
REGISTERED: list[str] = []  # the loaders this module registered (once per process)


def register_xglm() -> None:
    """Register the XGLM loader with CTranslate2's Transformers converter (idempotent)."""
    require_ctranslate2()
    from ctranslate2.converters import transformers as ct2t

    if not REGISTERED:
        ct2t.register_loader("XGLMConfig")(xglm_loader_class())
        REGISTERED.append("XGLMConfig")


class _XGLMLoading:
    """What XGLM changes in CTranslate2's BartLoader (a mixin placed before it, so that ``super()`` below is
    BartLoader's; a plain class so that importing this module does not need ctranslate2)."""

    @property
    def architecture_name(self):
        return "XGLMForCausalLM"

    def get_model_spec(self, model):
        from ctranslate2.specs import common_spec, transformer_spec

        activations = {"gelu": common_spec.Activation.GELU, "relu": common_spec.Activation.RELU}
        cfg = model.config
        spec = transformer_spec.TransformerDecoderModelSpec.from_config(
            cfg.num_layers, cfg.attention_heads, pre_norm=True, activation=activations[cfg.activation_function]
        )
        self.set_decoder(spec.decoder, model.model)
        self.set_linear(spec.decoder.projection, model.lm_head)
        return spec

    def set_config(self, config, model, tokenizer):
        config.bos_token = tokenizer.convert_ids_to_tokens(model.config.bos_token_id)
        config.eos_token = tokenizer.convert_ids_to_tokens(model.config.eos_token_id)
        config.unk_token = tokenizer.unk_token

    def set_vocabulary(self, spec, tokens):
        spec.register_vocabulary(tokens)

    def get_vocabulary(self, model, tokenizer):
        return vocabulary(tokenizer, model.config.vocab_size)

    def set_decoder(self, spec, decoder):
        super().set_decoder(spec, decoder)  # Bart layers (+ set_common_layers below)
        self.set_layer_norm(spec.layer_norm, decoder.layer_norm)  # XGLM's final layer norm

    def set_common_layers(self, spec, module):
        spec.scale_embeddings = math.sqrt(module.config.d_model) if module.config.scale_embedding else 1.0
        pos = module.embed_positions
        spec.position_encodings.encodings = pos.weights[pos.offset :]  # as M2M100: offset 2
        self.set_embeddings(spec.embeddings, module.embed_tokens)


def xglm_loader_class():
    """The loader class: :class:`_XGLMLoading` on CTranslate2's BartLoader (built here, on first use, so that
    importing this module does not need ctranslate2)."""
    from ctranslate2.converters.transformers import BartLoader

    class XGLMLoader(_XGLMLoading, BartLoader):
        pass

    return XGLMLoader


def vocabulary(tokenizer, vocab_size: int) -> list[str]:
    """Token strings by id (CTranslate2 maps ids to strings through this list), padded to the model's
    embedding size with unused placeholder tokens."""
    by_id = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    tokens = [t for t, _ in by_id]
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise ValueError("tokenizer ids are not contiguous: cannot map them to a CTranslate2 vocabulary")
    tokens = tokens[:vocab_size]
    tokens += [f"<ct2_unused_{i}>" for i in range(vocab_size - len(tokens))]
    return tokens


# ---- conversion, cached ------------------------------------------------------------------------------------
def checkpoint_files(model_path: str, ckpt_file: str | None = None) -> list[Path]:
    """The files that determine the converted model: the model directory's weights/config/tokenizer files (for a
    hub name: its cached snapshot) and a Lightning checkpoint file when one is loaded on top."""
    root = Path(model_path)
    if not root.is_dir():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(str(model_path), "config.json")
        root = Path(cached).parent if isinstance(cached, str) else None
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES) if root else []
    return files + ([Path(ckpt_file)] if ckpt_file else [])


def cache_key(model_path: str, ckpt_file: str | None, compute_type: str, ct2_version: str) -> str:
    """Hash of the checkpoint (file names, sizes, mtimes), the CTranslate2 version and the compute type."""
    parts = [f"model={model_path}", f"ct2={ct2_version}", f"compute_type={compute_type}"]
    for p in checkpoint_files(model_path, ckpt_file):
        st = p.stat()
        parts.append(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def convert_cached(
    model_path: str,
    cache_dir: str | Path,
    compute_type: str,
    *,
    ckpt_file: str | None = None,
    model=None,
    tokenizer=None,
) -> Path:
    """The converted model's directory (converting it first when the cache has none). ``model``/``tokenizer``:
    an already loaded model (e.g. a Lightning checkpoint's weights in the base model) to convert instead of
    ``model_path``'s weights; ``model_path`` still provides the config."""
    ct2 = require_ctranslate2()
    register_xglm()
    key = cache_key(model_path, ckpt_file, compute_type, ct2.__version__)
    out = Path(cache_dir).expanduser() / CT2_CACHE_DIR / key
    if (out / "model.bin").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=out.parent))
    try:
        converter = _converter(ct2, model_path, model, tokenizer)
        converter.convert(str(tmp), quantization=compute_type, force=True)
        info = {"model": str(model_path), "ckpt": ckpt_file, "compute_type": compute_type, "ct2": ct2.__version__}
        (tmp / "mfti_ct2.json").write_text(json.dumps(info, indent=1))
        try:
            os.replace(tmp, out)
        except OSError:  # another process finished the same conversion first
            if not (out / "model.bin").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("converted %s to CTranslate2 (%s) in %s", model_path, compute_type, out)
    return out


def _converter(ct2, model_path: str, model, tokenizer):
    """A TransformersConverter for ``model_path``; with ``model`` (a loaded model, or a function returning one,
    called only now that a conversion is needed), one that converts that model."""
    if model is None:
        return ct2.converters.TransformersConverter(str(model_path))
    if callable(model) and not hasattr(model, "state_dict"):
        model = model()

    class LoadedConverter(ct2.converters.TransformersConverter):
        def load_model(self, model_class, model_name_or_path, **kwargs):
            return model

        def load_tokenizer(self, tokenizer_class, model_name_or_path, **kwargs):
            return tokenizer if tokenizer is not None else super().load_tokenizer(tokenizer_class, model_name_or_path)

    return LoadedConverter(str(model_path))
