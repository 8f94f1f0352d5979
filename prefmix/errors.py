"""Errors a user can fix: the CLI prints them as one line and exits 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input, bad config or a refused operation; the message names the file, row or key."""

    exit_code = 2


class ConfigError(UserError):
    pass


class InputError(UserError):
    pass


class StoreLocked(UserError):
    pass


class QuotaShortfall(UserError):
    pass


class RunAborted(Exception):
    """A run stopped on purpose (error-rate threshold); the store is consistent."""

    exit_code = 3


class InfraError(Exception):
    """The teacher or the machine failed us (a server that will not start, a port already taken): exit 3.
    The message is one line; details (a log tail) go in `detail`."""

    exit_code = 3

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail
