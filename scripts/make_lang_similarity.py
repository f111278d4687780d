#!/usr/bin/env python3
"""Regenerate mfti_lightning/assets/lang_similarity.json from URIEL feature vectors (lang2vec).

Run by hand, once; lang2vec is NOT a runtime dependency of mfti-lightning:

    pip download lang2vec==1.1.2 --no-deps -d /tmp/l2v && unzip /tmp/l2v/lang2vec-*.whl -d /tmp/l2v/site
    PYTHONPATH=/tmp/l2v/site python3 scripts/make_lang_similarity.py

lang2vec 1.1.2 (the newest version on our PyPI mirror) ships the URIEL feature vectors but not URIEL's precomputed
distance matrices (those came later, as ``distances.zip``). So the similarities here are computed from the feature
vectors, the way URIEL/lang2vec define the typological distances (Littell et al., 2017): the cosine between two
languages' vectors, similarity = 1 - cosine distance.
"""

from __future__ import annotations

import json
import sys
import types
from importlib import util
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

if util.find_spec("pkg_resources") is None:  # lang2vec 1.1.2 imports pkg_resources (gone from recent setuptools)
    import os

    shim = types.ModuleType("pkg_resources")
    shim.resource_filename = lambda name, path: os.path.join(os.path.dirname(util.find_spec(name).origin), path)
    sys.modules["pkg_resources"] = shim

from importlib import metadata  # noqa: E402

import lang2vec.lang2vec as l2v  # noqa: E402

from mfti_lightning.core.languages import LANGUAGES  # noqa: E402

# URIEL indexes individual languages, not macrolanguages: zho/ara/swa have (almost) empty vectors there.
# Mandarin, Standard Arabic and (individual) Swahili are what FLORES zho_simpl/ara/swh contain.
ISO3_OVERRIDE = {"zh": "cmn"}
SETS = {
    "syntactic": ["syntax_knn"],
    "phonological": ["phonology_knn"],
    "inventory": ["inventory_knn"],
    "featural": ["syntax_knn", "phonology_knn", "inventory_knn"],
    "genetic": ["fam"],
}


def iso3(code: str) -> str:
    return ISO3_OVERRIDE.get(code) or LANGUAGES[code].flores200.split("_")[0]


def vec(code3: str, sets: list[str]) -> np.ndarray:
    parts = []
    for s in sets:
        v = l2v.get_features([code3], s)[code3]
        if any(x == "--" for x in v):
            raise ValueError(f"{code3} has missing values in {s}")
        parts.append(np.asarray(v, dtype=float))
    return np.concatenate(parts)


def cosine(a: np.ndarray, b: np.ndarray) -> float | None:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:  # e.g. a language isolate has no family nodes: undefined, not 0
        return None
    return round(float(a @ b / (na * nb)), 4)


def main() -> None:
    available = l2v.available_uriel_languages()
    out = {}
    for code in LANGUAGES:
        c3 = iso3(code)
        if c3 not in available:
            print(f"skip {code} ({c3}): not in URIEL", file=sys.stderr)
            continue
        row = {"iso639_3": c3}
        for name, sets in SETS.items():
            row[name] = cosine(vec(c3, sets), vec("eng", sets))
        out[code] = row
    doc = {
        "description": "Similarity of each language to English (1 = identical to English), from URIEL feature "
        "vectors: cosine similarity between the language's vector and English's.",
        "source": f"URIEL (Littell et al., 2017, 'URIEL and lang2vec: Representing languages as typological, "
        f"geographical, and phylogenetic vectors', EACL) through lang2vec {metadata.version('lang2vec')} "
        f"(PyPI; https://github.com/antonisa/lang2vec)",
        "method": {
            "syntactic": "cosine(syntax_knn) - URIEL syntax features, missing values k-NN imputed by URIEL",
            "phonological": "cosine(phonology_knn)",
            "inventory": "cosine(inventory_knn) - phoneme inventory features",
            "featural": "cosine(syntax_knn + phonology_knn + inventory_knn concatenated)",
            "genetic": "cosine of the Glottolog family-membership vectors ('fam'), ~ the fraction of shared ancestor "
            "nodes; null for an isolate (no family nodes)",
        },
        "notes": "lang2vec 1.1.2 does not ship URIEL's precomputed distance matrices, so these are computed from "
        "the feature vectors (similarity = 1 - cosine distance). URIEL codes are ISO 639-3 individual "
        "languages: zh -> cmn (Mandarin), ar -> arb, sw -> swh. Regenerate with "
        "scripts/make_lang_similarity.py.",
        "default": "syntactic",
        "languages": out,
    }
    path = REPO / "mfti_lightning" / "assets" / "lang_similarity.json"
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path} ({len(out)} languages)")


if __name__ == "__main__":
    main()
