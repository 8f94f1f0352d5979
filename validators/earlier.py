"""Where the gate finds "the dataset's earlier published batches" (near-duplicate prompts are also looked
for there). One function, so the gate can be pointed at dataset versions without touching the checks."""

from __future__ import annotations

from pathlib import Path

from prefmix.hashing import sha256_file
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


def rebuilt_sketch(published: Path) -> Path:
    """Where the gate keeps the prompt sketch it rebuilt for the published batch folder `published` (its own
    report/ is not rewritten after publication); named by the batch's manifest too, so a batch published again
    under the same id is not read from the old one's sketch."""
    published = Path(published).resolve()
    manifest = published / "manifest.json"
    tag = sha256_file(manifest)[:12] if manifest.is_file() else "none"
    return Store(published.parent.parent).prompt_sketch_cache / f"{published.name}.{tag}.parquet"
