"""Errors that tell the user what to fix. Raised before any GPU time is spent."""


class MftiError(Exception):
    """Base class: a problem with the user's input or environment, with the fix in the message."""


class ConfigError(MftiError, ValueError):
    """A config value that cannot work (batch math, unknown language, bad template, ...)."""


class DataError(MftiError, ValueError):
    """A corpus or evaluation set that cannot be used as given (misaligned, undecodable, empty, ...)."""


class ModelLoadError(MftiError, OSError):
    """A model or tokenizer that cannot be loaded (offline without a local copy, wrong path, ...)."""


class InputsError(DataError):
    """Inputs a job needs are missing or unreadable; ``problems`` lists every one (see mfti_lightning.tasks.inputs)."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__(
            f"{len(self.problems)} missing or unreadable input(s):\n" + "\n".join(f"  - {p}" for p in self.problems)
        )


class CheckpointError(MftiError, OSError):
    """A checkpoint that cannot be read (truncated, empty, not a checkpoint) or written (disk full)."""


class UntrustedCheckpointError(CheckpointError):
    """A checkpoint whose pickle needs more than tensors and plain containers: loading it could run code."""


class JobInterrupted(SystemExit):
    """The job stopped on a signal (SIGTERM from kill, scancel or a time limit): ``str()`` is the one line for the
    user, the exit status 128 + the signal number (143 for SIGTERM), so SLURM never records it as completed."""

    def __init__(self, message: str, signum: int = 15):
        super().__init__(128 + signum)
        self.message = message

    def __str__(self) -> str:
        return self.message


def exit_for(error: MftiError, prog: str | None = None) -> SystemExit:
    """What a command raises for an error the user can fix: its message alone on stderr (``<prog>: error: ...``,
    printed here) and exit status 2. ``prog``: the command (default: the program's name)."""
    import os
    import sys

    prog = prog or os.path.basename(sys.argv[0]) or "mfti"
    print(f"{prog}: error: {error}", file=sys.stderr, flush=True)
    return SystemExit(2)
