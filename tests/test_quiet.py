"""Quiet runs (issue 22): a run and a resumed run print only the project's own, explained warnings
(tests/quiet_output.py); the default demo's output is checked in tests/test_demo.py, a SLURM job's log in
tests/test_slurm.py. The runs are console entry points in subprocesses: they see the warnings a user sees (pytest's
own warning filters do not reach them)."""

from __future__ import annotations

import pytest
import resume_runs
from quiet_output import assert_quiet, unexplained, warning_lines

# what the default demo, a resume and a SLURM job printed before the project silenced them (torch 2.13,
# Lightning 2.6.6): each must still count as an unexplained warning, or the tests below could not fail
NOISE = [
    "/venv/lib/python3.11/site-packages/lightning_fabric/plugins/environments/slurm.py:204: The `srun` command is "
    "available on your system but is not used. HINT: If your intention is to run Lightning on SLURM, prepend your "
    "python command with `srun` like so: srun python /venv/bin/mfti-train ...",
    "/venv/lib/python3.11/site-packages/pytorch_lightning/utilities/_pytree.py:21: `isinstance(treespec, LeafSpec)` "
    "is deprecated, use `isinstance(treespec, TreeSpec) and treespec.is_leaf()` instead.",
    "/venv/lib/python3.11/site-packages/pytorch_lightning/loops/fit_loop.py:321: The number of training batches (4) "
    "is smaller than the logging interval Trainer(log_every_n_steps=10). Set a lower value for log_every_n_steps if "
    "you want to see logs for the training epoch.",
    "/venv/lib/python3.11/site-packages/pytorch_lightning/callbacks/model_checkpoint.py:881: Checkpoint directory "
    "/runs/tiny_demo_t1_k0_n250_s42-00ff50b4/checkpoints/best exists and is not empty.",
    "/x/y.py:3: FutureWarning: something new",
    "[2026-12-04 00:29:16,887][transformers.modeling_utils][WARNING] - something new",
    "[2026-12-04 00:29:16,887][mfti_lightning][WARNING] - a project warning nobody explained",
    "wandb: WARNING something new",
]
OWN = [
    "[2026-12-04 00:26:44,385][mfti_lightning.eval.metrics][WARNING] - spBLEU unavailable: sacrebleu's flores101 "
    "SentencePiece model is not at /root/.sacrebleu/models/sacrebleu_tokenizer_spm.model (offline node?). ...",
    "[2026-12-04 00:29:16,887][mfti_lightning][WARNING] - /runs/tiny_demo_t1_k0_n250_s42-00ff50b4: took over the "
    "lease of a process that is gone (pid 11473 on vm, since 2026-12-04 00:28:33, last heartbeat 13 s ago).",
]


def test_unexplained_warnings_are_found_and_the_projects_own_are_explained():
    assert unexplained("\n".join(NOISE)) == NOISE
    assert warning_lines("\n".join(OWN)) == OWN and unexplained("\n".join(OWN)) == []
    with pytest.raises(AssertionError, match="LeafSpec"):
        assert_quiet("\n".join([OWN[0], NOISE[1]]))
    with pytest.raises(AssertionError, match="2 times"):
        assert_quiet("\n".join([OWN[0], OWN[0]]))


# the default config (W&B offline, plain progress lines, Lightning's log interval 10), only shorter: fewer steps than
# the log interval, a periodic checkpoint every 2 steps and a validation every 4
SHORT = [
    "num_examples.n=16",
    "optim.max_steps=6",
    "checkpoint.every_n_steps=2",
    "eval.val_every_n_steps=4",
    "lang_pairs.val_size=2",
    "lang_pairs.test_size=2",
    "eval.max_new_tokens=4",
]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_killed_and_resumed_run_prints_only_explained_warnings(tmp_path):
    # killed after step 4's validation: checkpoints/periodic holds step 2, checkpoints/best step 4 (the newest, which
    # the resumed run continues from)
    code, first = resume_runs.finish(resume_runs.start(tmp_path, kill="after_val:4", args=SHORT), timeout=400)
    assert code == -9, first[-3000:]
    run = resume_runs.run_dir(tmp_path)
    assert [p.name for p in (run / "checkpoints" / "periodic").glob("*.ckpt")] == ["step000002.ckpt"]
    assert list((run / "checkpoints" / "best").glob("*.ckpt"))
    code, second = resume_runs.finish(resume_runs.start(tmp_path, args=SHORT), timeout=400)
    assert code == 0, second[-3000:]
    assert "Resuming from" in second and "step000004.ckpt" in second and "training: step 4/6" in second, second[-3000:]
    assert_quiet(first, "the first attempt")
    assert_quiet(second, "the resumed run")
