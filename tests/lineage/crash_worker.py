"""Run one publication step in a child process (the crash tests kill it with PREFMIX_CRASH_AT).

    python -m tests.lineage.crash_worker ACTION STORE BATCH_ID [HUMAN SYNTHETIC]   (from the repo root)
"""

from __future__ import annotations

import sys
from pathlib import Path

from prefmix.lineage.publish import override

from prefmix.config import Config
from prefmix.store import Store
from tests.lineage.lineage_helpers import publish_batch

if __name__ == "__main__":
    action, root, batch_id, *paths = sys.argv[1:]
    store = Store(Path(root))
    with store.lock(f"crash worker {action}"):
        if action == "override":
            override(store, batch_id, "checked by hand", "tester")
        else:
            human, synthetic = Path(paths[0]), Path(paths[1])
            publish_batch(store, Config(store=root), batch_id, [human], [synthetic], passed=action == "publish")
