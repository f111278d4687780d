"""What the typed schema refuses, with messages that name the key, the bad value and the allowed values
(``resume='Auto': allowed values: auto, never``): :func:`validate` for a composed config, the first check of a job
(``tasks.checks.check_before_loading``, mfti-eval's job, ``mfti-plan`` and the SLURM launcher before submitting);
:func:`check_group_overrides` for ``shots=8`` / ``num_examples=1000`` on a command line, before Hydra parses it.
Torch-free and fast."""

import dataclasses
import re
import sys

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mfti_lightning.core.choices import DIRECTION_KEYWORDS
from mfti_lightning.core.errors import ConfigError
from mfti_lightning.core.families import check_attention
from mfti_lightning.core.fields import choices_of, format_value, is_dataclass_type, unwrap_optional
from mfti_lightning.core.schema import EvalConfig, TrainConfig


def _allowed(f: dataclasses.Field) -> str:
    """The allowed values of a field, in words (``auto, never``; ``an integer > 0``; ``true, false``)."""
    meta, tp = f.metadata, unwrap_optional(f.type)
    choices = choices_of(f)
    if choices is not None:
        return ", ".join(format_value(c) for c in choices)
    if tp is bool:
        return "true, false"
    if tp in (int, float):
        kind = "an integer" if tp is int else "a number"
        bound = f" > {meta['gt']}" if "gt" in meta else f" >= {meta['ge']}" if "ge" in meta else ""
        bound += f" and <= {meta['le']}" if "le" in meta else ""
        return kind + bound + (" (or null)" if tp is not f.type else "")
    return "a string" if tp is str else "any value"


def _value_ok(value, f: dataclasses.Field) -> bool:
    meta, tp = f.metadata, unwrap_optional(f.type)
    choices = choices_of(f)
    if choices is not None:
        return value in choices
    if value is None:
        return tp is not f.type  # Optional[...]
    if tp is bool:
        return isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, int if tp is int else (int, float)):
            return False
        return (
            ("gt" not in meta or value > meta["gt"])
            and ("ge" not in meta or value >= meta["ge"])
            and ("le" not in meta or value <= meta["le"])
        )
    return True


def _check_value(key: str, value, f: dataclasses.Field) -> str | None:
    """``key=value: allowed values: ...`` when the schema refuses ``value``, else None."""
    if _value_ok(value, f):
        return None
    return f"{key}={value!r}: allowed values: {_allowed(f)}"


def _needs_value(f: dataclasses.Field) -> bool:
    tp = unwrap_optional(f.type)
    return bool(
        f.metadata.get("choices") is not None
        or {"gt", "ge", "le", "schema"} & set(f.metadata)
        or tp in (int, float, bool)
        or is_dataclass_type(tp)
    )


def _walk(cls, node, prefix: str, problems: list, extra_keys_ok: bool) -> None:
    """Append to ``problems`` what the dataclass ``cls`` refuses in ``node`` (keys below ``prefix``)."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    if not extra_keys_ok:
        problems += [f"{prefix}{k}: unknown key; known keys: {', '.join(known)}" for k in node.keys() if k not in known]
    for name, f in known.items():
        if name not in node or not _needs_value(f):
            continue
        key = prefix + name
        try:
            value = node[name]
        except OmegaConfBaseException as e:
            problems.append(f"{key}: cannot be resolved ({type(e).__name__}: {str(e).splitlines()[0]})")
            continue
        _walk_value(key, value, f, problems)


def _walk_value(key: str, value, f: dataclasses.Field, problems: list) -> None:
    tp, sub = unwrap_optional(f.type), f.metadata.get("schema")
    if sub is not None and value is not None:
        _walk_open_node(key, value, sub, problems)
    elif is_dataclass_type(tp):
        if value is not None:
            _walk(tp, value, f"{key}.", problems, extra_keys_ok=False)
    else:
        problem = _check_value(key, value, f)
        if problem:
            problems.append(problem)


def _walk_open_node(key: str, value, sub, problems: list) -> None:
    """An open node (a mapping, or a list of them) whose known keys ``sub`` declares; other keys pass."""
    items = list(enumerate(value)) if isinstance(value, (ListConfig, list)) else [(None, value)]
    for i, item in items:
        where = key if i is None else f"{key}[{i}]"
        if not isinstance(item, (DictConfig, dict)):
            problems.append(f"{where}={item!r}: must be a mapping of {', '.join(_field_names(sub))}")
            continue
        node = item if isinstance(item, DictConfig) else OmegaConf.create(item)
        _walk(sub, node, f"{where}.", problems, extra_keys_ok=True)


def _field_names(cls) -> list:
    return [f.name for f in dataclasses.fields(cls)]


def _check_devices(cfg, problems: list) -> None:
    devices = OmegaConf.select(cfg, "trainer.devices")
    ok = (
        (isinstance(devices, int) and not isinstance(devices, bool) and devices > 0)
        or (isinstance(devices, str) and devices.isdigit() and int(devices) > 0)
        or (isinstance(devices, (list, ListConfig)) and len(devices) > 0)
    )
    if not ok:
        problems.append(
            f"trainer.devices={devices!r}: allowed values: a number of devices per node > 0, or a list of device ids"
        )


def _check_batch_tokens(cfg, problems: list) -> None:
    value = OmegaConf.select(cfg, "eval.batch_tokens")
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return
    problems.append(
        f"eval.batch_tokens={value!r}: allowed values: auto (the largest budget that fits the accelerator's free "
        "memory; the fixed 4096 on a CPU) or an integer > 0"
    )


def _check_directions(cfg, problems: list) -> None:
    for key in ("train", "eval"):
        spec = OmegaConf.select(cfg, f"lang_pairs.{key}", throw_on_missing=False)
        if isinstance(spec, str) and spec != "???" and spec not in DIRECTION_KEYWORDS:
            problems.append(
                f"lang_pairs.{key}={spec!r}: allowed values: a list like [de-en,en-fr], or "
                f"{', '.join(DIRECTION_KEYWORDS)}"
            )


def schema_of(cfg):
    """``EvalConfig`` for an mfti-eval config (it has ``ckpt_path``), else ``TrainConfig``."""
    return EvalConfig if "ckpt_path" in cfg else TrainConfig


def problems(cfg, keys: tuple | None = None) -> list[str]:
    """Every value of ``cfg`` that the schema refuses, most relevant first (``keys``: only these root keys)."""
    cls = schema_of(cfg)
    found: list[str] = []
    if keys is not None:
        fields_ = {f.name: f for f in dataclasses.fields(cls)}
        for k in keys:
            if k in cfg and k in fields_:
                p = _check_value(k, cfg[k], fields_[k])
                if p:
                    found.append(p)
        return found
    _walk(cls, cfg, "", found, extra_keys_ok=True)
    if "trainer" in cfg:
        _check_devices(cfg, found)
    if "lang_pairs" in cfg:
        _check_directions(cfg, found)
    if "model" in cfg and not found:
        try:  # a valid family and attention kernel, but not together (BLOOM has no SDPA)
            check_attention(cfg.model.family, cfg.model.attn_implementation)
        except ConfigError as e:
            found.append(str(e))
    if "eval" in cfg:
        _check_batch_tokens(cfg, found)
    return found


def validate(cfg, keys: tuple | None = None) -> None:
    """Raise :class:`ConfigError` for the first value the schema refuses (the others are listed after it).
    Torch-free and fast: run before any data, model or GPU is touched."""
    found = problems(cfg, keys)
    if not found:
        return
    more = f"\n(also: {'; '.join(found[1:])})" if len(found) > 1 else ""
    raise ConfigError(found[0] + more)


# ---- command lines ---------------------------------------------------------------------------------------------
INT_GROUPS = {"shots": "k", "num_examples": "n"}  # group -> its number key; options are named <key><number>


def check_group_overrides(overrides: list[str]) -> None:
    """``shots=8`` / ``num_examples=1000`` (a number where a config group option is expected): raise
    :class:`ConfigError` naming ``shots=k8`` and ``shots.k=8``, before Hydra's own less helpful error."""
    from mfti_lightning.core.config import conf_dir

    for ov in overrides:
        m = re.fullmatch(r"(\+{0,2})(shots|num_examples)=(\d+(?:,\d+)*)", ov.strip())
        if not m:
            continue
        group, numbers = m.group(2), m.group(3).split(",")
        key = INT_GROUPS[group]
        options = sorted((p.stem for p in (conf_dir() / group).glob("*.yaml")), key=lambda s: int(s[1:]))
        presets = [f"{key}{n}" for n in numbers]
        hint = (
            f"{group}={','.join(presets)} (the preset{'s' if len(presets) > 1 else ''}), or "
            if all(p in options for p in presets)
            else ""
        )
        raise ConfigError(
            f"{ov}: {group} is a config group and its options are named {', '.join(options)}, not numbers. "
            f"Use {hint}{group}.{key}={','.join(numbers)} (any number)."
        )


def exit_on_bad_group_override(argv: list[str], prog: str) -> None:
    """For the Hydra entry points: :func:`check_group_overrides` on ``argv``; print and exit 2 on a problem."""
    try:
        check_group_overrides(list(argv))
    except ConfigError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        raise SystemExit(2) from None
