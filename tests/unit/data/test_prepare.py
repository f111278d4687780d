"""From config to training data: corpora, exclusions, errors, the cache, and the mfti-prepare CLI."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from conftest import compose, run_cli

from mfti_lightning.core.errors import DataError
from mfti_lightning.core.results import read_jsonl
from mfti_lightning.core.template import from_config
from mfti_lightning.data import cache, corpora, prepare

DATA = Path(__file__).resolve().parents[2] / "data"  # tests/data
TATOEBA = "'" + str(DATA / "tatoeba" / "tatoeba.{pair}") + "'"  # quoted: Hydra parses {...}


def _cfg(tmp_path, *overrides):
    return compose([f"data.cache_dir={tmp_path / 'cache'}", *overrides], tmp_path / "run")


def test_moses_corpus_sampling_and_rendering(tmp_path):
    cfg = _cfg(
        tmp_path,
        "data=pairs",
        f"data.corpora.0.path={TATOEBA}",
        "lang_pairs=custom",
        "lang_pairs.train=[sw-en,en-sw]",
        "num_examples.n=100",
    )
    t = from_config(cfg.template)
    examples, report = prepare.training_examples(cfg, t)
    assert len(examples) == 200 and report["directions"]["sw-en"]["sampled"] == 100
    ex = next(e for e in examples if e["src_lang"] == "sw")
    assert ex["prompt"] == t.render_prefix(ex["source"], "sw", "en")
    assert ex["text"] == ex["prompt"] + " " + ex["target"]
    assert set(ex) >= {"src_lang", "tgt_lang", "source", "target", "prompt", "text"}
    # same seed, same sample; another seed, another sample
    assert prepare.training_examples(cfg, t)[0] == examples
    other = _cfg(
        tmp_path,
        "data=pairs",
        f"data.corpora.0.path={TATOEBA}",
        "lang_pairs=custom",
        "lang_pairs.train=[sw-en,en-sw]",
        "num_examples.n=100",
        "seed=7",
    )
    assert prepare.training_examples(other, t)[0] != examples


def test_flores_sentences_are_excluded_from_training(tmp_path):
    """A corpus that contains FLORES dev/devtest lines: they never reach the training data."""
    flores_de, flores_en = (corpora.read_flores(None, s, c) for s, c in (("devtest", "de"), ("devtest", "en")))
    dev_de, dev_en = corpora.read_flores(None, "dev", "de"), corpora.read_flores(None, "dev", "en")
    news = [
        Path(DATA / f"newstest/newstest2014.de-en.{c}").read_text(encoding="utf-8").splitlines()
        for c in "de en".split()
    ]
    (tmp_path / "mix.de").write_text("\n".join(news[0] + flores_de[:30] + dev_de[:30]) + "\n", encoding="utf-8")
    (tmp_path / "mix.en").write_text("\n".join(news[1] + flores_en[:30] + dev_en[:30]) + "\n", encoding="utf-8")
    cfg = _cfg(
        tmp_path,
        "data=pairs",
        f"data.corpora.0.path={tmp_path / 'mix'}",
        "lang_pairs=custom",
        "lang_pairs.train=[de-en]",
        "num_examples.n=150",
        "num_examples.allow_fewer=true",
    )
    examples, report = prepare.training_examples(cfg, from_config(cfg.template))
    flores = set(flores_de + flores_en + dev_de + dev_en)
    assert not any(e["source"] in flores or e["target"] in flores for e in examples)
    assert report["directions"]["de-en"]["dropped"]["in_eval_sets"] == 60
    assert report["fewer_than_requested"] == {"de-en": len(examples)} and len(examples) <= 100


def test_num_examples_larger_than_available(tmp_path):
    over = [
        "data=pairs",
        f"data.corpora.0.path={TATOEBA}",
        "lang_pairs=custom",
        "lang_pairs.train=[sw-en]",
        "num_examples.n=1000",
    ]
    with pytest.raises(DataError, match=r"sw-en: num_examples.n=1000 but only \d+ .*allow_fewer=true"):
        prepare.training_examples(_cfg(tmp_path, *over), from_config(_cfg(tmp_path, *over).template))
    cfg = _cfg(tmp_path, *over, "num_examples.allow_fewer=true")
    examples, report = prepare.training_examples(cfg, from_config(cfg.template))
    assert report["fewer_than_requested"]["sw-en"] == len(examples) == report["directions"]["sw-en"]["sampled"]
    assert 300 < len(examples) < 387


def test_direction_without_corpus_is_a_clear_error(tmp_path):
    cfg = _cfg(
        tmp_path,
        "data=pairs",
        f"data.corpora.0.path={TATOEBA}",
        "lang_pairs=custom",
        "lang_pairs.train=[sw-en,de-fr]",
        "num_examples.n=10",
    )
    with pytest.raises(DataError, match=r"No training corpus for de-fr.*tatoeba.de-fr.*X-Y directions"):
        prepare.training_examples(cfg, from_config(cfg.template))


def test_direction_with_no_data_after_filtering(tmp_path):
    (tmp_path / "c.de").write_text("ein\nzwei\n", encoding="utf-8")
    (tmp_path / "c.en").write_text(
        "a very very very long english line here\nanother long line that is long\n", encoding="utf-8"
    )
    cfg = _cfg(
        tmp_path,
        "data=pairs",
        f"data.corpora.0.path={tmp_path / 'c'}",
        "lang_pairs=custom",
        "lang_pairs.train=[de-en]",
        "num_examples.n=10",
    )
    with pytest.raises(DataError, match=r"de-en: no pairs left after filtering .*length_ratio': 2"):
        prepare.training_examples(cfg, from_config(cfg.template))


def test_cache_hit_and_key(tmp_path):
    cfg = _cfg(tmp_path, "num_examples.n=20")
    t = from_config(cfg.template)
    ex1, r1 = prepare.load_or_prepare(cfg, t)
    ex2, r2 = prepare.load_or_prepare(cfg, t)
    assert not r1["cache"]["hit"] and r2["cache"]["hit"] and ex1 == ex2 and len(ex1) == 60
    assert r2["directions"] == r1["directions"]
    # model, shots and the optimizer do not change the data; the template, n and seed do
    same = _cfg(tmp_path, "num_examples.n=20", "shots=k4", "optim.optimizer.lr=1e-5")
    assert prepare.data_hash(same, t) == prepare.data_hash(cfg, t)
    for change in (["num_examples.n=21"], ["seed=1"], ["template=t2_translation_tgt"], ["data.filters.max_tokens=50"]):
        c = _cfg(tmp_path, "num_examples.n=20", *change)
        assert prepare.data_hash(c, from_config(c.template)) != prepare.data_hash(cfg, t), change


def test_concurrent_writers_leave_one_complete_entry(tmp_path):
    cfg = _cfg(tmp_path, "num_examples.n=30")
    t = from_config(cfg.template)
    out, errors = [], []

    def job():
        try:
            out.append(prepare.load_or_prepare(cfg, t)[0])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=job) for _ in range(4)]
    [th.start() for th in threads]
    [th.join(60) for th in threads]
    assert not errors and len(out) == 4 and all(o == out[0] for o in out)
    entries = [p for p in (tmp_path / "cache").iterdir()]
    assert len(entries) == 1 and not entries[0].name.startswith(".")
    assert len(read_jsonl(entries[0] / cache.EXAMPLES_FILE)) == 90


@pytest.mark.subprocess
@pytest.mark.timeout(180)
def test_mfti_prepare_cli_on_shipped_data(tmp_path):
    p = run_cli(
        ["mfti_lightning.cli.prepare", "num_examples.n=40", "lang_pairs.train=[de-en,en-fr]"],
        cwd=tmp_path,
        timeout=170,
        env={"MFTI_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "de-en" in p.stdout and "in_eval_sets" in p.stdout and "total: 80 examples" in p.stdout
    out = next((tmp_path / "outputs" / "prepare" / "runs").iterdir()) / "prepared"
    rows = read_jsonl(out / "train.jsonl")
    assert len(rows) == 80 and {r["src_lang"] for r in rows} == {"de", "en"}
    assert json.loads((out / "report.json").read_text())["directions"]["en-fr"]["sampled"] == 40
    assert (out / "template.json").exists()
    bad = run_cli(["mfti_lightning.cli.prepare", "lang_pairs.train=[de-xx]"], cwd=tmp_path, timeout=170)
    assert bad.returncode != 0 and "Unknown language code 'xx'" in bad.stderr


@pytest.mark.subprocess
@pytest.mark.timeout(300)
@pytest.mark.parametrize("longer", ["de", "en"])
def test_misaligned_corpus_stops_prepare_and_train(tmp_path, longer):
    """<path>.de with 3 lines and <path>.en with 2 (and the other way round): mfti-prepare and mfti-train fail with
    both counts, and nothing reaches the prepared-data cache."""
    (tmp_path / "c.de").write_text(
        "Hallo Welt\nGuten Tag\nDanke\n" if longer == "de" else "Hallo Welt\nGuten Tag\n", encoding="utf-8"
    )
    (tmp_path / "c.en").write_text(
        "Hello world\nGood day\nThanks\n" if longer == "en" else "Hello world\nGood day\n", encoding="utf-8"
    )
    cache = tmp_path / "cache"
    args = [
        "data=pairs",
        f"data.corpora.0.path={tmp_path / 'c'}",
        "lang_pairs=custom",
        "lang_pairs.train=[de-en]",
        "num_examples.n=2",
        "logger=none",
    ]
    shorter = "en" if longer == "de" else "de"
    for module in ("mfti_lightning.cli.prepare", "mfti_lightning.cli.train"):
        p = run_cli([module, *args], cwd=tmp_path, timeout=280, env={"MFTI_CACHE_DIR": str(cache)})
        assert p.returncode != 0, (module, p.stdout[-2000:])
        assert f"c.{shorter} ends after line 2 (2 lines)" in p.stderr and f"c.{longer} has 3 lines" in p.stderr, (
            module,
            p.stderr[-3000:],
        )
        assert not list(cache.glob("prepared/*")), "a failed corpus reached the prepared-data cache"
        assert not list(tmp_path.rglob("train.jsonl"))


def test_bad_tsv_row_writes_nothing_to_the_cache(tmp_path):
    import gzip

    (tmp_path / "WikiMatrix.de-en.tsv.gz").write_bytes(gzip.compress(b"1.2\tHallo\tHello\n1.3\tnur zwei\n"))
    cfg = _cfg(
        tmp_path,
        "data=wikimatrix",
        f"paths.corpora_dir={tmp_path}",
        "lang_pairs=custom",
        "lang_pairs.train=[de-en]",
        "num_examples.n=1",
        "data.corpora.0.min_score=0",
    )
    with pytest.raises(DataError, match=r"WikiMatrix.de-en.tsv.gz:2: expected score<TAB>src<TAB>tgt"):
        prepare.load_or_prepare(cfg, from_config(cfg.template))
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())
