"""Talking to a labeling tool safely: the API token (from the environment or a Prefect Secret block, never from a
file, a log or a manifest) and the one-line errors a failed call becomes.

A refused token (HTTP 401/403) or a project the server will not take is the user's to fix: ConfigError, exit 2.
A server that cannot be reached or answers 5xx is infrastructure: InfraError, exit 3.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from prefmix.config import LabelStudioTarget
from prefmix.credentials import read_key
from prefmix.errors import ConfigError, InfraError, UserError

DEFAULT_ENV = "LABEL_STUDIO_API_KEY"


def token(target: LabelStudioTarget) -> str:
    """The Label Studio API token: routing.label_studio.api_key_env, else api_key_secret, else $LABEL_STUDIO_API_KEY."""
    value = read_key(target.api_key_env, target.api_key_secret, "routing.label_studio")
    if value is not None:
        return value
    value = os.environ.get(DEFAULT_ENV)
    if not value:
        raise ConfigError(f"routing.label_studio: no API token; set api_key_env or api_key_secret, or export {DEFAULT_ENV}")
    return value


@contextlib.contextmanager
def calling(url: str, what: str) -> Iterator[None]:
    """Turn a failed Label Studio call into one line naming the server and what was being done (no token in it)."""
    import httpx

    try:
        yield
    except UserError:
        raise
    except httpx.HTTPError as exc:
        raise InfraError(f"Label Studio at {url}: {what} failed: {type(exc).__name__}: {' '.join(str(exc).split())[:160]}") from None
    except LookupError as exc:
        raise ConfigError(f"Label Studio at {url}: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"Label Studio at {url}: {' '.join(str(exc).split())[:200]}") from None
    except Exception as exc:  # the SDK's ApiError carries the HTTP status
        status = getattr(exc, "status_code", None)
        if status in (401, 403):
            raise ConfigError(f"Label Studio at {url}: {what}: the server refused the API token (HTTP {status})") from None
        if status is not None and status < 500:
            body = " ".join(str(getattr(exc, "body", "")).split())[:200]
            raise ConfigError(f"Label Studio at {url}: {what}: HTTP {status} {body}") from None
        if status is not None:
            raise InfraError(f"Label Studio at {url}: {what}: HTTP {status}") from None
        raise
