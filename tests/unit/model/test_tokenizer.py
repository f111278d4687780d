"""The tiny model's tokenizer is a real XGLM tokenizer covering all 13 paper languages."""

from __future__ import annotations

import unicodedata

from mfti_lightning.assets import FLORES101_DIR
from mfti_lightning.core.languages import LANGUAGES, PAPER_LANGUAGES


def _devtest_line(code: str, i: int = 3) -> str:
    path = FLORES101_DIR / "devtest" / f"{LANGUAGES[code].flores101}.devtest"
    return path.read_text(encoding="utf-8").splitlines()[i]


def test_xglm_tokenizer_layout(tiny_tokenizer):
    tok = tiny_tokenizer
    assert type(tok).__name__ == "XGLMTokenizer"
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert len(tok) > 1000  # not the 4-token vocabulary of the vocab_file trap
    ids = tok("Hello world")["input_ids"]
    assert ids[0] == tok.eos_token_id  # XGLM prepends </s>, not <s>


def test_all_13_languages_encode_and_round_trip(tiny_tokenizer):
    tok = tiny_tokenizer
    for code in PAPER_LANGUAGES:
        # dev lines trained the tokenizer; devtest lines are unseen text in the same language
        for text in (_devtest_line(code, 3), _devtest_line(code, 500)):
            ids = tok(text, add_special_tokens=False)["input_ids"]
            unk_share = sum(i == tok.unk_token_id for i in ids) / len(ids)
            assert unk_share < 0.15, (code, unk_share)  # rare unseen characters (zh) may be <unk>
            assert len(set(ids)) > 3
        dev = (FLORES101_DIR / "dev" / f"{LANGUAGES[code].flores101}.dev").read_text(encoding="utf-8")
        line = dev.splitlines()[5]
        ids = tok(line, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids, code
        # the tokenizer normalises like SentencePiece (NFKC: full-width punctuation -> ASCII)
        assert tok.decode(ids) == unicodedata.normalize("NFKC", line), code


def test_model_loads_through_from_pretrained(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from mfti_lightning.model.modeling import load_model

    m = load_model(str(tiny_model_dir))
    ref = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    assert type(m).__name__ == "XGLMForCausalLM"
    for (k, a), (_, b) in zip(sorted(m.state_dict().items()), sorted(ref.state_dict().items())):
        assert (a == b).all(), k
