"""The one language registry and the lang_pairs options."""

from __future__ import annotations

import pytest
from conftest import compose

from mfti_lightning.core import languages
from mfti_lightning.core.directions import eval_directions, train_directions
from mfti_lightning.core.errors import ConfigError

# langcodes.Language.get(code).display_name() for the reference code's 13 languages, in its order
PAPER_NAMES = [
    "English",
    "German",
    "French",
    "Catalan",
    "Finnish",
    "Russian",
    "Bulgarian",
    "Chinese",
    "Korean",
    "Arabic",
    "Swahili",
    "Hindi",
    "Tamil",
]
XGLM30 = "en ru zh de es fr ja it pt el ko fi id tr ar vi th bg ca hi et bn ta ur sw te eu my ht qu".split()


def test_paper_languages_and_names():
    assert list(languages.PAPER_LANGUAGES) == "en de fr ca fi ru bg zh ko ar sw hi ta".split()
    assert [languages.name(c) for c in languages.PAPER_LANGUAGES] == PAPER_NAMES


def test_registry_is_xglm30_with_unique_codes():
    assert sorted(languages.LANGUAGES) == sorted(XGLM30)
    for field in ("code", "flores200"):
        values = [getattr(lang, field) for lang in languages.LANGUAGES.values()]
        assert len(values) == len(set(values)), field
    f101 = [lang.flores101 for lang in languages.LANGUAGES.values() if lang.flores101]
    assert len(f101) == len(set(f101))


def test_xglm_statistics():
    langs = languages.LANGUAGES.values()
    assert all(lang.cc100xl_tokens and lang.xglm_ratio_upsampled for lang in langs)
    # the model card's upsampled ratios sum to 1 over the 30 languages (rounded to 4 decimals each)
    assert abs(sum(lang.xglm_ratio_upsampled for lang in langs) - 1.0) < 0.01
    assert languages.get("en").cc100xl_tokens == 803_526_736_124 and languages.get("qu").cc100xl_tokens == 3_236_108
    assert {c for c, lang in languages.LANGUAGES.items() if lang.flores101 is None} == {"eu", "ht", "qu"}


def test_unknown_code_lists_known_codes():
    with pytest.raises(ConfigError) as e:
        languages.get("xx")
    assert "'xx'" in str(e.value) and "en, de, fr" in str(e.value) and "qu" in str(e.value)
    with pytest.raises(KeyError):  # still a KeyError for dict-style callers
        languages.get("xx")


def test_parse_direction():
    assert languages.parse_direction("de-en") == ("de", "en")
    for bad in ("de", "de-de", "de-en-fr", "-en"):
        with pytest.raises(ValueError):
            languages.parse_direction(bad)


@pytest.mark.parametrize(
    "option,n_train,n_eval", [("paper13", 156, 156), ("en_centric", 24, 156), ("unseen", 22, 156), ("demo", 3, 3)]
)
def test_lang_pairs_counts(option, n_train, n_eval, tmp_path):
    lp = compose([f"lang_pairs={option}"], tmp_path).lang_pairs
    train, ev = train_directions(lp), eval_directions(lp)
    assert (len(train), len(ev)) == (n_train, n_eval)
    assert len(set(train)) == n_train
    if option == "en_centric":
        assert all("en" in d for d in train)


def test_unseen_split_is_the_papers(tmp_path):
    lp = compose(["lang_pairs=unseen"], tmp_path).lang_pairs
    train = train_directions(lp)
    srcs, tgts = {s for s, _ in train}, {t for _, t in train}
    assert srcs == {"en", "ko", "sw", "zh", "fi"} and tgts == {"en", "ko", "sw", "de", "hi"}
    never = {"ru", "fr", "bg", "ar", "ca", "ta"}
    assert not any(set(d) & never for d in train)
    assert ("zh", "fi") not in train and ("de", "en") not in train and ("en", "de") in train


def test_custom_list_from_the_command_line(tmp_path):
    lp = compose(["lang_pairs=custom", "lang_pairs.train=[de-en,en-fr]"], tmp_path).lang_pairs
    assert train_directions(lp) == [("de", "en"), ("en", "fr")] == eval_directions(lp)
    lp = compose(["lang_pairs.train=[de-en,en-fr]", "lang_pairs.eval=[fr-de]"], tmp_path).lang_pairs
    assert train_directions(lp) == [("de", "en"), ("en", "fr")] and eval_directions(lp) == [("fr", "de")]


@pytest.mark.parametrize("spec,needle", [("[de-xx]", "'xx'"), ("[de-en,de-en]", "twice"), ("[deen]", "src>-<tgt")])
def test_bad_direction_lists(spec, needle, tmp_path):
    lp = compose(["lang_pairs=custom", f"lang_pairs.train={spec}"], tmp_path).lang_pairs
    with pytest.raises(ConfigError, match="lang_pairs") as e:
        train_directions(lp)
    assert needle in str(e.value)
