"""benchmarks/gpu_all.py --smoke: the prepared GPU script runs every case on the CPU with the tiny shape and writes
the throughput JSON mfti-plan reads (no GPU numbers: CPUs have no peak-FLOPs entry, so no MFU)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_gpu_all_smoke_writes_the_throughput_json(tmp_path):
    out = tmp_path / "throughput.json"
    p = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_all.py"), "--smoke", "--out", str(out)],
        capture_output=True, text=True, timeout=380, cwd=tmp_path,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    d = json.loads(out.read_text())
    cases = d["cases"]
    assert {(r["attn"], r["batching"]) for r in cases["train"]} == {
        (a, b) for a in ("sdpa", "eager") for b in ("length-grouped", "padded")
    }
    assert all(r["tokens_per_s"] > 0 and r["real_tokens"] > 0 and r["mfu"] is None for r in cases["train"])
    runs = {(r["engine"], r["batch_tokens"]) for r in cases["eval"]}
    assert runs == {("hf", "4096"), ("hf", "auto"), ("ctranslate2", "auto")}
    assert all(r["sentences_per_s"] > 0 and r["sentences"] == 6 for r in cases["eval"])
    assert d["generate"]["tiny"]["ctranslate2"]["auto"]["sentences_per_s"] > 0 and d["skipped"] == []
    # mfti-plan reads it; without an MFU (CPU) it keeps the assumed figures and says so
    from omegaconf import OmegaConf

    from mfti_lightning.launch.cost import CostModel, load_throughput, rates

    measured, path = load_throughput(out)
    job = OmegaConf.create({"model": {"name": "tiny"}, "eval": {"engine": "ctranslate2", "batch_tokens": "auto"}})
    r = rates(job, CostModel(measured=measured, measured_path=path))
    assert r["gen_source"] == "assumed 2% MFU" and r["train_source"] == "assumed 35% MFU"


def test_ctranslate2_cases_skip_with_the_reason_when_it_cannot_load(monkeypatch):
    """gpu_all.py imports ctranslate2 only for its cases, and skips them with the reason when it is absent (or its
    CUDA build's cuBLAS does not load): the other cases' numbers are kept."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_all", REPO / "benchmarks" / "gpu_all.py")
    gpu_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_all)
    import torch

    monkeypatch.setitem(sys.modules, "ctranslate2", None)
    assert gpu_all.ct2_unavailable(torch.device("cpu")).startswith("ctranslate2 not importable")
