"""The one way `prefmix run ...` runs a flow in this process.

It checks the config before Prefect starts, quiets Prefect's console (the
progress display owns the terminal; Prefect's own lines still reach its API
and UI), keeps a user's mistake to the one line the CLI prints, shows
progress unless --json, and returns the flow's result. Exit codes are mapped
by prefmix.cli: a UserError is 2, a teacher or infrastructure failure
(InfraError, RunAborted) is 3, and a store the disk refuses to write (OSError)
is 1 with one line saying the previous published batch stays current.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any, Callable, TypeVar

from pydantic import BaseModel

from prefmix.errors import InfraError, RunAborted, UserError

T = TypeVar("T", bound=BaseModel)


class StoreWriteFailed(Exception):
    """The store's disk refused a write during a run; nothing half-published stays current."""

    exit_code = 1


def quiet_prefect() -> None:
    """Before Prefect is imported: warnings only on the console, and no telemetry (the network is closed)."""
    for key in ("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL",
                "PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL"):
        os.environ.setdefault(key, "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The ephemeral server is given 20 s to start by default; a loaded 2-core box can need more.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def _quiet_names() -> set[str]:
    found, todo = {"RunAborted", "InfraError", "OSError", "PermissionError", "FileNotFoundError"}, [UserError, InfraError]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return found


def _keep(record: logging.LogRecord) -> bool:
    """False for Prefect's echo of an error the CLI prints as one line."""
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, (UserError, RunAborted, InfraError, OSError)):
        return False
    if record.levelno >= logging.ERROR and record.name.startswith(("prefect.flow_runs", "prefect.task_runs")):
        # "Finished in state Failed('Task run encountered an exception InputError: ...')" carries no exc_info
        return not re.search(r"\b(" + "|".join(sorted(_quiet_names())) + r")\b[:(]", record.getMessage())
    return True


def one_line_errors() -> None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and _keep not in handler.filters:
            handler.addFilter(_keep)
    # Prefect's event queue says "Still processing items" while it drains at exit: progress, not a problem.
    logging.getLogger("EventsWorker").setLevel(logging.ERROR)


def run(flow: Callable[..., Any], params: dict[str, Any], result: type[T], *, show_progress: bool) -> T:
    """Run `flow(**params)` here and return its result as `result`; the flow's own error is re-raised."""
    quiet_prefect()
    from prefmix.flows import progress

    one_line_errors()
    if show_progress:
        progress.install(progress.RichReporter())
    try:
        state = flow(**params, return_state=True)
    finally:
        progress.install(None)
    try:
        value = state.result()  # raises the flow's own exception (a UserError stays a one-liner)
    except OSError as exc:
        raise StoreWriteFailed(f"{exc}; the previous published batch stays latest, the next run clears what was staged") from None
    return value if isinstance(value, result) else result.model_validate(value)
