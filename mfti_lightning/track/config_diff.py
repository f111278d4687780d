"""Non-swept config values that differ between runs the report compares: per run set, per figure series, and the
warning logged for each."""

from __future__ import annotations

import json
import logging
from collections import defaultdict

from mfti_lightning.core.config import flatten
from mfti_lightning.core.fields import IGNORED
from mfti_lightning.core.keys import role_of, swept_group, varies_with

log = logging.getLogger("mfti_lightning.track.report")


def config_differences(records: list[dict]) -> dict[str, dict[str, list[str]]]:
    """Non-swept config values that differ between runs: ``{key: {value: [run names]}}``. Left out: the keys of
    the swept groups, keys that never change a result (role ``ignored``), and keys that the options of a swept
    group set (``varies_with``: each model preset its learning rate)."""
    flat = [(r.get("run_name") or r.get("_dir"), flatten(r.get("config") or {})) for r in records]
    keys = sorted({k for _, f in flat for k in f})
    diffs = {}
    for k in keys:
        if swept_group(k) or role_of(k) == IGNORED or varies_with(k):
            continue
        values = defaultdict(list)
        for name, f in flat:
            values[json.dumps(f.get(k, "<absent>"), default=str)].append(str(name))
        if len(values) > 1:
            diffs[k] = dict(values)
    return diffs


def _merge(into: dict, values: dict[str, list[str]]) -> None:
    for v, names in values.items():
        merged = into.setdefault(v, [])
        merged += [n for n in names if n not in merged]


def figure_differences(figs) -> dict[str, dict]:
    """Non-swept config differences among the runs that one series of a figure averages or joins into a line
    (not among unrelated runs, nor between series, whose labels name what differs)."""
    out: dict[str, dict] = {}
    for name, series in figs.used.items():
        for runs in series if name in figs.drawn else []:
            for k, values in config_differences(runs).items():
                _merge(out.setdefault(name, {}).setdefault(k, {}), values)
    return out


def warn_differences(fig_diffs: dict[str, dict]) -> dict[str, dict[str, list[str]]]:
    """Log each figure's non-swept differences; returns them merged over figures ``{key: {value: [runs]}}``."""
    diffs: dict[str, dict[str, list[str]]] = {}
    for name, d in fig_diffs.items():
        for k, values in d.items():
            log.warning(
                "%s compares runs that differ in the non-swept config value %s: %s",
                name,
                k,
                "; ".join(f"{v} in {', '.join(names)}" for v, names in values.items()),
            )
            _merge(diffs.setdefault(k, {}), values)
    return diffs
