"""Where the gate finds "the dataset's earlier published batches" (near-duplicate prompts are also looked
for there). One function, so the gate can be pointed at dataset versions without touching the checks."""

from __future__ import annotations

from pathlib import Path

from prefmix.store import Store

AREAS = ("staging", "quarantine", "batches")


def earlier_batches(batch_dir: Path) -> list[Path]:
    """Published batch folders of the store that holds batch_dir, other than batch_dir itself.

    The store is the folder above staging/, quarantine/ or batches/; a batch folder anywhere else (a test's
    scratch folder, a copy) has no earlier batches."""
    batch_dir = Path(batch_dir).resolve()
    if batch_dir.parent.name not in AREAS:
        return []
    store = Store(batch_dir.parent.parent)
    return [d for d in store.published_dirs() if d.resolve() != batch_dir]
