"""``eval.engine=ctranslate2``: decoding with CTranslate2 (C++ greedy and beam search on CPU and CUDA).

:class:`CT2Engine` stands in for the Hugging Face model in :func:`mfti_lightning.eval.generation.translate`: the same
length-sorted token-budget batches, the same dealing of batches over ranks, the same extraction by token position
(``Template.extract``), the same results. The decode differs from Hugging Face's only where CTranslate2's search
does: the stop rule of ``extraction=reference`` (EOS or ``max_new_tokens``, the whole continuation) is CTranslate2's
own; ``extraction=clean`` decodes the same way and cuts after the fact at the first newline / new template turn
(for greedy decoding this equals Hugging Face's in-decode stop, which only ends a row early; under beam search an
in-decode stop can change which beam wins, so beam outputs may differ).

The model is converted once per checkpoint (:func:`mfti_lightning.model.ct2_conversion.convert_cached`) and loaded from the
cache; any family CTranslate2's Transformers converter knows works, XGLM through this project's loader.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mfti_lightning.model.ct2_conversion import convert_cached, require_ctranslate2, resolve_compute_type

log = logging.getLogger(__name__)

DTYPE_BYTES = {"float32": 4, "int8": 4, "float16": 2, "bfloat16": 2, "int8_float16": 2, "int8_bfloat16": 2}


class CT2Engine:
    """A converted model loaded as a ``ctranslate2.Generator``, with the tokenizer that maps ids to tokens."""

    training = False  # what translate() saves and restores on a torch model

    def __init__(self, model_dir: str | Path, tokenizer, *, device: str = "cpu", device_index: int = 0,
                 compute_type: str = "float32", threads: int = 0, kv_values_per_token: int | None = None,
                 vocab_size: int = 0):  # fmt: skip
        ct2 = require_ctranslate2()
        self.model_dir = Path(model_dir)
        self.tokenizer = tokenizer
        self.device_type = "cuda" if device in ("cuda", "gpu") else "cpu"
        self.device_index = int(device_index)
        self.compute_type = compute_type
        self.kv_values_per_token = kv_values_per_token  # key + value entries of one token over all layers
        self.vocab_size = int(vocab_size)
        self.generator = ct2.Generator(
            str(self.model_dir),
            device=self.device_type,
            device_index=device_index,
            compute_type=compute_type,
            intra_threads=threads,
        )

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self

    def kv_bytes_per_token(self) -> int | None:
        """Key + value cache bytes of one token over all layers (for ``eval.batch_tokens=auto``)."""
        if not self.kv_values_per_token:
            return None
        return self.kv_values_per_token * DTYPE_BYTES.get(self.compute_type, 4)

    def generate_tokens(self, rows: list[list[int]], *, num_beams: int, max_new_tokens: int) -> list[list[int]]:
        """The ids generated after each prompt, EOS included when the row ended with it (as Hugging Face's
        ``generate`` output after the prompt), for ``Template.extract``."""
        to_tokens = self.tokenizer.convert_ids_to_tokens
        results = self.generator.generate_batch(
            [to_tokens(list(r)) for r in rows],
            beam_size=num_beams,
            max_length=max_new_tokens,
            include_prompt_in_result=False,  # the prompt fills the KV cache at once; only new ids come back
            return_end_token=True,
            length_penalty=1.0,
        )
        return [list(r.sequences_ids[0]) for r in results]


def load_engine(model_path: str, tokenizer, *, cache_dir: str, device, compute_type: str = "auto",
                ckpt_file: str | None = None, model=None, threads: int = 0,
                is_first_rank: bool = True, barrier=None) -> CT2Engine:  # fmt: skip
    """Convert (once, cached; rank 0 first, then ``barrier()`` lets the other ranks load it) and load.
    ``model``: a loaded torch model to convert instead of ``model_path``'s weights (a Lightning checkpoint)."""
    device_type = getattr(device, "type", str(device))
    compute_type = resolve_compute_type(compute_type, device_type)
    kwargs = dict(ckpt_file=ckpt_file, model=model, tokenizer=tokenizer)
    out = convert_cached(model_path, cache_dir, compute_type, **kwargs) if is_first_rank else None
    if barrier is not None:
        barrier()
    if out is None:
        out = convert_cached(model_path, cache_dir, compute_type, **kwargs)  # found in the cache rank 0 filled
    index = device.index if hasattr(device, "type") and device.index is not None else 0
    kv_values, vocab = kv_figures(model, model_path)
    log.info("eval.engine=ctranslate2: %s on %s (%s)", out, device_type, compute_type)
    return CT2Engine(out, tokenizer, device=device_type, device_index=index, compute_type=compute_type,
                     threads=threads, kv_values_per_token=kv_values, vocab_size=vocab)  # fmt: skip


def kv_figures(model, model_path: str) -> tuple[int, int]:
    """``(key + value entries per token over all layers, vocabulary size)`` from the Hugging Face config of
    ``model`` (a loaded model) or else of ``model_path``, for the KV-cache estimate of ``eval.batch_tokens=auto``."""
    from mfti_lightning.eval.budget import kv_bytes_per_token

    config = getattr(model, "config", None)
    if config is None:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(model_path))
    return kv_bytes_per_token(config, 1), int(getattr(config, "vocab_size", 0) or 0)


def is_engine(model) -> bool:
    return isinstance(model, CT2Engine)
