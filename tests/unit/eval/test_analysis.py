"""The paper's error taxonomy on hand-made cases, one per category, and the first-rule-wins order."""

from __future__ import annotations

import pytest

from mfti_lightning.eval.analysis import CATEGORIES, LanguageIdentifier, analyze, classify_direction, has_repeated_ngram

SRC = "Der Hund des Nachbarn hat die ganze Nacht laut gebellt, und niemand im Haus konnte schlafen."
REF = "The neighbour's dog barked loudly all night, and nobody in the house could sleep."


@pytest.fixture(scope="module")
def lid():
    return LanguageIdentifier(["de", "en"])


CASES = [
    ("oscillatory_hallucination", "The dog barked barked barked all night and nobody slept."),
    ("template_leakage", "The dog barked all night. [German]: Der Hund"),
    ("source_copy", SRC),
    ("off_target", "Le chien du voisin a aboyé fort toute la nuit et personne dans la maison ne pouvait dormir."),
    ("under_translation", "The dog barked."),
    (
        "over_translation",
        "The neighbour's dog barked loudly all night long, so that nobody in the big old house "
        "over there could sleep at all, not even the cat, which usually sleeps through any "
        "noise whatsoever, and in the morning everyone was tired.",
    ),
    ("other", "The neighbour's dog barked all night, and nobody in the house was able to sleep."),
]


@pytest.mark.parametrize("expected,hyp", CASES)
def test_each_category(lid, expected, hyp):
    rows = [{"source": SRC, "reference": REF, "hypothesis": hyp}]
    assert classify_direction(rows, "de", "en", lid) == [expected]


def test_reference_repetition_rule():
    assert has_repeated_ngram("the the cat", "en")  # the reference's rule already fires here
    assert not has_repeated_ngram("the the", "en")  # nothing follows the copy
    assert has_repeated_ngram("我们我们走", "zh")  # characters for Chinese
    assert not has_repeated_ngram("一二三四五", "zh")


def test_first_rule_wins(lid):
    # repeated and bracketed and too long: the first rule decides
    hyp = "go go go [English]: " + " ".join(["word"] * 60)
    assert classify_direction([{"source": SRC, "reference": REF, "hypothesis": hyp}], "de", "en", lid) == [
        "oscillatory_hallucination"
    ]


def test_chinese_lengths_in_characters(lid):
    rows = [
        {
            "source": "The weather is nice today.",
            "reference": "今天天气很好，我们去公园散步吧。",
            "hypothesis": "天气好。",
        }
    ]  # ("今天天气" would be a repeat: 天天)
    assert classify_direction(rows, "en", "zh", lid) == ["under_translation"]


def test_analyze_counts_rates_and_labels():
    rows = {"de-en": [{"source": SRC, "reference": REF, "hypothesis": h} for _, h in CASES]}
    errors, metrics = analyze(rows, "test")
    assert errors["de-en"]["n"] == len(CASES)
    assert list(errors["de-en"]["counts"]) == list(CATEGORIES)
    assert all(v == 1 for v in errors["de-en"]["counts"].values())
    assert [r["error"] for r in rows["de-en"]] == [c for c, _ in CASES]
    assert metrics["test/rate_other/de-en"] == pytest.approx(1 / 7) == metrics["test/rate_other/avg"]


def test_lid_languages_none_needs_no_lingua(monkeypatch):
    """eval.lid_languages=none: no language ID (a machine without lingua), so the French hypothesis is not found
    off target; every other rule still labels."""
    import sys

    monkeypatch.setitem(sys.modules, "lingua", None)  # `import lingua` raises ImportError
    rows = {"de-en": [{"source": SRC, "reference": REF, "hypothesis": h} for _, h in CASES]}
    analyze(rows, "test", lid_scope="none")
    expected = [c for c, _ in CASES]
    expected[expected.index("off_target")] = "other"
    assert [r["error"] for r in rows["de-en"]] == expected


def test_mfti_analyze_records_no_language_id_under_lid_languages_none(tmp_path, monkeypatch):
    """The record says what ran: ``lid`` is false under lid_scope=none although --no-lid was not given."""
    import json
    import sys

    from mfti_lightning.eval.analysis import analyze_run

    monkeypatch.setitem(sys.modules, "lingua", None)
    (tmp_path / "translations").mkdir()
    (tmp_path / "results.json").write_text(json.dumps({"directions": {"eval": ["de-en"]}, "metrics": {}}))
    lines = [json.dumps({"source": SRC, "reference": REF, "hypothesis": h}) for _, h in CASES]
    (tmp_path / "translations" / "de-en.jsonl").write_text("\n".join(lines) + "\n")
    analyze_run(tmp_path, "test", lid_scope="none", lid_accuracy="low", rule="project")
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["error_analysis"]["test"] == {
        "lid": False,
        "lid_scope": "none",
        "lid_accuracy": "low",
        "rule": "project",
    }
