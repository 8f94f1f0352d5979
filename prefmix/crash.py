"""Test hook: named crash points that kill the process as a power cut would.

`crash_point("nightly:after-blend")` does nothing unless the environment
variable PREFMIX_CRASH_AT names that point; then the process sends itself
SIGKILL (no cleanup, no finally blocks, no atexit), which is what the crash
suite in tests/reliability needs to prove resume and atomic publication.

PREFMIX_CRASH_AT=<name>@<n> kills on the n-th time the point is reached in this
process (e.g. `generate:after-chunk@3` after the third chunk file is written).
Never set it outside tests.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

CRASH_ENV = "PREFMIX_CRASH_AT"
_hits: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """SIGKILL this process here if PREFMIX_CRASH_AT is `name` (or `name@n` and this is the n-th hit)."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _hits[name] += 1
    if _hits[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
