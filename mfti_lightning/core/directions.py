"""Training and evaluation directions from the ``lang_pairs`` config group. No torch here."""

from __future__ import annotations

from mfti_lightning.core import languages
from mfti_lightning.core.errors import ConfigError
from mfti_lightning.core.languages import Direction


def _listify(value):
    if value is None or isinstance(value, str):
        return value
    return list(value)


def resolve_spec(spec, lp) -> list[Direction]:
    """A direction spec: a list of ``src-tgt`` strings, or one of the keywords all | en_centric | split."""
    spec = _listify(spec)
    try:
        if isinstance(spec, list):
            dirs = [languages.parse_direction(d) for d in spec]
        elif spec == "all":
            dirs = languages.all_directions(lp["languages"])
        elif spec == "en_centric":
            dirs = [d for d in languages.all_directions(lp["languages"]) if "en" in d]
        elif spec == "split":
            split = lp["split"]
            srcs = list(split["seen_both"]) + list(split["src_only"])
            tgts = list(split["seen_both"]) + list(split["tgt_only"])
            dirs = [(s, t) for s in srcs for t in tgts if s != t]
            for code in srcs + tgts:
                languages.get(code)
        else:
            raise ConfigError(
                f"lang_pairs: cannot read {spec!r}; give a list like [de-en,en-fr] or one of all, en_centric, split."
            )
    except (KeyError, ValueError) as e:
        if isinstance(e, ConfigError) and str(e).startswith("lang_pairs"):
            raise
        raise ConfigError(f"lang_pairs={lp.get('name')}: {e}") from None
    if len(set(dirs)) != len(dirs):
        dupes = sorted({languages.direction_str(d) for d in dirs if dirs.count(d) > 1})
        raise ConfigError(f"lang_pairs={lp.get('name')}: directions listed twice: {dupes}")
    return dirs


def train_directions(lp) -> list[Direction]:
    return resolve_spec(lp["train"], lp)


def eval_directions(lp) -> list[Direction]:
    spec = lp.get("eval")
    return train_directions(lp) if spec is None else resolve_spec(spec, lp)


def directions_record(train: list[Direction], evaluated: list[Direction]) -> dict[str, list[str]]:
    """results.json's ``directions``: the finetuned and the evaluated directions as ``src-tgt`` strings."""
    return {
        "train": [languages.direction_str(d) for d in train],
        "eval": [languages.direction_str(d) for d in evaluated],
    }
