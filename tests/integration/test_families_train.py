"""Every non-XGLM family end to end on CPU through the console entry points, like tests/integration/test_demo.py and
tests/integration/test_train_dist.py do for the tiny XGLM: mfti-train (results.json), an interrupted run resumed to the same
weights, mfti-export, mfti-eval of the export, and trainer=fsdp2 and trainer=ddp_cpu on two CPU processes."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import REPO, run_cli

pytestmark = [pytest.mark.slow]

FAMILIES = {"bloom": "tiny-bloom", "llama": "tiny-llama", "mgpt": "tiny-mgpt"}
SMALL = [
    "num_examples.n=16",
    "lang_pairs.val_size=2",
    "lang_pairs.test_size=2",
    "eval.max_new_tokens=4",
    "logger=none",
    "progress.mode=none",
]
ENV = {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def _train(cwd, extra, timeout=280):
    p = run_cli(["mfti_lightning.cli.train", *SMALL, *extra], cwd=cwd, timeout=timeout, env=ENV)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    (run_dir,) = list((cwd / "outputs" / "train" / "runs").iterdir())
    return run_dir, json.loads((run_dir / "results.json").read_text()), p


def _weights(path):
    from mfti_lightning.model.checkpoint_files import load_checkpoint, model_state

    return model_state(load_checkpoint(path)["state_dict"])


@pytest.mark.timeout(600)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_train_resume_export_evaluate(tmp_path, family):
    import torch
    from transformers import AutoModelForCausalLM

    args = [f"model={FAMILIES[family]}", "optim.global_batch_size=8", "optim.micro_batch_size=8",
            "optim.max_steps=4", "checkpoint.every_n_steps=2", "checkpoint.keep=3", "eval.val_every_n_steps=2"]  # fmt: skip
    run_dir, r, _ = _train(tmp_path, args)
    assert r["status"] == "completed" and r["training"]["steps"] == 4
    assert r["config"]["model"]["family"] == family and isinstance(r["metrics"]["test/chrf/avg"], float)
    periodic = run_dir / "checkpoints" / "periodic"
    final = _weights(periodic / "step000004.ckpt")

    # interrupted after step 2: the same command resumes from step000002.ckpt and ends with the same weights
    (periodic / "step000004.ckpt").unlink()
    for gone in ("results.json", "hf", "checkpoints/best/step000004.ckpt"):  # what steps 3-4 wrote
        shutil.rmtree(run_dir / gone) if (run_dir / gone).is_dir() else (run_dir / gone).unlink(missing_ok=True)
    _, r2, p = _train(tmp_path, args)
    assert "Resuming from" in p.stdout + p.stderr and r2["status"] == "completed"
    resumed = _weights(periodic / "step000004.ckpt")
    assert resumed.keys() == final.keys() and all(torch.equal(resumed[k], final[k]) for k in final)

    # mfti-export of a periodic checkpoint loads with plain from_pretrained and holds its weights
    out = tmp_path / "exported"
    p = run_cli(["mfti_lightning.cli.export", str(periodic / "step000004.ckpt"), "--out", str(out)], tmp_path, 200, ENV)
    assert p.returncode == 0, p.stderr[-3000:]
    hf = AutoModelForCausalLM.from_pretrained(out)
    assert hf.config.model_type in {"bloom": ["bloom"], "llama": ["llama"], "mgpt": ["gpt2"]}[family]
    assert all(torch.equal(v, final[k]) for k, v in hf.state_dict().items() if k in final)

    # mfti-eval of the exported directory (its template.json and tokenizer come with it)
    p = run_cli(
        ["mfti_lightning.cli.eval", f"model={FAMILIES[family]}", f"ckpt_path={out}", *SMALL[1:5]], tmp_path, 280, ENV
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    (ev,) = [json.loads(f.read_text()) for f in (tmp_path / "outputs" / "eval").rglob("results.json")]
    assert ev["status"] == "completed" and isinstance(ev["metrics"]["test/chrf/avg"], float)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fsdp2_two_cpu_processes(tmp_path, family):
    """trainer=fsdp2 trainer.accelerator=cpu trainer.devices=2: one fully_shard unit per block of the family."""
    import torch
    from transformers import AutoModelForCausalLM

    args = [f"model={FAMILIES[family]}", "trainer=fsdp2", "trainer.accelerator=cpu", "trainer.devices=2",
            "optim.global_batch_size=16", "optim.micro_batch_size=8", "optim.max_steps=3",
            "checkpoint.every_n_steps=3", "eval.val_every_n_steps=3", "eval.score_before_training=false"]  # fmt: skip
    run_dir, r, _ = _train(tmp_path, args)
    assert r["status"] == "completed" and r["training"]["steps"] == 3
    assert r["batch"]["world_size"] == 2 and r["throughput"]["world_size"] == 2
    ckpt = run_dir / "checkpoints" / "periodic" / "step000003.ckpt"
    assert ckpt.is_dir()  # sharded, one file per rank
    state = _weights(ckpt)
    hf = AutoModelForCausalLM.from_pretrained(run_dir / "hf")
    shared = [k for k in hf.state_dict() if k in state]
    assert len(shared) > 10 and all(torch.equal(hf.state_dict()[k], state[k]) for k in shared)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_ddp_two_cpu_processes(tmp_path, family):
    """trainer=ddp_cpu (ddp_fork, gloo) with each family: both ranks train, the batch is split over them."""
    args = [f"model={FAMILIES[family]}", "trainer=ddp_cpu", "trainer.devices=2", "optim.global_batch_size=16",
            "optim.micro_batch_size=8", "optim.max_steps=2", "checkpoint.every_n_steps=2",
            "eval.val_every_n_steps=2", "eval.score_before_training=false"]  # fmt: skip
    run_dir, r, _ = _train(tmp_path, args)
    assert r["status"] == "completed" and r["training"]["steps"] == 2
    assert r["batch"] == {"world_size": 2, "micro_batch_size": 8, "accumulate": 1, "global_batch_size": 16}
    assert (run_dir / "checkpoints" / "periodic" / "step000002.ckpt").is_file()
