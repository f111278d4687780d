"""sacrebleu done right: tokenizer choice, explicit fallback, signatures, errors."""

from __future__ import annotations

import pytest

from mfti_lightning.core.errors import ConfigError
from mfti_lightning.eval import metrics as mt


def test_auto_falls_back_explicitly_without_spm(caplog):
    assert not mt.spm_available()  # conftest: empty SACREBLEU dir, like an offline node
    mt._warned_fallback.clear()
    with caplog.at_level("WARNING"):
        assert mt.resolve_bleu("auto", "en") == ("bleu", "13a")
    assert "spBLEU unavailable" in caplog.text and "mfti-prefetch" in caplog.text
    assert mt.resolve_bleu("auto", "zh") == ("bleu", "zh")
    assert mt.resolve_bleu("auto", "ko") == ("bleu", "ko-mecab")
    assert mt.resolve_bleu("char", "ja") == ("bleu-char", "char")


def test_spbleu_when_the_spm_model_is_present(tmp_path, monkeypatch):
    import sacrebleu.utils

    monkeypatch.setattr(sacrebleu.utils, "SACREBLEU_DIR", str(tmp_path))
    assert mt.spm_path() == tmp_path / "models" / "sacrebleu_tokenizer_spm.model"
    (tmp_path / "models").mkdir()
    mt.spm_path().write_bytes(b"x")
    assert mt.resolve_bleu("auto", "en") == ("spbleu", "flores101")


def test_unknown_tokenizer_is_a_clear_error():
    with pytest.raises(ConfigError, match="Unknown sacrebleu tokenizer.*known: auto"):
        mt.resolve_bleu("moses", "en")


def test_flores_tokenizer_without_model_names_the_fix():
    with pytest.raises(ConfigError, match="mfti-prefetch"):
        mt.score(["a"], ["a"], "en", "flores101")


def test_signature_with_every_score():
    out = mt.score(["Der Hund bellt ."], ["Der Hund bellt laut ."], "de")
    assert set(out) == {"bleu", "chrf", "chrf++"}
    assert "tok:13a" in out["bleu"][1] and "nrefs:1" in out["bleu"][1]
    assert "nc:6|nw:2" in out["chrf++"][1] and "nw:0" in out["chrf"][1]
