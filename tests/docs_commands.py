"""Every ``mfti`` command line shown in README.md and docs/*.md, and a runner that proves each one still parses.

Used by tests/integration/test_docs_commands.py, which runs this file once as a script (one interpreter for all the commands,
in the repository root, as a reader would type them): ``python tests/docs_commands.py`` prints one JSON object.

What "still parses" means, by command (every check goes through the command's own ``main``, in this process):

- ``mfti train|eval|prepare <overrides>``: the same command line with ``--cfg job`` (Hydra composes the config and
  prints it: an override of a key or a config-group option that no longer exists fails), then the composed config
  goes through the checks the job itself runs before loading anything (:func:`config_problem`: allowed values,
  languages, template, batch arithmetic ...);
- ``mfti train -m <overrides>`` (Hydra cannot combine ``-m`` with ``--cfg``): ``mfti plan`` of the same sweep
  (``--config-dir D --config-name N`` is the sweep file ``D/N.yaml``) with the same overrides and ``--json``, which
  expands it with Hydra's sweeper, composes and checks every job; a job plan marks as failing is checked again with
  :func:`config_problem`, because inputs missing on this machine (corpora, hub models) are allowed: they are what a
  cluster has and a test machine does not;
- ``mfti plan ...`` runs for real as above; ``mfti prefetch ...`` runs for real with ``--dry-run``;
- every other command (status, report, score, export, analyze) is parsed by its own argparse parser with the
  documented arguments and stops right after parsing (their work needs run directories that a test does not
  have); ``mfti <command> --help`` also runs for each of them.

Placeholders (``<run dir>``) are replaced from :data:`PLACEHOLDERS`; one that is not in the table fails, so a new
placeholder in the docs needs a line here. Template text (``'<input> = [<tgtlang>]:'``) is not a placeholder.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# what a reader puts in place of each placeholder; any path will do (nothing is read from it)
PLACEHOLDERS = {
    "<run dir>": "outputs/train/runs/tiny_demo_t1_k0_n250_s42-2a94c0f6",
    "<run>": "tiny_demo_t1_k0_n250_s42-2a94c0f6",
    "<N>": "000150",
    "<the run's model>": "tiny",
    "<sweep dir>": "outputs/train/sweeps/try",
    "<sweep name>": "try",
    "<dir>": "/data/flores101_dataset",
    "<export dir>": "exported/tiny-demo",
}
TEMPLATE_TEXT = ("<input>", "<srclang>", "<tgtlang>")  # a template's own placeholders (conf/template)
HYDRA_COMMANDS = ("train", "eval", "prepare")
FENCE = re.compile(r"^\s*(```|~~~)")
COMMAND = re.compile(r"^(?:\$ )?(?:[A-Z_][A-Z0-9_]*=\S+ )*(mfti(?:-[a-z]+)?)(?=\s|$)")


@dataclass(frozen=True)
class DocCommand:
    file: str  # relative to the repository
    line: int  # where the command starts
    text: str  # as shown (continuation lines joined)

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}: {self.text[:70]}"


def code_lines(text: str):
    """``(line number, line)`` of every line inside a fenced or an indented code block."""
    fenced, prev_blank = False, True
    for n, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
        elif fenced or (line.startswith("    ") and (prev_blank or line.startswith("    mfti"))):
            yield n, line.strip()
        prev_blank = not line.strip() or (prev_blank and line.startswith("    "))


def doc_commands(files=None) -> list[DocCommand]:
    """Every line in a code block of the docs that runs ``mfti`` (or an ``mfti-<command>`` alias)."""
    found = []
    for path in files or DOC_FILES:
        lines = list(code_lines(path.read_text(encoding="utf-8")))
        i = 0
        while i < len(lines):
            n, line = lines[i]
            while line.endswith("\\") and i + 1 < len(lines):  # a command continued on the next line
                i += 1
                line = line[:-1].rstrip() + " " + lines[i][1].strip()
            if COMMAND.match(line):
                found.append(DocCommand(str(path.relative_to(REPO)), n, line))
            i += 1
    return found


def argv_of(text: str) -> list[str]:
    """The command line as a shell would split it, placeholders filled in, ``mfti-x`` written ``mfti x``; the
    first word (``mfti``) dropped. Raises ValueError for a placeholder :data:`PLACEHOLDERS` does not know."""
    for key, value in PLACEHOLDERS.items():
        text = text.replace(key, value)
    words = shlex.split(text.removeprefix("$ "), comments=True)
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):  # VAR=value before the command
        words.pop(0)
    unknown = [w for w in words if re.search(r"<[^<>]+>", w) and not any(t in w for t in TEMPLATE_TEXT)]
    if unknown:
        raise ValueError(f"unknown placeholder in {unknown}: add it to PLACEHOLDERS in tests/docs_commands.py")
    first = words.pop(0)
    return ([first.removeprefix("mfti-")] if first != "mfti" else []) + words


# ---- running one command -----------------------------------------------------------------------------------------
class Parsed(BaseException):
    """Raised right after a command's own parser accepted its arguments: nothing else of the command runs."""


@contextlib.contextmanager
def stop_after_parsing():
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise Parsed(original(self, args, namespace))

    argparse.ArgumentParser.parse_args = parse_then_stop
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_args = original


def call(argv: list[str], parse_only: bool = False) -> tuple[object, str, str]:
    """``mfti <argv>`` in this process: (exit status or ``"parsed"``, stdout, stderr)."""
    from mfti_lightning.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv[:]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            with stop_after_parsing() if parse_only else contextlib.nullcontext():
                rc = main(list(argv))
    except Parsed:
        rc = "parsed"
    except SystemExit as e:
        rc = e.code
    except Exception as e:  # a bug shows as the test's failure message, not as a crash of the loop
        rc, err = 1, io.StringIO(f"{err.getvalue()}{type(e).__name__}: {e}")
    finally:
        sys.argv = saved
    return (0 if rc is None else rc), out.getvalue(), err.getvalue()


def split_hydra(args: list[str]) -> tuple[str | None, str | None, bool, list[str]]:
    """``(config dir, config name, multirun, overrides)`` of a Hydra command line."""
    values = {"--config-dir": None, "-cd": None, "--config-name": None, "-cn": None}
    multirun, overrides, i = False, [], 0
    while i < len(args):
        if args[i] in ("-m", "--multirun"):
            multirun = True
        elif args[i] in values and i + 1 < len(args):
            values[args[i]] = args[i + 1]
            i += 1
        else:
            overrides.append(args[i])
        i += 1
    config_dir = values["--config-dir"] or values["-cd"]
    config_name = values["--config-name"] or values["-cn"]
    return config_dir, config_name, multirun, overrides


def config_problem(config_name: str, overrides: list[str], config_dir: str | None) -> str | None:
    """What the job itself would refuse before loading anything (values, languages, batch math ...), composed as
    ``mfti <command> [--config-dir D --config-name N] <overrides>`` composes it; inputs that are missing on this
    machine (corpora, hub models, sacrebleu's SPM model) are not a problem of the docs."""
    from mfti_lightning.core import validation
    from mfti_lightning.core.compose import compose
    from mfti_lightning.core.errors import InputsError, MftiError
    from mfti_lightning.tasks.checks import check_before_loading, check_engine

    cfg = compose(config_name, overrides, Path(config_dir) if config_dir else None)
    try:
        if "ckpt_path" in cfg:  # mfti eval: its job checks values and the engine first
            validation.validate(cfg)
            check_engine(cfg)
        else:
            check_before_loading(cfg)
    except InputsError:
        return None
    except MftiError as e:
        return f"{type(e).__name__}: {e}"
    return None


def check_plan(plan_argv: list[str], config_dir: str | None, config_name: str) -> str | None:
    """``mfti plan <plan_argv> --json`` and the allowed values of each of its jobs."""
    rc, out, err = call(["plan", *plan_argv, "--json"])
    jobs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if rc not in (0, 2) or not jobs:
        return f"mfti plan {' '.join(plan_argv)}: exit {rc}, no jobs listed\n{err[-2000:]}"
    for job in (j for j in jobs if j.get("problems")):  # plan found problems: missing inputs are allowed here
        found = config_problem(config_name, job["overrides"], config_dir)
        if found:
            return f"job {job['overrides']}: {found}"
    return None


def check_hydra(name: str, args: list[str]) -> str | None:
    if any(a in ("--help", "-h", "--hydra-help", "--info") for a in args):
        rc, _, err = call([name, *args])
        return None if rc == 0 else f"exit {rc}\n{err[-2000:]}"
    if "--cfg" in args or "-c" in args:  # shown with --cfg: run as shown, then check the config without it
        i = args.index("--cfg" if "--cfg" in args else "-c")
        shown, args = args, args[:i] + args[i + 2 :]
    else:
        shown = [*args, "--cfg", "job"]
    config_dir, config_name, multirun, overrides = split_hydra(args)
    if multirun:
        if name != "train":
            return f"mfti {name} -m: the docs test can only plan mfti train sweeps"
        sweep = str(Path(config_dir or "conf") / f"{config_name}.yaml") if config_name else "-"
        return check_plan([sweep, *overrides], config_dir, config_name or "train")
    rc, out, err = call([name, *shown])
    if rc != 0 or "task_name:" not in out:
        return f"{' '.join(shown)}: exit {rc}\n{err[-2000:]}"
    return config_problem(config_name or ("eval" if name == "eval" else "train"), overrides, config_dir)


def check_plan_command(args: list[str]) -> str | None:
    if "--help" in args or "-h" in args:
        rc, _, err = call(["plan", *args])
        return None if rc == 0 else f"exit {rc}\n{err[-2000:]}"
    positional = [a for a in args if not a.startswith("--")]
    sweep = positional[0] if positional else "-"
    from mfti_lightning.launch.sweep import sweep_source

    config_dir, config_name = sweep_source(None if sweep == "-" else sweep)
    return check_plan([a for a in args if a != "--json"], str(config_dir), config_name)


def check(text: str) -> str | None:
    """None when the documented command line still parses, else why not."""
    try:
        argv = argv_of(text)
    except ValueError as e:
        return str(e)
    if not argv or argv[0] in ("--help", "-h", "help"):
        rc, out, _ = call(argv)
        return None if rc == 0 and "commands:" in out else f"mfti --help: exit {rc}"
    name, args = argv[0], argv[1:]
    from mfti_lightning.cli.main import COMMANDS

    if name not in COMMANDS:
        return f"no such command: mfti {name}"
    if name in HYDRA_COMMANDS:
        return check_hydra(name, args)
    if name == "plan":
        return check_plan_command(args)
    if name == "prefetch" and "--sweep" not in args:  # a whole sweep file is composed job by job: too slow here
        rc, _, err = call([name, *args, *([] if "--dry-run" in args else ["--dry-run"])])
        return None if rc == 0 else f"--dry-run: exit {rc}\n{err[-2000:]}"
    if name == "prefetch" and not sweep_exists(args[args.index("--sweep") + 1]):
        return f"no sweep file {args[args.index('--sweep') + 1]!r}"
    rc, _, err = call([name, *args], parse_only=True)
    if rc in ("parsed", 0):  # 0: the command line was --help
        return None
    return f"exit {rc}\n{err[-2000:]}"


def sweep_exists(name: str) -> bool:
    from mfti_lightning.launch.sweep import resolve_sweep_file

    return resolve_sweep_file(name) is not None


def check_help() -> dict[str, str | None]:
    """``mfti <command> --help`` of every command: exit 0 and a usage line."""
    from mfti_lightning.cli.main import COMMANDS

    found = {}
    for name in COMMANDS:
        rc, out, err = call([name, "--help"])
        shown = "Powered by Hydra" in out if name in HYDRA_COMMANDS else out.startswith("usage:")
        found[name] = None if rc == 0 and shown else f"exit {rc}\n{out[-500:]}{err[-2000:]}"
    return found


def run(extra: list[str]) -> dict:
    """Check every documented command and ``extra`` command lines (negative controls); times each."""
    results = {}
    for text in dict.fromkeys([c.text for c in doc_commands()] + extra):  # each distinct line once
        t, cpu = time.perf_counter(), time.process_time()
        error = check(text)
        results[text] = {
            "error": error,
            "seconds": round(time.perf_counter() - t, 3),
            "cpu_seconds": round(time.process_time() - cpu, 3),
        }
    return {
        "commands": results,
        "help": check_help(),
        "torch_imported": "torch" in sys.modules,
        "lightning_imported": "pytorch_lightning" in sys.modules,
    }


if __name__ == "__main__":
    os.chdir(REPO)  # the docs' paths (sweeps/, outputs/) are relative to the repository root
    print(json.dumps(run(json.loads(sys.argv[1]) if len(sys.argv) > 1 else [])))
