"""``mfti-prefetch``: download every asset a run or sweep needs, on a machine with network (a login node), so
that jobs on offline compute nodes find them in the caches.

    mfti-prefetch model=xglm-564m,xglm-7.5b lang_pairs=paper13          # the same overrides as the sweep
    mfti-prefetch --sweep architectures                                   # every job of a sweep file
    mfti-prefetch --dry-run model=xglm-7.5b data.flores_root=/data/flores101_dataset

Assets: Hugging Face models and tokenizers (``huggingface_hub.snapshot_download`` into ``$HF_HOME``), the
FLORES-101 dataset when ``data.flores_root`` points to a directory that does not exist yet (the 13 paper languages
are shipped in the package), sacrebleu's SentencePiece models for spBLEU (``$SACREBLEU/models``: flores101 always,
flores200 when ``eval.bleu_tokenize=flores200``), and the COMET model when ``eval.comet_model`` is set. The jobs are
the ones ``mfti-train -m`` would run (Hydra's own sweeper expands the sweep file's ``hydra.sweeper.params`` and the
comma lists of the overrides). Run it with the same ``HF_HOME`` / ``SACREBLEU`` as the jobs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mfti_lightning.cli.exits import report_errors
from mfti_lightning.launch.sweep import job_overrides, multirun_config, sweep_source

log = logging.getLogger("mfti_lightning.cli.prefetch")
FLORES101_URL = "https://dl.fbaipublicfiles.com/flores101/dataset/flores101_dataset.tar.gz"
HF_ALLOW = ["*.json", "*.safetensors", "*.model", "*.txt", "*.py"]  # weights as safetensors, tokenizer, config


@dataclass(frozen=True)
class Asset:
    kind: str  # hf_model | sacrebleu_spm | flores | comet
    source: str  # hub id or URL
    target: str  # local path ("" for the HF cache)

    def __str__(self):
        return f"{self.kind:<14} {self.source} -> {self.target or '$HF_HOME (hub cache)'}"


def assets_for(cfg) -> list[Asset]:
    """Everything one composed config needs that is not shipped and may not be on an offline node."""
    from omegaconf import OmegaConf

    from mfti_lightning.eval.metrics import SPM_FILES, SPM_URLS, sacrebleu_dir

    out = []
    model = cfg.model
    path = str(model.name_or_path)
    if not model.get("build") and not Path(path).exists() and not path.startswith(("/", ".", "~")):
        out.append(Asset("hf_model", path, ""))
    spm = ["flores101"] + (["flores200"] if cfg.eval.bleu_tokenize == "flores200" else [])
    for tok in spm:
        out.append(Asset("sacrebleu_spm", SPM_URLS[tok], str(sacrebleu_dir() / "models" / SPM_FILES[tok])))
    root = cfg.data.flores_root
    if root and not Path(str(root)).exists():
        if cfg.data.flores_layout != "flores101":
            raise SystemExit(
                f"data.flores_root={root} does not exist and only FLORES-101 can be fetched "
                "automatically; download FLORES-200 / FLORES+ by hand (gated on the HF hub)."
            )
        out.append(Asset("flores", FLORES101_URL, str(root)))
    comet = OmegaConf.select(cfg, "eval.comet_model")  # mfti-eval configs only
    if comet:
        out.append(Asset("comet", str(comet), ""))
    return out


def plan(overrides: list[str], config_name: str = "train", sweep: str | None = None) -> list[Asset]:
    """Every asset of every job of ``mfti-train -m [--config-dir sweeps --config-name <sweep>] <overrides>``."""
    from mfti_lightning.core.compose import config_loader, search_path_overrides

    config_dir, config_name = sweep_source(sweep, config_name)
    seen, out = set(), []
    with config_loader(config_dir) as loader:
        primary = multirun_config(loader, config_name, search_path_overrides(config_dir) + list(overrides))
        for job in job_overrides(loader, primary):
            for a in assets_for(loader.load_sweep_config(primary, job)):
                if a not in seen:
                    seen.add(a)
                    out.append(a)
    return out


# ---- downloads (each idempotent: an existing target is kept) -------------------------------------------
def _download(url: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with urllib.request.urlopen(url, timeout=60) as r, os.fdopen(fd, "wb") as f:
            while chunk := r.read(1 << 20):
                f.write(chunk)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fetch(asset: Asset) -> None:
    if asset.kind == "hf_model":
        from huggingface_hub import snapshot_download

        snapshot_download(asset.source, allow_patterns=HF_ALLOW)
    elif asset.kind == "comet":
        from huggingface_hub import snapshot_download

        snapshot_download(asset.source)
    elif asset.kind == "sacrebleu_spm":
        if not Path(asset.target).exists():
            _download(asset.source, Path(asset.target))
    elif asset.kind == "flores":
        root = Path(asset.target)
        if root.exists():
            return
        with tempfile.TemporaryDirectory(dir=root.parent if root.parent.exists() else None) as tmp:
            tgz = Path(tmp) / "flores101_dataset.tar.gz"
            _download(asset.source, tgz)
            with tarfile.open(tgz) as t:
                safe_extract(t, tmp)
            os.replace(Path(tmp) / "flores101_dataset", root)  # holds dev/ and devtest/
    else:  # pragma: no cover
        raise ValueError(asset.kind)


def safe_extract(tar: tarfile.TarFile, dest: str | Path) -> None:
    """Extract an archive without letting a member escape ``dest``: tarfile's ``data`` filter where Python has it
    (3.11.4+, 3.10.12+); on older interpreters (Debian 12's 3.11.2) only plain files and directories inside
    ``dest`` are accepted."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
        return
    root = Path(dest).resolve()
    for member in tar.getmembers():
        target = (root / member.name).resolve()
        if not (member.isfile() or member.isdir()) or (target != root and root not in target.parents):
            raise ValueError(f"refusing archive member {member.name!r}: not a plain file or directory inside {root}")
    tar.extractall(root)  # every member was checked above


def run(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="mfti-prefetch", description=__doc__.split("\n\n")[0])
    ap.add_argument("overrides", nargs="*", help="the Hydra overrides of the run or sweep (a=x,y sweeps)")
    ap.add_argument("--config-name", default="train", choices=["train", "eval"])
    ap.add_argument("--sweep", help="a sweep file in sweeps/ (name or path, as for mfti-plan): all of its jobs")
    ap.add_argument("--dry-run", action="store_true", help="list what would be fetched, fetch nothing")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from mfti_lightning.core.errors import MftiError

    try:
        assets = plan(args.overrides, args.config_name, args.sweep)
    except MftiError as e:
        print(f"mfti-prefetch: {e}", file=sys.stderr)
        return 2
    for a in assets:
        print(("would fetch  " if args.dry_run else "fetching     ") + str(a), flush=True)
        if not args.dry_run:
            fetch(a)
    print(f"{len(assets)} asset(s){' (dry run)' if args.dry_run else ' in place'}.")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``mfti-prefetch``: :func:`run`, ending as :mod:`mfti_lightning.cli.exits` says (errors: one line, exit status 2)."""
    return report_errors("mfti-prefetch", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
