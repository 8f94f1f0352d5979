"""API keys and tokens from the environment or a Prefect Secret block, never from a config file."""

from __future__ import annotations

import os

from prefmix.errors import ConfigError


def read_key(env: str | None, secret: str | None, where: str) -> str | None:
    """The value of environment variable `env`, else of Prefect Secret block `secret`; None if neither is named.

    `where` is the config section that names them (e.g. `teachers.t`), for the one-line ConfigError when the
    named variable is unset or the block does not exist.
    """
    if env:
        value = os.environ.get(env)
        if not value:
            raise ConfigError(f"{where}.api_key_env: environment variable {env} is not set")
        return value
    if secret:
        from prefect.blocks.system import Secret

        try:
            value = Secret.load(secret).get()
        except ValueError:
            raise ConfigError(f"{where}.api_key_secret: Prefect Secret block {secret!r} not found") from None
        return str(value)
    return None
