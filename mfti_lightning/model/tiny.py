"""Build the tiny models, once, into a cache directory: the demo's XGLM, and one per other family (BLOOM, Llama,
mGPT), each with a tokenizer in its family's conventions (core/families.py) trained on the shipped FLORES text.

XGLM (below) uses a SentencePiece unigram model; BLOOM, Llama-3 and mGPT use byte-level BPE (``tokenizers``) as
their real tokenizers do, with the family's special tokens: BLOOM ``<unk> <s> </s> <pad>`` and no BOS added,
Llama-3 ``<|begin_of_text|>`` prepended by the tokenizer's post-processor (and its own pad token), mGPT (a GPT-2
tokenizer) ``<s> </s> <pad> <unk>`` and no BOS added. The model is the family's transformers class
(``BloomForCausalLM``, ``LlamaForCausalLM`` with grouped-query attention, ``GPT2LMHeadModel``), random init.

The tokenizer is a real ``XGLMTokenizer`` (transformers 5: a tokenizers Unigram backend) made from a
SentencePiece *unigram* model trained on the shipped FLORES dev text of the 13 paper languages, in the
fairseq/XGLM id layout ``<s>=0 <pad>=1 </s>=2 <unk>=3``, piece i -> i+1. Two traps avoided here (see README):
``XGLMTokenizer(vocab_file=...)`` silently ignores the SentencePiece file (a 4-token vocabulary), and a BPE
SentencePiece model does not match the Unigram backend.

Both are written with ``save_pretrained`` and read back by the same ``from_pretrained`` path a hub model uses.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from mfti_lightning.assets import FLORES101_DIR
from mfti_lightning.core import families
from mfti_lightning.core.languages import LANGUAGES, PAPER_LANGUAGES

log = logging.getLogger(__name__)
BUILD_FILE = "mfti_tiny_build.json"


def tokenizer_corpus(lines_per_language: int) -> list[str]:
    lines = []
    for code in PAPER_LANGUAGES:
        path = FLORES101_DIR / "dev" / f"{LANGUAGES[code].flores101}.dev"
        lines += path.read_text(encoding="utf-8").splitlines()[:lines_per_language]
    return lines


def build_tokenizer(lines: list[str], vocab_size: int, workdir: Path):
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb
    from transformers import XGLMTokenizer

    corpus = workdir / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(workdir / "spm"),
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        minloglevel=2,
        num_threads=1,
        seed_sentencepiece_size=100000,
    )
    proto = pb.ModelProto()
    proto.ParseFromString((workdir / "spm.model").read_bytes())
    # fairseq layout: the 4 specials first, then spm pieces 3.. (spm's own <unk>, <s>, </s> are ids 0-2)
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(p.piece, p.score) for p in proto.pieces[3:]]
    tok = XGLMTokenizer(vocab=vocab, _spm_precompiled_charsmap=proto.normalizer_spec.precompiled_charsmap)
    if len(tok) < vocab_size:  # the trap this recipe avoids: a tokenizer with only the special tokens
        raise RuntimeError(f"tokenizer has {len(tok)} tokens, expected about {vocab_size}")
    return tok


def build_bpe_tokenizer(lines: list[str], vocab_size: int, family: str):
    """A byte-level BPE tokenizer with the special tokens and BOS convention of ``family`` (core/families.py)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    fam = families.get(family)
    specials = fam.special_tokens
    order = list(dict.fromkeys(specials[k] for k in ("unk", "bos", "eos", "pad") if k in specials))
    tok = Tokenizer(models.BPE(unk_token=specials.get("unk")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=order,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer)
    if fam.bos:  # Llama-3: the tokenizer itself prepends its BOS
        tok.post_processor = processors.TemplateProcessing(
            single=f"{fam.bos} $A",
            pair=f"{fam.bos} $A {fam.bos} $B",
            special_tokens=[(fam.bos, tok.token_to_id(fam.bos))],
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    kwargs = {f"{k}_token": v for k, v in specials.items()}
    return PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)


def model_config(family: str, build_cfg: dict, tok):
    """The transformers config of a tiny model of ``family`` from the build block's shape numbers."""
    import transformers as tf

    d, f, L, H = (int(build_cfg[k]) for k in ("d_model", "ffn_dim", "num_layers", "attention_heads"))
    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    positions = int(build_cfg["max_position_embeddings"])
    if family == "bloom":
        if f != 4 * d:
            raise ValueError(f"BLOOM's feed-forward is 4 x d_model: set model.build.ffn_dim={4 * d}")
        return tf.BloomConfig(
            vocab_size=len(tok), hidden_size=d, n_layer=L, n_head=H, hidden_dropout=0.0, attention_dropout=0.0, **ids
        )
    if family == "llama":  # grouped-query attention (2 query heads per key/value head), SwiGLU, tied embeddings
        return tf.LlamaConfig(
            vocab_size=len(tok), hidden_size=d, intermediate_size=f, num_hidden_layers=L, num_attention_heads=H,
            num_key_value_heads=max(1, H // 2), max_position_embeddings=positions, tie_word_embeddings=True, **ids,
        )  # fmt: skip
    if family == "mgpt":
        return tf.GPT2Config(
            vocab_size=len(tok), n_positions=positions, n_embd=d, n_layer=L, n_head=H, n_inner=f,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **ids,
        )  # fmt: skip
    return tf.XGLMConfig(
        vocab_size=len(tok), d_model=d, ffn_dim=f, num_layers=L, attention_heads=H, max_position_embeddings=positions,
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, decoder_start_token_id=tok.eos_token_id, **ids,
    )  # fmt: skip


def build_tiny(out_dir: str | Path, build_cfg: dict, family: str = "xglm") -> Path:
    """Build the tokenizer and a random-init model of ``family`` into ``out_dir`` (atomically: temp dir + rename)."""
    import torch
    from transformers import AutoModelForCausalLM

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-build-", dir=out_dir.parent))
    try:
        lines = tokenizer_corpus(int(build_cfg["tokenizer_lines_per_language"]))
        if families.get(family).tokenizer == "unigram":
            tok = build_tokenizer(lines, int(build_cfg["vocab_size"]), tmp)
        else:
            tok = build_bpe_tokenizer(lines, int(build_cfg["vocab_size"]), family)
        torch.manual_seed(int(build_cfg["seed"]))
        model = AutoModelForCausalLM.from_config(model_config(family, build_cfg, tok))
        model_dir = tmp / "model"
        tok.save_pretrained(model_dir)
        model.save_pretrained(model_dir)
        (model_dir / BUILD_FILE).write_text(json.dumps(build_marker(build_cfg, family), indent=2) + "\n")
        if out_dir.exists():  # another process won the race; keep theirs
            return out_dir
        os.replace(model_dir, out_dir)
        log.info("Built tiny %s (%d parameters, vocab %d) in %s", family, model.num_parameters(), len(tok), out_dir)
        return out_dir
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build_marker(build_cfg: dict, family: str) -> dict:
    """What the build marker records (XGLM: the build block alone, as before families existed)."""
    return dict(build_cfg) if family == "xglm" else {**dict(build_cfg), "family": family}


def ensure_tiny(out_dir: str | Path, build_cfg: dict, family: str = "xglm") -> Path:
    """Reuse the cached build when it was made with the same settings, else (re)build it."""
    out_dir = Path(out_dir)
    marker = out_dir / BUILD_FILE
    if marker.exists():
        if json.loads(marker.read_text()) == build_marker(build_cfg, family):
            return out_dir
        raise FileExistsError(
            f"{out_dir} holds a tiny model built with other settings ({marker}). Change model.name_or_path "
            "or delete that directory to rebuild."
        )
    return build_tiny(out_dir, build_cfg, family)
