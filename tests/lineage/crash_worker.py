"""Run one publication step in a child process (the crash tests kill it with PREFMIX_CRASH_AT)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from lineage_helpers import publish_batch  # noqa: E402

from prefmix.lineage.publish import override  # noqa: E402
from prefmix.config import Config  # noqa: E402
from prefmix.store import Store  # noqa: E402

if __name__ == "__main__":
    action, root, batch_id, *paths = sys.argv[1:]
    store = Store(Path(root))
    with store.lock(f"crash worker {action}"):
        if action == "override":
            override(store, batch_id, "checked by hand", "tester")
        else:
            human, synthetic = Path(paths[0]), Path(paths[1])
            publish_batch(store, Config(store=root), batch_id, [human], [synthetic], passed=action == "publish")
