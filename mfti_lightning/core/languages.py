"""The one language registry: every code, name and statistic the project uses comes from here.

Sources:
- English display names: ``langcodes.Language.get(code).display_name()``, as used by the mFTI reference code.
- FLORES-101 / FLORES-200 codes: the file stems of the official releases.
- ``cc100xl_tokens``: the "# tokens" column of the XGLM model cards' "Training Data Statistics" table
  (CC100-XL, 30-language XGLM models); ``xglm_ratio_upsampled``: the "ratio w/ lowRes upsampling" column.
  The full 30-row table was read from a GitHub copy of the facebook/xglm-1.7B model card (identical in the
  564M / 2.9B / 7.5B cards); ``None`` would mark a number that was not available (we never guess one).
- ``native``: the language's name for itself (the CLDR autonym, e.g. ``Deutsch``, ``中文``), the names of
  ``template.lang_names=native``.
- FLORES-101 membership: Basque (eu), Haitian Creole (ht) and Quechua (qu) are not among the 101 language
  subsets of FLORES-101 (checked against the subset list of ``gsarti/flores_101``), so ``flores101`` is
  ``None`` for them; use ``data.flores_layout=flores200`` to evaluate them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from mfti_lightning.core.errors import ConfigError


@dataclass(frozen=True)
class Language:
    code: str  # ISO 639-1, the code used everywhere in configs, metric keys and file names
    name: str  # English display name, the string that goes into prompts
    flores101: str | None  # FLORES-101 file stem (``<root>/dev/<stem>.dev``); None: not in FLORES-101
    flores200: str | None  # FLORES-200 / FLORES+ code
    script: str  # ISO 15924
    family: str
    cc100xl_tokens: int | None = None
    xglm_ratio_upsampled: float | None = None
    paper: bool = False  # one of the 13 languages of the mFTI paper
    native: str = ""  # autonym (CLDR), for template.lang_names=native; filled from NATIVE_NAMES below

    def to_dict(self) -> dict:
        return asdict(self)


_L = Language
# The 13 languages of the paper, in the order of the reference evaluation code.
_PAPER = [
    _L("en", "English", "eng", "eng_Latn", "Latn", "Indo-European/Germanic", 803_526_736_124, 0.3259, True),
    _L("de", "German", "deu", "deu_Latn", "Latn", "Indo-European/Germanic", 89_223_707_856, 0.0363, True),
    _L("fr", "French", "fra", "fra_Latn", "Latn", "Indo-European/Romance", 77_419_639_775, 0.0313, True),
    _L("ca", "Catalan", "cat", "cat_Latn", "Latn", "Indo-European/Romance", 7_075_834_775, 0.0287, True),
    _L("fi", "Finnish", "fin", "fin_Latn", "Latn", "Uralic", 16_804_309_722, 0.0681, True),
    _L("ru", "Russian", "rus", "rus_Cyrl", "Cyrl", "Indo-European/Slavic", 147_791_898_098, 0.0602, True),
    _L("bg", "Bulgarian", "bul", "bul_Cyrl", "Cyrl", "Indo-European/Slavic", 9_703_797_869, 0.0393, True),
    _L("zh", "Chinese", "zho_simpl", "zho_Hans", "Hans", "Sino-Tibetan", 132_770_494_630, 0.0483, True),
    _L("ko", "Korean", "kor", "kor_Hang", "Hang", "Koreanic", 20_002_244_535, 0.0811, True),
    _L("ar", "Arabic", "ara", "arb_Arab", "Arab", "Afro-Asiatic", 12_248_607_345, 0.0099, True),
    _L("sw", "Swahili", "swh", "swh_Latn", "Latn", "Niger-Congo", 907_516_139, 0.0037, True),
    _L("hi", "Hindi", "hin", "hin_Deva", "Deva", "Indo-European/Indo-Aryan", 3_448_390_110, 0.014, True),
    _L("ta", "Tamil", "tam", "tam_Taml", "Taml", "Dravidian", 1_476_973_397, 0.006, True),
]
# The other 17 XGLM-30 languages.
_OTHER = [
    _L("es", "Spanish", "spa", "spa_Latn", "Latn", "Indo-European/Romance", 87_303_083_105, 0.0353),
    _L("ja", "Japanese", "jpn", "jpn_Jpan", "Jpan", "Japonic", 66_054_364_513, 0.0269),
    _L("it", "Italian", "ita", "ita_Latn", "Latn", "Indo-European/Romance", 41_930_465_338, 0.0171),
    _L("pt", "Portuguese", "por", "por_Latn", "Latn", "Indo-European/Romance", 36_586_032_444, 0.0297),
    _L("el", "Greek", "ell", "ell_Grek", "Grek", "Indo-European/Hellenic", 28_762_166_159, 0.0233),
    _L("id", "Indonesian", "ind", "ind_Latn", "Latn", "Austronesian", 15_423_541_953, 0.0125),
    _L("tr", "Turkish", "tur", "tur_Latn", "Latn", "Turkic", 12_413_166_065, 0.0101),
    _L("vi", "Vietnamese", "vie", "vie_Latn", "Latn", "Austroasiatic", 11_199_121_869, 0.0091),
    _L("th", "Thai", "tha", "tha_Thai", "Thai", "Kra-Dai", 10_842_172_807, 0.044),
    _L("et", "Estonian", "est", "est_Latn", "Latn", "Uralic", 3_286_873_851, 0.0133),
    _L("bn", "Bengali", "ben", "ben_Beng", "Beng", "Indo-European/Indo-Aryan", 1_627_447_450, 0.0066),
    _L("ur", "Urdu", "urd", "urd_Arab", "Arab", "Indo-European/Indo-Aryan", 1_351_891_969, 0.0055),
    _L("te", "Telugu", "tel", "tel_Telu", "Telu", "Dravidian", 689_316_485, 0.0028),
    # Not in FLORES-101 (absent from its 101 language subsets); FLORES-200 / FLORES+ have them.
    _L("eu", "Basque", None, "eus_Latn", "Latn", "Isolate", 105_304_423, 0.0043),
    _L("my", "Burmese", "mya", "mya_Mymr", "Mymr", "Sino-Tibetan", 101_358_331, 0.003),
    _L("ht", "Haitian Creole", None, "hat_Latn", "Latn", "French Creole", 86_584_697, 0.0035),
    # FLORES-200 has Ayacucho Quechua (quy_Latn) only; CC100-XL's "qu" is Quechua as a macrolanguage.
    _L("qu", "Quechua", None, "quy_Latn", "Latn", "Quechuan", 3_236_108, 0.0001),
]

# CLDR autonyms (the names the languages use for themselves, as CLDR's locale display names write them).
NATIVE_NAMES = {
    "en": "English", "de": "Deutsch", "fr": "français", "ca": "català", "fi": "suomi", "ru": "русский",
    "bg": "български", "zh": "中文", "ko": "한국어", "ar": "العربية", "sw": "Kiswahili", "hi": "हिन्दी",
    "ta": "தமிழ்", "es": "español", "ja": "日本語", "it": "italiano", "pt": "português", "el": "Ελληνικά",
    "id": "Indonesia", "tr": "Türkçe", "vi": "Tiếng Việt", "th": "ไทย", "et": "eesti", "bn": "বাংলা",
    "ur": "اردو", "te": "తెలుగు", "eu": "euskara", "my": "မြန်မာ", "ht": "Kreyòl ayisyen", "qu": "Runasimi",
}  # fmt: skip
LANGUAGES: dict[str, Language] = {
    lang.code: Language(**{**lang.to_dict(), "native": NATIVE_NAMES[lang.code]}) for lang in _PAPER + _OTHER
}
PAPER_LANGUAGES: tuple[str, ...] = tuple(lang.code for lang in _PAPER)


class UnknownLanguageError(ConfigError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; this one must read as a sentence
        return self.args[0]


def get(code: str) -> Language:
    """The registry entry for an ISO 639-1 code; a clear error listing the known codes otherwise."""
    try:
        return LANGUAGES[code]
    except KeyError:
        raise UnknownLanguageError(
            f"Unknown language code {code!r}. Known codes (ISO 639-1): {', '.join(LANGUAGES)}. "
            "Add a language to mfti_lightning/core/languages.py to use it."
        ) from None


NAME_STYLES = ("english", "native", "code")


def name(code: str, style: str = "english") -> str:
    """The name that goes into prompts: ``english`` (the paper: ``zh`` -> ``Chinese``), ``native`` (``中文``) or
    ``code`` (``zh``)."""
    lang = get(code)
    if style == "english":
        return lang.name
    if style == "native":
        return lang.native
    if style == "code":
        return lang.code
    raise ConfigError(f"template.lang_names={style!r}: use one of {', '.join(NAME_STYLES)}.")


Direction = tuple[str, str]
# a direction as it appears in metric keys and file names: "<src>-<tgt>"
DIRECTION_PATTERN = re.compile(r"^[a-z]{2,3}-[a-z]{2,3}$")
# written without spaces between words: lengths and repetitions are counted in characters
CHARACTER_LANGUAGES = frozenset({"zh", "ja", "th", "my"})


def parse_direction(text: str) -> Direction:
    """``"de-en"`` -> ``("de", "en")``, checking both codes against the registry."""
    parts = str(text).strip().split("-")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"A direction is written <src>-<tgt>, e.g. 'de-en'; got {text!r}")
    src, tgt = parts
    get(src), get(tgt)
    if src == tgt:
        raise ValueError(f"Direction {text!r} has the same source and target language")
    return src, tgt


def direction_str(direction: Direction) -> str:
    return f"{direction[0]}-{direction[1]}"


def all_directions(codes) -> list[Direction]:
    """Every ordered pair of distinct languages, in registry order of ``codes`` (13 languages -> 156)."""
    codes = list(codes)
    for c in codes:
        get(c)
    return [(s, t) for s in codes for t in codes if s != t]
