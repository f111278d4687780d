"""Config hygiene: secret-looking keys and any value holding a secret environment value are redacted, and
``???`` (missing mandatory values) dropped, before a config goes to W&B or a log."""

from __future__ import annotations

import os
import re

# config keys whose values are never sent anywhere (matched against the last key of a path)
_SECRET_KEY = re.compile(r"(^|[_\-.])(api[_-]?key|apikey|token|secret|passw(or)?d|credentials?)($|[_\-.])", re.I)
# environment variables whose values must never appear in logged config (even inside a longer string)
_SECRET_ENV = re.compile(r"(API_KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL)", re.I)
REDACTED = "<redacted>"


def _secret_values() -> list[str]:
    return [v for k, v in os.environ.items() if _SECRET_ENV.search(k) and v and len(v) >= 8]


def redact_secrets(obj, _secrets: list[str] | None = None):
    """A copy of plain data with secret-looking keys and any value holding a secret env value redacted."""
    secrets = _secret_values() if _secrets is None else _secrets
    if isinstance(obj, dict):
        return {
            k: (
                REDACTED
                if _SECRET_KEY.search(str(k)) and obj[k] not in (None, "", "???")
                else redact_secrets(v, secrets)
            )
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [redact_secrets(v, secrets) for v in obj]
    if isinstance(obj, str) and any(s in obj for s in secrets):
        out = obj
        for s in secrets:
            out = out.replace(s, REDACTED)
        return out
    return obj


def clean_config(obj):
    """The config for W&B: plain data, secrets redacted, ``???`` (missing mandatory values) dropped."""

    def drop_missing(o):
        if isinstance(o, dict):
            return {k: drop_missing(v) for k, v in o.items() if v != "???"}
        if isinstance(o, list):
            return [drop_missing(v) for v in o if v != "???"]
        return o

    return drop_missing(redact_secrets(obj))
