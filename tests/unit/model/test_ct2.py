"""eval.engine=ctranslate2: the XGLM conversion (logits equal Hugging Face's), the conversion cache, rank dealing,
greedy hypotheses of mfti-eval equal to eval.engine=hf, and the errors for a missing package / compute type."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import compose, run_cli

from mfti_lightning.core.errors import ConfigError
from mfti_lightning.core.template import Template

pytest.importorskip("ctranslate2")

T1 = Template(name="t1", prefix="Translation: [<srclang>]: <input> [<tgtlang>]:", paper_id=1)


@pytest.fixture(scope="module")
def sharp_model_dir(tiny_model_dir, tmp_path_factory):
    """The demo's tiny model with its matrices scaled up: a random model with peaked distributions, so that greedy
    and beam outputs differ from prompt to prompt (the untouched model repeats one token for every prompt)."""
    import torch

    from mfti_lightning.model.modeling import load_model, load_tokenizer

    out = tmp_path_factory.mktemp("sharp")
    model, tok = load_model(str(tiny_model_dir)), load_tokenizer(str(tiny_model_dir))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(8.0)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _prompts(n=16):
    from mfti_lightning.assets import FLORES101_DIR

    de = (FLORES101_DIR / "devtest" / "deu.devtest").read_text(encoding="utf-8").splitlines()
    return [T1.render_prompt(" ".join(de[i].split()[: 3 + 2 * i]), "de", "en") for i in range(n)]


@pytest.fixture(scope="module")
def engine(sharp_model_dir, tmp_path_factory):
    from mfti_lightning.eval.ct2_generation import load_engine
    from mfti_lightning.model.modeling import load_tokenizer

    tok = load_tokenizer(str(sharp_model_dir))
    cache = tmp_path_factory.mktemp("ct2cache")
    return load_engine(str(sharp_model_dir), tok, cache_dir=str(cache), device="cpu", threads=1), tok, cache


@pytest.mark.slow
def test_xglm_conversion_gives_the_same_logits(engine, sharp_model_dir):
    """The converted decoder (positions from weights[2:], sqrt(d_model) embedding scale, pre-norm layers, final
    layer norm, tied projection) scores a prompt like XGLMForCausalLM."""
    import numpy as np
    import torch

    from mfti_lightning.model.modeling import load_model

    eng, tok, _ = engine
    model = load_model(str(sharp_model_dir))
    for prompt in _prompts(3):
        ids = tok(prompt)["input_ids"]
        ct2 = np.asarray(eng.generator.forward_batch([tok.convert_ids_to_tokens(ids)]))[0]
        with torch.no_grad():
            hf = model(torch.tensor([ids])).logits[0].numpy()
        assert ct2.shape == hf.shape
        assert np.abs(ct2 - hf).max() < 1e-3 * max(1.0, np.abs(hf).max())


@pytest.mark.slow
@pytest.mark.parametrize("beams,extraction", [(1, "reference"), (1, "clean"), (4, "reference")])
def test_translations_equal_hf(engine, sharp_model_dir, beams, extraction):
    from mfti_lightning.eval.generation import translate
    from mfti_lightning.model.modeling import load_model

    eng, tok, _ = engine
    model = load_model(str(sharp_model_dir))
    prompts = _prompts()
    hf = translate(
        model, tok, T1, prompts, num_beams=beams, max_new_tokens=12, batch_tokens=2000, extraction=extraction
    )
    ct = translate(eng, tok, T1, prompts, num_beams=beams, max_new_tokens=12, batch_tokens=2000, extraction=extraction)
    assert len(set(hf)) > len(prompts) // 2  # outputs differ by prompt: the comparison can fail
    same = sum(a == b for a, b in zip(hf, ct)) / len(prompts)
    assert same >= (0.95 if beams == 1 else 0.9), list(zip(hf, ct))


def test_ranks_deal_sentences_with_ct2(engine):
    """Two ranks (called in turn, no process group needed) translate disjoint shares whose union is the
    one-process output."""
    from mfti_lightning.eval.generation import gather_translations, translate, translate_share

    eng, tok, _ = engine
    prompts = _prompts(10)
    one = translate(eng, tok, T1, prompts, max_new_tokens=8, batch_tokens=120)
    shares = [
        translate_share(eng, tok, T1, prompts, max_new_tokens=8, batch_tokens=120, rank=r, world_size=2) for r in (0, 1)
    ]
    assert shares[0] and shares[1] and not shares[0].keys() & shares[1].keys()
    assert gather_translations({**shares[0], **shares[1]}, len(prompts), 1) == one


def test_conversion_is_cached_per_checkpoint_and_compute_type(engine, sharp_model_dir):
    import os

    from mfti_lightning.model.ct2_conversion import cache_key, convert_cached

    eng, _, cache = engine
    again = convert_cached(str(sharp_model_dir), cache, "float32")
    assert again == eng.model_dir and len(list((cache / "ct2").iterdir())) == 1  # no second conversion
    key = cache_key(str(sharp_model_dir), None, "float32", "4.8.5")
    assert cache_key(str(sharp_model_dir), None, "int8", "4.8.5") != key
    assert cache_key(str(sharp_model_dir), None, "float32", "4.9.0") != key
    weights = sharp_model_dir / "model.safetensors"
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    try:
        assert cache_key(str(sharp_model_dir), None, "float32", "4.8.5") != key  # new weights: a new conversion
    finally:
        os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_compute_types_are_checked_per_device():
    from mfti_lightning.model.ct2_conversion import resolve_compute_type

    assert resolve_compute_type("auto", "cpu") == "float32"
    assert resolve_compute_type("auto", "cuda") == "bfloat16"
    assert resolve_compute_type("int8", "cpu") == "int8"
    with pytest.raises(ConfigError, match="int8_float16: not available on cpu; allowed there: auto, float32, int8"):
        resolve_compute_type("int8_float16", "cpu")
    with pytest.raises(ConfigError, match="float32: not available on cuda"):
        resolve_compute_type("float32", "cuda")


def test_compute_type_for_the_wrong_device_fails_before_loading(tmp_path, monkeypatch):
    from mfti_lightning.model import modeling
    from mfti_lightning.tasks import evaluate as eval_task

    monkeypatch.setattr(modeling, "load_model", lambda *a, **k: pytest.fail("model loaded before the check"))
    cfg = compose(
        ["logger=none", "eval.engine=ctranslate2", "eval.ct2_compute_type=bfloat16"], tmp_path / "run", "eval"
    )
    with pytest.raises(ConfigError, match="bfloat16: not available on cpu"):
        eval_task.evaluate_task(cfg)


@pytest.mark.subprocess
@pytest.mark.timeout(120)
def test_missing_ctranslate2_names_the_extra(tmp_path):
    """Without the package, eval.engine=ctranslate2 fails before any model is loaded, naming the install command."""
    code = (
        "import sys; sys.modules['ctranslate2'] = None\n"  # import ctranslate2 -> ImportError, as when not installed
        "from mfti_lightning.model import modeling\n"
        "modeling.load_model = lambda *a, **k: sys.exit('model loaded before the check')\n"
        "from mfti_lightning.cli.eval import main\n"
        "sys.argv = ['mfti-eval', 'logger=none', 'eval.engine=ctranslate2']\n"
        "main()\n"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=110)
    out = p.stdout + p.stderr
    assert p.returncode != 0 and "model loaded before the check" not in out
    assert "pip install 'mfti-lightning[ct2]'" in out, out[-2000:]
    r = json.loads(next((tmp_path / "outputs" / "eval" / "runs").glob("*/results.json")).read_text())
    assert r["status"] == "failed" and "mfti-lightning[ct2]" in r["error"]


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_mfti_eval_ct2_greedy_equals_hf(sharp_model_dir, tmp_path):
    """The must-show: mfti-eval eval.engine=ctranslate2 completes on the tiny model on CPU and its greedy
    hypotheses equal eval.engine=hf's for at least 95% of the sentences; results.json records the engine."""
    common = ["logger=none", "lang_pairs.test_size=12", "eval.max_new_tokens=16", "eval.num_beams=1",
              f"ckpt_path={sharp_model_dir}"]  # fmt: skip
    runs = {}
    for engine in ("hf", "ctranslate2"):
        cwd = tmp_path / engine
        cwd.mkdir()
        p = run_cli(["mfti_lightning.cli.eval", *common, f"eval.engine={engine}"], cwd=cwd, timeout=190)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        (run_dir,) = list((cwd / "outputs" / "eval" / "runs").iterdir())
        runs[engine] = run_dir
    rec = {e: json.loads((d / "results.json").read_text()) for e, d in runs.items()}
    assert rec["hf"]["engine"] == "hf" and rec["ctranslate2"]["engine"] == "ctranslate2"
    assert rec["ctranslate2"]["status"] == "completed"
    hyps = {}
    for e, d in runs.items():
        hyps[e] = [
            json.loads(line)["hypothesis"]
            for f in sorted((d / "translations").glob("*.jsonl"))
            for line in f.read_text().splitlines()
        ]
    assert len(hyps["hf"]) == len(hyps["ctranslate2"]) == 36
    assert len(set(hyps["hf"])) > 18  # the hypotheses differ by sentence: agreement is not trivial
    same = sum(a == b for a, b in zip(hyps["hf"], hyps["ctranslate2"])) / len(hyps["hf"])
    assert same >= 0.95, same
    assert rec["ctranslate2"]["metrics"].keys() == rec["hf"]["metrics"].keys()  # the same results format


def test_engine_kv_cache_figures_come_from_the_model_config(engine, sharp_model_dir):
    """eval.batch_tokens=auto sizes CTranslate2 batches from the converted model's own config: key + value
    entries per token over all layers, times the compute type's bytes (float32 here)."""
    from transformers import AutoConfig

    from mfti_lightning.eval.budget import kv_bytes_per_token

    eng, _, _ = engine
    config = AutoConfig.from_pretrained(str(sharp_model_dir))
    assert eng.kv_bytes_per_token() == kv_bytes_per_token(config, 4) == 2 * config.num_layers * config.d_model * 4
    assert eng.vocab_size == config.vocab_size
