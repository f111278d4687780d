"""How a config key is declared: :func:`config_field` (a dataclass field carrying the key's documentation, role,
allowed values and bounds), the four roles, and the helpers that read such fields back (:mod:`core.keys`,
:mod:`core.validation`). No torch."""

import dataclasses
from dataclasses import field
from typing import Any, Union, get_args, get_origin

from omegaconf import MISSING

# ---- key roles: what a change of the key changes (core/keys.py derives identity, resume checks, report, tags) ----
TRAINING = "training"  # the trained model: hashed into run_slug; a changed value is another run directory
EVALUATION = "evaluation"  # only the final evaluation: a completed run re-evaluates its best checkpoint
RUNTIME = "runtime"  # the hardware layout: not hashed, but a run directory is never reused under another one
IGNORED = "ignored"  # never changes a result (names, paths, logging, progress, workers, caches)
ROLES = (TRAINING, EVALUATION, RUNTIME, IGNORED)


def config_field(
    default=MISSING,
    *,
    doc: str,
    role: str | None = None,
    resume: bool | None = None,
    factory=None,
    choices=None,
    gt=None,
    ge=None,
    le=None,
    schema=None,
    optional_key=False,
    varies_with: str | None = None,
):
    """A schema field and its documentation (``doc``: what ``mfti-train --help`` and the docs show).

    ``role`` (:data:`ROLES`): what changing the key changes; a field without one takes its enclosing field's (keys
    inside an open node, e.g. ``optim.optimizer.betas``, take the node's). ``resume``: true when a training resumed
    from a checkpoint may run with another value (the weights so far do not depend on it); inherited like
    ``role``, false at the root. ``choices`` (a tuple or a function returning one), ``gt``/``ge``/``le`` bounds
    for numbers, ``schema`` (a dataclass describing the known keys of an open dict node), ``optional_key`` (a key
    that only some config options have: left out of the composed schema, checked when present), ``varies_with``
    (the swept group whose options set this key, e.g. each model preset its learning rate: the report does not
    count it as an unswept difference)."""
    given = (
        ("choices", choices), ("gt", gt), ("ge", ge), ("le", le), ("schema", schema), ("role", role),
        ("resume", resume), ("varies_with", varies_with),
    )  # fmt: skip
    meta = {k: v for k, v in given if v is not None}
    meta["optional_key"] = optional_key
    meta["doc"] = doc
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def is_dataclass_type(tp) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def unwrap_optional(tp):
    """``Optional[X]`` -> ``X``; another union -> ``Any``; any other type as it is."""
    if get_origin(tp) is Union:
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else Any
    return tp


def choices_of(f: dataclasses.Field) -> tuple | None:
    """A field's allowed values (``choices``, a tuple or a function returning one), or None."""
    choices = f.metadata.get("choices")
    return choices() if callable(choices) else choices


def format_value(v) -> str:
    """A value as YAML writes it: null, true, false."""
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
