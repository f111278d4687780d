"""Build the tiny XGLM-architecture model of the embedded demo, once, into a cache directory.

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


def build_tiny(out_dir: str | Path, build_cfg: dict) -> Path:
    """Build the tokenizer and a random-init XGLMForCausalLM into ``out_dir`` (atomically: temp dir + rename)."""
    import torch
    from transformers import XGLMConfig, XGLMForCausalLM

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-build-", dir=out_dir.parent))
    try:
        lines = tokenizer_corpus(int(build_cfg["tokenizer_lines_per_language"]))
        tok = build_tokenizer(lines, int(build_cfg["vocab_size"]), tmp)
        torch.manual_seed(int(build_cfg.get("seed", 0)))
        config = XGLMConfig(
            vocab_size=len(tok),
            d_model=build_cfg["d_model"],
            ffn_dim=build_cfg["ffn_dim"],
            num_layers=build_cfg["num_layers"],
            attention_heads=build_cfg["attention_heads"],
            max_position_embeddings=build_cfg["max_position_embeddings"],
            dropout=0.0,
            attention_dropout=0.0,
            activation_dropout=0.0,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            decoder_start_token_id=tok.eos_token_id,
        )
        model = XGLMForCausalLM(config)
        model_dir = tmp / "model"
        tok.save_pretrained(model_dir)
        model.save_pretrained(model_dir)
        (model_dir / BUILD_FILE).write_text(json.dumps(dict(build_cfg), indent=2) + "\n")
        if out_dir.exists():  # another process won the race; keep theirs
            return out_dir
        os.replace(model_dir, out_dir)
        log.info("Built tiny XGLM (%d parameters, vocab %d) in %s", model.num_parameters(), len(tok), out_dir)
        return out_dir
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_tiny(out_dir: str | Path, build_cfg: dict) -> Path:
    """Reuse the cached build when it was made with the same settings, else (re)build it."""
    out_dir = Path(out_dir)
    marker = out_dir / BUILD_FILE
    if marker.exists():
        if json.loads(marker.read_text()) == dict(build_cfg):
            return out_dir
        raise FileExistsError(
            f"{out_dir} holds a tiny model built with other settings ({marker}). Change model.name_or_path "
            "or delete that directory to rebuild."
        )
    return build_tiny(out_dir, build_cfg)
