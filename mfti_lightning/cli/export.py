"""``mfti-export``: a training checkpoint -> a Hugging Face directory (:mod:`mfti_lightning.model.export`).

mfti-export outputs/train/runs/<run>              # best checkpoint of a run -> <run>/hf
mfti-export <run>/checkpoints/periodic/step000250.ckpt --out exported/
mfti-export downloaded.ckpt --trust-checkpoint     # a checkpoint that needs more than plain types (runs its code)
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mfti_lightning.cli.exits import report_errors
from mfti_lightning.core.layout import HF_DIR
from mfti_lightning.model import export as export_module
from mfti_lightning.model.checkpoint_files import pick_checkpoint, run_dir_of_checkpoint
from mfti_lightning.model.export import export


def run(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mfti-export", description=export_module.__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path, help="a .ckpt file or directory, or a run directory (best checkpoint)")
    ap.add_argument("--out", type=Path, default=None, help="output directory (default: <run dir>/hf)")
    ap.add_argument("--tokenizer", type=Path, default=None, help="tokenizer directory (default: the run's)")
    ap.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="load a checkpoint whose pickle needs more than tensors and plain containers (unpickling it can run "
        "arbitrary code: only for files from a source you trust)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        ckpt = pick_checkpoint(args.checkpoint)
    except FileNotFoundError as e:
        print(f"mfti-export: error: {e}", file=sys.stderr)
        return 2
    out = args.out or (run_dir_of_checkpoint(ckpt) / HF_DIR)
    export(ckpt, out, args.tokenizer, trust=args.trust_checkpoint)  # damaged or untrusted: MftiError, see main()
    print(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``mfti-export``: :func:`run`, ending as :mod:`mfti_lightning.cli.exits` says (errors: one line, exit status 2)."""
    return report_errors("mfti-export", run, argv)


if __name__ == "__main__":
    sys.exit(main())
