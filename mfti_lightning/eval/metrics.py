"""sacrebleu scoring: one place decides tokenizers, metric names and signatures. No torch here.

Metric names:
- ``spbleu``: BLEU with sacrebleu's ``flores101`` SentencePiece tokenizer (the paper's metric);
- ``bleu``: BLEU with sacrebleu's per-language default tokenizer (13a; zh for Chinese; ko-mecab for Korean;
  ja-mecab for Japanese), used when the FLORES SPM model is unavailable (offline) and ``eval.bleu_tokenize=auto``;
- ``bleu-<tok>``: BLEU with an explicitly chosen tokenizer;
- ``chrf`` (chrF2) and ``chrf++`` (chrF2++, word n-grams up to 2).
Every score is stored with its sacrebleu signature.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path

from mfti_lightning.core.errors import ConfigError

log = logging.getLogger(__name__)

_LANG_DEFAULT = {"zh": "zh", "ko": "ko-mecab", "ja": "ja-mecab"}
SPM_FILES = {"flores101": "sacrebleu_tokenizer_spm.model", "flores200": "flores200sacrebleuspm"}


# where sacrebleu downloads its SentencePiece models from (mfti-prefetch fetches them on a login node)
SPM_URLS = {
    "flores101": "https://dl.fbaipublicfiles.com/fairseq/models/flores/sacrebleu_tokenizer_spm.model",
    "flores200": "https://tinyurl.com/flores200sacrebleuspm",
}
_warned_fallback: set[str] = set()


def sacrebleu_dir() -> Path:
    """sacrebleu's cache directory. sacrebleu reads ``$SACREBLEU`` once, at import: once it is imported its
    value is the one that counts."""
    import sys

    utils = sys.modules.get("sacrebleu.utils")
    if utils is not None and getattr(utils, "SACREBLEU_DIR", None):
        return Path(utils.SACREBLEU_DIR)
    return Path(os.environ.get("SACREBLEU", os.path.expanduser("~/.sacrebleu")))


def spm_path(tok: str = "flores101", root: str | Path | None = None) -> Path:
    """Where sacrebleu keeps the SentencePiece model of ``tok`` (under ``root``, default :func:`sacrebleu_dir`)."""
    return Path(root or sacrebleu_dir()) / "models" / SPM_FILES[tok]


def spm_available(tok: str = "flores101") -> bool:
    return spm_path(tok).exists()


def language_default_tokenizer(tgt_lang: str) -> str:
    tok = _LANG_DEFAULT.get(tgt_lang, "13a")
    if tok.endswith("mecab") and not _mecab_ok(tok):
        raise ConfigError(
            f"BLEU for target {tgt_lang} needs sacrebleu's {tok} tokenizer: pip install 'sacrebleu[{tgt_lang}]'."
        )
    return tok


@lru_cache(None)
def _mecab_ok(tok: str) -> bool:
    try:
        from sacrebleu.metrics import BLEU

        BLEU(tokenize=tok)  # builds the tokenizer: fails without its optional package (mecab)
        return True
    except Exception:
        return False


def resolve_bleu(setting: str, tgt_lang: str) -> tuple[str, str]:
    """``(metric_name, sacrebleu tokenizer)`` for a target language under ``eval.bleu_tokenize``."""
    from sacrebleu.metrics import BLEU

    tokenizers = tuple(BLEU.TOKENIZERS)

    if setting == "auto":
        if spm_available("flores101"):
            return "spbleu", "flores101"
        if "flores101" not in _warned_fallback:
            _warned_fallback.add("flores101")
            log.warning(
                "spBLEU unavailable: sacrebleu's flores101 SentencePiece model is not at %s (offline node?). "
                "Reporting 'bleu' with sacrebleu's per-language default tokenizer instead (13a; zh for Chinese; "
                "ko-mecab for Korean): NOT comparable to the paper's spBLEU. Run `mfti-prefetch` on a machine "
                "with network to get spBLEU.",
                spm_path("flores101"),
            )
        return "bleu", language_default_tokenizer(tgt_lang)
    if setting in ("flores101", "spm"):
        return "spbleu", "flores101"
    if setting == "flores200":
        return "spbleu200", "flores200"
    if setting == "lang_default":
        return "bleu", language_default_tokenizer(tgt_lang)
    if setting not in tokenizers:
        raise ConfigError(
            f"Unknown sacrebleu tokenizer eval.bleu_tokenize={setting!r}; known: auto, lang_default, "
            f"{', '.join(sorted(tokenizers))}."
        )
    return f"bleu-{setting}", setting


def bleu_metric_name(setting: str) -> str:
    """The BLEU metric name a run reports (same for every direction)."""
    return resolve_bleu(setting, "en")[0]


def score(hypotheses: list[str], references: list[str], tgt_lang: str, bleu_tokenize: str = "auto") -> dict:
    """Corpus scores for one direction: ``{metric: (score, signature)}``, from the metric objects of
    :func:`metric_for`."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    name, tok = resolve_bleu(bleu_tokenize, tgt_lang)
    if tok.startswith("flores") and not spm_available(tok):
        raise ConfigError(
            f"{name} needs sacrebleu's {tok} SentencePiece model, which is not in {sacrebleu_dir()}/models and "
            "cannot be downloaded offline. Run `mfti-prefetch` on a machine with network (same SACREBLEU dir), "
            "or use eval.bleu_tokenize=auto."
        )
    out = {}
    for metric in (name, "chrf", "chrf++"):
        m = metric_for(metric, tgt_lang)
        out[metric] = (m.corpus_score(hypotheses, [references]).score, str(m.get_signature()))
    return out


def comet_scores(
    sources: list[str],
    hypotheses: list[str],
    references: list[str],
    model_name: str = "Unbabel/wmt22-comet-da",
    batch_size: int = 32,
    gpus: int = 1,
) -> dict:
    """Optional COMET (``pip install 'mfti-lightning[comet]'``, a GPU recommended): ``{"system": float,
    "segments": [float]}``. Not used by the tests; the model must be in the HF cache on offline nodes
    (``mfti-prefetch eval.comet_model=...``)."""
    comet = import_comet()
    model = comet.load_from_checkpoint(comet.download_model(model_name))
    return comet_predict(model, sources, hypotheses, references, batch_size=batch_size, gpus=gpus)


def import_comet():
    """The ``comet`` package (unbabel-comet), or a ConfigError naming the extra that installs it."""
    try:
        import comet
    except ImportError as e:
        raise ConfigError("COMET needs the unbabel-comet package: pip install 'mfti-lightning[comet]'.") from e
    return comet


def comet_predict(model, sources, hypotheses, references, batch_size: int = 32, gpus: int = 1) -> dict:
    """A loaded COMET model's ``{"system": float, "segments": [float]}`` for one set of translations."""
    data = [{"src": s, "mt": h, "ref": r} for s, h, r in zip(sources, hypotheses, references)]
    out = model.predict(data, batch_size=batch_size, gpus=gpus, progress_bar=False)
    return {"system": float(out.system_score), "segments": [float(x) for x in out.scores]}


CORPUS_METRICS = ("bleu", "spbleu", "spbleu200", "bleu-<tokenizer>", "chrf", "chrf++", "ter")


def metric_for(name: str, tgt_lang: str):
    """The sacrebleu metric object behind a metric name of the results format, for one target language:
    ``bleu`` (per-language default tokenizer), ``spbleu``/``spbleu200`` (FLORES SentencePiece, needs its model),
    ``bleu-<tok>``, ``chrf`` (chrF2), ``chrf++`` (chrF2++), ``ter`` (with sacrebleu's Asian support for zh, ja,
    ko targets). The same objects :func:`score` uses, so a
    re-scored or bootstrapped number carries the signature of the original one."""
    from sacrebleu.metrics import BLEU, CHRF, TER

    if name in ("chrf", "chrf++"):
        return CHRF(word_order=2 if name == "chrf++" else 0)
    if name == "ter":
        return TER(asian_support=tgt_lang in _LANG_DEFAULT)  # zh, ja, ko: split CJK characters (sig: asian:yes)
    if name == "bleu":
        return BLEU(tokenize=language_default_tokenizer(tgt_lang))
    if name in ("spbleu", "spbleu200"):
        tok = "flores101" if name == "spbleu" else "flores200"
        if not spm_available(tok):
            raise ConfigError(
                f"{name} needs sacrebleu's {tok} SentencePiece model at {spm_path(tok)}; run `mfti-prefetch` on a "
                "machine with network (same SACREBLEU dir), or score bleu instead."
            )
        return BLEU(tokenize=tok)
    if name.startswith("bleu-") and name[5:] in BLEU.TOKENIZERS:
        return BLEU(tokenize=name[5:])
    raise ConfigError(f"unknown metric {name!r}; known: {', '.join(CORPUS_METRICS)}, comet.")
