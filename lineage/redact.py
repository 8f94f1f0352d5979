"""Keep secrets out of everything lineage writes (manifests, events, logs).

Two layers: keys that look secret are blanked wherever they appear, and the
current value of any secret-holding environment variable is scrubbed from all
strings (a key pasted into a URL or an error message is still caught).
"""

from __future__ import annotations

import os
import re
from typing import Any

from prefmix.config import Config

MASK = "***"
# Matched against the words of a key name (api_key, accessToken, DB-PASSWORD), so max_tokens is not a secret.
SECRET_WORDS = {"key", "apikey", "token", "secret", "password", "passwd", "credential", "credentials", "auth"}
# Environment variables whose names look secret but hold locations (PWD is the working directory).
NOT_SECRET_ENV = {"PWD", "OLDPWD", "SSH_AUTH_SOCK", "XAUTHORITY"}
# Names that merely *name* where a secret lives are safe to keep (they are how config points at secrets).
SAFE_KEYS = {"api_key_env", "api_key_secret"}
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]+:)(?P<pw>[^@\s]+)(?P<at>@)")
MIN_SECRET_LEN = 8  # shorter env values would mask ordinary words


def _words(name: str) -> set[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return {w for w in re.split(r"[^a-zA-Z0-9]+", spaced.lower()) if w}


def secret_key(name: str) -> bool:
    return name.lower() not in SAFE_KEYS and bool(_words(name) & SECRET_WORDS)


def secret_values(config: Config | None = None) -> list[str]:
    """Values to scrub: env vars named by teachers' api_key_env, and env vars whose names look secret."""
    names = {name for name in os.environ if secret_key(name) and name not in NOT_SECRET_ENV}
    if config is not None:
        names.update(t.api_key_env for t in config.teachers if t.api_key_env)
    values = {os.environ.get(name, "") for name in names}
    # Longest first so a secret containing another is masked whole.
    return sorted((v for v in values if len(v) >= MIN_SECRET_LEN), key=len, reverse=True)


def scrub_text(text: str, values: list[str]) -> str:
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK + m["at"], text)
    for value in values:
        text = text.replace(value, MASK)
    return text


def redact(obj: Any, values: list[str]) -> Any:
    """A copy of plain data with secret-looking keys masked and secret values scrubbed from strings."""
    if isinstance(obj, dict):
        # Only string values are masked: a number or flag under a secret-looking key is not a secret.
        return {k: (MASK if secret_key(str(k)) and isinstance(v, str) and v else redact(v, values)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v, values) for v in obj]
    if isinstance(obj, str):
        return scrub_text(obj, values)
    return obj
