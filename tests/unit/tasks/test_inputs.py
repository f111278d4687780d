"""Inputs checked before a job runs (mfti_lightning.tasks.inputs): corpora, FLORES files, model, SPM model."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import pytest
from conftest import compose

from mfti_lightning.assets import FLORES101_DIR
from mfti_lightning.core.errors import InputsError
from mfti_lightning.tasks import inputs

DATA = Path(__file__).resolve().parents[2] / "data"  # tests/data


def _problems(tmp_path, *overrides, offline=True, env=None):
    cfg = compose(list(overrides), tmp_path / "run")
    return inputs.check_inputs(cfg, offline, env)


def _fake_hub_cache(hf_home: Path, repo: str) -> None:
    """What `huggingface-cli download <repo>` leaves in $HF_HOME/hub, as far as try_to_load_from_cache looks."""
    d = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    (d / "refs").mkdir(parents=True)
    (d / "refs" / "main").write_text("0" * 40)
    (d / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (d / "snapshots" / ("0" * 40) / "config.json").write_text("{}")


def test_the_demo_has_everything(tmp_path):
    assert _problems(tmp_path) == []


def test_missing_flores_eval_file(tmp_path):
    root = tmp_path / "flores"
    shutil.copytree(FLORES101_DIR, root)
    (root / "devtest" / "fra.devtest").unlink()
    problems = _problems(tmp_path, f"data.flores_root={root}", "num_examples.n=0")
    assert len(problems) == 1, problems
    assert "FLORES devtest for fr (test set of" in problems[0] and str(root / "devtest" / "fra.devtest") in problems[0]
    assert "data.flores_root" in problems[0]
    # a root that is not there at all: one problem, not one per file
    problems = _problems(tmp_path, f"data.flores_root={tmp_path / 'nothing'}")
    assert len(problems) == 1 and "is not a directory" in problems[0], problems


def test_missing_flores_file_stops_the_job_before_the_model(tmp_path, monkeypatch):
    from mfti_lightning.model import modeling
    from mfti_lightning.tasks.train import train

    root = tmp_path / "flores"
    shutil.copytree(FLORES101_DIR, root)
    (root / "dev" / "deu.dev").unlink()
    monkeypatch.setattr(modeling, "check_loadable", lambda *a, **k: pytest.fail("model looked up"))
    cfg = compose([f"data.flores_root={root}", "logger=none"], tmp_path / "run")
    with pytest.raises(InputsError, match=r"FLORES dev for de .*deu.dev not found") as e:
        train(cfg)
    assert len(e.value.problems) == 1


def test_missing_model_dir(tmp_path):
    (problem,) = _problems(tmp_path, "model=xglm-564m", f"model.name_or_path={tmp_path / 'no-model'}")
    assert f"model.name_or_path={tmp_path / 'no-model'} does not exist" in problem
    (tmp_path / "empty").mkdir()
    (problem,) = _problems(tmp_path, "model=xglm-564m", f"model.name_or_path={tmp_path / 'empty'}")
    assert "without config.json" in problem
    # the tiny model (model.build) is built on first use: a missing directory is fine
    assert _problems(tmp_path, f"model.name_or_path={tmp_path / 'tiny-not-built'}") == []


def test_hub_model_offline_needs_the_cache_entry(tmp_path):
    env = {"HF_HOME": str(tmp_path / "hf")}
    (problem,) = _problems(tmp_path, "model=xglm-564m", env=env)
    assert "facebook/xglm-564M" in problem and "offline" in problem and "mfti-prefetch" in problem
    assert str(tmp_path / "hf" / "hub") in problem
    assert _problems(tmp_path, "model=xglm-564m", offline=False, env=env) == []  # nodes online: the hub serves it
    _fake_hub_cache(tmp_path / "hf", "facebook/xglm-564M")
    assert _problems(tmp_path, "model=xglm-564m", env=env) == []


def test_spbleu_needs_the_spm_model_only_when_asked_for(tmp_path):
    sacrebleu = tmp_path / "sacrebleu"
    env = {"SACREBLEU": str(sacrebleu)}
    assert _problems(tmp_path, "eval.bleu_tokenize=auto", env=env) == []  # auto falls back to BLEU
    assert _problems(tmp_path, "eval.bleu_tokenize=13a", env=env) == []
    (problem,) = _problems(tmp_path, "eval.bleu_tokenize=flores101", env=env)
    assert "sacrebleu_tokenizer_spm.model" in problem and f"SACREBLEU={sacrebleu} mfti-prefetch" in problem
    (problem,) = _problems(tmp_path, "eval.bleu_tokenize=flores200", env=env)
    assert "flores200" in problem and "mfti-prefetch eval.bleu_tokenize=flores200" in problem
    (sacrebleu / "models").mkdir(parents=True)
    (sacrebleu / "models" / "sacrebleu_tokenizer_spm.model").write_bytes(b"x")
    assert _problems(tmp_path, "eval.bleu_tokenize=flores101", env=env) == []


def test_corpus_first_lines(tmp_path):
    wm = ["data=wikimatrix", f"paths.corpora_dir={tmp_path}", "lang_pairs=custom", "lang_pairs.train=[de-en,en-fr]"]
    (tmp_path / "WikiMatrix.de-en.tsv.gz").write_bytes(gzip.compress(b"high\tHallo\tHello\n"))
    (tmp_path / "MultiCCAligned.en-fr.en").write_bytes(b"Hello\n")
    (tmp_path / "MultiCCAligned.en-fr.fr").write_bytes("Caf\xe9\n".encode("latin-1"))
    problems = _problems(tmp_path, *wm)
    assert len(problems) == 2, problems
    assert "training corpus for de-en" in problems[0] and "WikiMatrix.de-en.tsv.gz:1: score 'high'" in problems[0]
    assert "training corpus for en-fr" in problems[1] and "MultiCCAligned.en-fr.fr:1: undecodable" in problems[1]
    (tmp_path / "WikiMatrix.de-en.tsv.gz").write_bytes(gzip.compress(b"1.1\tHallo\tHello\n"))
    (tmp_path / "MultiCCAligned.en-fr.fr").write_text("Bonjour\n", encoding="utf-8")
    assert _problems(tmp_path, *wm) == []
    (tmp_path / "MultiCCAligned.en-fr.fr").write_text("", encoding="utf-8")
    (problem,) = _problems(tmp_path, *wm)
    assert "MultiCCAligned.en-fr.fr is empty" in problem
    assert _problems(tmp_path, *wm, "num_examples=n0") == []  # no training: no corpus needed


def test_every_problem_of_a_job_at_once(tmp_path):
    problems = _problems(
        tmp_path,
        "data=wikimatrix",
        f"paths.corpora_dir={tmp_path}",
        "model=xglm-564m",
        f"model.name_or_path={tmp_path / 'm'}",
        "eval.bleu_tokenize=flores101",
        env={"SACREBLEU": str(tmp_path / "s")},
    )
    assert len(problems) == 5, problems
    assert sum("training corpus for" in p for p in problems) == 3  # demo: de-en, en-fr, fr-de
    assert sum("does not exist" in p for p in problems) == 1 and sum("SentencePiece" in p for p in problems) == 1
    with pytest.raises(InputsError) as e:
        inputs.require_inputs(compose(["data=wikimatrix", f"paths.corpora_dir={tmp_path}"], tmp_path / "run"))
    assert len(e.value.problems) == 3 and str(e.value).startswith("3 missing or unreadable input(s):")


def test_slurm_jobs_are_checked_in_the_node_environment(tmp_path, monkeypatch):
    """hydra.launcher.setup exports HF_HUB_OFFLINE=1 on the nodes even when the login node is online."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert not inputs.is_offline(inputs.node_environment(compose(["model=xglm-564m"], tmp_path / "run")))
    env = inputs.node_environment(compose(["model=xglm-564m", "hydra/launcher=slurm_cpu"], tmp_path / "run"))
    assert inputs.is_offline(env) and env["HF_HOME"] == str(tmp_path / "hf")
    with pytest.raises(InputsError, match="facebook/xglm-564M"):
        inputs.require_inputs(compose(["model=xglm-564m", "hydra/launcher=slurm_cpu"], tmp_path / "run"))
    online = compose(["model=xglm-564m", "hydra/launcher=slurm_cpu", "+cluster.hf_hub_offline=0"], tmp_path / "run")
    assert not inputs.is_offline(inputs.node_environment(online))
    inputs.require_inputs(online)


def test_plan_reports_missing_flores_file_and_model_dir(tmp_path, capsys):
    """mfti-plan exits 2 with every missing input of every job: a FLORES eval file and a model directory."""
    from mfti_lightning.cli.plan import main

    root = tmp_path / "flores"
    shutil.copytree(FLORES101_DIR, root)
    (root / "devtest" / "fra.devtest").unlink()
    rc = main(
        ["-", "model=xglm-564m", f"model.name_or_path={tmp_path / 'no-model'}", f"data.flores_root={root}", "seed=1,2"]
    )
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "2 of 2 job(s) of this sweep would fail" in err
    assert re.search(r"job #0 \(.*seed=1\):", err) and re.search(r"job #1 \(.*seed=2\):", err), err
    assert "these 2 jobs: 2 problem(s):" in err, err
    assert str(root / "devtest" / "fra.devtest") in err and f"{tmp_path / 'no-model'} does not exist" in err
