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

# bash completion (`eval "$(mfti --completion bash)"`): the command names here; after train/eval/prepare (and for their
# mfti-<command> aliases) Hydra's own completion answers (`mfti-train -sc query=bash`: config groups, options, keys),
# asked with the line as the alias sees it. Hydra's completion needs "=" out of the word breaks, as its own script does.
BASH_COMPLETION = """_mfti_completion() {
    local cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[0]##*/} line=$COMP_LINE run=("${COMP_WORDS[0]}")
    if [[ $cmd == mfti ]]; then
        if (( COMP_CWORD == 1 )); then
            COMPREPLY=($(compgen -W "%(commands)s --help --completion" -- "$cur"))
            return
        fi
        cmd=mfti-${COMP_WORDS[1]} run+=("${COMP_WORDS[1]}")
        line="$cmd${COMP_LINE#*[[:space:]]${COMP_WORDS[1]}}"
    fi
    case $cmd in
        %(hydra)s)
            compopt -o nospace
            COMPREPLY=($(compgen -W "$(COMP_LINE=$line COMP_POINT=${#line} "${run[@]}" -sc query=bash 2>/dev/null)" -- "$cur"));;
        *)
            compopt -o default
            COMPREPLY=();;
    esac
}
COMP_WORDBREAKS=${COMP_WORDBREAKS//=}
complete -F _mfti_completion mfti %(aliases)s"""


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
    lines += ['Shell completion (bash): eval "$(mfti --completion bash)", e.g. in ~/.bashrc.']
    return "\n".join(lines)


def bash_completion() -> str:
    """The bash script of ``mfti --completion bash``: completes ``mfti``, its commands and the Hydra commands'
    overrides, also for the ``mfti-train``/``mfti-eval``/``mfti-prepare`` aliases."""
    hydra = [f"mfti-{name}" for name in HYDRA_COMMANDS]
    return BASH_COMPLETION % {"commands": " ".join(COMMANDS), "hydra": "|".join(hydra), "aliases": " ".join(hydra)}


def installs_bash_completion(args: list[str]) -> bool:
    """``mfti train --shell-completion install=bash``: Hydra's script would complete the ``mfti-train`` alias only."""
    return bool({"-sc", "--shell-completion"} & set(args)) and "install=bash" in args


def main(argv: list[str] | None = None):
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args[0] == "--completion":
        if args[1:] != ["bash"]:
            print('mfti: --completion takes the shell: eval "$(mfti --completion bash)"', file=sys.stderr)
            return 2
        print(bash_completion())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"mfti: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    if name in HYDRA_COMMANDS and installs_bash_completion(rest):
        print(bash_completion())
        return 0
    module = importlib.import_module(COMMANDS[name][0])
    if name in HYDRA_COMMANDS:
        # Hydra parses sys.argv; Lightning's script launcher re-runs sys.argv[0] for the other ranks: make both
        # the mfti-<command> alias (the same module), never `mfti` without its command
        sys.argv = [shutil.which(f"mfti-{name}") or f"mfti-{name}", *rest]
        return module.main()
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
