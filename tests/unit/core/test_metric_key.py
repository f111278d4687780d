"""The one metric-key type: ``<split>/<metric>/<scope>`` parsed and formatted, bad keys refused with the form."""

from __future__ import annotations

import pytest

from mfti_lightning.core.metric_key import MetricKey

GOOD = {
    "test/spbleu/de-en": ("test", "spbleu", "de-en", True, False),
    "val/chrf++/avg": ("val", "chrf++", "avg", False, True),
    "val_init/bleu/pooled": ("val_init", "bleu", "pooled", False, False),
    "test/chrf/partition/both_unseen": ("test", "chrf", "partition/both_unseen", False, True),
    "test_clean/bleu/zh-en": ("test_clean", "bleu", "zh-en", True, False),
    "val/rate_off_target/avg": ("val", "rate_off_target", "avg", False, True),
    "test/comet/ast-en": ("test", "comet", "ast-en", True, False),
}


@pytest.mark.parametrize("text", sorted(GOOD))
def test_parse_and_format_round_trip(text):
    split, metric, scope, is_direction, is_summary = GOOD[text]
    key = MetricKey.parse(text)
    assert (key.split, key.metric, key.scope) == (split, metric, scope)
    assert (key.is_direction, key.is_summary) == (is_direction, is_summary)
    assert key.is_error_rate == metric.startswith("rate_")
    assert str(key) == text and MetricKey(split, metric, scope) == key


def test_partition_key():
    assert str(MetricKey.partition("test", "spbleu", "seen")) == "test/spbleu/partition/seen"


BAD = {
    "train/loss": "has 2 part(s), not 3",
    "lr-AdamW": "has 1 part(s), not 3",
    "dev/bleu/de-en": "split 'dev' is not one of val_init, val, test",
    "test//de-en": "metric '' must be a non-empty name",
    "test/bleu/mean": "scope 'mean' is not a direction <src>-<tgt>, avg, pooled or partition/<name>",
    "test/bleu/de_en": "scope 'de_en' is not a direction",
    "test/bleu/partition/": "partition name '' must be a non-empty name",
    "test/bleu/partition/a/b": "partition name 'a/b' must be a non-empty name without '/'",
}


@pytest.mark.parametrize("text", sorted(BAD))
def test_bad_key_names_the_key_and_the_form(text):
    with pytest.raises(ValueError) as e:
        MetricKey.parse(text)
    msg = str(e.value)
    assert msg.startswith(f"metric key {text!r}: ") and BAD[text] in msg
    assert msg.endswith("expected <split>/<metric>/<scope> (scope: <src>-<tgt>, avg, pooled or partition/<name>)")
    assert MetricKey.find(text) is None


def test_constructing_a_bad_key_fails_like_parsing_it():
    with pytest.raises(ValueError, match=r"metric key 'test/bl/eu/de-en': metric 'bl/eu'"):
        MetricKey("test", "bl/eu", "de-en")
