"""Retraction: a delivery, an annotator, a vendor or a teacher turns out bad; every later version leaves its rows out.

A retraction is a file, retractions/<id>.json (the truth; `lineage reindex` reads it back), indexed by the
ledger. It must select something: a selector that matches no row of any indexed batch and no delivery is a
mistake (exit 2, nothing written). The next nightly (or `prefmix retract --rebuild` at once) leaves the selected
rows out of its version and counts them in its manifest; `prefmix lineage impact` with the same selector lists
every version that held them.
"""

from __future__ import annotations

import datetime as dt

from prefmix.contract import Retraction, RetractionKind
from prefmix.crash import crash_point
from prefmix.errors import UserError
from prefmix.hashing import short_hash
from prefmix.lineage.ledger import Ledger
from prefmix.lineage.manifest import whoami
from prefmix.store import Store, atomic_write_json

KINDS: tuple[RetractionKind, ...] = ("delivery", "annotator", "vendor", "teacher")


def selector(args: dict[str, str | None]) -> tuple[RetractionKind, str]:
    """Exactly one of --delivery / --annotator / --vendor / --teacher."""
    given = [(k, v) for k, v in args.items() if k in KINDS and v is not None]
    if len(given) != 1:
        raise UserError("expected exactly one selector: --delivery SHA256 | --annotator ID | --vendor NAME | --teacher NAME")
    kind, value = given[0]
    value = value.strip()
    if kind == "delivery":
        value = value.removeprefix("sha256:").lower()
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise UserError(f"--delivery {value[:70]!r}: expected the delivery's sha256 (64 hex digits)")
    if not value:
        raise UserError(f"--{kind}: expected a non-empty value")
    return kind, value  # type: ignore[return-value]


def matches(ledger: Ledger, kind: RetractionKind, value: str) -> int:
    """Rows of indexed batches the selector matches (a delivery also counts when a version ingested it)."""
    return ledger.count_selected(kind, value)


def record(store: Store, ledger_url: str | None, kind: RetractionKind, value: str, reason: str, *,
           dataset: str | None = None, by: str | None = None) -> tuple[Retraction, int]:
    """Write and index a retraction (the caller holds the store lock); returns it and the rows it matches now."""
    if not (reason or "").strip():
        raise UserError("retract needs --reason TEXT saying why the rows are retracted")
    ledger = Ledger.for_reading(store, ledger_url)
    found = matches(ledger, kind, value)
    if not found:
        raise UserError(f"--{kind} {value}: matches no row of any indexed version or batch; nothing retracted")
    at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    rid = f"r{at[:19].replace('-', '').replace(':', '')}-{short_hash([kind, value, dataset, at], 8)}"
    retraction = Retraction(retraction_id=rid, kind=kind, value=value, reason=reason.strip(), at=at, by=by or whoami(),
                            dataset=dataset)
    atomic_write_json(store.retractions_dir / f"{rid}.json", retraction.model_dump(mode="json"))
    crash_point("retract:after-write")
    try:
        ledger.record_retraction(retraction)
    except UserError:
        pass  # the file is the truth; recover() indexes it
    return retraction, found


def in_store(store: Store) -> list[Retraction]:
    """Every retraction of the store (the files, not the index)."""
    from prefmix.lineage.ledger import read_retractions

    return read_retractions(store)
