"""Every config key's declaration, read from the fields of the schema (:mod:`mfti_lightning.core.schema` and its groups): its
documentation, its role (training | evaluation | runtime | ignored), whether a resumed training may change it, and
the values sweeps vary. Torch-free.

Nothing else lists keys: the run hash and the reuse of run directories (:mod:`mfti_lightning.core.identity`), the
resume check (``train.trainer.training_config``), the report's unswept differences, results.json's ``swept`` and
the W&B tags all ask this module. A key inherits the role and the resume flag of the nearest enclosing field that
declares one, so the keys inside an open node (``optim.optimizer.betas``, ``trainer.fsdp.*``, ``logger.*``) have
their node's; ``tests/unit/core/test_keys.py`` fails when a key of a shipped config has no role.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from dataclasses import dataclass
from functools import cache, lru_cache

import yaml
from omegaconf import OmegaConf

from mfti_lightning.core import schema
from mfti_lightning.core.fields import choices_of, format_value, is_dataclass_type, unwrap_optional


@dataclass(frozen=True)
class Key:
    """One schema field: its dotted key, documentation and what it declares itself (None: its parent's)."""

    key: str
    doc: str
    role: str | None
    resume: bool | None
    varies_with: str | None
    field: dataclasses.Field


def _walk(cls, prefix: str, out: dict[str, Key]) -> None:
    for f in dataclasses.fields(cls):
        key, meta = prefix + f.name, f.metadata
        declared = Key(key, meta.get("doc", ""), meta.get("role"), meta.get("resume"), meta.get("varies_with"), f)
        seen = out.setdefault(key, declared)
        if (seen.role, seen.resume) != (declared.role, declared.resume):
            raise TypeError(f"{key}: the train and eval schemas declare different roles or resume flags")
        for child in (unwrap_optional(f.type), meta.get("schema")):
            if is_dataclass_type(child):
                _walk(child, key + ".", out)


@cache
def declarations() -> dict[str, Key]:
    """``{dotted key: Key}`` for every field of the train and eval schemas, the known keys of open nodes included."""
    out: dict[str, Key] = {}
    for _, cls in schema.SCHEMA_NAMES.values():
        _walk(cls, "", out)
    return out


def _enclosing(key: str):
    """The declarations of ``key`` and of the nodes above it, nearest first."""
    table, parts = declarations(), key.split(".")
    for n in range(len(parts), 0, -1):
        found = table.get(".".join(parts[:n]))
        if found is not None:
            yield found


@lru_cache(maxsize=4096)
def role_of(key: str) -> str | None:
    """The role of a dotted config key (:data:`fields.ROLES`), or None when neither it nor a node above it has one."""
    return next((k.role for k in _enclosing(key) if k.role is not None), None)


@lru_cache(maxsize=4096)
def resume_may_change(key: str) -> bool:
    """Whether a training resumed from a checkpoint may run with another value of ``key``."""
    return next((k.resume for k in _enclosing(key) if k.resume is not None), False)


def varies_with(key: str) -> str | None:
    """The swept group whose options set ``key`` (``optim.optimizer.lr``: each model preset its own), or None."""
    return next((k.varies_with for k in _enclosing(key) if k.varies_with is not None), None)


def top_level(role: str) -> tuple[str, ...]:
    """The root keys of one role."""
    return tuple(k for k, d in declarations().items() if "." not in k and d.role == role)


# ---- swept values -------------------------------------------------------------------------------------------
SWEPT_NAMES = tuple(s.name for s in schema.SWEPT)
_LABEL_KEY = re.compile(r"\$\{([\w.]+)\}")


def swept_values(cfg) -> dict:
    """results.json's ``swept``: ``{name: value}`` of :data:`schema.SWEPT`."""
    return {s.name: OmegaConf.select(cfg, s.key) for s in schema.SWEPT}


def swept_label(cfg, swept: schema.Swept) -> str:
    """A swept value as run names and tags show it (``k8``, the template's short name)."""
    return _LABEL_KEY.sub(lambda m: str(OmegaConf.select(cfg, m.group(1))), swept.label)


def swept_group(key: str) -> str | None:
    """The swept value whose config group holds ``key`` (``model.dtype`` -> ``model``; ``seed`` -> ``seed``)."""
    for s in schema.SWEPT:
        group = s.key.rsplit(".", 1)[0]
        if key == group or key.startswith(group + "."):
            return s.name
    return None


# ---- --help -------------------------------------------------------------------------------------------------
def _comment(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, 118 - len(indent), initial_indent=indent + "# ", subsequent_indent=indent + "# ")


def _doc(key: str) -> str:
    d = declarations().get(key)
    if d is None:
        return ""
    choices = choices_of(d.field)
    if choices is None:
        return d.doc
    return f"{d.doc} [{' | '.join(format_value(c) for c in choices)}]"


def _value(v) -> str:
    return yaml.safe_dump(v, default_flow_style=True, width=10**6, allow_unicode=True).strip().removesuffix("\n...")


def _lines(node: dict, prefix: str, indent: str) -> list[str]:
    out = []
    for name, value in node.items():
        key = prefix + str(name)
        out += _comment(_doc(key), indent)
        if isinstance(value, dict) and value:
            out.append(f"{indent}{name}:")
            out += _lines(value, key + ".", indent + "  ")
        else:
            out.append(f"{indent}{name}: {_value(value)}")
    return out


def config_help(*, _root_) -> str:
    """OmegaConf resolver ``${mfti_config_help:}`` (conf/hydra/default.yaml's ``help.template``): the composed
    config without ``hydra``, values unresolved, each key under its documentation from the schema. ``$`` is
    doubled: Hydra substitutes ``$CONFIG``-style names in the help template afterwards."""
    container = OmegaConf.to_container(_root_, resolve=False)
    container.pop("hydra", None)
    return "\n".join(_lines(container, "", "")).replace("$", "$$")
