"""Stage -> gate -> publish as one Prefect transaction: if anything in it raises, the staged files go.

    with staged_batch(store, batch_id):
        staged, blend_result = blend_batch(...)   # writes staging/<batch_id>
        gate = gate_batch(...)                    # a crash here ...
        publish_or_quarantine(...)                # ... or here rolls back: staging/<batch_id> is removed

A gate *verdict* of fail is not an exception: the batch is quarantined with its
report, as designed. The rollback is for crashes (a gate that cannot run, a
publish that errors). A SIGKILL never rolls back; the janitor (`recover`)
clears staging at the start of the next run for that case.
"""

from __future__ import annotations

import contextlib
import shutil
from typing import Iterator

from prefect.transactions import Transaction, transaction

from prefmix.store import Store

STAGED_DIR = "prefmix_staged_dir"


def remove_staged(txn: Transaction) -> None:
    """Rollback hook: delete the staged batch folder (a published batch was already renamed away)."""
    staged = txn.get(STAGED_DIR, None)
    if staged:
        shutil.rmtree(staged, ignore_errors=True)


@contextlib.contextmanager
def staged_batch(store: Store, batch_id: str) -> Iterator[Transaction]:
    """A Prefect transaction whose rollback removes staging/<batch_id>.

    The hook is staged on the transaction itself (not on the blend task), so it
    also runs when the staging task fails half-way, which a task's own
    `on_rollback` would not cover.
    """
    with transaction() as txn:
        txn.set(STAGED_DIR, str(store.staging(batch_id)))
        txn.stage(None, on_rollback_hooks=[remove_staged])
        yield txn
