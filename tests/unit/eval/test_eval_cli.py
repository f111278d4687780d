"""mfti-eval end to end (tiny model), sacrebleu CLI agreement, resume, bad input, k-shot prompts, mfti-analyze."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO, compose, run_cli

from mfti_lightning.core.errors import ConfigError, DataError, ModelLoadError

FAST = ["logger=none", "lang_pairs.test_size=5", "eval.max_new_tokens=10"]


def ecfg(tmp_path, *overrides):
    return compose(list(overrides), tmp_path / "run", config_name="eval")


# ---- end to end -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def eval_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("eval")
    p = run_cli(["mfti_lightning.cli.eval", *FAST], cwd=cwd, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    (run_dir,) = list((cwd / "outputs" / "eval" / "runs").iterdir())
    return run_dir


@pytest.mark.slow
def test_results_schema(eval_run):
    r = json.loads((eval_run / "results.json").read_text())
    assert r["status"] == "completed" and r["task"] == "eval" and r["eval_split"] == "devtest"
    assert r["swept"]["shots"] == 0 and r["swept"]["model"] == "tiny"
    dirs = ["de-en", "en-fr", "zh-en"]
    for d in dirs:
        for metric in ("bleu", "chrf", "chrf++"):
            assert isinstance(r["metrics"][f"test/{metric}/{d}"], float)
            assert "version:" in r["signatures"][f"test/{metric}/{d}"]
        e = r["errors"]["test"][d]
        assert e["n"] == 5 and sum(e["counts"].values()) == 5
        assert 0 <= r["metrics"][f"test/rate_off_target/{d}"] <= 1
        lines = [json.loads(x) for x in (eval_run / "translations" / f"{d}.jsonl").read_text().splitlines()]
        assert len(lines) == 5 and {"source", "reference", "prompt", "hypothesis", "error"} <= lines[0].keys()
    assert r["partitions"]["seen"] == dirs and "test/chrf/partition/seen" in r["metrics"]
    assert [row["direction"] for row in r["direction_rows"]["test"]] == dirs


@pytest.mark.slow
def test_results_json_is_the_documented_record(eval_run):
    """Every key mfti-eval's writers put in results.json is declared in core/results_schema.py, with its type."""
    from mfti_lightning.core.results_schema import RunResults, problems

    r = json.loads((eval_run / "results.json").read_text())
    assert problems(r) == []
    typed = RunResults.read(eval_run)
    assert (typed.eval_split, typed.world_size, typed.model_source.kind) == ("devtest", 1, "dir")
    assert typed.directions.eval == ["de-en", "en-fr", "zh-en"] and typed.wandb is None  # logger=none


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_local_ranks_translate_each_sentence_once(eval_run, tmp_path):
    """mfti-eval trainer.devices=2 on CPU: two forked ranks, each sentence translated exactly once, and the same
    translations and scores as the one-process run (greedy decoding is deterministic)."""
    p = run_cli(["mfti_lightning.cli.eval", *FAST, "trainer=ddp_cpu"], cwd=tmp_path, timeout=280)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    (run_dir,) = list((tmp_path / "outputs" / "eval" / "runs").iterdir())
    one, two = (json.loads((d / "results.json").read_text()) for d in (eval_run, run_dir))
    assert two["status"] == "completed" and two["world_size"] == 2 and one["world_size"] == 1
    for d in ("de-en", "en-fr", "zh-en"):
        a = [json.loads(x) for x in (eval_run / "translations" / f"{d}.jsonl").read_text().splitlines()]
        b = [json.loads(x) for x in (run_dir / "translations" / f"{d}.jsonl").read_text().splitlines()]
        assert [x["source"] for x in b] == [x["source"] for x in a]  # every sentence once, in order
        assert [x["hypothesis"] for x in b] == [x["hypothesis"] for x in a]
    for k, v in one["metrics"].items():
        assert two["metrics"][k] == pytest.approx(v, abs=1e-9), k


@pytest.mark.slow
def test_scores_equal_the_sacrebleu_command_line(eval_run, tmp_path):
    r = json.loads((eval_run / "results.json").read_text())
    for d in ("de-en", "zh-en"):
        lines = [json.loads(x) for x in (eval_run / "translations" / f"{d}.jsonl").read_text().splitlines()]
        _check_cli(tmp_path, d, [x["hypothesis"] for x in lines], [x["reference"] for x in lines], r["metrics"], "test")


def _sacrebleu_cli(ref, hyp, *args) -> str:
    """sacrebleu's own command line on one reference and hypothesis file (JSON output, 4 decimals)."""
    cmd = [sys.executable, "-m", "sacrebleu", str(ref), "-i", str(hyp), *args, "-f", "json", "-w", "4"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def _check_cli(tmp_path, d, hyps, refs, metrics, split):
    hyp, ref = tmp_path / f"{d}.hyp", tmp_path / f"{d}.ref"
    hyp.write_text("\n".join(hyps) + "\n", encoding="utf-8")
    ref.write_text("\n".join(refs) + "\n", encoding="utf-8")
    tok = "zh" if d.endswith("-zh") else "13a"
    out = _sacrebleu_cli(ref, hyp, "-m", "bleu", "chrf", "--chrf-word-order", "0", "--tokenize", tok)
    got = {x["name"]: x["score"] for x in json.loads(out)}
    assert metrics[f"{split}/bleu/{d}"] == pytest.approx(got["BLEU"], abs=1e-3)
    assert metrics[f"{split}/chrf/{d}"] == pytest.approx(got["chrF2"], abs=1e-3)
    out = _sacrebleu_cli(ref, hyp, "-m", "chrf", "--chrf-word-order", "2")
    assert metrics[f"{split}/chrf++/{d}"] == pytest.approx(json.loads(out)["score"], abs=1e-3)


@pytest.mark.subprocess
def test_nonzero_scores_equal_the_sacrebleu_command_line(tmp_path):
    """Real BLEU values (not the ~0 of a random model), Chinese tokenizer included."""
    from mfti_lightning.core.template import from_config
    from mfti_lightning.data.prepare import eval_sets
    from mfti_lightning.eval.decode_and_score import build_prompts, score_translations

    cfg = ecfg(tmp_path, "lang_pairs=custom", "lang_pairs.train=[de-en,en-zh]", "lang_pairs.test_size=30")
    sets = eval_sets(cfg, "test")
    prompts = build_prompts(sets, from_config(cfg.template), 0, 0)
    # hypotheses: references with words / characters dropped, so that BLEU is somewhere in the middle
    hyps = []
    for si, j, _ in prompts:
        ref = sets[si].references[j]
        words = ref.split()
        hyps.append(ref[: len(ref) * 2 // 3] if si == 1 else " ".join(words[: len(words) * 2 // 3]))
    scored = score_translations(sets, prompts, hyps, "test")
    assert 5 < scored.metrics["test/bleu/de-en"] < 95 and 5 < scored.metrics["test/bleu/en-zh"] < 95
    assert "tok:zh" in scored.signatures["test/bleu/en-zh"]
    n = len(sets[0].sources)
    _check_cli(tmp_path, "de-en", hyps[:n], sets[0].references, scored.metrics, "test")
    _check_cli(tmp_path, "en-zh", hyps[n:], sets[1].references, scored.metrics, "test")


@pytest.mark.slow
def test_mfti_analyze_recomputes_offline(eval_run):
    r = json.loads((eval_run / "results.json").read_text())
    before = r["errors"]["test"]
    r["errors"] = {}
    r["metrics"] = {k: v for k, v in r["metrics"].items() if "/rate_" not in k}
    (eval_run / "results.json").write_text(json.dumps(r))
    f = eval_run / "translations" / "de-en.jsonl"
    f.write_text(
        "".join(
            json.dumps({k: v for k, v in json.loads(x).items() if k != "error"}) + "\n"
            for x in f.read_text().splitlines()
        )
    )
    p = run_cli(["mfti_lightning.cli.analyze", str(eval_run)], cwd=eval_run, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    r2 = json.loads((eval_run / "results.json").read_text())
    assert r2["errors"]["test"] == before and "test/rate_other/avg" in r2["metrics"]
    assert all("error" in json.loads(x) for x in f.read_text().splitlines())


@pytest.mark.subprocess
def test_config_commands_are_torch_free():
    code = (
        "import sys, runpy; sys.argv = ['mfti-eval', '--cfg', 'job', 'ckpt_path=/x/last.ckpt'];\n"
        "try:\n    runpy.run_module('mfti_lightning.cli.eval', run_name='__main__')\n"
        "except SystemExit: pass\n"
        "print('HEAVY', [m for m in ('torch', 'pytorch_lightning', 'transformers') if m in sys.modules],"
        " file=sys.stderr)"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert "HEAVY []" in p.stderr, p.stderr[-2000:]
    assert "ckpt_path: /x/last.ckpt" in p.stdout and "task_name: eval" in p.stdout


# ---- resume ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_resume_redoes_only_missing_directions(tmp_path, tiny_model_dir, tiny_tokenizer, monkeypatch):
    from mfti_lightning.core.template import from_config
    from mfti_lightning.data.prepare import eval_sets
    from mfti_lightning.eval import generation
    from mfti_lightning.eval.decode_and_score import DecodeSettings, evaluate
    from mfti_lightning.model.modeling import load_model

    cfg = ecfg(tmp_path, "lang_pairs=custom", "lang_pairs.train=[de-en,en-fr,fr-de]", "lang_pairs.test_size=3")
    sets, template = eval_sets(cfg, "test"), from_config(cfg.template)
    model = load_model(str(tiny_model_dir))
    out = tmp_path / "run"
    calls = []
    real = generation.generate_batch

    def dying(model, tok, tmpl, rows, **kw):
        calls.append(len(rows))
        if len(calls) > 2:  # two directions finish (one batch each), the job dies in the third
            raise KeyboardInterrupt("simulated preemption")
        return real(model, tok, tmpl, rows, **kw)

    monkeypatch.setattr(generation, "generate_batch", dying)
    decode = DecodeSettings.from_config(cfg).replace(num_beams=1, max_new_tokens=6, analyze_errors=True)
    kw = dict(split="test", decode=decode, out_dir=out)
    with pytest.raises(KeyboardInterrupt):
        evaluate(model, tiny_tokenizer, template, sets, **kw)
    assert sorted(p.stem for p in (out / "eval_state" / "test").glob("*.json")) == ["de-en", "en-fr"]
    # the finished direction is reused as saved: mark it, and check the mark survives the resume
    f = out / "translations" / "de-en.jsonl"
    f.write_text(f.read_text().replace('"hypothesis": "', '"hypothesis": "KEPT'))
    calls.clear()
    monkeypatch.setattr(generation, "generate_batch", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    result = evaluate(model, tiny_tokenizer, template, sets, **kw)
    assert len(calls) == 1 and result.resumed == ["de-en", "en-fr"]
    assert all(r["hypothesis"].startswith("KEPT") for r in result.rows["de-en"])
    assert set(result.rows) == {"de-en", "en-fr", "fr-de"} and result.errors["fr-de"]["n"] == 3
    assert result.metrics["test/chrf/avg"] == pytest.approx(
        sum(result.metrics[f"test/chrf/{d}"] for d in result.rows) / 3
    )
    # other settings (beam 2): nothing is reused
    calls.clear()
    result = evaluate(model, tiny_tokenizer, template, sets, **(kw | {"decode": decode.replace(num_beams=2)}))
    assert result.resumed == [] and len(calls) == 3


# ---- bad input ------------------------------------------------------------------------------------------
def test_checkpoint_that_does_not_match_the_model(tmp_path, tiny_model_dir):
    import torch

    from mfti_lightning.model.source import resolve_checkpoint

    ckpt = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {"model.model.embed_tokens.weight": torch.zeros(10, 8)}}, ckpt)
    with pytest.raises(ModelLoadError, match="does not match.*shape mismatch.*embed_tokens"):
        resolve_checkpoint(ecfg(tmp_path, f"ckpt_path={ckpt}"))
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_checkpoint(ecfg(tmp_path, f"ckpt_path={tmp_path / 'nope.ckpt'}"))
    (tmp_path / "sharded.ckpt").mkdir()
    with pytest.raises(ModelLoadError, match="sharded.*Consolidate"):
        resolve_checkpoint(ecfg(tmp_path, f"ckpt_path={tmp_path / 'sharded.ckpt'}"))


def test_lightning_checkpoint_is_loaded(tmp_path, tiny_model_dir):
    import torch

    from mfti_lightning.eval.decoders import load_for_eval
    from mfti_lightning.model.modeling import load_model
    from mfti_lightning.model.source import resolve_checkpoint

    model = load_model(str(tiny_model_dir))
    state = {f"model.{k}": v.clone() for k, v in model.state_dict().items()}
    state["model.model.layers.0.fc1.weight"] += 1.0
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    torch.save({"state_dict": state, "global_step": 7}, ckpt)
    cfg = ecfg(tmp_path, f"ckpt_path={ckpt}")
    info = resolve_checkpoint(cfg)
    assert info["kind"] == "lightning" and info["run_dir"] == tmp_path / "run"
    loaded, _ = load_for_eval(cfg, info, torch.device("cpu"))
    assert torch.equal(loaded.model.layers[0].fc1.weight, state["model.model.layers.0.fc1.weight"])
    assert not loaded.training


def test_directions_the_eval_set_lacks(tmp_path):
    from mfti_lightning.data.prepare import eval_sets

    with pytest.raises(DataError, match="Basque.*not part of flores101.*flores200"):
        eval_sets(ecfg(tmp_path, "lang_pairs=custom", "lang_pairs.train=[eu-en]"), "test")
    (tmp_path / "fl" / "devtest").mkdir(parents=True)
    with pytest.raises(DataError, match="not found.*data.flores_root"):
        eval_sets(ecfg(tmp_path, f"data.flores_root={tmp_path / 'fl'}"), "test")


def test_shots_larger_than_the_pool(tmp_path):
    from mfti_lightning.data.prepare import eval_sets

    # evaluating the whole dev split leaves no dev sentence for demonstrations
    cfg = ecfg(tmp_path, "split=dev", "lang_pairs.val_size=null", "shots=k1")
    with pytest.raises(ConfigError, match="shots.k=1.*only 0 pairs.*Lower shots.k"):
        eval_sets(cfg, "val")


@pytest.mark.parametrize(
    "override,exc,match",
    [
        ("eval.bleu_tokenize=moses", ConfigError, "eval.bleu_tokenize='moses': allowed values: auto, lang_default"),
        ("split=test", ConfigError, "split='test': allowed values: devtest, dev"),
        ("model.name_or_path=/does/not/exist", ModelLoadError, "does not exist"),
    ],
)
def test_bad_input_fails_before_loading_a_model(tmp_path, monkeypatch, override, exc, match):
    from mfti_lightning.model import modeling
    from mfti_lightning.tasks.evaluate import evaluate_task

    monkeypatch.setattr(modeling, "load_model", lambda *a, **k: pytest.fail("model loaded before the check"))
    cfg = ecfg(tmp_path, "logger=none", "model=xglm-564m" if "name_or_path" in override else "logger=none", override)
    with pytest.raises(exc, match=match):
        evaluate_task(cfg)
    r = json.loads((tmp_path / "run" / "results.json").read_text())
    assert r["status"] == "failed" and match.split(".")[0].split("'")[0] in r["error"]


# ---- k-shot prompts -------------------------------------------------------------------------------------
def test_kshot_prompts_for_a_fixed_seed(tmp_path):
    from mfti_lightning.core.template import from_config
    from mfti_lightning.data.prepare import eval_sets
    from mfti_lightning.eval.decode_and_score import build_prompts

    cfg = ecfg(tmp_path, "shots=k2", "lang_pairs.test_size=4")
    sets, template = eval_sets(cfg, "test"), from_config(cfg.template)
    a = build_prompts(sets, template, 2, 42)
    assert a == build_prompts(sets, template, 2, 42)
    assert a != build_prompts(sets, template, 2, 43)
    es = sets[0]
    for _si, j, prompt in a[:4]:
        assert prompt.count("Translation: [German]:") == 3 and prompt.endswith(
            template.render_prefix(es.sources[j], "de", "en")
        )
        demos = [s for s, _ in es.pool if f"[German]: {s.strip()} [English]:" in prompt]
        assert len(demos) == 2 and es.sources[j] not in demos
    # pinned: the same demonstrations on every machine, Python version and rank (seeded per direction/sentence)
    first = a[0][2]
    assert first.startswith("Translation: [German]: Der Richter sagte Blake, es sei „fast unvermeidlich“"), first[:120]


# ---- mfti-prefetch --------------------------------------------------------------------------------------
def test_prefetch_plans_and_fetches_with_downloads_mocked(tmp_path, monkeypatch):
    import io
    import tarfile
    import urllib.request

    import huggingface_hub

    from mfti_lightning.cli import prefetch
    from mfti_lightning.eval import metrics

    monkeypatch.setattr(metrics, "sacrebleu_dir", lambda: tmp_path / "sb")
    root = tmp_path / "flores101"
    assets = prefetch.plan(["model=xglm-564m,xglm-7.5b", f"data.flores_root={root}", "eval.bleu_tokenize=flores200"])
    by_kind = {}
    for a in assets:
        by_kind.setdefault(a.kind, []).append(a)
    assert [a.source for a in by_kind["hf_model"]] == ["facebook/xglm-564M", "facebook/xglm-7.5B"]
    assert {a.target for a in by_kind["sacrebleu_spm"]} == {
        str(tmp_path / "sb/models/sacrebleu_tokenizer_spm.model"),
        str(tmp_path / "sb/models/flores200sacrebleuspm"),
    }
    assert by_kind["flores"][0].target == str(root)
    assert prefetch.plan([]) == [a for a in prefetch.plan([]) if a.kind == "sacrebleu_spm"]  # tiny: nothing else

    buf = io.BytesIO()  # a stand-in FLORES tarball with the real layout
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        data = b"Hallo\n"
        info = tarfile.TarInfo("flores101_dataset/dev/deu.dev")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    urls, repos = [], []

    def fake_urlopen(url, timeout=None):
        urls.append(url)
        return io.BytesIO(buf.getvalue() if url.endswith(".tar.gz") else b"spm-bytes")

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo, **kw: repos.append(repo))
    for a in assets:
        prefetch.fetch(a)
    assert repos == ["facebook/xglm-564M", "facebook/xglm-7.5B"]
    assert (tmp_path / "sb/models/sacrebleu_tokenizer_spm.model").read_bytes() == b"spm-bytes"
    assert (root / "dev" / "deu.dev").read_text() == "Hallo\n"
    n = len(urls)
    for a in assets:  # idempotent: nothing downloaded twice
        if a.kind != "hf_model":
            prefetch.fetch(a)
    assert len(urls) == n


@pytest.mark.subprocess
def test_prefetch_dry_run_cli(tmp_path):
    p = run_cli(["mfti_lightning.cli.prefetch", "--dry-run", "model=xglm-564m"], cwd=tmp_path, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "would fetch  hf_model       facebook/xglm-564M" in p.stdout
    assert "sacrebleu_tokenizer_spm.model" in p.stdout and "(dry run)" in p.stdout
