"""conf/ and the shipped data are found when the package is installed from a wheel, not only editable; the measured
throughput too: mfti-plan from a wheel installed in a fresh environment reads the one it ships."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import REPO


@pytest.mark.timeout(300)
def test_wheel_contains_conf_and_assets(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    (wheel,) = tmp_path.glob("mfti_lightning-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "mfti_lightning/conf/train.yaml" in names
    assert "mfti_lightning/conf/model/xglm-7.5b.yaml" in names
    assert "mfti_lightning/assets/flores101/devtest/eng.devtest" in names
    assert "mfti_lightning/assets/flores101/LICENSE" in names
    # the installed layout: conf_dir() prefers mfti_lightning/conf next to the package
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    code = "import mfti_lightning.core.config as c; print(c.conf_dir())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == str(tmp_path / "site" / "mfti_lightning" / "conf"), out.stderr


def _checkout_copy(dest):
    """The files of this checkout as git sees them (tracked and untracked, not ignored): what a wheel is built from."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=REPO,
            capture_output=True,
            timeout=60,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_installed_wheel_plans_with_the_measured_throughput_it_ships(tmp_path):
    """A checkout with a measured mfti_lightning/assets/throughput.json, built into a wheel and installed (no
    editable link, no checkout on the path) in a fresh virtual environment: mfti-plan reads the file from the
    installed package and says so, as it does from the checkout. The dependencies are reused from this
    environment (a .pth line), so nothing is downloaded."""
    src = _checkout_copy(tmp_path / "src")
    measured = {"device": "NVIDIA H200", "peak_tflops": 989.0, "train": {"tiny": {"mfu": 0.4}}}
    (src / "mfti_lightning" / "assets" / "throughput.json").write_text(json.dumps(measured))
    wheel_dir = tmp_path / "wheel"
    p = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir),
         str(src)], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    (wheel,) = wheel_dir.glob("mfti_lightning-*.whl")
    assert "mfti_lightning/assets/throughput.json" in zipfile.ZipFile(wheel).namelist()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True,
        timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    # this environment's packages after the fresh one's: its editable mfti_lightning (a .pth there) is not loaded
    venv_site = Path(site)
    (venv_site / "deps.pth").write_text(sysconfig.get_paths()["purelib"])
    p = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run(
        [py, "-c", "import mfti_lightning, mfti_lightning.launch.cost as c; print(mfti_lightning.__file__)"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert where.stdout.strip() == str(venv_site / "mfti_lightning" / "__init__.py"), where.stderr[-2000:]
    plan = subprocess.run(
        [venv / "bin" / "mfti-plan", "-", "model=tiny", "logger=none", "--json"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert plan.returncode == 0, plan.stdout[-2000:] + plan.stderr[-2000:]
    (job,) = [json.loads(line) for line in plan.stdout.splitlines() if line.startswith("{")]
    shipped = venv_site / "mfti_lightning" / "assets" / "throughput.json"
    assert job["train_rate"] == f"40.0% MFU measured on NVIDIA H200 ({shipped})"
