"""Streaming sampler vs read-everything: lines/s and peak RSS on generated corpora (run by hand).

    python benchmarks/bench_sampling.py [--sizes 1000000 10000000] [--n 1000] [--dir /tmp/mfti-bench]

Each measurement runs in its own subprocess (peak RSS = ru_maxrss of that process). The sampler path is the real
one: iter_moses (line-aligned pair files) -> make_filter -> reservoir_sample (Algorithm L, dedup in the sample).
The baseline reads every pair into a list, then samples from it (what a non-streaming implementation does).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORDS = "the of and to in a is that for it as was with be by on not he this are or his from at which".split()


def generate(prefix: Path, n_lines: int) -> None:
    if Path(f"{prefix}.en").exists() and Path(f"{prefix}.de").exists():
        return
    rng = random.Random(0)
    with open(f"{prefix}.de", "w") as a, open(f"{prefix}.en", "w") as b:
        for i in range(n_lines):
            k = rng.randint(4, 25)
            words = " ".join(rng.choice(WORDS) for _ in range(k))
            a.write(f"{i} {words}\n")
            b.write(f"{words} {i}\n")


CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from mfti_lightning.data import corpora, sampling
prefix, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = time.perf_counter()
if mode == "stream":
    stats = {{}}
    keep = sampling.make_filter({{"max_len_ratio": 3.0, "max_tokens": 200}}, "de", "en", set(), stats)
    sample, lines = sampling.reservoir_sample(corpora.iter_moses(prefix, "de", "en"), n, 42, keep, stats=stats)
    lines += sum(stats.values())
else:
    pairs = list(corpora.iter_moses(prefix, "de", "en"))
    lines = len(pairs)
    import random
    sample = random.Random(42).sample(pairs, n)
dt = time.perf_counter() - t
print(json.dumps({{"mode": mode, "lines": lines, "seconds": dt, "lines_per_s": lines / dt,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "sampled": len(sample)}}))
"""


def run(prefix: Path, mode: str, n: int) -> dict:
    code = CHILD.format(repo=str(REPO))
    p = subprocess.run(
        [sys.executable, "-c", code, str(prefix), mode, str(n)], capture_output=True, text=True, timeout=3600
    )
    if p.returncode:
        raise RuntimeError(p.stderr)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--dir", default="/tmp/mfti-bench")
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.sizes:
        prefix = Path(args.dir) / f"corpus{size}"
        t = time.perf_counter()
        generate(prefix, size)
        print(f"# corpus {size} lines ready ({time.perf_counter() - t:.0f} s)", flush=True)
        for mode in ["stream"] + ([] if args.no_baseline else ["read_all"]):
            r = run(prefix, mode, args.n)
            r["corpus_lines"] = size
            rows.append(r)
            print(
                f"{size:>10} {mode:<9} {r['lines_per_s'] / 1e6:6.2f} M lines/s  peak RSS {r['peak_rss_mb']:8.0f} MB"
                f"  ({r['seconds']:.1f} s)",
                flush=True,
            )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
