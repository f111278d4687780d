"""The paper's six templates, verbatim, and the one Template object (render, extract, save/load)."""

from __future__ import annotations

import pytest
from conftest import CONF, compose

from mfti_lightning.core.errors import ConfigError
from mfti_lightning.core.template import Template, from_config

# Copied from the paper's code (NJUNLP/MFTI instruct_mt/evaluate.py, --template-str 1..6)
PAPER = {
    1: "Translation: [<srclang>]: <input> [<tgtlang>]:",
    2: "Translation: <input> [<tgtlang>]:",
    3: "<input> Translate from [<srclang>] to [<tgtlang>]:",
    4: "<input> Translate to [<tgtlang>]:",
    5: "The <tgtlang> translation of <srclang> sentence '<input>' is:",
    6: "The <tgtlang> translation of the sentence '<input>' is:",
}
RENDERED = {  # de-en, "Hallo Welt." -> "Hello world."
    1: "Translation: [German]: Hallo Welt. [English]:",
    2: "Translation: Hallo Welt. [English]:",
    3: "Hallo Welt. Translate from [German] to [English]:",
    4: "Hallo Welt. Translate to [English]:",
    5: "The English translation of German sentence 'Hallo Welt.' is:",
    6: "The English translation of the sentence 'Hallo Welt.' is:",
}
OPTIONS = sorted(
    p.stem for p in (CONF / "template").glob("*.yaml") if p.stem != "custom"
)  # custom: test_custom_template.py


def _template(option, tmp_path) -> Template:
    return from_config(compose([f"template={option}"], tmp_path).template)


@pytest.mark.slow
def test_six_options_with_paper_numbers(tmp_path):
    assert len(OPTIONS) == 6
    ids = sorted(_template(o, tmp_path).paper_id for o in OPTIONS)
    assert ids == [1, 2, 3, 4, 5, 6]
    assert all(o.startswith(f"t{_template(o, tmp_path).paper_id}_") for o in OPTIONS)


@pytest.mark.parametrize("option", OPTIONS)
def test_verbatim_and_rendering(option, tmp_path):
    t = _template(option, tmp_path)
    assert t.prefix == PAPER[t.paper_id]
    assert t.render_prefix("Hallo Welt.", "de", "en") == RENDERED[t.paper_id]
    # training example: prefix, one space, target (EOS is appended by the tokenizer)
    assert t.render_example("Hallo Welt.", "Hello world.", "de", "en") == RENDERED[t.paper_id] + " Hello world."
    # k-shot: demonstrations and the test prefix joined by one space, as the reference code does
    shots = [("Guten Tag.", "Good day."), ("Danke.", "Thanks.")]
    assert t.render_prompt("Hallo Welt.", "de", "en", shots) == " ".join(
        [
            t.render_example("Guten Tag.", "Good day.", "de", "en"),
            t.render_example("Danke.", "Thanks.", "de", "en"),
            RENDERED[t.paper_id],
        ]
    )


def test_missing_input_placeholder_is_an_error():
    with pytest.raises(ConfigError, match="<input>"):
        Template("mine", "Translate to [<tgtlang>]:")
    with pytest.raises(ConfigError, match="unknown placeholder"):
        Template("mine", "<input> to <tgt>:")


def test_template_override_without_input_fails_before_anything(tmp_path):
    cfg = compose(["template.prefix='Translate to [<tgtlang>]:'"], tmp_path)
    with pytest.raises(ConfigError, match="no '<input>'"):
        from_config(cfg.template)


@pytest.mark.parametrize("option", OPTIONS)
def test_save_load_roundtrip(option, tmp_path):
    t = _template(option, tmp_path)
    t.save(tmp_path / "ckpt")
    assert Template.load(tmp_path / "ckpt") == t


def test_cut_stops_at_newline_and_new_turn(tmp_path):
    t1 = _template("t1_translation_src_tgt", tmp_path)
    assert t1.cut(" Hello world. Translation: [German]: Tschüss") == "Hello world."
    assert t1.cut(" Hello world.\nMore text") == "Hello world."
    t3 = _template("t3_translate_from_to", tmp_path)
    assert t3.cut(" Hello. Bonjour. Translate from [French] to [English]: x") == "Hello. Bonjour."


def test_extract_by_token_position(tiny_tokenizer, tmp_path):
    tok = tiny_tokenizer
    t = _template("t1_translation_src_tgt", tmp_path)
    prompt = t.render_prefix("Hallo Welt.", "de", "en")
    hyp_ids = tok(" Hello world.", add_special_tokens=False)["input_ids"]
    after = tok(" Ignored after EOS", add_special_tokens=False)["input_ids"]
    generated = hyp_ids + [tok.eos_token_id] + after
    assert t.extract(generated, tok) == "Hello world."
    # the prompt is never searched for: a hypothesis that repeats it is cut at the new template turn only
    turn = tok(" Hello world. " + prompt, add_special_tokens=False)["input_ids"]
    assert t.extract(turn, tok) == "Hello world."
    # (the XGLM tokenizer normalizes "\n" to a space, so a generated newline can only be tested on text: see
    # test_cut_stops_at_newline_and_new_turn)
