"""Each config key's role (training / evaluation / runtime / ignored) and resume flag, declared once on its schema
field (core/schema.py) and read by core/keys.py: every key of every shipped config has one, and the identity,
resume check and run directories derived from them are those of the lists they replaced."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import CONF, REPO, compose
from omegaconf import OmegaConf

from mfti_lightning.core import fields, keys, schema
from mfti_lightning.core.config import flatten
from mfti_lightning.core.identity import classify
from mfti_lightning.tasks.job import resolved_container
from mfti_lightning.train.trainer import training_config

# The lists that named the key classes before they moved onto the schema fields (core/identity.py's IGNORED,
# EVALUATION, RUNTIME and train/trainer.py's RESUME_IGNORED, as of main aaf9b78). The derived classes must equal
# them on every shipped config: a changed class would move existing runs to other directories.
OLD_IGNORED = (
    "hydra", "paths", "logger", "progress", "resume", "trust_checkpoint", "sweep_name", "run_name", "run_slug",
    "task_name", "checkpoint.keep", "checkpoint.export", "data.num_workers", "data.cache_dir", "cluster", "debug",
    "trainer.log_every_n_steps", "model.shape", "template.factor",
)  # fmt: skip
OLD_EVALUATION = (
    "eval.num_beams", "eval.max_new_tokens", "eval.batch_tokens", "eval.engine", "eval.ct2_compute_type",
    "eval.max_prompt_tokens", "eval.bleu_tokenize", "eval.extraction", "eval.lid_languages", "eval.lid_accuracy",
    "eval.off_target_rule", "eval.error_analysis", "eval.comet_model", "shots", "lang_pairs.eval",
    "lang_pairs.test_size", "split", "train_directions", "ckpt_path",
)  # fmt: skip
OLD_RESUME_IGNORED = (
    "eval", "shots", "checkpoint", "lang_pairs.val_size", "lang_pairs.test_size", "lang_pairs.eval",
    "optim.max_steps", "optim.max_epochs",
)  # fmt: skip


def _under(key: str, prefixes: tuple) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _old_class(key: str) -> str | None:
    if _under(key, OLD_IGNORED):
        return None
    return "evaluation" if _under(key, OLD_EVALUATION) else "runtime" if key.startswith("trainer") else "training"


# compositions covering the keys that only some options have (data sources, FSDP, language splits, tiny builds,
# model shapes, experiment overlays, loggers, the root's cluster node); every option's own keys: _yaml_keys
COMPOSED = [
    ("train", []), ("eval", []), ("eval", ["trainer=ddp", "logger=csv"]), ("train", ["+cluster.partition=x"]),
    ("train", ["data=wikimatrix"]), ("train", ["data=hf"]), ("train", ["data=pairs"]), ("train", ["trainer=fsdp"]),
    ("train", ["lang_pairs=unseen"]), ("train", ["model=tiny-bloom"]), ("train", ["model=xglm-564m"]),
    ("train", ["experiment=unseen"]), ("train", ["logger=tensorboard"]), ("train", ["debug=fdr"]),
]  # fmt: skip


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    out = tmp_path_factory.mktemp("keys")
    return [resolved_container(compose([*ovs, "sweep_name=keys"], out, config_name=task)) for task, ovs in COMPOSED]


def _yaml_keys() -> dict[str, str]:
    """``{dotted key: file}`` for every key every shipped YAML file sets (group files under their package)."""
    found = {}
    files = [CONF / "train.yaml", CONF / "eval.yaml", *sorted(CONF.glob("*/*.yaml"))]
    for f in files:
        if f.parent.name == "hydra":  # Hydra's own settings (role ignored as a whole)
            continue
        text = f.read_text()
        node = OmegaConf.to_container(OmegaConf.create(text)) or {}
        node.pop("defaults", None)
        root = f.parent == CONF or "@package _global_" in "".join(text.splitlines()[:2])
        for k in flatten(node if root else {f.parent.name: node}):
            found[k] = str(f.relative_to(CONF))
    return found


def test_every_key_of_every_shipped_yaml_has_a_role():
    unclassified = {k: f for k, f in _yaml_keys().items() if keys.role_of(k) is None}
    assert not unclassified, f"declare role= on these keys' schema fields (core/schema_*.py): {unclassified}"


def test_every_key_of_every_shipped_config_has_a_role(shipped):
    unclassified = sorted({k for c in shipped for k in flatten(c) if keys.role_of(k) is None})
    assert not unclassified, f"declare role= on these keys' schema fields (core/schema_*.py): {unclassified}"
    leaves = [
        k for k, d in keys.declarations().items() if not fields.is_dataclass_type(fields.unwrap_optional(d.field.type))
    ]
    assert all(keys.role_of(k) in fields.ROLES for k in leaves)


def test_a_key_without_a_role_is_found():
    assert keys.role_of("no_such_group.key") is None
    assert keys.role_of("optim.optimizer.betas") == fields.TRAINING  # an open node's key takes the node's role
    assert keys.role_of("trainer.fsdp.sharding_strategy") == fields.RUNTIME


def test_derived_classes_and_resume_checks_equal_the_old_lists(shipped):
    for c in shipped:
        flat = flatten(c)
        assert {k: classify(k) for k in flat} == {k: _old_class(k) for k in flat}
        old_checked = {k for k in flat if _old_class(k) is not None and not _under(k, OLD_RESUME_IGNORED)}
        assert set(training_config(c)) == old_checked


def test_the_demo_run_keeps_its_directory(tmp_path):
    cfg = compose(["sweep_name=keys"], tmp_path)
    assert cfg.run_slug == "tiny_demo_t1_k0_n250_s42-2a94c0f6"  # the recorded demo run (README, main aaf9b78)


def test_run_names_join_the_swept_labels():
    """conf/train.yaml's run_name and run_slug are schema.SWEPT's labels in order (run_slug adds the hash)."""
    train = OmegaConf.to_container(OmegaConf.load(CONF / "train.yaml"))
    labels = [s.label for s in schema.SWEPT]
    assert train["run_name"] == "|".join(labels[:-1])
    assert train["run_slug"] == "_".join(labels) + "-${mfti_run_hash:}"


@pytest.mark.subprocess
@pytest.mark.timeout(120)
def test_help_shows_each_key_with_its_schema_doc():
    p = subprocess.run(
        [sys.executable, "-m", "mfti_lightning.cli.train", "--help"], capture_output=True, text=True, timeout=100,
        cwd=REPO,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    doc = keys.declarations()["optim.micro_batch_size"].doc
    assert f"  # {doc}\n  micro_batch_size: 16\n" in p.stdout  # the value as composed (conf/model/tiny.yaml)
    assert "\n  # checkpoint choice: mean = greedy" in p.stdout  # a long doc, wrapped under its key
