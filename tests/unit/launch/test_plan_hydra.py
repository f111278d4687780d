"""The plan is what runs: mfti-plan and mfti-prefetch expand a sweep exactly as ``mfti-train -m`` does (the jobs Hydra's
own sweeper hands the launcher, for every sweep file and a set of command-line overrides), and a plan is still a
plan where the inputs are missing (every job with its run directory and cost, the failing ones marked, exit 2)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

RECORDER = "hydra_plugins.mfti_test_recorder.RecordingLauncher"  # tests/plugins: records jobs, runs nothing


def _sweep_files() -> list[str]:
    return sorted(p.stem for p in (REPO / "sweeps").glob("*.yaml"))


def _main_axis(name: str) -> str:
    """The sweep file's key with the most values, set on the command line to its last two (``shots=k4,k8``). A
    single value would be applied to the primary config too, before the sweep file's ``experiment`` that some keys
    need (``data.corpora.0.min_score``): Hydra refuses that command line, and mfti-plan with it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    params = OmegaConf.load(REPO / "sweeps" / f"{name}.yaml").hydra.sweeper.params
    parser = OverridesParser.create()
    axes = {}
    for key, value in params.items():
        o = parser.parse_override(f"{key}={value}")
        axes[key] = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
    key = max(axes, key=lambda k: len(axes[k]))
    return f"{key}={','.join(axes[key][-2:])}"


# every sweep file with its main axis replaced from the command line and a new axis (seed=1,2 also replaces the
# seeds of template_space.yaml); a single value; the sweeper's params overridden as a Hydra override; train.yaml
# with sweep syntax
CASES = [(name, [_main_axis(name), "seed=1,2"]) for name in _sweep_files()] + [
    ("shots", ["shots=k8"]),  # issue 20's example: one job
    ("shots", ["hydra.sweeper.params.shots='k1,k2'", "seed=7"]),
    ("-", ["model=tiny,tiny-llama", "seed=range(1,3)", "logger=csv"]),
]


def _where(run_dir: str | Path, root: Path, name: str) -> str:
    """The run directory without what differs between two processes (the output root; the ${now:} sweep name of
    a sweep without a file)."""
    rel = Path(run_dir).relative_to(root)
    return rel.name if name == "-" else str(rel)


def _jobs_hydra_runs(name: str, overrides: list[str], root: Path, record: Path) -> list[tuple]:
    """The jobs ``mfti-train -m`` hands its launcher (recorded by the test launcher instead of submitted)."""
    sweep = [] if name == "-" else ["--config-dir", str(REPO / "sweeps"), "--config-name", name]
    cmd = [sys.executable, "-m", "mfti_lightning.cli.train", "-m", *sweep, *overrides]
    env = {**os.environ, "MFTI_OUTPUT_ROOT": str(root), "MFTI_RECORD_JOBS": str(record), "HYDRA_FULL_ERROR": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "plugins"), str(REPO)])}  # fmt: skip
    p = subprocess.run([*cmd, f"hydra.launcher._target_={RECORDER}"], cwd=root, env=env, capture_output=True,
                       text=True, timeout=400)  # fmt: skip
    assert p.returncode == 0, (name, overrides, p.stderr[-3000:])
    jobs = [json.loads(line) for line in record.read_text().splitlines()]
    return [(j["num"], j["overrides"], _where(j["run_dir"], root, name)) for j in jobs]


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_plan_has_the_jobs_hydra_runs_for_every_sweep_file(tmp_path, monkeypatch):
    from mfti_lightning.launch.sweep import plan

    monkeypatch.setenv("MFTI_OUTPUT_ROOT", str(tmp_path))
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        runs = [pool.submit(_jobs_hydra_runs, n, ov, tmp_path, tmp_path / f"record{i}.jsonl") for i, (n, ov) in
                enumerate(CASES)]  # fmt: skip
        planned = [plan(None if n == "-" else n, ov, check=False) for n, ov in CASES]
        ran = [r.result(timeout=1400) for r in runs]
    for (name, overrides), jobs, hydra_jobs in zip(CASES, planned, ran):
        assert [(j.num, j.overrides, _where(j.run_dir, tmp_path, name)) for j in jobs] == hydra_jobs, (name, overrides)
        assert len({j.run_dir for j in jobs}) == len(jobs)
    by_case = {(n, tuple(ov)): jobs for (n, ov), jobs in zip(CASES, planned)}
    shots = by_case[("shots", ("shots=k4,k8", "seed=1,2"))]
    assert [j.overrides[1:] for j in shots] == [["shots=k4", "seed=1"], ["shots=k4", "seed=2"],
                                                ["shots=k8", "seed=1"], ["shots=k8", "seed=2"]]  # fmt: skip
    assert [j.overrides for j in by_case[("shots", ("shots=k8",))]] == [["experiment=main_icl", "shots=k8"]]
    space = by_case[("template_space", ("template=ts10_native_names,ts11_codes", "seed=1,2"))]
    assert [j.cfg.seed for j in space] == [1, 2, 1, 2]  # the command line's seeds replace the file's 1,2,3
    assert [j.overrides[-1] for j in by_case[("shots", ("hydra.sweeper.params.shots='k1,k2'", "seed=7"))]] == [
        "seed=7",
        "seed=7",
    ]


def test_a_key_given_on_the_command_line_replaces_the_sweep_files(capsys):
    """The example of issue 20: ``mfti-plan shots shots=k8`` is one job, as Hydra runs it (not five jobs carrying
    both shots=k0..k8 and shots=k8)."""
    from mfti_lightning.cli.plan import main

    main(["shots", "shots=k8", "--json"])
    jobs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [j["overrides"] for j in jobs] == [["experiment=main_icl", "shots=k8"]]
    assert Path(jobs[0]["run_dir"]).name.startswith("xglm-7.5b_paper13_t1_k8_n0_s42-")


@pytest.mark.slow
def test_prefetch_expands_a_sweep_file_as_hydra_does():
    from mfti_lightning.cli import prefetch

    models = [a.source for a in prefetch.plan([], sweep="architectures") if a.kind == "hf_model"]
    assert len(models) == 10 and "Qwen/Qwen2.5-7B" in models and "ai-forever/mGPT" in models
    # model=... on the command line replaces the sweep file's ten models
    one = [a.source for a in prefetch.plan(["model=xglm-564m"], sweep="architectures") if a.kind == "hf_model"]
    assert one == ["facebook/xglm-564M"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_plan_lists_jobs_run_dirs_and_cost_where_inputs_are_missing(tmp_path, monkeypatch, capsys):
    """``mfti-plan architectures`` on a machine without corpora or hub models: all 20 jobs with run directory and
    GPU-hours, each marked with what it misses, then the launcher's report, exit 2."""
    from mfti_lightning.cli.plan import main

    for var in ("MFTI_CORPORA_DIR", "HF_HOME"):
        (tmp_path / var).mkdir()
        monkeypatch.setenv(var, str(tmp_path / var))
    monkeypatch.setenv("MFTI_OUTPUT_ROOT", str(tmp_path / "out"))
    assert main(["architectures"]) == 2
    out, err = capsys.readouterr()
    blocks = re.split(r"\n(?=#\d+ )", out.split("\n", 1)[1])[:20]
    assert len(blocks) == 20 and "20 job(s), 20 to run, ~" in out and "20 would fail (marked WOULD FAIL)" in out
    for num, block in enumerate(blocks):
        assert block.startswith(f"#{num} "), block
        assert re.search(rf"run dir {tmp_path / 'out'}/train/sweeps/architectures/\S+-[0-9a-f]{{8}}  \[new\]", block)
        assert re.search(r"~[\d.,]+ GPU-h", block) and "WOULD FAIL" in block, block
    mgpt = next(b for b in blocks if "model=mgpt-1.3b" in b and "main_icl" in b)
    assert "model 'ai-forever/mGPT'" in mgpt and "SentencePiece" in mgpt
    mfti = next(b for b in blocks if "model=xglm-564m" in b and "main_mfti" in b)
    assert "training corpus for " in mfti and "more (all listed after the table)" in mfti
    assert "20 of 20 job(s) of this sweep would fail; the SLURM launcher would submit nothing:" in err
    assert not (tmp_path / "out").exists(), "planning wrote into the sweep directory"
