"""Checkpoint choice (``eval.select``), training length by steps or epochs (``optim.max_epochs``) and the
controlled data noise (``data.noise.misaligned``)."""

from __future__ import annotations

import json

import pytest
from conftest import compose, run_cli

from mfti_lightning.core.errors import ConfigError

# ---- eval.select: the scoring that picks the checkpoint ----------------------------------------------------
SHORT = ["The cat sat on the mat."]
LONG = [
    "The committee will meet again next week to discuss the new budget for the regional hospitals.",
    "Scientists have found that the river carries much more sediment in spring than in autumn.",
    "Many visitors come to the old town every summer to see the festival and taste the local food.",
]


def _sets():
    from mfti_lightning.data.prepare import EvalSet

    return [EvalSet(("de", "en"), "val", ["x"] * len(SHORT), SHORT), EvalSet(("fr", "en"), "val", ["y"] * 3, LONG)]


def _selection_scores(hyps_by_dir: dict[str, list[str]]) -> dict:
    from mfti_lightning.core.languages import direction_str
    from mfti_lightning.eval.decode_and_score import add_pooled_score, score_translations

    sets = _sets()
    prompts = [(si, j, f"p{si}-{j}") for si, es in enumerate(sets) for j in range(len(es.sources))]
    flat = [hyps_by_dir[direction_str(sets[si].direction)][j] for si, j, _ in prompts]
    result = score_translations(sets, prompts, flat, "val", "13a")
    add_pooled_score(result, sets, hyps_by_dir, "val", "13a")
    return result.metrics


def test_mean_and_reference_selection_choose_differently():
    """Checkpoint A is perfect on the one short sentence and poor on the three long ones; B the reverse. The mean of
    per-direction scores (eval.select=mean) prefers A, one corpus score over all sentences pooled (reference) B."""
    from mfti_lightning.eval.decode_and_score import selection_metric

    poor = ["The committee meets.", "Scientists found sediment.", "Visitors come to the town."]
    a = _selection_scores({"de-en": SHORT, "fr-en": poor})
    b = _selection_scores({"de-en": ["A dog."], "fr-en": LONG})
    mean_key, pooled_key = selection_metric("mean", "bleu-13a"), selection_metric("reference", "bleu-13a")
    assert (mean_key, pooled_key) == ("val/bleu-13a/avg", "val/bleu-13a/pooled")
    assert a[mean_key] > b[mean_key]  # the mean picks A ...
    assert b[pooled_key] > a[pooled_key]  # ... the pooled corpus score picks B
    assert b[pooled_key] < 100 and a["val/bleu-13a/de-en"] == pytest.approx(100)
    assert selection_metric("reference", "spbleu", "val/chrf/avg") == "val/chrf/avg"  # an explicit monitor wins


def test_reference_selection_validates_on_the_first_dev_sentences(tmp_path):
    from mfti_lightning.data import corpora
    from mfti_lightning.data.prepare import eval_sets, training_examples

    base = ["lang_pairs.val_size=5", "num_examples.n=300"]
    ref = compose([*base, "eval.select=reference"], tmp_path / "r")
    mean = compose(base, tmp_path / "m")
    dev = [s for s, _ in corpora.read_flores_pairs(None, "dev", "de", "en")]
    assert eval_sets(ref, "val")[0].sources == dev[:5]
    assert eval_sets(mean, "val")[0].sources == dev[-5:]
    from mfti_lightning.core.template import from_config

    examples, _ = training_examples(ref, from_config(ref.template))
    sources = {e["source"] for e in examples if e["src_lang"] == "de"}
    assert not sources & set(dev[:5])  # the validation sentences never train (the demo trains on FLORES dev)
    assert sources & set(dev[-5:])  # ... while the mean mode's ones are free to


def _best_by(history: dict, key: str) -> int:
    """The step Lightning's ModelCheckpoint(mode=max) keeps: the first strict maximum."""
    best_step, best = None, None
    for stem in sorted(history):
        v = history[stem][key]
        if best is None or v > best:
            best_step, best = int(stem.removeprefix("step")), v
    return best_step


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("select", ["reference", "mean"])
def test_tiny_training_run_selects_as_described(select, tmp_path):
    args = ["mfti_lightning.cli.train", "logger=none", f"eval.select={select}", "eval.monitor=null",
            "optim.max_steps=12", "eval.val_every_n_steps=3", "lang_pairs.val_size=4", "lang_pairs.test_size=2",
            "eval.max_new_tokens=12", "eval.num_beams=2", "checkpoint.export=false"]  # fmt: skip
    p = run_cli(args, cwd=tmp_path, timeout=500)
    assert p.returncode == 0, p.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    r = json.loads((run_dir / "results.json").read_text())
    sel = r["selection"]
    assert sel["mode"] == select
    if select == "reference":
        assert sel == {"mode": "reference", "metric": "val/bleu/pooled", "num_beams": 2, "extraction": "reference",
                       "dev_sentences": "first 4", "score": "one corpus score over all directions pooled"}  # fmt: skip
    else:
        assert sel["metric"] == "val/bleu/avg" and sel["num_beams"] == 1 and sel["dev_sentences"] == "last 4"
    history = r["validation_history"]
    assert len(history) == 4 and all(sel["metric"] in m for m in history.values())
    assert ("val/bleu/pooled" in r["metrics"]) == (select == "reference")
    assert r["best_step"] == _best_by(history, sel["metric"])


# ---- training length -----------------------------------------------------------------------------------------
def test_training_length_steps_or_epochs(tmp_path):
    from mfti_lightning.core.config import steps_for_epochs, training_length

    assert training_length(compose([], tmp_path / "a")) == {"by": "steps", "max_steps": 150}
    by_epochs = compose(["optim.max_steps=null", "optim.max_epochs=2"], tmp_path / "b")
    assert training_length(by_epochs) == {"by": "epochs", "max_epochs": 2.0}
    with pytest.raises(ConfigError, match=r"both set.*optim.max_steps=null optim.max_epochs=1"):
        training_length(compose(["optim.max_epochs=1"], tmp_path / "c"))
    with pytest.raises(ConfigError, match="both null"):
        training_length(compose(["optim.max_steps=null"], tmp_path / "d"))
    assert training_length(compose(["optim.max_steps=null", "num_examples=n0"], tmp_path / "e"))["by"] == "steps"
    # 45 micro batches per rank and epoch, 4 per step: 11.25 steps per epoch
    assert steps_for_epochs(1, 45, 4) == 12 and steps_for_epochs(2, 45, 4) == 23 and steps_for_epochs(4, 45, 4) == 45
    assert steps_for_epochs(0.01, 45, 4) == 1


@pytest.mark.subprocess
@pytest.mark.parametrize(
    "args, expected",
    [
        (["optim.max_epochs=1"], "optim.max_steps=null optim.max_epochs=1"),
        (["optim.max_steps=null", "optim.max_epochs=0"], "optim.max_epochs=0"),
        (["data.noise.misaligned=1.5"], "data.noise.misaligned=1.5: allowed values: a number >= 0 and <= 1"),
    ],
)
def test_bad_training_length_or_noise_stops_before_loading(args, expected, tmp_path):
    p = run_cli(["mfti_lightning.cli.train", "logger=none", *args], cwd=tmp_path, timeout=120)
    assert p.returncode != 0 and expected in p.stderr, p.stderr[-2000:]
    assert "Loading weights" not in p.stderr


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_epochs_give_steps_from_the_sampler(tmp_path):
    """2 epochs with global batch 8 = micro 4 x accumulation 2: steps = 2 x (full micro batches per epoch) / 2."""
    args = ["mfti_lightning.cli.train", "logger=none", "optim.max_steps=null", "optim.max_epochs=2",
            "num_examples.n=20", "optim.global_batch_size=8", "optim.micro_batch_size=4", "eval.val_every_n_steps=100",
            "lang_pairs.test_size=1", "eval.max_new_tokens=4", "eval.num_beams=1", "checkpoint.export=false"]  # fmt: skip
    p = run_cli(args, cwd=tmp_path, timeout=350)
    assert p.returncode == 0, p.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    r = json.loads((run_dir / "results.json").read_text())
    length = r["training_length"]
    kept = r["data"]["tokenization"]["kept"]
    assert length["micro_batches_per_epoch_per_rank"] == kept // 4  # one chunk: every full micro batch of 4
    assert length["max_steps"] == -(-2 * (kept // 4) // 2) == r["training"]["steps"]


# ---- data.noise.misaligned ----------------------------------------------------------------------------------
def test_misalign_replaces_the_fraction_deterministically():
    from mfti_lightning.data.prepare import misalign

    pairs = [(f"s{i}", f"t{i}") for i in range(50)]
    out, k = misalign(pairs, 0.2, seed=7)
    assert k == 10 and out == misalign(pairs, 0.2, seed=7)[0]
    assert [s for s, _ in out] == [s for s, _ in pairs]  # sources and order kept
    changed = [i for i, (a, b) in enumerate(zip(pairs, out)) if a != b]
    assert len(changed) == 10  # every chosen line got another line's target, never its own
    assert all(out[i][1] in {t for _, t in pairs} for i in changed)
    assert misalign(pairs, 0.2, seed=8)[0] != out
    assert misalign(pairs, 0.0, seed=7) == (pairs, 0) and misalign(pairs, 1.0, seed=1)[1] == 50
    with pytest.raises(ConfigError, match="between 0 and 1"):
        misalign(pairs, 1.5, seed=1)


def test_noise_option_in_training_examples_and_cache_key(tmp_path):
    from mfti_lightning.core.template import from_config
    from mfti_lightning.data.prepare import data_hash, training_examples

    clean = compose(["num_examples.n=40"], tmp_path / "a")
    noisy = compose(["num_examples.n=40", "data.noise.misaligned=0.25"], tmp_path / "b")
    t = from_config(clean.template)
    a, _ = training_examples(clean, t)
    b, report = training_examples(noisy, t)
    assert [e["source"] for e in a] == [e["source"] for e in b]
    differ = sum(x["target"] != y["target"] for x, y in zip(a, b))
    assert differ == 3 * 10 and all(d["misaligned"] == 10 for d in report["directions"].values())
    assert all(y["text"].endswith(y["target"]) for y in b)  # the rendered example carries the new target
    assert data_hash(clean, t) != data_hash(noisy, t)  # the prepared-data cache never mixes the two
