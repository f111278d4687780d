"""The typed config schema: wrong types and names fail at composition or in core.validation, before any model,
data or GPU, with messages that name the key, the bad value and the allowed values."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO, compose, run_cli

from mfti_lightning.core.errors import ConfigError

# (overrides, what the message must contain): each composed and run through mfti-train's task in process
BAD_VALUES = [
    (["resume=Auto"], ["resume='Auto'", "allowed values: auto, never"]),
    (["optim.optimizer.lr=fast"], ["optim.optimizer.lr='fast'", "a number > 0"]),
    (["optim.optimizer.lr=-1e-4"], ["optim.optimizer.lr=-0.0001", "a number > 0"]),
    (["trainer=fsdp", "trainer.accelerator=cpu"], ["trainer=fsdp needs GPUs", "trainer=fsdp2 trainer.accelerator=cpu"]),
    (["trainer.precision=bf17"], ["trainer.precision='bf17'", "allowed values: 32-true, bf16-mixed, 16-mixed"]),
    (["data.loss_on=prompt"], ["data.loss_on='prompt'", "allowed values: full, target"]),
    (["optim.max_steps=-1"], ["optim.max_steps=-1", "allowed values: an integer > 0"]),
    (["logger.mode=live"], ["logger.mode='live'", "allowed values: auto, online, offline, disabled"]),
    (["eval.bleu_tokenize=moses"], ["eval.bleu_tokenize='moses'", "allowed values: auto, lang_default", "13a"]),
    (["progress.mode=fancy"], ["progress.mode='fancy'", "allowed values: auto, rich, plain, none"]),
]


def _train_cli(args, tmp_path, timeout=120):
    env = {"MFTI_OUTPUT_ROOT": str(tmp_path / "out"), "PYTHONPATH": str(REPO)}
    return run_cli(["mfti_lightning.cli.train", *args], cwd=tmp_path, timeout=timeout, env=env)


def _nothing_loaded(root):
    """The failure is recorded where a results.json was written; no tokenizer or template was saved."""
    for results in root.rglob("results.json"):
        assert json.loads(results.read_text())["status"] == "failed"
        assert not (results.parent / "tokenizer").exists() and not (results.parent / "template.json").exists()


@pytest.mark.parametrize("args,expected", BAD_VALUES, ids=[" ".join(a) for a, _ in BAD_VALUES])
def test_bad_value_stops_mfti_train(args, expected, tmp_path, capsys):
    """What mfti-train's Hydra task does with the composed config (report_errors over train): exit 2 and the message."""
    from mfti_lightning.cli.exits import report_errors
    from mfti_lightning.tasks.train import train

    cfg = compose(args, tmp_path / "run")
    with pytest.raises(SystemExit) as e:
        report_errors("mfti-train", train, cfg)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mfti-train: error: {expected[0]}"), err[-3000:]
    for text in expected:
        assert text in err, err[-3000:]
    assert "batch_size" not in err  # the real problem, not the batch math (trainer=fsdp has 8 devices)
    _nothing_loaded(tmp_path)


def test_wrong_type_fails_at_composition(tmp_path):
    """OmegaConf's type check: ``optim.max_steps=many`` never reaches the task."""
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as e:
        compose(["optim.max_steps=many"], tmp_path / "run")
    message = f"{e.value} {e.value.__cause__}"
    assert "optim.max_steps" in message and "many" in message and "Integer" in message


@pytest.mark.subprocess
def test_bad_value_on_the_mfti_train_command_line(tmp_path):
    """The wiring, once through the real entry point: one line naming the value, exit 2, no traceback."""
    p = _train_cli(["trainer.precision=bf17"], tmp_path)
    assert p.returncode == 2, p.stderr[-3000:]
    assert "mfti-train: error: trainer.precision='bf17': allowed values: 32-true, bf16-mixed, 16-mixed" in p.stderr
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    _nothing_loaded(tmp_path / "out")


@pytest.mark.parametrize(
    "args,expected",
    [
        (["shots=8"], ["shots=k8", "shots.k=8", "k0, k1, k2, k4, k8"]),
        (["num_examples=1000"], ["num_examples=n1000", "num_examples.n=1000"]),
        (["shots=0,8"], ["shots=k0,k8", "shots.k=0,8"]),
        (["shots=3"], ["shots.k=3"]),
    ],
)
def test_number_for_a_config_group_exits_2(args, expected, monkeypatch, capsys):
    """mfti-train's main() on this command line exits 2 before Hydra parses it."""
    from mfti_lightning.cli import train as train_cli

    monkeypatch.setattr(sys, "argv", ["mfti-train", *args])
    monkeypatch.setattr(train_cli, "hydra_main", lambda: pytest.fail("Hydra was started"))
    with pytest.raises(SystemExit) as e:
        train_cli.main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("mfti-train: "), err
    for text in expected:
        assert text in err
    assert "Config group override must be a string" not in err
    if args == ["shots=3"]:
        assert "shots=k3" not in err  # no such preset


@pytest.mark.subprocess
def test_number_for_a_config_group_in_mfti_eval_and_mfti_plan(tmp_path, capsys):
    import os

    p = subprocess.run(
        [sys.executable, "-m", "mfti_lightning.cli.eval", "shots=8"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert p.returncode == 2 and "mfti-eval: shots=8" in p.stderr and "shots=k8" in p.stderr
    from mfti_lightning.cli.plan import main

    assert main(["-", "num_examples=1000"]) == 2
    assert "num_examples=n1000" in capsys.readouterr().err


@pytest.mark.subprocess
def test_validation_is_torch_free(tmp_path):
    """Compose and validate bad values in a fresh interpreter: the errors come without torch being imported."""
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "from conftest import compose\n"
        "from mfti_lightning.core.validation import validate\n"
        "from mfti_lightning.core.errors import ConfigError\n"
        "for ov in (['resume=Auto'], ['data.overlong=cut'], ['optim.optimizer.lr=fast'], ['trainer.strategy=ddp2']):\n"
        "    try:\n"
        "        validate(compose(ov, %r))\n"
        "    except ConfigError as e:\n"
        "        print('ERR', e)\n"
        "validate(compose([], %r))\n"
        "from mfti_lightning.tasks.checks import check_before_loading\n"
        "check_before_loading(compose([], %r))\n"
        "print('HEAVY', [m for m in ('torch', 'pytorch_lightning', 'transformers') if m in sys.modules])\n"
    ) % (str(REPO / "tests"), str(tmp_path), str(tmp_path), str(tmp_path))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("ERR ") == 4, p.stdout
    assert "data.overlong='cut': allowed values: drop, truncate_source" in p.stdout
    assert "trainer.strategy='ddp2'" in p.stdout
    assert "HEAVY []" in p.stdout


def _problems(*overrides, config_name="train"):
    from mfti_lightning.core.validation import problems

    return problems(compose(list(overrides), "/tmp/mfti-schema-test", config_name=config_name))


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["optim.optimizer._partial_=false"], "optim.optimizer._partial_=False: allowed values: true"),
        (["data.corpora.0.format=xml"], "data.corpora[0].format='xml': allowed values: flores, moses, wikimatrix, hf"),
        (["trainer=fsdp", "trainer.fsdp.sharding_strategy=FULL"], "trainer.fsdp.sharding_strategy='FULL'"),
        (["trainer.devices=0"], "trainer.devices=0: allowed values: a number of devices per node > 0"),
        (["lang_pairs.train=everything"], "lang_pairs.train='everything': allowed values: a list like [de-en,en-fr]"),
        (["+trainer.precison=bf16-mixed"], "trainer.precison: unknown key"),
        (["model.peft=qlora"], "model.peft='qlora': allowed values: null, lora"),
        (["model.dtype=float8"], "model.dtype='float8'"),
        (["model.attn_implementation=flash"], "model.attn_implementation='flash': allowed values: eager, sdpa"),
        (["data.flores_layout=flores300"], "data.flores_layout='flores300': allowed values: flores101, flores200"),
        (["eval.num_beams=0"], "eval.num_beams=0: allowed values: an integer > 0"),
        (["eval.batch_tokens=-5"], "eval.batch_tokens=-5"),
        (["optim.micro_batch_size=0"], "optim.micro_batch_size=0"),
        (["shots.k=-1"], "shots.k=-1: allowed values: an integer >= 0"),
        (["logger=wandb", "logger.console=loud"], "logger.console='loud'"),
        (["logger.name=mlflow"], "logger.name='mlflow': allowed values: wandb, csv, tensorboard, none"),
    ],
)
def test_validate_names_key_value_and_allowed_values(overrides, expected):
    found = _problems(*overrides)
    assert found and found[0].startswith(expected), found


def test_eval_config_is_validated_with_its_own_schema():
    assert _problems("split=test", config_name="eval") == ["split='test': allowed values: devtest, dev"]
    assert _problems("eval.max_prompt_tokens=0", config_name="eval")[0].startswith("eval.max_prompt_tokens=0")
    assert _problems(config_name="eval") == []


def test_several_problems_first_one_leads():
    from mfti_lightning.core.validation import validate

    cfg = compose(["resume=Auto", "progress.mode=fancy"], "/tmp/mfti-schema-test")
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    first, rest = str(e.value).split("\n", 1)
    assert first == "resume='Auto': allowed values: auto, never" and "progress.mode='fancy'" in rest


@pytest.mark.slow
def test_every_shipped_option_passes_validation():
    """No false alarms: every option of every group (train and eval) and the sweeps' experiments validate."""
    from test_configs import GROUPS, options

    for config_name in ("train", "eval"):
        for group in GROUPS:
            if config_name == "eval" and group == "debug":
                continue
            for option in options(group):
                assert _problems(f"{group}={option}", config_name=config_name) == [], (config_name, group, option)


def test_yaml_key_missing_from_the_schema_fails_at_composition(tmp_path):
    from hydra.errors import ConfigCompositionException

    from mfti_lightning.launch.sweep import compose_job

    (tmp_path / "typo.yaml").write_text("defaults:\n  - train\n  - _self_\nmodel:\n  dtyp: bfloat16\n")
    with pytest.raises(ConfigCompositionException) as e:
        compose_job(tmp_path, "typo", [])
    assert "dtyp" in str(e.value) + str(e.value.__cause__)


def test_schema_keeps_the_yaml_keys_and_plain_strings(tmp_path):
    """The schema adds no key to a composed config (a resumed run compares them with its saved training config)
    and enumerated values stay plain strings (JSON, W&B, ``cfg.resume == "auto"``)."""
    from omegaconf import OmegaConf

    cfg = compose([], tmp_path)
    c = OmegaConf.to_container(cfg, resolve=True)
    assert "fsdp" not in c["trainer"] and "languages" not in c["lang_pairs"] and "cluster" not in c
    assert set(c["logger"]) == {
        "name",
        "project",
        "entity",
        "mode",
        "network_check_timeout",
        "init_timeout",
        "console",
        "log_samples",
    }
    assert cfg.resume == "auto" and type(c["resume"]) is str
    json.dumps({k: v for k, v in c.items() if k != "hydra"})
    fsdp = compose(["trainer=fsdp"], tmp_path)
    assert fsdp.trainer.fsdp.sharding_strategy == "FULL_SHARD"


def test_register_is_idempotent():
    from hydra.core.config_store import ConfigStore

    from mfti_lightning.core import schema

    schema.register()
    schema.register()
    assert "mfti_train_schema.yaml" in ConfigStore.instance().list("")


def test_resume_typo_leaves_a_completed_run_alone(cfg_factory, tmp_path):
    from mfti_lightning.tasks.train import train

    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"status": "completed", "metrics": {}}))
    with pytest.raises(ConfigError, match="resume='Auto'"):
        train(cfg_factory("resume=Auto", "logger=none"))
    assert json.loads((run / "results.json").read_text())["status"] == "completed"
