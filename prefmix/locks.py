"""The one file lock: exclusive, non-blocking, released when the block ends or the process dies."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Callable, Iterator


class Busy(Exception):
    """The lock is held by another process; `holder` is what that process wrote into the file."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


@contextlib.contextmanager
def exclusive(path: Path, what: str, busy: Callable[[str], Exception] = Busy) -> Iterator[None]:
    """Hold an flock on `path` (created if missing) and write `pid N (what)` into it; if it is taken, raise
    busy(holder) at once (Busy, or the caller's own one-line error)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise busy(handle.read().strip() or "another process") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} ({what})")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
