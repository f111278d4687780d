"""Sweeps through the SLURM launcher presets, against the real single-node SLURM of scripts/local_slurm.sh.

Tests marked ``slurm`` need that cluster (scripts/test.sh starts it; this module starts it too when it is root and
the cluster is down, and skips with the reason otherwise). The checks before submission need no SLURM at all.
Every wait has a timeout: a job SLURM killed can make submitit wait forever.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO
from slurm_jobs import FAST, job_id, mfti, results, sacct_jobs, start_cluster, submitit_dirs


@pytest.fixture(scope="session")
def slurm():
    """The local SLURM cluster, started if needed (root + apt), else a skip with the reason."""
    if (
        shutil.which("scontrol")
        and subprocess.run(["scontrol", "ping"], capture_output=True, timeout=20).returncode == 0
    ):
        return
    start_cluster("local_slurm.sh")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    """Build the tiny model once before jobs run (three jobs must not build it concurrently)."""
    return tiny_model_dir


# ------------------------------------------------------------------------------------------------ no SLURM needed
@pytest.mark.timeout(120)
def test_tasks_per_node_mismatch_refused_before_submission(tmp_path):
    p = mfti(
        ["-m", "hydra/launcher=slurm_cpu", "hydra.launcher.tasks_per_node=2", "sweep_name=bad", "seed=1,2"],
        tmp_path,
        100,
    )
    assert p.returncode != 0
    assert "tasks_per_node=2 but trainer.devices=1" in p.stderr and "nothing was submitted" in p.stderr, p.stderr
    assert "job #0" in p.stderr and "job #1" in p.stderr
    assert not list(tmp_path.rglob(".submitit")), "something was submitted"


@pytest.mark.timeout(120)
def test_plain_submitit_launcher_mismatch_refused(tmp_path):
    """The plugin's own launcher (no preset) is checked by the PreflightCallback."""
    p = mfti(
        ["-m", "hydra/launcher=submitit_slurm", "hydra.launcher.tasks_per_node=2", "sweep_name=bad2", "seed=1,2"],
        tmp_path,
        100,
    )
    assert p.returncode != 0 and "tasks_per_node=2 but trainer.devices=1" in p.stderr, p.stderr
    assert not list(tmp_path.rglob(".submitit"))


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "bad,message",
    [
        ("shots=k0,k3", "Could not find 'shots/k3'"),  # Hydra checks every job's options before launching
        ("trainer.devicez=1,2", "devicez"),
        ("lang_pairs.train=[de-en,xx-en],[de-en]", "xx"),  # our checks: unknown language code, before submission
    ],
)
def test_unknown_option_or_value_rejected_before_submission(tmp_path, bad, message):
    p = mfti(["-m", "hydra/launcher=slurm_cpu", "sweep_name=bad3", bad], tmp_path, 100)
    assert p.returncode != 0 and message in p.stderr, p.stderr[-3000:]
    assert not list(tmp_path.rglob(".submitit")), "something was submitted"


def _sweep_files():
    return sorted(p.stem for p in (REPO / "sweeps").glob("*.yaml"))


def test_every_paper_experiment_has_a_sweep_file():
    assert {
        "main_comparison",
        "model_scaling",
        "num_examples_scaling",
        "lang_pairs_scaling",
        "unseen",
        "templates",
        "shots",
    } <= set(_sweep_files())
    readme = (REPO / "sweeps" / "README.md").read_text()
    for name in _sweep_files():
        assert f"--config-name {name}" in readme, f"{name} has no documented command in sweeps/README.md"


def _fake_inputs(root: Path) -> dict:
    """What the paper sweeps read, as small stand-ins: a WikiMatrix file for every pair of the 13 languages, the
    five XGLM models in an (offline) hub cache and sacrebleu's FLORES SentencePiece model (the paper overlays
    require spBLEU). Returns the environment that points the jobs at them."""
    import gzip
    import itertools

    from mfti_lightning.core.languages import PAPER_LANGUAGES

    corpora = root / "corpora"
    corpora.mkdir(parents=True)
    for a, b in itertools.combinations(sorted(PAPER_LANGUAGES), 2):
        (corpora / f"WikiMatrix.{a}-{b}.tsv.gz").write_bytes(gzip.compress(b"1.2\tx\ty\n"))
    hub = [f"facebook--xglm-{size}" for size in ("564M", "1.7B", "2.9B", "4.5B", "7.5B")]
    hub += ["bigscience--bloom-560m", "bigscience--bloom-1b7", "bigscience--bloom-7b1", "ai-forever--mGPT"]
    hub += [f"Qwen--Qwen2.5-{size}" for size in ("0.5B", "1.5B", "7B")]  # sweeps/architectures.yaml
    for name in hub:
        snap = root / "hf" / "hub" / f"models--{name}"
        (snap / "refs").mkdir(parents=True)
        (snap / "refs" / "main").write_text("0" * 40)
        (snap / "snapshots" / ("0" * 40)).mkdir(parents=True)
        (snap / "snapshots" / ("0" * 40) / "config.json").write_text("{}")
    spm = root / "sacrebleu" / "models" / "sacrebleu_tokenizer_spm.model"
    spm.parent.mkdir(parents=True)
    spm.write_bytes(b"stand-in")
    from conftest import fake_flores_dir

    from mfti_lightning.core.languages import LANGUAGES

    extra = {c: "en" for c, lang in LANGUAGES.items() if lang.flores101 and c not in PAPER_LANGUAGES}
    flores = fake_flores_dir(root / "flores101", extra)  # sweeps/more_languages.yaml: a full FLORES-101 copy
    return {"MFTI_CORPORA_DIR": str(corpora), "HF_HOME": str(root / "hf"), "SACREBLEU": str(root / "sacrebleu"),
            "MFTI_FLORES_DIR": str(flores)}  # fmt: skip


@pytest.mark.timeout(300)
def test_plan_every_sweep_file_torch_free(tmp_path):
    """mfti-plan lists every job of every sweep file, composing and checking each one (inputs too), without torch."""
    code = (
        "import sys, json; from mfti_lightning.cli.plan import main\n"
        "rc = [main([s, '--json']) for s in %r]\n"
        "heavy = [m for m in ('torch', 'pytorch_lightning', 'transformers', 'wandb') if m in sys.modules]\n"
        "print('RC', rc, 'HEAVY', heavy, file=sys.stderr)" % (_sweep_files(),)
    )
    p = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **_fake_inputs(tmp_path)},
    )
    assert "HEAVY []" in p.stderr and f"RC {[0] * len(_sweep_files())}" in p.stderr, p.stderr[-3000:]
    jobs = [json.loads(line) for line in p.stdout.splitlines()]
    by_sweep = {}
    for j in jobs:
        by_sweep.setdefault(Path(j["run_dir"]).parent.name, []).append(j)
    assert {k: len(v) for k, v in by_sweep.items()} == {
        "main_comparison": 2,
        "model_scaling": 10,
        "num_examples_scaling": 6,
        "lang_pairs_scaling": 5,
        "unseen": 2,
        "templates": 6,
        "shots": 5,
        "architectures": 20,
        "template_space": 33,
        "pivot": 2,
        "data_quality": 9,
        "more_languages": 2,
    }
    for j in jobs:
        assert j["gpu_hours"] > 0 and j["params"] > 4e8  # Qwen2.5-0.5B: 0.49B matmul parameters
    mfti = next(j for j in by_sweep["main_comparison"] if j["overrides"] == ["experiment=main_mfti"])
    assert (mfti["devices"], mfti["nodes"], mfti["train_directions"], mfti["eval_directions"]) == (8, 1, 156, 156)
    assert round(mfti["params"] / 1e9, 1) == 7.5  # from model.shape, no model loaded
    assert sorted(j["train_directions"] for j in by_sweep["lang_pairs_scaling"]) == [12, 24, 42, 90, 156]
    assert sorted(j["train_directions"] for j in by_sweep["pivot"]) == [24, 156]
    assert {(j["train_directions"], j["eval_directions"]) for j in by_sweep["more_languages"]} == {(156, 52), (0, 52)}
    assert len({j["run_dir"] for j in by_sweep["data_quality"]}) == 9


TEMPLATES = ["--config-dir", str(REPO / "sweeps"), "--config-name", "templates", "model=tiny", "trainer=cpu"]


def _all_directions() -> list[str]:
    from mfti_lightning.core.languages import PAPER_LANGUAGES

    return [f"{a}-{b}" for a in PAPER_LANGUAGES for b in PAPER_LANGUAGES if a != b]


def _assert_lists_every_missing_corpus(text: str) -> None:
    assert "6 of 6 job(s) of this sweep would fail; nothing was submitted" in text, text[-3000:]
    for num in range(6):
        assert re.search(rf"job #{num} \(.*template=t{num + 1}_", text), num
    missing = set(re.findall(r"training corpus for ([a-z]+-[a-z]+): not found", text))
    assert missing == set(_all_directions()) and len(missing) == 156, sorted(set(_all_directions()) - missing)


@pytest.mark.timeout(200)
def test_plan_lists_every_missing_corpus_of_every_job(tmp_path):
    """The templates sweep with data=wikimatrix (experiment=main_mfti) where no WikiMatrix is: exit 2, every job and
    every missing corpus in one report."""
    p = mfti(["templates", "model=tiny", "trainer=cpu"], tmp_path, 180, module="mfti_lightning.cli.plan")
    assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-3000:]
    _assert_lists_every_missing_corpus(p.stderr)


def test_plan_refuses_jobs_sharing_a_run_dir(tmp_path):
    from mfti_lightning.cli.plan import main

    assert main(["-", "trainer=cpu,gpu"]) == 2  # trainer is not part of run_slug: both jobs -> one run dir


# ------------------------------------------------------------------------------------------------ real SLURM
@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sweep_one_array_rerun_submits_nothing_then_only_the_failed_job(slurm, tiny, tmp_path):
    args = ["-m", "hydra/launcher=slurm_cpu", "sweep_name=three", *FAST, "seed=1,2,3"]
    p = mfti(args, tmp_path, 500)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    sweep = tmp_path / "train" / "sweeps" / "three"
    res = results(sweep)
    # <readable slug>-<hash of the experiment>: the seeds differ, the rest of the identity is the same
    assert sorted(k.rsplit("-", 1)[0] for k in res) == [f"tiny_demo_t1_k0_n16_s{s}" for s in (1, 2, 3)]
    assert len({k.rsplit("-", 1)[1] for k in res}) == 3
    assert all(r["status"] == "completed" for r in res.values())
    dirs = submitit_dirs(sweep)
    tasks = [d for d in dirs if "_" in d]
    assert len(tasks) == 3 and len({d.split("_")[0] for d in tasks}) == 1, dirs  # one array: <id>_0, <id>_1, <id>_2

    # re-running the finished sweep submits nothing
    before = sacct_jobs()
    p = mfti(args, tmp_path, 200)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "3 already completed, 0 to submit" in p.stdout + p.stderr, p.stdout[-3000:]
    assert submitit_dirs(sweep) == dirs and sacct_jobs() == before

    # one failed job: only that one runs again
    failed = next(sweep.glob("tiny_demo_t1_k0_n16_s2-*")) / "results.json"
    rec = json.loads(failed.read_text())
    rec.update(status="failed", error="RuntimeError: simulated node failure")
    failed.write_text(json.dumps(rec))
    p = mfti(args, tmp_path, 400)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout + p.stderr
    assert "2 already completed, 1 to submit" in out and "(was failed: resuming)" in out, out[-3000:]
    new = sorted(set(submitit_dirs(sweep)) - set(dirs))
    assert len(new) == 1 and "_" not in new[0], new  # a single plain job, not an array
    assert all(r["status"] == "completed" for r in results(sweep).values())


@pytest.mark.slurm
@pytest.mark.timeout(200)
@pytest.mark.parametrize(
    "override,slurm_says",
    [
        ("hydra.launcher.partition=nosuchpartition", "invalid partition"),
        ("hydra.launcher.mem_gb=100000", "memory"),
        ("hydra/launcher=slurm_1gpu", "gres"),  # one GPU asked for on a cluster without GPUs
    ],
)
def test_slurm_rejection_shows_slurm_message_and_job(slurm, tmp_path, override, slurm_says):
    args = ["-m", "hydra/launcher=slurm_cpu", override, "sweep_name=rejected", "seed=7,8"]
    if "slurm_1gpu" in override:
        args.append("trainer.accelerator=gpu")
    p = mfti(args, tmp_path, 150)
    assert p.returncode != 0
    assert "SLURM refused the job array" in p.stderr, p.stderr[-3000:]
    assert slurm_says in p.stderr.lower(), p.stderr[-3000:]
    assert re.search(r"job #0: .*seed=7", p.stderr) and re.search(r"job #1: .*seed=8", p.stderr), p.stderr[-3000:]


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_two_tasks_started_by_srun(slurm, tiny, tmp_path):
    """trainer=ddp_cpu under SLURM: srun starts 2 ranks (tasks_per_node derived = 2), Lightning spawns nothing."""
    args = [
        "-m",
        "hydra/launcher=slurm_cpu",
        "trainer=ddp_cpu",
        "sweep_name=ddp",
        *FAST,
        "optim.micro_batch_size=2",
        "seed=5",
    ]
    p = mfti(args, tmp_path, 350)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    sweep = tmp_path / "train" / "sweeps" / "ddp"
    (rec,) = results(sweep).values()
    assert rec["status"] == "completed" and rec["batch"]["world_size"] == 2
    (jobdir,) = submitit_dirs(sweep)
    logs = {t: (sweep / ".submitit" / jobdir / f"{jobdir}_{t}_log.out").read_text() for t in (0, 1)}
    for t, text in logs.items():
        assert f"GLOBAL_RANK: {t}, MEMBER: {t + 1}/2" in text, text[-3000:]  # one rank per srun task
        assert "Job completed successfully" in text, text[-3000:]
    assert "strategy ddp_fork -> ddp" in logs[0]


@pytest.mark.slurm
@pytest.mark.timeout(300)
def test_sweep_with_missing_corpora_submits_nothing(slurm, tmp_path):
    """The templates sweep through the real SLURM launcher on a machine without WikiMatrix: one report with every
    job and every missing corpus, non-zero exit, and no job reaches SLURM."""
    before = sacct_jobs()
    p = mfti(["-m", *TEMPLATES, "hydra/launcher=slurm_cpu", "sweep_name=noinputs"], tmp_path, 250)
    assert p.returncode != 0, p.stdout[-2000:]
    _assert_lists_every_missing_corpus(p.stderr)
    assert not list(tmp_path.rglob(".submitit")), "something was submitted"
    assert sacct_jobs() == before


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_requeue_resumes_from_checkpoint_with_same_result(slurm, tiny, tmp_path):
    args = [*FAST, "optim.max_steps=12", "checkpoint.every_n_steps=4", "checkpoint.keep=5", "seed=11"]
    # reference: the same job, uninterrupted, without SLURM
    ref = mfti([*args, "hydra.run.dir=ref"], tmp_path, 300)
    assert ref.returncode == 0, ref.stderr[-3000:]
    ref_res = json.loads((tmp_path / "ref" / "results.json").read_text())

    env = {**os.environ, "MFTI_OUTPUT_ROOT": str(tmp_path), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mfti_lightning.cli.train",
            "-m",
            "hydra/launcher=slurm_cpu",
            "sweep_name=requeue",
            *args,
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        sweep = tmp_path / "train" / "sweeps" / "requeue"
        job = job_id(sweep, 120)
        end = time.time() + 240
        while not list(sweep.glob("tiny_demo_t1_k0_n16_s11-*/checkpoints/periodic/step*.ckpt")):
            assert time.time() < end and proc.poll() is None, "no checkpoint before the job ended"
            time.sleep(0.2)
        # what SLURM sends before a time limit / on preemption (signal_delay_s); training is still running here
        subprocess.run(["scancel", "--signal=USR2", job], check=True, timeout=30)
        out, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-4000:]
    (run_dir,) = sweep.glob("tiny_demo_t1_k0_n16_s11-*")
    log = (sweep / ".submitit" / job / f"{job}_0_log.out").read_text()
    assert "Requeued" in log or "requeue" in log.lower(), log[-3000:]
    assert "Resuming from" in log, log[-3000:]
    rec = json.loads((run_dir / "results.json").read_text())
    assert rec["status"] == "completed"
    assert rec["training"]["steps"] == ref_res["training"]["steps"] == 12
    assert rec["training"]["loss_last"] == pytest.approx(ref_res["training"]["loss_last"], abs=1e-6)
    for key, value in ref_res["metrics"].items():
        if key.startswith("test/"):
            assert rec["metrics"][key] == pytest.approx(value, abs=1e-9), key
    import torch

    final = Path("checkpoints") / "periodic" / "step000012.ckpt"
    a = torch.load(run_dir / final, map_location="cpu", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "ref" / final, map_location="cpu", weights_only=False)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ"
