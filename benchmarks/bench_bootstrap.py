"""CPU: seconds per direction of the report's paired bootstrap (``track.significance.paired_bootstrap``: sacrebleu's
PairedTest plus the difference interval from the same resamples) on a whole FLORES-101 devtest direction (1012
sentences), BLEU and chrF, next to sacrebleu's own command line (``--paired-bs``) on the same files, in one run;
and the time for the 156 directions of the paper, extrapolated.

    python benchmarks/bench_bootstrap.py [--samples 1000] [--directions de-en,en-zh]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mfti_lightning.assets import FLORES101_DIR
from mfti_lightning.core.languages import LANGUAGES
from mfti_lightning.track.significance import paired_bootstrap


def degrade(sentences: list[str], every: int) -> list[str]:
    return [" ".join(w for i, w in enumerate(s.split()) if i % every != every - 1) for s in sentences]


def lines(code: str) -> list[str]:
    iso3 = LANGUAGES[code].flores101
    return (Path(FLORES101_DIR) / "devtest" / f"{iso3}.devtest").read_text(encoding="utf-8").splitlines()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--directions", default="de-en,en-fr")
    args = ap.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print("| direction | sentences | ours: bleu+chrf (s) | sacrebleu CLI --paired-bs bleu+chrf (s) |")
    print("|---|---|---|---|")
    ours_total = 0.0
    dirs = args.directions.split(",")
    for d in dirs:
        refs = lines(d.split("-")[1])
        a, b = degrade(refs, 3), degrade(refs, 5)
        t0 = time.perf_counter()
        paired_bootstrap(a, b, refs, ["bleu", "chrf"], d.split("-")[1], n_samples=args.samples)
        ours = time.perf_counter() - t0
        ours_total += ours
        with tempfile.TemporaryDirectory() as tmp:
            for name, xs in (("ref", refs), ("a", a), ("b", b)):
                Path(tmp, name).write_text("".join(x + "\n" for x in xs), encoding="utf-8")
            tok = ["-tok", "zh"] if d.endswith("-zh") else []
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "sacrebleu", "ref", "-i", "a", "b", "--paired-bs", "--paired-bs-n",
                 str(args.samples), "-m", "bleu", "chrf", "-f", "text", *tok],
                cwd=tmp, check=True, capture_output=True, timeout=600,
            )  # fmt: skip
            cli = time.perf_counter() - t0
        print(f"| {d} | {len(refs)} | {ours:.2f} | {cli:.2f} |")
    per = ours_total / len(dirs)
    print(f"156 directions, one seed pair: about {156 * per / 60:.1f} min ({per:.2f} s per direction)")


if __name__ == "__main__":
    main()
