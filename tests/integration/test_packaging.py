"""conf/ and the shipped data are found when the package is installed from a wheel, not only editable."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
from conftest import REPO


@pytest.mark.packaging
@pytest.mark.subprocess
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
