"""``mfti``: one command for everything, ``mfti <command> [arguments]``; ``mfti --help`` lists the commands.

Each command is the module of its ``mfti-<command>`` alias (kept for scripts): ``mfti train model=xglm-564m`` is
``mfti-train model=xglm-564m`` with Hydra's override syntax, ``mfti plan shots`` is ``mfti-plan shots``. Nothing
heavy is imported here: ``mfti --help``, ``mfti plan`` and ``mfti status`` never load torch.
"""

from __future__ import annotations

import importlib
import shutil
import sys

# command -> (module with main(), one line for --help); the order of `mfti --help`
COMMANDS = {
    "train": (
        "mfti_lightning.cli.train",
        "finetune on translation instructions, then evaluate (Hydra overrides; -m for sweeps)",
    ),
    "eval": (
        "mfti_lightning.cli.eval",
        "evaluate a model or checkpoint on FLORES-101, e.g. k-shot ICL (Hydra overrides)",
    ),
    "prepare": ("mfti_lightning.cli.prepare", "sample and render the training pairs of a config, without training"),
    "plan": ("mfti_lightning.cli.plan", "list a sweep's jobs, run directories, status and GPU-hours (no torch)"),
    "status": ("mfti_lightning.cli.status", "where a submitted or local sweep stands, job by job (no torch)"),
    "report": (
        "mfti_lightning.cli.report",
        "tables, figures, significance and the paper's claims from run directories",
    ),
    "score": ("mfti_lightning.cli.score", "add metrics (TER, chrF variants, spBLEU, COMET) to finished runs"),
    "export": ("mfti_lightning.cli.export", "a training checkpoint -> a Hugging Face directory"),
    "analyze": ("mfti_lightning.cli.analyze", "re-run the paper's error analysis on a run's translations"),
    "prefetch": ("mfti_lightning.cli.prefetch", "fetch the models and data a run or sweep needs (on a login node)"),
}
HYDRA_COMMANDS = ("train", "eval", "prepare")  # their main() reads sys.argv (Hydra's command line)


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "usage: mfti <command> [arguments]   (mfti <command> --help for its own help)",
        "",
        "mFTI experiments: finetune multilingual LMs on translation instructions, compare with in-context learning.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {line}" for name, (_, line) in COMMANDS.items()]
    lines += ["", "Every command is also installed as mfti-<command> (e.g. mfti-train)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None):
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"mfti: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    if name in HYDRA_COMMANDS:
        # Hydra parses sys.argv; Lightning's script launcher re-runs sys.argv[0] for the other ranks: make both
        # the mfti-<command> alias (the same module), never `mfti` without its command
        sys.argv = [shutil.which(f"mfti-{name}") or f"mfti-{name}", *rest]
        return module.main()
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
