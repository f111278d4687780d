"""Sweeps through the SLURM launcher presets, against the real single-node SLURM of scripts/local_slurm.sh.

Tests marked ``slurm`` need that cluster (scripts/test.sh starts it; this module starts it too when it is root and
the cluster is down, and skips with the reason otherwise). The checks before submission need no SLURM at all.
Every wait has a timeout: a job SLURM killed can make submitit wait forever.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO
from quiet_output import assert_quiet
from slurm_jobs import FAST, FAULT_SITECUSTOMIZE, job_id, mfti, paper_inputs, results, sacct_jobs, submitit_dirs


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    """Build the tiny model once before jobs run (three jobs must not build it concurrently)."""
    return tiny_model_dir


# ------------------------------------------------------------------------------------------------ no SLURM needed
@pytest.mark.subprocess
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


@pytest.mark.subprocess
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


@pytest.mark.subprocess
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


@pytest.mark.subprocess
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
        env={**os.environ, "PYTHONPATH": str(REPO), **paper_inputs(tmp_path)},
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
    main_mfti = next(j for j in by_sweep["main_comparison"] if j["overrides"] == ["experiment=main_mfti"])
    assert (main_mfti["devices"], main_mfti["nodes"], main_mfti["train_directions"], main_mfti["eval_directions"]) == (
        8,
        1,
        156,
        156,
    )
    assert round(main_mfti["params"] / 1e9, 1) == 7.5  # from model.shape, no model loaded
    assert sorted(j["train_directions"] for j in by_sweep["lang_pairs_scaling"]) == [12, 24, 42, 90, 156]
    assert sorted(j["train_directions"] for j in by_sweep["pivot"]) == [24, 156]
    assert {(j["train_directions"], j["eval_directions"]) for j in by_sweep["more_languages"]} == {(156, 52), (0, 52)}
    assert len({j["run_dir"] for j in by_sweep["data_quality"]}) == 9


TEMPLATES = ["--config-dir", str(REPO / "sweeps"), "--config-name", "templates", "model=tiny", "trainer=cpu"]


def _all_directions() -> list[str]:
    from mfti_lightning.core.languages import PAPER_LANGUAGES

    return [f"{a}-{b}" for a in PAPER_LANGUAGES for b in PAPER_LANGUAGES if a != b]


def _assert_lists_every_missing_corpus(text: str, outcome: str = "nothing was submitted") -> None:
    assert f"6 of 6 job(s) of this sweep would fail; {outcome}" in text, text[-3000:]
    for num in range(6):
        assert re.search(rf"job #{num} \(.*template=t{num + 1}_", text), num
    missing = set(re.findall(r"training corpus for ([a-z]+-[a-z]+): not found", text))
    assert missing == set(_all_directions()) and len(missing) == 156, sorted(set(_all_directions()) - missing)


@pytest.mark.subprocess
@pytest.mark.timeout(200)
def test_plan_lists_every_missing_corpus_of_every_job(tmp_path):
    """The templates sweep with data=wikimatrix (experiment=main_mfti) where no WikiMatrix is: every job in the table,
    marked; exit 2, every job and every missing corpus in one report."""
    p = mfti(["templates", "model=tiny", "trainer=cpu"], tmp_path, 180, module="mfti_lightning.cli.plan")
    assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-3000:]
    _assert_lists_every_missing_corpus(p.stderr, "the SLURM launcher would submit nothing")
    assert len(re.findall(r"WOULD FAIL, 157 problem\(s\): training corpus for ", p.stdout)) == 6, p.stdout[
        -3000:
    ]  # 156 corpora + spBLEU
    assert "6 job(s), 6 to run" in p.stdout


def test_plan_refuses_jobs_sharing_a_run_dir(tmp_path):
    from mfti_lightning.cli.plan import main

    assert main(["-", "trainer=cpu,gpu"]) == 2  # trainer is not part of run_slug: both jobs -> one run dir


# ------------------------------------------------------------------------------------------------ real SLURM
def _manifest(sweep: Path) -> list[dict]:
    path = sweep / "submissions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _wait_until(predicate, timeout: float, what: str) -> None:
    end = time.time() + timeout
    while not predicate():
        assert time.time() < end, f"timed out after {timeout} s waiting for {what}"
        time.sleep(1)


def _sacct_state(job: str) -> str:
    p = subprocess.run(["sacct", "-X", "-n", "-j", job, "-o", "State%40"], capture_output=True, text=True, timeout=30)
    return (p.stdout.split() or [""])[0]


def _completed(sweep: Path, n: int):
    return lambda: [r["status"] for r in results(sweep).values()] == ["completed"] * n


def _submit(args: list[str], out_root: Path) -> subprocess.Popen:
    env = {**os.environ, "MFTI_OUTPUT_ROOT": str(out_root), "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "0"}
    cmd = [sys.executable, "-m", "mfti_lightning.cli.train", *args]
    return subprocess.Popen(cmd, cwd=out_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_sweep_survives_its_submitter_rerun_submits_nothing_then_only_the_failed_job(slurm, tiny, tmp_path):
    """Submit and walk away: the submitting process (waiting, hydra.launcher.wait=true) is killed once the array
    is submitted, and the jobs still finish. Then re-running submits nothing, and after a failure only that job."""
    args = ["-m", "hydra/launcher=slurm_cpu", "sweep_name=three", *FAST, "seed=1,2,3"]
    sweep = tmp_path / "train" / "sweeps" / "three"
    proc = _submit([*args, "hydra.launcher.wait=true"], tmp_path)
    try:
        _wait_until(lambda: len(_manifest(sweep)) == 3, 200, "the array in submissions.jsonl")
        assert proc.poll() is None, proc.communicate()  # it is waiting for the jobs
        proc.kill()
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    records = _manifest(sweep)
    assert [r["array_task_id"] for r in records] == [0, 1, 2] and len({r["array_job_id"] for r in records}) == 1
    assert [r["job_id"] for r in records] == [f"{records[0]['array_job_id']}_{t}" for t in range(3)]
    assert [r["overrides"][-1] for r in records] == ["seed=1", "seed=2", "seed=3"] and all(r["wait"] for r in records)
    _wait_until(_completed(sweep, 3), 900, "the jobs to complete without their submitter")
    # results.json is written just before the job exits: SLURM's state follows
    states = lambda: [_sacct_state(r["job_id"]) for r in records]  # noqa: E731
    _wait_until(lambda: states() == ["COMPLETED"] * 3, 120, "SLURM to account the jobs as completed")
    res = results(sweep)
    assert sorted(res) == sorted(r["run_dir"] for r in records)
    # <readable slug>-<hash of the experiment>: the seeds differ, the rest of the identity is the same
    assert sorted(k.rsplit("-", 1)[0] for k in res) == [f"tiny_demo_t1_k0_n16_s{s}" for s in (1, 2, 3)]
    assert len({k.rsplit("-", 1)[1] for k in res}) == 3
    dirs = submitit_dirs(sweep)
    tasks = [d for d in dirs if "_" in d]
    assert len(tasks) == 3 and len({d.split("_")[0] for d in tasks}) == 1, dirs  # one array: <id>_0, <id>_1, <id>_2

    # re-running the finished sweep submits nothing
    before = sacct_jobs(name="three")
    p = mfti(args, tmp_path, 200)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "3 already completed, 0 to submit" in p.stdout + p.stderr, p.stdout[-3000:]
    assert submitit_dirs(sweep) == dirs and sacct_jobs(name="three") == before and len(_manifest(sweep)) == 3

    # one failed job: only that one runs again (waiting for it: the sweep then ends without a failure table)
    failed = next(sweep.glob("tiny_demo_t1_k0_n16_s2-*")) / "results.json"
    rec = json.loads(failed.read_text())
    rec.update(status="failed", error="RuntimeError: simulated node failure")
    failed.write_text(json.dumps(rec))
    p = mfti([*args, "hydra.launcher.wait=true"], tmp_path, 600)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout + p.stderr
    assert "2 already completed, 1 to submit" in out and "(was failed: resuming)" in out, out[-3000:]
    new = sorted(set(submitit_dirs(sweep)) - set(dirs))
    assert len(new) == 1 and "_" not in new[0], new  # a single plain job, not an array
    assert all(r["status"] == "completed" for r in results(sweep).values())
    last = _manifest(sweep)[3]  # appended: the earlier lines are kept
    assert last["job_id"] == last["array_job_id"] == new[0] and last["array_task_id"] is None
    assert last["run_dir"] == failed.parent.name and len(_manifest(sweep)) == 4


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
        "hydra.launcher.wait=true",
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


EVAL = ["logger=none", "lang_pairs.test_size=5", "eval.max_new_tokens=10"]


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_mfti_eval_on_two_srun_tasks_deals_the_sentences(slurm, tiny, tmp_path):
    """mfti-eval trainer=ddp_cpu started by srun as two tasks: Lightning Fabric joins them through SLURM (no
    MASTER_ADDR from srun, no process started), each sentence is translated once, with the translations of one
    process (one CPU thread, as each task)."""
    srun = ["srun", "-N1", "-n2", "--ntasks-per-node=2", "-c1", "--time=8", "-J", "mfti-eval-srun"]
    two = subprocess.run([*srun, sys.executable, "-m", "mfti_lightning.cli.eval", "trainer=ddp_cpu", *EVAL,
                          f"hydra.run.dir={tmp_path / 'two'}"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=500)  # fmt: skip
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    out = two.stdout + two.stderr
    for t in (0, 1):
        assert f"SLURM rank {t} of 2" in out and f"GLOBAL_RANK: {t}, MEMBER: {t + 1}/2" in out, out[-3000:]
    one = subprocess.run([sys.executable, "-m", "mfti_lightning.cli.eval", *EVAL, f"hydra.run.dir={tmp_path / 'one'}"],
                         cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    recs = {d: json.loads((tmp_path / d / "results.json").read_text()) for d in ("one", "two")}
    assert recs["two"]["status"] == "completed" and (recs["one"]["world_size"], recs["two"]["world_size"]) == (1, 2)
    hyps = {
        d: {f.stem: [json.loads(x)["hypothesis"] for x in f.read_text().splitlines()]
            for f in sorted((tmp_path / d / "translations").glob("*.jsonl"))}
        for d in ("one", "two")
    }  # fmt: skip
    assert hyps["two"] == hyps["one"] and sum(map(len, hyps["two"].values())) == 5 * len(hyps["two"]) > 0


@pytest.mark.slurm
@pytest.mark.timeout(300)
def test_sweep_with_missing_corpora_submits_nothing(slurm, tmp_path):
    """The templates sweep through the real SLURM launcher on a machine without WikiMatrix: one report with every
    job and every missing corpus, non-zero exit, and no job reaches SLURM."""
    before = sacct_jobs(name="noinputs")
    p = mfti(["-m", *TEMPLATES, "hydra/launcher=slurm_cpu", "sweep_name=noinputs"], tmp_path, 250)
    assert p.returncode != 0, p.stdout[-2000:]
    _assert_lists_every_missing_corpus(p.stderr)
    assert not list(tmp_path.rglob(".submitit")), "something was submitted"
    assert sacct_jobs(name="noinputs") == before and not list(tmp_path.rglob("submissions.jsonl"))


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
            "hydra.launcher.wait=true",
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


# ------------------------------------------------------------------------- exit status: what sacct records
def _wait_state(job: str, timeout: float) -> str:
    end = time.time() + timeout
    state = ""
    while time.time() < end:
        state = _sacct_state(job)
        if state and not state.startswith(("PENDING", "RUNNING", "REQUEUED", "COMPLETING")):
            return state
        time.sleep(1)
    raise TimeoutError(f"job {job} still {state!r}")


def _submit_one(tmp_path: Path, sweep_name: str, *args: str) -> tuple[subprocess.Popen, Path]:
    """Submit one job through the project's launcher; the submitting process is not waited for here."""
    env = {**os.environ, "MFTI_OUTPUT_ROOT": str(tmp_path), "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "mfti_lightning.cli.train",
        "-m",
        "hydra/launcher=slurm_cpu",
        f"sweep_name={sweep_name}",
    ]
    proc = subprocess.Popen(
        [*cmd, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return proc, tmp_path / "train" / "sweeps" / sweep_name


PLUGIN_PRESET = "plugin_copy"


def _plugin_preset(conf: Path, overrides: list[str]) -> None:
    """``hydra/launcher=plugin_copy`` under ``conf``: hydra-submitit-launcher's own ``submitit_slurm`` (the plugin's
    launcher class) with every setting slurm_cpu resolves to for these overrides."""
    from conftest import compose
    from omegaconf import OmegaConf

    params = OmegaConf.to_container(compose(["hydra/launcher=slurm_cpu", *overrides]).hydra.launcher, resolve=True)
    for own in ("_target_", "wait"):  # mfti's launcher and its own setting
        params.pop(own)
    (conf / "hydra" / "launcher").mkdir(parents=True)
    preset = "defaults:\n  - submitit_slurm\n  - _self_\n" + OmegaConf.to_yaml(params)
    (conf / "hydra" / "launcher" / f"{PLUGIN_PRESET}.yaml").write_text(preset)


def _sbatch_script(sweep: Path, job_id: str) -> str:
    """The job's sbatch script with what differs between two sweeps (their directory and job name) replaced."""
    text = (sweep / ".submitit" / job_id / f"{job_id}_submission.sh").read_text()
    return text.replace(str(sweep), "<sweep dir>").replace(f"--job-name={sweep.name}\n", "--job-name=<sweep>\n")


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.timeout(500)
def test_job_that_raises_is_failed_in_sacct(slurm, tiny, tmp_path):
    fault = tmp_path / "fault"
    fault.mkdir()
    (fault / "sitecustomize.py").write_text(FAULT_SITECUSTOMIZE)
    setup = f'hydra.launcher.setup=["export PYTHONPATH={fault}:{REPO}"]'
    proc, sweep = _submit_one(tmp_path, "raises", *FAST, setup)
    try:
        job = job_id(sweep, 120)
        state = _wait_state(job, 300)
    finally:
        proc.kill()
    assert state.startswith("FAILED"), state  # not COMPLETED (Hydra issue 1928)
    (rec,) = results(sweep).values()
    assert rec["status"] == "failed" and "injected fault on the node" in rec["error"]


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_default_submits_and_returns_with_the_plugins_own_submission(slurm, tiny, tmp_path, monkeypatch):
    """The default (hydra.launcher.wait=false): mfti-train -m submits, records the job, says how to follow it and
    returns before the job has ended; the job finishes on its own. The submission is the plugin's: the same sbatch
    script as hydra-submitit-launcher's own launcher writes for the same settings, and its hydra.sweep.mode."""
    common = [*FAST, "seed=21", "+hydra.sweep.mode=750", "hydra.launcher.comment=same-as-plugin",
              "hydra.launcher.signal_delay_s=77"]  # fmt: skip
    p = mfti(["-m", "hydra/launcher=slurm_cpu", "sweep_name=ours", *common], tmp_path, 200)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    ours = tmp_path / "train" / "sweeps" / "ours"
    assert not any(r["status"] == "completed" for r in results(ours).values())  # returned while the job runs
    out = p.stdout + p.stderr
    (rec,) = _manifest(ours)
    # the job's overrides as Hydra's sweeper hands them over (it writes false as False)
    assert rec["overrides"] == [o.replace("=false", "=False") for o in ["sweep_name=ours", *FAST, "seed=21"]], rec
    assert rec["wait"] is False
    assert rec["job_id"] == rec["array_job_id"] and rec["array_task_id"] is None  # one job: not an array
    assert f"squeue -j {rec['job_id']}" in out and f"tail -f {ours / rec['log']}" in out, out[-3000:]
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30)
    assert rec["git_commit"] == head.stdout.strip() and rec["cwd"] == str(tmp_path)
    assert rec["command"].startswith("train.py -m hydra/launcher=slurm_cpu sweep_name=ours"), rec["command"]
    assert oct(ours.stat().st_mode & 0o777) == "0o750"  # hydra.sweep.mode, as the plugin applies it

    # hydra-submitit-launcher's own launcher, same settings (it blocks until its job has ended)
    monkeypatch.setenv("MFTI_OUTPUT_ROOT", str(tmp_path))
    _plugin_preset(tmp_path / "conf", ["sweep_name=plugin", *common])
    plugin_args = [f"hydra.searchpath=[file://{tmp_path / 'conf'}]", f"hydra/launcher={PLUGIN_PRESET}"]
    p = mfti(["-m", *plugin_args, "sweep_name=plugin", *common], tmp_path, 600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    theirs = tmp_path / "train" / "sweeps" / "plugin"
    (plugin_job,) = submitit_dirs(theirs)
    assert _sbatch_script(ours, rec["job_id"]) == _sbatch_script(theirs, plugin_job)
    assert "#SBATCH --comment=same-as-plugin" in _sbatch_script(theirs, plugin_job)
    assert oct(theirs.stat().st_mode & 0o777) == "0o750"

    _wait_until(_completed(ours, 1), 600, "the job to complete without its submitter")
    _wait_until(lambda: _sacct_state(rec["job_id"]) == "COMPLETED", 120, "SLURM to account the job as completed")
    # the submission and the job's log (stdout and stderr) print only the project's explained warnings
    assert_quiet(out, "the submission")
    assert_quiet((ours / rec["log"]).read_text(), "the SLURM job")


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.timeout(500)
def test_scancelled_training_is_cancelled_in_sacct_and_recorded_interrupted(slurm, tiny, tmp_path):
    args = [*FAST, "optim.max_steps=400", "checkpoint.every_n_steps=2", "eval.val_every_n_steps=200"]
    proc, sweep = _submit_one(tmp_path, "cancelled", *args)
    try:
        job = job_id(sweep, 120)
        end = time.time() + 300
        while not list(sweep.glob("*/checkpoints/periodic/step*.ckpt")):
            assert time.time() < end, "no checkpoint before the job ended"
            time.sleep(0.2)
        subprocess.run(["scancel", job], check=True, timeout=30)
        state = _wait_state(job, 120)
    finally:
        proc.kill()
    assert state.startswith("CANCELLED"), state
    (run_dir,) = [d for d in sweep.iterdir() if d.name.startswith("tiny_")]
    end = time.time() + 60  # SLURM says CANCELLED when it signals; the job writes its record right after
    while time.time() < end and not (run_dir / "progress.json").read_text().count('"phase": "interrupted"'):
        time.sleep(0.5)
    rec = json.loads((run_dir / "results.json").read_text())
    assert rec["status"] == "interrupted" and "JobInterrupted" in rec["error"], rec.get("error")
    log = (sweep / ".submitit" / job / f"{job}_0_log.out").read_text()
    assert "mfti-train: interrupted by SIGTERM at step " in log, log[-3000:]
    assert not (run_dir / "lease.json").exists()


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_wait_ends_with_a_table_of_failed_jobs_and_their_logs(slurm, tiny, tmp_path):
    """hydra.launcher.wait=true: one job of two is cancelled while it runs; the command waits for both, then lists
    the cancelled one with its SLURM job id and log file, and exits non-zero."""
    sweep = tmp_path / "train" / "sweeps" / "waited"
    proc = _submit(["-m", "hydra/launcher=slurm_cpu", "hydra.launcher.wait=true", "sweep_name=waited", *FAST,
                    "seed=41,42"], tmp_path)  # fmt: skip
    try:
        _wait_until(lambda: len(_manifest(sweep)) == 2, 200, "the array in submissions.jsonl")
        victim = _manifest(sweep)[1]
        _wait_until(lambda: (sweep / victim["log"]).exists(), 600, "the second job to start")
        subprocess.run(["scancel", victim["job_id"]], check=True, timeout=30)
        out, err = proc.communicate(timeout=700)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, out[-2000:] + err[-3000:]
    text = out + err
    assert "1 of 2 submitted job(s) failed:" in text, text[-3000:]
    assert re.search(rf"#1 .*seed=42: SLURM job {victim['job_id']} ", text), text[-3000:]
    assert f"log: {sweep / victim['log']}\n" in text, text[-3000:]
    assert "Run the same command again to submit the failed jobs again" in text
    statuses = {k.rsplit("-", 1)[0]: r["status"] for k, r in results(sweep).items()}
    assert statuses["tiny_demo_t1_k0_n16_s41"] == "completed", statuses


@pytest.mark.slurm
@pytest.mark.timeout(200)
def test_unwritable_manifest_names_the_jobs_it_submitted(slurm, tmp_path):
    """submissions.jsonl cannot be written after sbatch accepted the array: the error names the SLURM jobs, which
    run regardless (cancelled here)."""
    sweep = tmp_path / "train" / "sweeps" / "unrecorded"
    (sweep / "submissions.jsonl").mkdir(parents=True)  # stands for a full disk: any OSError on the append
    p = mfti(["-m", "hydra/launcher=slurm_cpu", "sweep_name=unrecorded", *FAST, "seed=51"], tmp_path, 150)
    (job,) = submitit_dirs(sweep)
    subprocess.run(["scancel", job], timeout=30, check=True)
    assert p.returncode != 0
    assert f"SLURM job(s) {job} were submitted and will run, but {sweep / 'submissions.jsonl'}" in p.stderr, p.stderr
