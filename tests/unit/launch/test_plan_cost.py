"""mfti-plan's cost model: measured throughput from a JSON (mfti_lightning/assets/throughput.json, or --throughput)
or the assumed MFUs, and saying which; evaluation-only jobs of the paper sweeps on every GPU of their node."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

from mfti_lightning.cli.plan import params_text


def _plan_json(tmp_path, *options, overrides=()):
    cmd = ["mfti_lightning.cli.plan", "-", "logger=none", *overrides, "--json", *options]
    p = run_cli(cmd, cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


@pytest.mark.subprocess
@pytest.mark.timeout(300)
def test_measured_throughput_replaces_the_assumed_mfu(tmp_path):
    (assumed,) = _plan_json(tmp_path, "--throughput", "none")
    assert assumed["train_rate"] == "assumed 35% MFU" and assumed["generate_rate"] == "assumed 2% MFU"
    peak, mfu, gen_mfu = 989.0, 0.40, 0.10
    measured = {"device": "NVIDIA H200", "peak_tflops": peak, "train": {"tiny": {"mfu": mfu}},
                "generate": {"tiny": {"hf": {"auto": {"mfu": gen_mfu, "sentences_per_s": 50.0}}}}}  # fmt: skip
    path = tmp_path / "throughput.json"
    path.write_text(json.dumps(measured))
    (m,) = _plan_json(tmp_path, "--throughput", str(path))
    assert "measured on NVIDIA H200" in m["train_rate"] and str(path) in m["generate_rate"]
    expected = (m["train_flops"] / (peak * 1e12 * mfu) + m["gen_flops"] / (peak * 1e12 * gen_mfu)) / 3600
    assert m["gpu_hours"] == pytest.approx(expected) and m["gpu_hours"] != pytest.approx(assumed["gpu_hours"])
    # another engine was not measured: its generation falls back to the assumed MFU, and says so
    (ct2,) = _plan_json(tmp_path, "--throughput", str(path), overrides=["eval.engine=ctranslate2"])
    assert "measured" in ct2["train_rate"] and ct2["generate_rate"] == "assumed 2% MFU"


@pytest.mark.subprocess
@pytest.mark.timeout(200)
def test_plan_table_says_which_throughput_it_used(tmp_path):
    p = run_cli(["mfti_lightning.cli.plan", "-", "logger=none", "--throughput", "none"], cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert (
        "Throughput used: assumed 2% MFU; assumed 35% MFU (no measured throughput: run benchmarks/gpu_all.py"
        in p.stdout
    )
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    p = run_cli(["mfti_lightning.cli.plan", "-", "logger=none", "--throughput", str(bad)], cwd=tmp_path, timeout=120)
    assert p.returncode == 2 and "not valid JSON" in p.stderr


def test_icl_jobs_of_the_paper_sweeps_use_the_whole_node(capsys):
    from mfti_lightning.cli.plan import print_table
    from mfti_lightning.launch.cost import CostModel
    from mfti_lightning.launch.sweep import plan

    jobs = plan("main_comparison", [], check=False)
    icl = next(j for j in jobs if j.overrides == ["experiment=main_icl"])
    e = icl.estimate
    assert e["train_directions"] == 0 and e["world_size"] == 8 == int(icl.cfg.trainer.devices)
    assert e["wall_hours"] == pytest.approx(e["gpu_hours"] / 8)
    print_table(jobs, CostModel())
    assert "evaluation only: 8 ranks deal the sentences" in capsys.readouterr().out


def test_model_sizes_print_in_the_unit_that_shows_them():
    assert params_text(7.49e9) == "7.49B"
    assert params_text(5.64e8) == "564M"
    assert params_text(1.57e6) == "1.6M"  # the tiny demo model (printed 0.00B before)
