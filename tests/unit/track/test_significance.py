"""track/significance.py: sacrebleu's paired bootstrap per direction, checked against sacrebleu's own command line
(``python -m sacrebleu REF -i BASELINE SYSTEM --paired-bs``) on the same files, seed and number of resamples."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from mfti_lightning.assets import ASSETS_DIR
from mfti_lightning.track import significance

REFS = (ASSETS_DIR / "flores101" / "devtest" / "eng.devtest").read_text(encoding="utf-8").splitlines()[:120]


def degrade(sentences: list[str], every: int) -> list[str]:
    """Drop every ``every``-th word: a worse system the more often it drops."""
    return [" ".join(w for i, w in enumerate(s.split()) if i % every != every - 1) for s in sentences]


def close_pair(refs: list[str]) -> tuple[list[str], list[str]]:
    """A baseline and a system that differ on 1 sentence in 10 (p-values between the extremes)."""
    a = degrade(refs, 4)
    b = [refs[j] if j % 20 == 0 else (degrade([x], 3)[0] if j % 20 == 10 else x) for j, x in enumerate(a)]
    return a, b


CELL = re.compile(r"(-?[\d.]+) \((-?[\d.]+) ± ([\d.]+)\)")


def sacrebleu_cli(tmp_path, baseline, system, refs, seed: int, n: int) -> dict:
    """sacrebleu's table (its JSON output cannot serialise the float32 p-values of 2.6.0), parsed:
    ``{metric: [(score, mean, ci) of the baseline, (score, mean, ci, p) of the system]}``."""
    for name, lines in (("ref", refs), ("a", baseline), ("b", system)):
        (tmp_path / name).write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    p = subprocess.run(
        [sys.executable, "-m", "sacrebleu", "ref", "-i", "a", "b", "--paired-bs", "--paired-bs-n", str(n)]
        + ["-m", "bleu", "chrf", "-f", "text", "-w", "6", "--no-color"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SACREBLEU_SEED": str(seed)},
    )
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stdout.splitlines()
    base = [tuple(map(float, m)) for m in CELL.findall(next(x for x in lines if "Baseline: a" in x))]
    i = next(i for i, x in enumerate(lines) if x.strip("│ ").startswith("b "))
    sys_cells = [tuple(map(float, m)) for m in CELL.findall(lines[i])]
    ps = [float(x) for x in re.findall(r"p = ([\d.]+)", lines[i + 1])]
    return {m: [base[k], (*sys_cells[k], ps[k])] for k, m in enumerate(("bleu", "chrf"))}


@pytest.mark.subprocess
def test_paired_bootstrap_equals_sacrebleus_command_line(tmp_path):
    baseline, system = close_pair(REFS)
    ours = significance.paired_bootstrap(baseline, system, REFS, ["bleu", "chrf"], "en", n_samples=300, seed=7)
    cli = sacrebleu_cli(tmp_path, baseline, system, REFS, seed=7, n=300)
    for name in ("bleu", "chrf"):
        r, (b_score, _, _), (s_score, s_mean, s_ci, p) = ours[name], *cli[name]
        assert r["baseline_score"] == pytest.approx(b_score, abs=1e-6)
        assert r["system_score"] == pytest.approx(s_score, abs=1e-6)
        assert r["p_value"] == pytest.approx(p, abs=1e-4)  # sacrebleu prints 4 decimals
        assert (r["system_bootstrap_mean"], r["system_bootstrap_ci"]) == (
            pytest.approx(s_mean, abs=1e-6),
            pytest.approx(s_ci, abs=1e-6),
        )  # the same resamples
        assert r["diff"] == pytest.approx(s_score - b_score, abs=1e-6)
        assert r["diff_low"] < r["diff"] < r["diff_high"] and "bs:300" in r["signature"] and "seed:7" in r["signature"]
    assert 0.01 < ours["bleu"]["p_value"] < 0.05 and ours["bleu"]["better"] == "system"
    assert ours["chrf"]["p_value"] > 0.05 and ours["chrf"]["better"] is None
    assert ours["chrf"]["diff_low"] < 0 < ours["chrf"]["diff_high"]  # not significant: the interval holds 0
    assert os.environ.get("SACREBLEU_SEED") != "7"  # the seed is restored


@pytest.mark.subprocess
def test_a_seed_changes_the_resamples_not_the_scores(tmp_path):
    baseline, system = close_pair(REFS)
    a = significance.paired_bootstrap(baseline, system, REFS, ["chrf"], "en", n_samples=200, seed=1)["chrf"]
    b = significance.paired_bootstrap(baseline, system, REFS, ["chrf"], "en", n_samples=200, seed=2)["chrf"]
    cli = sacrebleu_cli(tmp_path, baseline, system, REFS, seed=2, n=200)
    assert a["diff"] == b["diff"] and (a["diff_low"], a["p_value"]) != (b["diff_low"], b["p_value"])
    assert b["p_value"] == pytest.approx(cli["chrf"][1][3], abs=1e-4)


def test_the_same_system_is_never_significant():
    hyp = degrade(REFS, 3)
    r = significance.paired_bootstrap(hyp, list(hyp), REFS, ["bleu", "chrf"], "en", n_samples=100)
    assert all(v["diff"] == 0 and v["diff_low"] == v["diff_high"] == 0 and v["better"] is None for v in r.values())


def write_run(path, directions: dict[str, tuple[list[str], list[str]]]):
    (path / "translations").mkdir(parents=True)
    for d, (hyps, refs) in directions.items():
        rows = [{"source": f"src {i}", "reference": r, "hypothesis": h} for i, (h, r) in enumerate(zip(hyps, refs))]
        (path / "translations" / f"{d}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))


def test_compare_runs_and_the_summary(tmp_path):
    refs = REFS[:60]
    write_run(tmp_path / "icl", {"de-en": (degrade(refs, 2), refs), "fr-en": (refs, refs), "zh-en": (refs, refs)})
    write_run(tmp_path / "mfti", {"de-en": (degrade(refs, 8), refs), "fr-en": (degrade(refs, 2), refs)})
    (tmp_path / "other").mkdir()
    rows, notes = significance.compare_runs(
        tmp_path / "icl", tmp_path / "mfti", ["de-en", "fr-en", "zh-en"], ["chrf"], n_samples=200
    )
    assert [(r["direction"], r["better"]) for r in rows] == [("de-en", "system"), ("fr-en", "baseline")]
    assert len(notes) == 1 and "zh-en" in notes[0] and "no translations" in notes[0]
    assert significance.summarize(rows) == {"chrf": {"system": 1, "baseline": 1, "neither": 0, "directions": 2}}
    write_run(tmp_path / "shuffled", {"de-en": (refs[::-1], refs[::-1])})
    rows, notes = significance.compare_runs(tmp_path / "icl", tmp_path / "shuffled", ["de-en"], ["chrf"])
    assert rows == [] and "different test sentences" in notes[0]
