"""The language properties the per-language figures and claims put on their x axis: XGLM's pretraining tokens
(core/languages.py) and similarity to English (``assets/lang_similarity.json``, URIEL via lang2vec)."""

from __future__ import annotations

import json

from mfti_lightning.assets import ASSETS_DIR
from mfti_lightning.core.languages import LANGUAGES

SIMILARITY_FILE = ASSETS_DIR / "lang_similarity.json"


def load_similarity(kind: str | None = None) -> tuple[dict[str, float], str]:
    doc = json.loads(SIMILARITY_FILE.read_text(encoding="utf-8"))
    kind = kind or doc.get("default", "syntactic")
    values = {c: row[kind] for c, row in doc["languages"].items() if row.get(kind) is not None}
    return values, f"{kind} similarity to English ({doc['source']})"


def pretraining_tokens() -> dict[str, float]:
    """``{language: XGLM pretraining tokens (CC100-XL)}`` for the languages that have a count."""
    return {c: float(lang.cc100xl_tokens) for c, lang in LANGUAGES.items() if lang.cc100xl_tokens}
