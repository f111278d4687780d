"""Which W&B mode a run uses (online | offline | disabled) and why: ``WANDB_MODE`` wins; ``auto`` and ``online``
fall back to offline without an API key (environment or netrc, read as wandb reads it) or a reachable server,
so a job never fails or hangs for lack of W&B."""

from __future__ import annotations

import netrc
import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

from mfti_lightning.core.errors import ConfigError

_DEFAULT_BASE_URL = "https://api.wandb.ai"


def _base_url() -> str:
    return os.environ.get("WANDB_BASE_URL") or _DEFAULT_BASE_URL


def _netrc_has_wandb() -> bool:
    """The netrc file (``NETRC``, else ``~/.netrc``) holds an API key for the W&B server, read as wandb reads it
    (the standard library's :mod:`netrc`): the ``machine`` entry of the server's host[:port] with a password, or of
    the W&B API behind a CoreWeave Forge URL. A missing, unreadable or malformed file holds no key."""
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc").expanduser()
    try:
        entries = netrc.netrc(str(path))
    except (OSError, netrc.NetrcParseError):
        return False
    url = urlsplit(_base_url())
    machines = {url.netloc}
    if (url.hostname or "").removeprefix("api.") == "forge.coreweave.com":
        machines.add(urlsplit(_DEFAULT_BASE_URL).netloc)
    return any((entries.authenticators(m) or (None, None, None))[2] for m in machines if m)


def has_api_key() -> bool:
    return bool(os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE")) or _netrc_has_wandb()


def server_reachable(url: str | None = None, timeout: float = 3.0) -> bool:
    """A bounded TCP connect to the W&B server (DNS included: run in a thread and abandoned after ``timeout``)."""
    parts = urlsplit(url or _base_url())
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    if not host:
        return False
    ok = []

    def probe():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return bool(ok)


def wandb_mode(setting: str = "auto", check_timeout: float = 3.0) -> str:
    """online | offline | disabled. ``WANDB_MODE`` wins; ``auto`` and ``online`` fall back to offline without an
    API key or without a reachable server (so a job never fails or hangs for lack of W&B)."""
    return wandb_mode_reason(setting, check_timeout)[0]


def wandb_mode_reason(setting: str = "auto", check_timeout: float = 3.0) -> tuple[str, str]:
    if setting not in ("auto", "online", "offline", "disabled"):
        raise ConfigError(f"logger.mode={setting!r}: use auto, online, offline or disabled.")
    env = os.environ.get("WANDB_MODE")
    if env:
        env = {"dryrun": "offline", "run": "online"}.get(env, env)
        return env, f"WANDB_MODE={env}"
    if setting in ("offline", "disabled"):
        return setting, f"logger.mode={setting}"
    if not has_api_key():
        return "offline", "no W&B API key (WANDB_API_KEY or ~/.netrc); run `wandb login` to go online"
    if check_timeout and not server_reachable(timeout=check_timeout):
        return "offline", f"W&B server {_base_url()} not reachable within {check_timeout:g} s"
    return "online", f"logger.mode={setting}, API key found, server reachable"
