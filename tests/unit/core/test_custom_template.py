"""Any template from the command line (template=custom 'template.prefix=...'): the same checks as the paper's six,
a name derived from its text, language-name styles (template.lang_names), and a custom template trained and
evaluated end to end."""

from __future__ import annotations

import json
import os

import pytest
from conftest import REPO, compose, run_cli

from mfti_lightning.core.errors import ConfigError
from mfti_lightning.core.template import Template, from_config, text_id

PREFIX = "<input> = [<tgtlang>]:"
CUSTOM = ["template=custom", f"template.prefix='{PREFIX}'"]
ENV = {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def test_custom_name_is_derived_from_the_text(tmp_path):
    cfg = compose(CUSTOM, tmp_path)
    t = from_config(cfg.template)
    assert t.prefix == PREFIX and t.short == text_id(PREFIX) and t.name == f"custom_{t.short}"
    assert t.short in cfg.run_name and t.short in cfg.run_slug
    assert compose(CUSTOM, tmp_path).run_slug == cfg.run_slug  # stable
    other = compose(["template=custom", "template.prefix='<input> => [<tgtlang>]:'"], tmp_path)
    native = compose([*CUSTOM, "template.lang_names=native"], tmp_path)
    shots = compose([*CUSTOM, "template.shot_separator=' | '"], tmp_path)
    names = {c.template.short for c in (cfg, other, native, shots)}
    slugs = {c.run_slug for c in (cfg, other, native, shots)}
    assert len(names) == 4 and len(slugs) == 4


def test_language_name_styles():
    base = "Translation: [<srclang>]: <input> [<tgtlang>]:"
    render = {
        s: Template("x", base, lang_names=s).render_prefix("Hallo", "de", "zh") for s in ("english", "native", "code")
    }
    assert render == {
        "english": "Translation: [German]: Hallo [Chinese]:",
        "native": "Translation: [Deutsch]: Hallo [中文]:",
        "code": "Translation: [de]: Hallo [zh]:",
    }
    with pytest.raises(ConfigError, match="english, native, code"):
        Template("x", base, lang_names="autonym")


def test_paper_template_with_native_names_is_its_own_experiment(tmp_path):
    from mfti_lightning.core.validation import validate

    en, nat = compose([], tmp_path), compose(["template.lang_names=native"], tmp_path)
    assert en.run_slug != nat.run_slug
    assert "[Deutsch]" in from_config(nat.template).render_prefix("x", "de", "en")
    with pytest.raises(ConfigError, match="template.lang_names"):
        validate(compose(["template.lang_names=autonym"], tmp_path))


@pytest.mark.subprocess
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["template=custom", "template.prefix='Translate to [<tgtlang>]:'"], "has no '<input>' placeholder"),
        (["template=custom", "template.prefix='<input> to <target>:'"], "unknown placeholder"),
        (["template=custom"], "has an empty prefix"),
    ],
    ids=["no-input", "unknown-placeholder", "no-prefix"],
)
def test_bad_custom_template_is_refused_before_compute(tmp_path, overrides, message):
    """Refused with the fix named, before a model is built or a run directory gets checkpoints."""
    cache = tmp_path / "cache"
    p = run_cli(
        ["mfti_lightning.cli.train", *overrides, "logger=none"], tmp_path, 110, {**ENV, "MFTI_CACHE_DIR": str(cache)}
    )
    assert p.returncode != 0 and message in p.stdout + p.stderr, p.stderr[-3000:]
    assert not list(cache.glob("tiny-*")) and not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_custom_template_trains_and_evaluates(tmp_path):
    small = ["num_examples.n=16", "lang_pairs.val_size=2", "lang_pairs.test_size=2", "eval.max_new_tokens=4",
             "logger=none", "template.lang_names=native", *CUSTOM]  # fmt: skip
    train = ["optim.global_batch_size=8", "optim.micro_batch_size=8", "optim.max_steps=2",
             "checkpoint.every_n_steps=2", "eval.val_every_n_steps=2", "progress.mode=none"]  # fmt: skip
    p = run_cli(["mfti_lightning.cli.train", *small, *train], tmp_path, 280, ENV)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    (run_dir,) = list((tmp_path / "outputs" / "train" / "runs").iterdir())
    r = json.loads((run_dir / "results.json").read_text())
    saved = Template.load(run_dir)
    assert r["status"] == "completed" and saved.prefix == PREFIX and saved.lang_names == "native"
    assert saved.short in r["run_name"] and saved.short in run_dir.name
    row = json.loads((run_dir / "translations" / "en-fr.jsonl").read_text().splitlines()[0])
    assert row["prompt"] == f"{row['source']} = [français]:"
    assert Template.load(run_dir / "hf") == saved

    p = run_cli(["mfti_lightning.cli.eval", f"ckpt_path={run_dir / 'hf'}", *small], tmp_path, 280, ENV)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    (ev_dir,) = [f.parent for f in (tmp_path / "outputs" / "eval").rglob("results.json")]
    ev = json.loads((ev_dir / "results.json").read_text())
    assert ev["status"] == "completed" and Template.load(ev_dir) == saved
    assert isinstance(ev["metrics"]["test/chrf/avg"], float)
