"""Model families (core/families.py): the registry against transformers, the tiny build of each family, its
tokenizer conventions (prompts tokenize the same in training and evaluation), FLOPs shapes, LoRA targets, SDPA,
and the sweeps over architectures and templates (mfti-plan)."""

from __future__ import annotations

import json
import re

import pytest
from conftest import REPO, compose

from mfti_lightning.core import families
from mfti_lightning.core.errors import ConfigError

TINY = {"xglm": "tiny", "bloom": "tiny-bloom", "llama": "tiny-llama", "mgpt": "tiny-mgpt"}
PRESETS = sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml"))


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    """Each family's tiny model, built once through the real build path (resolve_model_path)."""
    from mfti_lightning.model.modeling import resolve_model_path

    out = tmp_path_factory.mktemp("compose")
    return {fam: resolve_model_path(compose([f"model={name}"], out).model) for fam, name in TINY.items()}


def test_registry_agrees_with_transformers_and_the_schema():
    """Every family's block class is the model class's own _no_split_modules (what FSDP/FSDP2 wrap)."""
    import sys

    from transformers import CONFIG_MAPPING, MODEL_FOR_CAUSAL_LM_MAPPING

    from mfti_lightning.core.choices import MODEL_FAMILIES

    assert set(MODEL_FAMILIES) == set(families.FAMILIES) and set(TINY) == set(families.FAMILIES)
    for fam in families.FAMILIES.values():
        for model_type in fam.model_types:
            cls = MODEL_FOR_CAUSAL_LM_MAPPING[CONFIG_MAPPING[model_type]]
            block = families.block_for(model_type)
            assert block in cls._no_split_modules and hasattr(sys.modules[cls.__module__], block), model_type


@pytest.mark.parametrize("preset", PRESETS)
def test_every_model_preset_has_a_family_and_a_shape(tmp_path, preset):
    from mfti_lightning.core.validation import validate
    from mfti_lightning.train.throughput import matmul_params

    cfg = compose([f"model={preset}"], tmp_path)
    validate(cfg)
    assert cfg.model.family in families.FAMILIES and cfg.model.name == preset
    size = re.search(r"(\d+(?:\.\d+)?)([mb])$", preset)
    if size:  # the shape's matmul parameters are near the size in the name (embeddings excluded, head included)
        n = float(size.group(1)) * (1e6 if size.group(2) == "m" else 1e9)
        assert 0.6 * n < matmul_params(dict(cfg.model.shape)) < 1.25 * n, preset


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(TINY))
def test_tiny_build_and_its_shape(tiny_dirs, tmp_path, family):
    """The preset's shape gives exactly the matmul weights of the built model (GQA and SwiGLU for Llama)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from mfti_lightning.train.throughput import matmul_params

    cfg = compose([f"model={TINY[family]}"], tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_dirs[family])
    assert AutoConfig.from_pretrained(tiny_dirs[family]).model_type in families.get(family).model_types
    block = families.block_for(model.config.model_type)
    weights = sum(
        p.numel() for m in model.modules() if type(m).__name__ == block for p in m.parameters() if p.dim() == 2
    )
    head = model.get_output_embeddings().weight.numel()
    assert matmul_params(dict(cfg.model.shape)) == weights + head
    assert int(cfg.model.shape.vocab_size) == model.config.vocab_size


def _expected_first(family, tok, ids):
    if family == "xglm":
        assert ids[0] == tok.eos_token_id  # XGLM prepends </s>
    elif family == "llama":
        assert tok.convert_ids_to_tokens(ids[0]) == "<|begin_of_text|>"  # Llama-3: its own BOS
    else:
        assert ids[0] not in tok.all_special_ids  # BLOOM, mGPT: no BOS


@pytest.mark.parametrize("family", sorted(TINY))
def test_prompt_tokenizes_the_same_in_training_and_evaluation(tiny_dirs, family):
    """The evaluation prompt's ids are the start of the training sequence's ids (the loss mask and the model's
    view of the prompt agree), the family's BOS convention holds, and the sequence ends with its EOS."""
    from mfti_lightning.core.template import Template
    from mfti_lightning.data.datamodule import encode_examples
    from mfti_lightning.eval.generation import encode_prompts
    from mfti_lightning.model.modeling import load_tokenizer

    tok = load_tokenizer(tiny_dirs[family])
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    template = Template("t1", "Translation: [<srclang>]: <input> [<tgtlang>]:")
    pairs = [("Hallo Welt, wie geht's?", "Hello world, how are you?"), ("这是一个测试。", "This is a test.")]
    examples = [
        {"prompt": template.render_prefix(s, "de", "en"), "text": template.render_example(s, t, "de", "en")}
        for s, t in pairs
    ]
    encoded, stats = encode_examples(examples, tok, template, 256, "target", "drop")
    assert stats["kept"] == 2
    for ex, enc in zip(examples, encoded):
        (prompt_ids,) = encode_prompts(tok, [ex["prompt"]])
        assert enc.input_ids[: len(prompt_ids)] == prompt_ids
        assert enc.labels[: len(prompt_ids)] == [-100] * len(prompt_ids) and enc.labels[len(prompt_ids)] != -100
        assert enc.input_ids[-1] == tok.eos_token_id
        _expected_first(family, tok, prompt_ids)
        generated = enc.input_ids[len(prompt_ids) :]
        assert template.extract(generated, tok) == ex["text"][len(ex["prompt"]) :].strip()


@pytest.mark.parametrize("family", sorted(TINY))
def test_attention_and_lora_per_family(tiny_dirs, tmp_path, family):
    """sdpa where the family has it (native or XGLM's patch); LoRA wraps the family's default target modules."""
    from mfti_lightning.model import xglm_sdpa
    from mfti_lightning.model.modeling import load_model, peft_settings

    cfg = compose([f"model={TINY[family]}", "model.peft=lora"], tmp_path)
    fam = families.get(family)
    attn = "eager" if fam.sdpa == "none" else "sdpa"
    model = load_model(tiny_dirs[family], "float32", attn, peft_settings(cfg.model))
    base = model.get_base_model()
    if fam.sdpa == "native":
        assert base.config._attn_implementation == "sdpa"
    assert xglm_sdpa.uses_sdpa(model) == (fam.sdpa == "patch")
    wrapped = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if hasattr(m, "lora_A")}
    assert wrapped == set(fam.lora_targets)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_bloom_with_sdpa_is_refused_before_loading(tmp_path):
    from mfti_lightning.core.validation import validate

    with pytest.raises(ConfigError, match="model.attn_implementation=eager"):
        validate(compose(["model=tiny-bloom", "model.attn_implementation=sdpa"], tmp_path))


def test_a_model_of_another_family_is_refused(tiny_dirs, tmp_path):
    """model.family must match the config.json it points at (else wrong LoRA targets, BOS, attention)."""
    import os

    from mfti_lightning.tasks.inputs import check_model

    cfg = compose(["model=tiny-bloom", f"model.name_or_path={tiny_dirs['llama']}"], tmp_path)
    (msg,) = check_model(cfg, False, os.environ)
    assert "'llama' model" in msg and "model.family=llama" in msg
    assert check_model(compose(["model=tiny-llama"], tmp_path), False, os.environ) == []


# ---- sweeps: mfti-plan architectures / template_space ------------------------------------------------------
def _fake_inputs(root, monkeypatch, hub: dict[str, str]):
    """Stand-ins for what the paper overlays read: WikiMatrix files, hub models (config.json with model_type),
    sacrebleu's FLORES SPM model."""
    import gzip
    import itertools

    from mfti_lightning.core.languages import PAPER_LANGUAGES

    corpora = root / "corpora"
    corpora.mkdir(parents=True)
    for a, b in itertools.combinations(sorted(PAPER_LANGUAGES), 2):
        (corpora / f"WikiMatrix.{a}-{b}.tsv.gz").write_bytes(gzip.compress(b"1.2\tx\ty\n"))
    for name, model_type in hub.items():
        snap = root / "hf" / "hub" / f"models--{name.replace('/', '--')}"
        (snap / "refs").mkdir(parents=True)
        (snap / "refs" / "main").write_text("0" * 40)
        (snap / "snapshots" / ("0" * 40)).mkdir(parents=True)
        (snap / "snapshots" / ("0" * 40) / "config.json").write_text(json.dumps({"model_type": model_type}))
    spm = root / "sacrebleu" / "models" / "sacrebleu_tokenizer_spm.model"
    spm.parent.mkdir(parents=True)
    spm.write_bytes(b"stand-in")
    for k, v in {"MFTI_CORPORA_DIR": corpora, "HF_HOME": root / "hf", "SACREBLEU": root / "sacrebleu"}.items():
        monkeypatch.setenv(k, str(v))


def _plan(name, capsys):
    from mfti_lightning.cli.plan import main

    capsys.readouterr()
    assert main([name, "--json"]) == 0, capsys.readouterr().err[-3000:]
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


HUB = {
    "facebook/xglm-564M": "xglm", "facebook/xglm-1.7B": "xglm", "facebook/xglm-7.5B": "xglm",
    "bigscience/bloom-560m": "bloom", "bigscience/bloom-1b7": "bloom", "bigscience/bloom-7b1": "bloom",
    "Qwen/Qwen2.5-0.5B": "qwen2", "Qwen/Qwen2.5-1.5B": "qwen2", "Qwen/Qwen2.5-7B": "qwen2", "ai-forever/mGPT": "gpt2",
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_plan_architectures_lists_mfti_and_icl_for_every_family(tmp_path, monkeypatch, capsys):
    _fake_inputs(tmp_path, monkeypatch, HUB)
    jobs = _plan("architectures", capsys)
    models = {}
    for j in jobs:
        ov = dict(o.split("=", 1) for o in j["overrides"])
        models.setdefault(ov["model"], set()).add(ov["experiment"])
        assert j["gpu_hours"] > 0 and j["params"] > 3e8
    assert all(v == {"main_mfti", "main_icl"} for v in models.values()) and len(jobs) == 2 * len(models)
    fams = {compose([f"model={m}"], tmp_path).model.family for m in models}
    assert fams == set(families.FAMILIES)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_plan_template_space_lists_templates_that_vary_one_factor(tmp_path, monkeypatch, capsys):
    from mfti_lightning.core.template import from_config

    _fake_inputs(tmp_path, monkeypatch, {"facebook/xglm-564M": "xglm"})
    jobs = _plan("template_space", capsys)
    names = sorted({dict(o.split("=", 1) for o in j["overrides"])["template"] for j in jobs})
    assert len(names) >= 10 and len(jobs) == 3 * len(names)  # three seeds each
    from omegaconf import OmegaConf

    cfgs = {n: OmegaConf.load(REPO / "sweeps" / "template" / f"{n}.yaml") for n in names}
    temps = {n: from_config(c) for n, c in cfgs.items()}
    assert len({(t.prefix, t.lang_names) for t in temps.values()}) == len(names)  # all different
    assert all(cfgs[n].factor for n in names) and len({c.factor.split(":")[0] for c in cfgs.values()}) >= 5
    assert {t.lang_names for t in temps.values()} == {"english", "native", "code"}


def test_eos_is_learned_when_pad_equals_eos():
    """Qwen2.5's tokenizer has pad = EOS = <|endoftext|>: padding is masked by position, so the EOS ending every
    training sequence keeps its label (a pad-id mask would silently stop the model from learning to stop)."""
    from mfti_lightning.data.datamodule import Collator, Encoded

    eos = 7
    batch = Collator(pad_id=eos)([Encoded([1, 2, eos], [1, 2, eos]), Encoded([1, eos], [-100, eos])])
    assert batch["labels"].tolist() == [[1, 2, eos], [-100, eos, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
