"""Start-up time of the config commands (no torch) beside the baselines measured in the same run (run by hand).

    python benchmarks/bench_cli_startup.py [--repeat 5]

Each command runs in a fresh process ``--repeat`` times; the median wall time is printed next to the two
baselines: an empty Python (``python -c pass``) and ``import torch`` (what a config command must never pay).
The promise in the docs: a config command costs a small multiple of an empty Python, far below ``import torch``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = [sys.executable]
COMMANDS = {
    "baseline: python -c pass": [*PY, "-c", "pass"],
    "baseline: import torch": [*PY, "-c", "import torch"],
    "mfti --help": [*PY, "-m", "mfti_lightning.cli.main", "--help"],
    "mfti train --help": [*PY, "-m", "mfti_lightning.cli.main", "train", "--help"],
    "mfti train --cfg job": [*PY, "-m", "mfti_lightning.cli.main", "train", "--cfg", "job"],
    "mfti plan shots": [*PY, "-m", "mfti_lightning.cli.main", "plan", "shots"],
}


def median_wall(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, capture_output=True, check=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    results = {name: median_wall(cmd, args.repeat) for name, cmd in COMMANDS.items()}
    empty = results["baseline: python -c pass"]
    print(f"{'command':<28} {'median s':>9} {'x empty python':>15}")
    for name, t in results.items():
        print(f"{name:<28} {t:>9.2f} {t / empty:>15.1f}")


if __name__ == "__main__":
    main()
