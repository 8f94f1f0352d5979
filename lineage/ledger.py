"""The ledger: an index of manifests for fast audit queries (rebuildable from the manifests).

SQLite in the store by default, any SQLAlchemy URL (PostgreSQL: postgresql+psycopg://...) by config.

How it stays small: a record's lineage (origin delivery and row, source, run, fingerprint, teacher, judge,
vendor, annotators) is stored ONCE, in `records` (and its `tags`), when a batch first holds it. Batches belong
to lines: every version of a dataset is position N of the line `dataset:NAME`; a batch outside any dataset is
the only position of its own line. Which records a position holds is stored as `spans`: one row per record and
stretch of consecutive versions it was in ([first, last], last NULL while it is still in), opened when a
version adds the record and closed when one removes it. A version that holds everything to date adds one span
per new row and touches nothing else, so the ledger grows with new rows and changes, not with version size.

- trace: records by record_id (index) -> its spans -> the versions in them.
- impact by selector (delivery, vendor, teacher, annotator) and by origin: `tallies`, kept with the spans, count
  how many records of each selector value every stretch [first, last] of a line holds, so impact reads one row
  per value and stretch (a few hundred for a year of nightly versions), however many records match. A version
  adds one tally per value among its new rows and moves the counts of the values among its removed rows, so
  tallies grow with new rows and changes too (at most one per origin and tag of a changed row, far fewer
  in practice).
- diff vA vB: spans opened in (A, B] that cover B, less records covered at A; and the mirror for removals.
  Both are range seeks on (line, first) and (line, last), proportional to the change.

Deliveries a version ingested are written in the same transaction as the version's spans: the ledger never
says a delivery was ingested without the version that holds it. Inputs of batches are spans too.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import polars as pl
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError, ProgrammingError

from prefmix.contract import Manifest, ManifestInput, Retraction
from prefmix.errors import UserError
from prefmix.store import Store, fsync_dir

LAYOUT = "3"  # bump when a table changes; an older ledger is rebuilt from the manifests
INSERT_CHUNK = 20_000
IN_CHUNK = 2_000  # ids per IN (...) list (SQLite caps bound parameters)
BUSY_TIMEOUT_S = 5

metadata = sa.MetaData()

meta = sa.Table("meta", metadata, sa.Column("key", sa.String, primary_key=True), sa.Column("value", sa.String))

lines = sa.Table(
    "lines",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String, nullable=False, unique=True),  # dataset:NAME or batch:ID
    sa.Column("dataset", sa.String),  # the dataset name, NULL for a batch's own line
    sa.Column("latest", sa.Integer, nullable=False, default=0),  # highest position indexed
)

batches = sa.Table(
    "batches",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("batch_id", sa.String, nullable=False, unique=True),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("location", sa.String, nullable=False),
    sa.Column("content_hash", sa.String, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.String),
    sa.Column("status_at", sa.String),
    sa.Column("flow_run_id", sa.String),
    sa.Column("git_commit", sa.String),
    sa.Column("dataset", sa.String),
    sa.Column("version", sa.Integer),  # the version it is (published) or was built to be (quarantined)
)

# Position `version` of a line is this batch.
versions = sa.Table(
    "versions",
    metadata,
    sa.Column("line_pk", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("batch_pk", sa.Integer, nullable=False, index=True),
    sa.Column("day", sa.String),
    sa.Column("rows", sa.BigInteger, nullable=False),
)

files = sa.Table(
    "files",
    metadata,
    sa.Column("batch_pk", sa.Integer, nullable=False, index=True),
    sa.Column("path", sa.String, nullable=False),
    sa.Column("sha256", sa.String, nullable=False, index=True),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
)

# An input (record file, shard, run) is used by the positions [first, last] of a line.
inputs = sa.Table(
    "inputs",
    metadata,
    sa.Column("line_pk", sa.Integer, nullable=False),
    sa.Column("first", sa.Integer, nullable=False),
    sa.Column("last", sa.Integer),
    sa.Column("role", sa.String, nullable=False),
    sa.Column("path", sa.String, index=True),
    sa.Column("sha256", sa.String, index=True),
    sa.Column("run_id", sa.String, index=True),
    sa.Index("inputs_line_open", "line_pk", "last"),
)

origins = sa.Table(
    "origins",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uri", sa.String, nullable=False, index=True),
    sa.Column("sha256", sa.String, nullable=False, index=True),
    sa.UniqueConstraint("uri", "sha256"),
)

records = sa.Table(
    "records",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("record_id", sa.String, nullable=False),  # looked up by the unique (record_id, origin, row) index
    sa.Column("origin_pk", sa.Integer, nullable=False, index=True),
    sa.Column("origin_row", sa.BigInteger, nullable=False),
    sa.Column("source", sa.String, nullable=False),
    sa.Column("domain", sa.String),
    sa.Column("run_id", sa.String, index=True),
    sa.Column("fingerprint", sa.String),
    # Where the row can be read: files[file_no] of the batch that first held it, row file_row.
    sa.Column("batch_pk", sa.Integer, nullable=False),
    sa.Column("file_no", sa.Integer, nullable=False),
    sa.Column("file_row", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("record_id", "origin_pk", "origin_row"),
)

# Who made a record: annotator ids, teacher and judge names and model ids, vendor (what retraction selects on).
tags = sa.Table(
    "tags",
    metadata,
    sa.Column("record_pk", sa.Integer, nullable=False, index=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("value", sa.String, nullable=False),
    sa.Index("tags_kind_value", "kind", "value"),
)

spans = sa.Table(
    "spans",
    metadata,
    sa.Column("record_pk", sa.Integer, nullable=False, index=True),
    sa.Column("line_pk", sa.Integer, nullable=False),
    sa.Column("first", sa.Integer, nullable=False),
    sa.Column("last", sa.Integer),
    sa.Column("added_reason", sa.String),
    sa.Column("removed_reason", sa.String),
    sa.Index("spans_line_first", "line_pk", "first"),
    sa.Index("spans_line_last", "line_pk", "last"),
)

# How many spans of a line's stretch [first, last] are of records a selector value matches: kind "origin" (value:
# origins.pk; the delivery selector is its origins by sha256) or a tag kind (annotator, teacher, vendor; value: the
# tag). One row per value and stretch, written with the spans it counts: a version's new spans add (value,
# position, NULL) rows, closing spans moves their count to (value, first, position - 1).
tallies = sa.Table(
    "tallies",
    metadata,
    sa.Column("line_pk", sa.Integer, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("value", sa.String, nullable=False),
    sa.Column("first", sa.Integer, nullable=False),
    sa.Column("last", sa.Integer),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Index("tallies_value", "kind", "value", "line_pk", "first"),
)

# Every landing-zone file a version saw: status 'ingested' (this version took it) or 'duplicate' (same bytes
# as an ingested delivery, under another name).
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("line_pk", sa.Integer, nullable=False),
    sa.Column("path", sa.String, nullable=False),
    sa.Column("sha256", sa.String, nullable=False, index=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("vendor", sa.String),
    sa.Column("layout", sa.String),
    sa.Column("rows", sa.BigInteger),
    sa.Column("bytes", sa.BigInteger),
    sa.Column("mtime_ns", sa.BigInteger),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("batch_pk", sa.Integer, nullable=False),
    sa.Column("at", sa.String),
    sa.UniqueConstraint("line_pk", "path", "sha256"),
    sa.Index("deliveries_path", "line_pk", "path"),
)

retractions = sa.Table(
    "retractions",
    metadata,
    sa.Column("retraction_id", sa.String, primary_key=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("value", sa.String, nullable=False),
    sa.Column("reason", sa.String, nullable=False),
    sa.Column("at", sa.String, nullable=False),
    sa.Column("by", sa.String, nullable=False),
    sa.Column("dataset", sa.String),
)

OLD_TABLES = ("batch_origins",)  # tables of earlier layouts that a rebuild drops

CHANGE_SCHEMA = pl.Schema({
    "change": pl.String, "record_id": pl.String, "origin_uri": pl.String, "origin_sha256": pl.String,
    "origin_row": pl.Int64, "source": pl.String, "domain": pl.String, "reason": pl.String, "run_id": pl.String,
    "fingerprint": pl.String, "teacher": pl.String, "judge": pl.String, "vendor": pl.String,
    "models": pl.List(pl.String), "annotator_ids": pl.List(pl.String), "file_no": pl.Int64, "file_row": pl.Int64,
})


def default_url(store: Store) -> str:
    return f"sqlite:///{store.ledger_path}"


def _chunks(items: list[Any], size: int = IN_CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def line_name(manifest: Manifest) -> str:
    """The line a published batch is a position of."""
    return f"dataset:{manifest.dataset.name}" if manifest.dataset else f"batch:{manifest.batch_id}"


class Ledger:
    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite")
        connect_args = {"timeout": BUSY_TIMEOUT_S} if self.sqlite else {}
        self.engine = sa.create_engine(url, connect_args=connect_args)
        self._created = False
        if self.sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)

    @classmethod
    def for_store(cls, store: Store, url: str | None = None) -> "Ledger":
        """The ledger a writer indexes into (the default SQLite file is created with the store)."""
        if url is None:
            store.ensure()
        return cls(url or default_url(store))

    @classmethod
    def for_reading(cls, store: Store, url: str | None = None) -> "Ledger":
        """The ledger an audit reads; never creates a store or an empty ledger that would answer 'not found'."""
        if url is None:
            store.require()
            if not store.ledger_path.is_file():
                raise UserError(f"{store.ledger_path}: no ledger in this store; build it from the manifests with `prefmix lineage reindex`")
        ledger = cls(url or default_url(store))
        if ledger.stale():
            raise UserError(f"{ledger.where()}: the ledger has an older layout; rebuild it with `prefmix lineage reindex`")
        return ledger

    def where(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextlib.contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """A transaction; a ledger locked by another writer past the busy timeout is a one-line UserError."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            text = str(exc.orig).lower()
            if "locked" in text or "busy" in text:
                raise UserError(f"{self.where()}: ledger is locked by another process; try again when it finishes") from None
            if not self.sqlite and ("connect" in text or "connection" in text):
                raise UserError(f"{self.where()}: cannot reach the ledger database ({str(exc.orig).splitlines()[0]})") from None
            raise

    def stale(self) -> bool:
        """True when the database holds prefmix tables of an older layout (rebuild them with reindex)."""
        try:
            names = set(sa.inspect(self.engine).get_table_names())
        except OperationalError as exc:
            if "locked" in str(exc.orig).lower():
                return False  # cannot tell now; a writer will find out
            raise
        if not names & {"batches", "records"}:
            return False
        if "meta" not in names:
            return True
        with self.begin() as conn:
            return conn.execute(sa.select(meta.c.value).where(meta.c.key == "layout")).scalar() != LAYOUT

    def create(self) -> None:
        """Create missing tables and indexes, and stamp the layout."""
        if self._created:
            return
        with self.begin() as conn:
            metadata.create_all(conn)
            if conn.execute(sa.select(meta.c.value).where(meta.c.key == "layout")).scalar() is None:
                conn.execute(meta.insert().values(key="layout", value=LAYOUT))
        self._created = True

    def drop(self) -> None:
        with self.begin() as conn:
            for name in OLD_TABLES:
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
            inspector_names = set(sa.inspect(conn).get_table_names())
            for table in reversed(metadata.sorted_tables):
                if table.name in inspector_names:
                    table.drop(conn)
        self._created = False

    # writing -----------------------------------------------------------------
    def index_batch(self, manifest: Manifest, batch_dir: Path, changes: pl.DataFrame | None = None) -> dict[str, Any]:
        """Index one batch. A published dataset batch becomes position `version` of its dataset's line (its
        changes against the previous version: lineage/changes.parquet, or `changes`); a batch outside any
        dataset is position 1 of its own line (every row added); a quarantined dataset batch is listed but
        holds no position. Idempotent: a batch already indexed only gets its status and location updated."""
        from prefmix.contract import PUBLISHED

        self.create()
        batch_dir = Path(batch_dir)
        row = _batch_row(manifest, batch_dir)
        positioned = manifest.dataset is None or manifest.status in PUBLISHED
        with self.begin() as conn:
            pk = conn.execute(sa.select(batches.c.pk).where(batches.c.batch_id == row["batch_id"])).scalar()
            if pk is None:
                pk = conn.execute(batches.insert().values(**row)).inserted_primary_key[0]
                conn.execute(files.insert(), [{"batch_pk": pk, "path": f.path, "sha256": f.sha256, "rows": f.rows,
                                               "bytes": f.bytes} for f in manifest.files])
            else:
                conn.execute(batches.update().where(batches.c.pk == pk).values(**row))
            if not positioned:
                return {"batch_id": row["batch_id"], "records": 0, "updated": True}
            line_pk, latest = self._line(conn, manifest)
            position = manifest.dataset.version if manifest.dataset else 1
            if position <= latest:
                return {"batch_id": row["batch_id"], "records": 0, "updated": True}
            if position != latest + 1:
                raise UserError(f"{self.where()}: {line_name(manifest)} is indexed up to v{latest}, cannot add v{position};"
                                " rebuild the ledger with `prefmix lineage reindex`")
            frame = changes if changes is not None else read_changes(manifest, batch_dir)
            added = self._apply(conn, line_pk, position, pk, frame)
            self._inputs(conn, line_pk, position, manifest.inputs)
            if manifest.dataset is not None:
                self._deliveries(conn, line_pk, position, pk, manifest)
            conn.execute(versions.insert().values(line_pk=line_pk, version=position, batch_pk=pk, rows=manifest.rows,
                                                  day=manifest.dataset.day if manifest.dataset else None))
            conn.execute(lines.update().where(lines.c.pk == line_pk).values(latest=position))
        return {"batch_id": row["batch_id"], "records": added, "updated": False}

    def _line(self, conn: sa.Connection, manifest: Manifest) -> tuple[int, int]:
        name = line_name(manifest)
        found = conn.execute(sa.select(lines.c.pk, lines.c.latest).where(lines.c.name == name)).first()
        if found is not None:
            return int(found.pk), int(found.latest)
        pk = conn.execute(lines.insert().values(name=name, dataset=manifest.dataset.name if manifest.dataset else None,
                                                latest=0)).inserted_primary_key[0]
        return int(pk), 0

    def _apply(self, conn: sa.Connection, line_pk: int, position: int, batch_pk: int, frame: pl.DataFrame) -> int:
        """Open a span for every added row (storing its lineage if it is new) and close the span of every removed one;
        the tallies move with them."""
        added = frame.filter(pl.col("change") == "added")
        removed = frame.filter(pl.col("change") == "removed")
        if added.height:
            keyed = self._record_keys(conn, added, batch_pk)
            rows = keyed.select(pl.col("record_pk"), pl.lit(line_pk).alias("line_pk"), pl.lit(position).alias("first"),
                                pl.lit(None, pl.Int64).alias("last"), pl.col("reason").alias("added_reason"))
            for chunk in rows.iter_slices(INSERT_CHUNK):
                conn.execute(spans.insert(), chunk.to_dicts())
            self._tally(conn, line_pk, position, closed=False)
        if removed.height:
            keyed = self._record_keys(conn, removed, None)
            for reason, group in keyed.group_by("reason"):
                for pks in _chunks(group["record_pk"].to_list()):
                    conn.execute(
                        spans.update()  # `+ 0`: the record_pk index, not every open span of the line (spans_line_last)
                        .where(spans.c.line_pk + 0 == line_pk, spans.c.last.is_(None), spans.c.record_pk.in_(pks))
                        .values(last=position - 1, removed_reason=reason[0])
                    )
            self._tally(conn, line_pk, position, closed=True)
        return added.height

    def _tally(self, conn: sa.Connection, line_pk: int, position: int, closed: bool) -> None:
        """Count the spans indexing `position` opened (first = position) or closed (last = position - 1: only this
        version closes spans there) into the tallies, by the record's origin and by each of its stored tags: opened
        ones add (value, position, NULL) rows; closed ones move their count from (value, first, NULL) to (value,
        first, position - 1). Counted in the database: a range seek on the line, as many rows as the change."""
        where = (spans.c.line_pk == line_pk, spans.c.last == position - 1 if closed else spans.c.first == position)
        by_origin = (sa.select(records.c.origin_pk, spans.c.first, sa.func.count())
                     .select_from(spans.join(records, records.c.pk == spans.c.record_pk)).where(*where)
                     .group_by(records.c.origin_pk, spans.c.first))
        by_tag = (sa.select(tags.c.kind, tags.c.value, spans.c.first, sa.func.count())
                  .select_from(spans.join(tags, tags.c.record_pk == spans.c.record_pk)).where(*where)
                  .group_by(tags.c.kind, tags.c.value, spans.c.first))
        counts = sorted([("origin", str(o), int(f), int(n)) for o, f, n in conn.execute(by_origin)]
                        + [(k, v, int(f), int(n)) for k, v, f, n in conn.execute(by_tag)])
        if not counts:
            return
        if closed:
            moved = [{"k": k, "v": v, "f": f, "n": n} for k, v, f, n in counts]
            key = (tallies.c.line_pk == line_pk, tallies.c.kind == sa.bindparam("k"), tallies.c.value == sa.bindparam("v"),
                   tallies.c.first == sa.bindparam("f"), tallies.c.last.is_(None))
            conn.execute(tallies.update().where(*key).values(rows=tallies.c.rows - sa.bindparam("n")), moved)
            conn.execute(tallies.delete().where(*key, tallies.c.rows <= 0), [{"k": k, "v": v, "f": f} for k, v, f, _ in counts])
        last = position - 1 if closed else None
        for chunk in _chunks(counts, INSERT_CHUNK):
            conn.execute(tallies.insert(), [{"line_pk": line_pk, "kind": k, "value": v, "first": f, "last": last, "rows": n}
                                            for k, v, f, n in chunk])

    def _record_keys(self, conn: sa.Connection, frame: pl.DataFrame, batch_pk: int | None) -> pl.DataFrame:
        """frame + record_pk; with batch_pk, rows the ledger does not know yet are stored (lineage once)."""
        frame = frame.join(self._origin_keys(conn, frame.select("origin_uri", "origin_sha256").unique(), create=batch_pk is not None),
                           on=["origin_uri", "origin_sha256"], how="left")
        known = self._lookup_records(conn, frame)
        if batch_pk is None:
            return known
        new = frame.join(known.select("record_id", "origin_pk", "origin_row"), on=["record_id", "origin_pk", "origin_row"], how="anti")
        new = new.unique(["record_id", "origin_pk", "origin_row"], keep="first")
        if new.height:
            rows = new.select("record_id", "origin_pk", "origin_row", "source", "domain", "run_id", "fingerprint",
                              pl.lit(batch_pk).alias("batch_pk"), pl.col("file_no").fill_null(0), pl.col("file_row").fill_null(0))
            for chunk in rows.iter_slices(INSERT_CHUNK):
                conn.execute(records.insert(), chunk.to_dicts())
            fresh = self._lookup_records(conn, new)
            tag_rows = _tags(fresh)
            for chunk in tag_rows.iter_slices(INSERT_CHUNK):
                conn.execute(tags.insert(), chunk.to_dicts())
            known = pl.concat([known, fresh], how="diagonal_relaxed")
        return known

    def _lookup_records(self, conn: sa.Connection, frame: pl.DataFrame) -> pl.DataFrame:
        found: list[tuple[Any, ...]] = []
        for ids in _chunks(frame["record_id"].unique().to_list()):
            query = sa.select(records.c.record_id, records.c.origin_pk, records.c.origin_row, records.c.pk).where(records.c.record_id.in_(ids))
            found.extend(tuple(r) for r in conn.execute(query))
        table = pl.DataFrame(found, schema={"record_id": pl.String, "origin_pk": pl.Int64, "origin_row": pl.Int64,
                                            "record_pk": pl.Int64}, orient="row")
        return frame.with_columns(pl.col("origin_pk").cast(pl.Int64)).join(table, on=["record_id", "origin_pk", "origin_row"], how="inner")

    def _origin_keys(self, conn: sa.Connection, wanted: pl.DataFrame, create: bool) -> pl.DataFrame:
        """origin (uri, sha256) -> origins.pk, inserting the new ones when `create`."""
        def lookup() -> pl.DataFrame:
            found: list[tuple[Any, ...]] = []
            for shas in _chunks(wanted["origin_sha256"].unique().to_list()):
                query = sa.select(origins.c.uri, origins.c.sha256, origins.c.pk).where(origins.c.sha256.in_(shas))
                found.extend(tuple(r) for r in conn.execute(query))
            return pl.DataFrame(found, schema={"origin_uri": pl.String, "origin_sha256": pl.String, "origin_pk": pl.Int64}, orient="row")

        known = lookup()
        new = wanted.join(known, on=["origin_uri", "origin_sha256"], how="anti")
        if create and not new.is_empty():
            conn.execute(origins.insert(), new.rename({"origin_uri": "uri", "origin_sha256": "sha256"}).to_dicts())
            known = lookup()
        return known

    def _inputs(self, conn: sa.Connection, line_pk: int, position: int, listed: list[ManifestInput]) -> None:
        """Inputs as spans of positions: new ones open, ones no longer used close."""
        wanted = {(i.role, i.path, i.sha256, i.run_id) for i in listed}
        open_rows = conn.execute(
            sa.select(inputs.c.role, inputs.c.path, inputs.c.sha256, inputs.c.run_id)
            .where(inputs.c.line_pk == line_pk, inputs.c.last.is_(None))
        ).all()
        have = {tuple(r) for r in open_rows}
        for role, path, sha, run_id in have - wanted:
            conn.execute(inputs.update().where(
                inputs.c.line_pk == line_pk, inputs.c.last.is_(None), inputs.c.role == role,
                _eq(inputs.c.path, path), _eq(inputs.c.sha256, sha), _eq(inputs.c.run_id, run_id),
            ).values(last=position - 1))
        new = [{"line_pk": line_pk, "first": position, "last": None, "role": role, "path": path, "sha256": sha, "run_id": run_id}
               for role, path, sha, run_id in sorted(wanted - have, key=lambda t: tuple(str(x) for x in t))]
        if new:
            conn.execute(inputs.insert(), new)

    def _deliveries(self, conn: sa.Connection, line_pk: int, position: int, batch_pk: int, manifest: Manifest) -> None:
        """Mark the version's new deliveries ingested and its duplicate sightings seen, in the version's transaction."""
        assert manifest.dataset is not None
        at = manifest.status_time("published", "overridden") or manifest.created_at
        for d in manifest.dataset.deliveries:
            if d.status not in ("new", "changed", "duplicate"):
                continue
            status = "duplicate" if d.status == "duplicate" else "ingested"
            exists = conn.execute(sa.select(deliveries.c.sha256).where(
                deliveries.c.line_pk == line_pk, deliveries.c.path == d.path, deliveries.c.sha256 == d.sha256)).first()
            if exists is None:
                conn.execute(deliveries.insert().values(
                    line_pk=line_pk, path=d.path, sha256=d.sha256, kind=d.kind, status=status, vendor=d.vendor,
                    layout=d.layout, rows=d.rows, bytes=d.bytes, mtime_ns=d.mtime_ns, version=position, batch_pk=batch_pk,
                    at=at))

    def record_retraction(self, retraction: Retraction) -> None:
        self.create()
        with self.begin() as conn:
            if conn.execute(sa.select(retractions.c.retraction_id).where(retractions.c.retraction_id == retraction.retraction_id)).first() is None:
                conn.execute(retractions.insert().values(**retraction.model_dump()))

    # reading: state ------------------------------------------------------------
    def statuses(self) -> dict[str, tuple[str, str]]:
        """batch_id -> (status, location), to find batches the ledger has missed."""
        self.create()
        with self.begin() as conn:
            query = sa.select(batches.c.batch_id, batches.c.status, batches.c.location)
            return {r.batch_id: (r.status, r.location) for r in conn.execute(query)}

    def batch_index(self) -> dict[str, tuple[str, str, str, str | None, int | None]]:
        """batch_id -> (status, location, created_at, dataset, version) of every indexed batch (what recover reads
        instead of the manifests)."""
        self.create()
        with self.begin() as conn:
            query = sa.select(batches.c.batch_id, batches.c.status, batches.c.location, batches.c.created_at, batches.c.dataset,
                              batches.c.version)
            return {r.batch_id: (r.status, r.location, r.created_at or "", r.dataset, r.version) for r in conn.execute(query)}

    def batch_ids(self) -> set[str]:
        self.create()
        with self.begin() as conn:
            return set(conn.execute(sa.select(batches.c.batch_id)).scalars())

    def batch_status(self, batch_id: str) -> str | None:
        self.create()
        with self.begin() as conn:
            return conn.execute(sa.select(batches.c.status).where(batches.c.batch_id == batch_id)).scalar()

    def retraction_ids(self) -> set[str]:
        self.create()
        with self.begin() as conn:
            return set(conn.execute(sa.select(retractions.c.retraction_id)).scalars())

    def list_retractions(self, dataset: str | None = None) -> list[Retraction]:
        self.create()
        query = sa.select(retractions).order_by(retractions.c.at, retractions.c.retraction_id)
        if dataset is not None:
            query = query.where(sa.or_(retractions.c.dataset.is_(None), retractions.c.dataset == dataset))
        with self.begin() as conn:
            return [Retraction.model_validate(dict(r._mapping)) for r in conn.execute(query)]

    def versions(self, dataset: str) -> list[dict[str, Any]]:
        """The versions of a dataset, oldest first, with their batch and how many deliveries each ingested."""
        self.create()
        ingested = (sa.select(deliveries.c.batch_pk, sa.func.count().label("deliveries"))
                    .where(deliveries.c.status == "ingested").group_by(deliveries.c.batch_pk).subquery())
        query = (
            sa.select(versions.c.version, versions.c.day, versions.c.rows, batches.c.batch_id, batches.c.status,
                      batches.c.location, batches.c.content_hash, batches.c.created_at,
                      sa.func.coalesce(ingested.c.deliveries, 0).label("deliveries"))
            .select_from(versions.join(lines, versions.c.line_pk == lines.c.pk).join(batches, versions.c.batch_pk == batches.c.pk)
                         .outerjoin(ingested, ingested.c.batch_pk == batches.c.pk))
            .where(lines.c.name == f"dataset:{dataset}")
            .order_by(versions.c.version)
        )
        with self.begin() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def ingested(self, dataset: str, shas: Iterable[str]) -> dict[str, dict[str, Any]]:
        """sha256 -> {path, version} of the deliveries among `shas` that a version of the dataset ingested."""
        self.create()
        out: dict[str, dict[str, Any]] = {}
        with self.begin() as conn:
            line_pk = conn.execute(sa.select(lines.c.pk).where(lines.c.name == f"dataset:{dataset}")).scalar()
            if line_pk is None:
                return out
            for part in _chunks(sorted(set(shas))):
                query = (sa.select(deliveries.c.sha256, deliveries.c.path, deliveries.c.version)
                         .where(deliveries.c.line_pk == line_pk, deliveries.c.status == "ingested", deliveries.c.sha256.in_(part))
                         .order_by(deliveries.c.version))
                for r in conn.execute(query):
                    out.setdefault(r.sha256, {"path": r.path, "version": r.version})
        return out

    def seen_files(self, dataset: str) -> dict[str, tuple[int, int, str]]:
        """path -> (bytes, mtime_ns, sha256) of every landing-zone file a version of the dataset saw (the newest)."""
        self.create()
        with self.begin() as conn:
            line_pk = conn.execute(sa.select(lines.c.pk).where(lines.c.name == f"dataset:{dataset}")).scalar()
            if line_pk is None:
                return {}
            query = (sa.select(deliveries.c.path, deliveries.c.bytes, deliveries.c.mtime_ns, deliveries.c.sha256)
                     .where(deliveries.c.line_pk == line_pk, deliveries.c.mtime_ns.is_not(None)).order_by(deliveries.c.version))
            return {r.path: (int(r.bytes), int(r.mtime_ns), r.sha256) for r in conn.execute(query)}

    def seen_paths(self, dataset: str, paths: Iterable[str]) -> dict[str, list[str]]:
        """path -> every sha256 a version of the dataset saw under that name (ingested or duplicate)."""
        self.create()
        out: dict[str, list[str]] = {}
        with self.begin() as conn:
            line_pk = conn.execute(sa.select(lines.c.pk).where(lines.c.name == f"dataset:{dataset}")).scalar()
            if line_pk is None:
                return out
            for part in _chunks(sorted(set(paths))):
                query = (sa.select(deliveries.c.path, deliveries.c.sha256).where(deliveries.c.line_pk == line_pk, deliveries.c.path.in_(part))
                         .order_by(deliveries.c.version))
                for r in conn.execute(query):
                    out.setdefault(r.path, []).append(r.sha256)
        return out

    # reading: audit ------------------------------------------------------------
    def trace(self, record_id: str) -> list[dict[str, Any]]:
        """Every batch holding a record id (one entry per position of a line it is in), with its origin."""
        query = (
            sa.select(records.c.pk, origins.c.uri.label("origin_uri"), origins.c.sha256.label("origin_sha256"),
                      records.c.origin_row, records.c.source, records.c.run_id, records.c.fingerprint,
                      records.c.batch_pk.label("first_batch_pk"), records.c.file_no, records.c.file_row,
                      spans.c.line_pk, spans.c.first, spans.c.last, spans.c.added_reason, spans.c.removed_reason,
                      lines.c.latest, lines.c.dataset)
            .select_from(records.join(origins, records.c.origin_pk == origins.c.pk).join(spans, spans.c.record_pk == records.c.pk)
                         .join(lines, lines.c.pk == spans.c.line_pk))
            .where(records.c.record_id == record_id)
        )
        hits: list[dict[str, Any]] = []
        with self.begin() as conn:
            for r in conn.execute(query).all():
                m = dict(r._mapping)
                last = m["last"] if m["last"] is not None else m["latest"]
                where = (sa.select(versions.c.version, batches.c.batch_id, batches.c.status, batches.c.location, batches.c.created_at)
                         .select_from(versions.join(batches, versions.c.batch_pk == batches.c.pk))
                         .where(versions.c.line_pk == m["line_pk"], versions.c.version.between(m["first"], last)))
                first_at = conn.execute(sa.select(batches.c.location, batches.c.batch_id).where(batches.c.pk == m["first_batch_pk"])).first()
                for v in conn.execute(where):
                    hits.append({
                        "batch_id": v.batch_id, "status": v.status, "location": v.location, "created_at": v.created_at,
                        "dataset": m["dataset"], "version": v.version if m["dataset"] else None,
                        "origin_uri": m["origin_uri"], "origin_sha256": m["origin_sha256"], "origin_row": m["origin_row"],
                        "source": m["source"], "run_id": m["run_id"], "fingerprint": m["fingerprint"],
                        "added_reason": m["added_reason"], "read_from": first_at.location if first_at else None,
                        "file_no": m["file_no"], "file_row": m["file_row"],
                    })
        return sorted(hits, key=lambda h: (h["created_at"] or "", h["batch_id"]))

    def impact(self, ref: str) -> list[dict[str, Any]]:
        """Every batch that used an input given by path, sha256 or run id, or holds rows from an origin file
        given by URI, path or sha256 (one entry per batch, with what matched)."""
        paths = [ref]
        if "://" not in ref:
            absolute = str(Path(ref).expanduser().resolve())
            paths = sorted({ref, absolute})
        uris = [*paths, *(f"file://{p}" for p in paths if p.startswith("/"))]
        found: dict[str, dict[str, Any]] = {}
        self.create()
        with self.begin() as conn:
            by_input = (sa.select(inputs, lines.c.latest).select_from(inputs.join(lines, inputs.c.line_pk == lines.c.pk))
                        .where(sa.or_(inputs.c.path.in_(paths), inputs.c.sha256 == ref, inputs.c.run_id == ref)))
            for r in conn.execute(by_input).all():
                last = r.last if r.last is not None else r.latest
                for v in self._positions(conn, r.line_pk, r.first, last):
                    entry = found.setdefault(v["batch_id"], v | {"matched": []})
                    entry["matched"].append({"role": r.role, "path": r.path, "sha256": r.sha256, "run_id": r.run_id})
            matched = conn.execute(sa.select(origins.c.pk, origins.c.uri, origins.c.sha256)
                                   .where(sa.or_(origins.c.uri.in_(uris), origins.c.sha256 == ref)).order_by(origins.c.pk)).all()
            for origin in matched:
                for v, rows in self._tallied(conn, "origin", [str(origin.pk)]):
                    entry = found.setdefault(v["batch_id"], v | {"matched": []})
                    entry["matched"].append({"role": "origin", "path": origin.uri, "sha256": origin.sha256, "run_id": None, "rows": rows})
        return sorted(found.values(), key=lambda e: (e["created_at"] or "", e["batch_id"]))

    def impact_selector(self, kind: str, value: str, dataset: str | None = None) -> list[dict[str, Any]]:
        """Every version (or batch) holding records a retraction selector matches, with how many rows."""
        self.create()
        with self.begin() as conn:
            if kind == "delivery":  # its origins: the same bytes may have come under more than one name
                sha = value.removeprefix("sha256:")
                kind, values = "origin", [str(pk) for pk in conn.execute(sa.select(origins.c.pk).where(origins.c.sha256 == sha)).scalars()]
            elif kind in ("annotator", "teacher", "vendor"):
                values = [value]
            else:
                raise UserError(f"selector {kind!r}: expected delivery, annotator, vendor or teacher")
            return [v | {"rows": rows} for v, rows in self._tallied(conn, kind, values, dataset)]

    def selected(self, kind: str, value: str) -> sa.Select[Any]:
        """The records a selector matches, as a subquery of record pks (delivery: the origin file's sha256;
        vendor: the annotation vendor or the vendor of the delivery; annotator, teacher: the record's tags)."""
        if kind == "delivery":
            origin_pks = sa.select(origins.c.pk).where(origins.c.sha256 == value.removeprefix("sha256:"))
            return sa.select(records.c.pk).where(records.c.origin_pk.in_(origin_pks))
        if kind in ("annotator", "teacher", "vendor"):
            return sa.select(tags.c.record_pk).where(tags.c.kind == kind, tags.c.value == value)
        raise UserError(f"selector {kind!r}: expected delivery, annotator, vendor or teacher")

    def count_selected(self, kind: str, value: str) -> int:
        self.create()
        with self.begin() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(self.selected(kind, value).subquery())).scalar() or 0)

    def _positions(self, conn: sa.Connection, line_pk: int, first: int, last: int) -> list[dict[str, Any]]:
        query = (sa.select(versions.c.version, batches.c.batch_id, batches.c.status, batches.c.location, batches.c.created_at,
                           lines.c.dataset)
                 .select_from(versions.join(batches, versions.c.batch_pk == batches.c.pk).join(lines, lines.c.pk == versions.c.line_pk))
                 .where(versions.c.line_pk == line_pk, versions.c.version.between(first, last)))
        return [{"batch_id": r.batch_id, "status": r.status, "location": r.location, "created_at": r.created_at,
                 "dataset": r.dataset, "version": r.version if r.dataset else None} for r in conn.execute(query)]

    def _tallied(self, conn: sa.Connection, kind: str, values: list[str], dataset: str | None = None) -> list[tuple[dict[str, Any], int]]:
        """(position, rows of the selector values it holds) for every position holding any: the values' tallies, one
        row per stretch, summed over the positions each covers (no record is read)."""
        if not values:
            return []
        last = sa.func.coalesce(tallies.c.last, lines.c.latest)
        query = (sa.select(tallies.c.line_pk, tallies.c.first, last.label("last"), sa.func.sum(tallies.c.rows).label("n"))
                 .select_from(tallies.join(lines, lines.c.pk == tallies.c.line_pk))
                 .where(tallies.c.kind == kind, tallies.c.value.in_(values))
                 .group_by(tallies.c.line_pk, tallies.c.first, last))
        if dataset is not None:
            query = query.where(lines.c.name == f"dataset:{dataset}")
        per: dict[tuple[int, int], int] = {}
        bounds: dict[int, tuple[int, int]] = {}
        for r in conn.execute(query):
            for position in range(r.first, r.last + 1):
                per[(r.line_pk, position)] = per.get((r.line_pk, position), 0) + int(r.n)
            lo, hi = bounds.get(r.line_pk, (r.first, r.last))
            bounds[r.line_pk] = (min(lo, r.first), max(hi, r.last))
        out: list[tuple[dict[str, Any], int]] = []
        for line_pk, (lo, hi) in bounds.items():
            for v in self._positions(conn, line_pk, lo, hi):
                key = (line_pk, v["version"] if v["dataset"] else 1)
                if key in per:
                    out.append((v, per[key]))
        return sorted(out, key=lambda e: (e[0]["created_at"] or "", e[0]["batch_id"]))

    def diff_versions(self, dataset: str, a: int, b: int) -> dict[str, list[dict[str, Any]]]:
        """Records in version b and not in a (added), and in a and not in b (removed), each with the reason
        recorded when the span that makes the difference was opened or closed."""
        self.create()
        with self.begin() as conn:
            line = conn.execute(sa.select(lines.c.pk, lines.c.latest).where(lines.c.name == f"dataset:{dataset}")).first()
            if line is None:
                raise UserError(f"dataset {dataset!r}: no versions in the ledger")
            for v in (a, b):
                if not 1 <= v <= line.latest:
                    raise UserError(f"dataset {dataset!r}: no version v{v} (versions v1..v{line.latest})")
            if a <= b:
                added = self._gained(conn, line.pk, a, b)
                removed = self._lost(conn, line.pk, a, b)
            else:  # the mirror: what b -> a would add is what a -> b removes
                removed = [dict(r, reason=r["reason"]) for r in self._gained(conn, line.pk, b, a)]
                added = [dict(r, reason=r["reason"]) for r in self._lost(conn, line.pk, b, a)]
        return {"added": added, "removed": removed}

    def _rows(self, conn: sa.Connection, where: list[Any], reason: Any, line_pk: int, not_at: int) -> list[dict[str, Any]]:
        """Records of the spans `where` selects (a range seek on the line), less those in position `not_at`
        (an anti-join on spans.record_pk)."""
        other = spans.alias("other")
        # `+ 0` keeps the planner on the record_pk index for `other` (the (line, first) index would scan the line).
        held = sa.and_(other.c.record_pk == spans.c.record_pk, other.c.line_pk + 0 == line_pk, other.c.first + 0 <= not_at,
                       sa.or_(other.c.last.is_(None), other.c.last + 0 >= not_at))
        query = (sa.select(records.c.record_id, records.c.source, records.c.domain, origins.c.uri, origins.c.sha256,
                           records.c.origin_row, reason)
                 .select_from(spans.join(records, records.c.pk == spans.c.record_pk).join(origins, origins.c.pk == records.c.origin_pk)
                              .outerjoin(other, held))
                 .where(*where, other.c.record_pk.is_(None)))
        names = ("record_id", "source", "domain", "origin_uri", "origin_sha256", "origin_row", "reason")
        rows = [dict(zip(names, r)) for r in conn.execute(query)]
        return sorted(rows, key=lambda r: (r["record_id"], r["origin_sha256"], r["origin_row"]))

    def _gained(self, conn: sa.Connection, line_pk: int, a: int, b: int) -> list[dict[str, Any]]:
        where = [spans.c.line_pk == line_pk, spans.c.first > a, spans.c.first <= b, sa.or_(spans.c.last.is_(None), spans.c.last >= b)]
        return self._rows(conn, where, spans.c.added_reason, line_pk, a)

    def _lost(self, conn: sa.Connection, line_pk: int, a: int, b: int) -> list[dict[str, Any]]:
        where = [spans.c.line_pk == line_pk, spans.c.last.is_not(None), spans.c.last >= a, spans.c.last < b, spans.c.first <= a]
        return self._rows(conn, where, spans.c.removed_reason, line_pk, b)

    def size(self) -> dict[str, int]:
        """Rows per table (what the benchmark reports next to the size on disk)."""
        self.create()
        with self.begin() as conn:
            return {t.name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() or 0) for t in metadata.sorted_tables}


def _eq(column: Any, value: Any) -> Any:
    return column.is_(None) if value is None else column == value


def _tags(frame: pl.DataFrame) -> pl.DataFrame:
    """(record_pk, kind, value) rows: annotators, teacher and judge names and model ids, vendor."""
    models = pl.col("models").fill_null(pl.lit([], dtype=pl.List(pl.String)))
    parts = [
        frame.select("record_pk", pl.lit("annotator").alias("kind"), pl.col("annotator_ids").alias("value")).explode("value"),
        frame.select("record_pk", pl.lit("teacher").alias("kind"),
                     pl.concat_list([pl.col("teacher"), pl.col("judge"), models]).alias("value")).explode("value"),
        frame.select("record_pk", pl.lit("vendor").alias("kind"), pl.col("vendor").alias("value")),
    ]
    return pl.concat(parts).drop_nulls("value").unique(maintain_order=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (audit queries) never wait for the nightly writer
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB: record ids are random keys, so index pages are hit all over
    cursor.close()


def _batch_row(manifest: Manifest, batch_dir: Path) -> dict[str, Any]:
    return {
        "batch_id": manifest.batch_id,
        "status": manifest.status,
        "location": str(batch_dir),
        "content_hash": manifest.content_hash,
        "rows": manifest.rows,
        "created_at": manifest.created_at,
        "status_at": manifest.status_time("published", "quarantined", "overridden"),
        "flow_run_id": manifest.flow_run_id,
        "git_commit": manifest.code_version.git_commit,
        "dataset": manifest.dataset.name if manifest.dataset else None,
        "version": manifest.dataset.version if manifest.dataset else None,
    }


def read_changes(manifest: Manifest, batch_dir: Path) -> pl.DataFrame:
    """A batch's changes against the version it was built on; a batch outside a dataset adds all its rows."""
    from prefmix.lineage.changes import all_added

    if manifest.dataset is not None and manifest.dataset.changes is not None:
        return pl.read_parquet(Path(batch_dir) / manifest.dataset.changes.path).cast(dict(CHANGE_SCHEMA))
    return all_added(batch_dir, [f.path for f in manifest.files])


def index_order(manifests: list[tuple[Manifest, Path]]) -> list[tuple[Manifest, Path]]:
    """Versions of a dataset in version order (a version's spans extend the one before), the rest by creation."""
    return sorted(manifests, key=lambda mp: (mp[0].dataset.name if mp[0].dataset else "", mp[0].dataset.version if mp[0].dataset else 0,
                                              mp[0].created_at, mp[0].batch_id))


def read_retractions(store: Store) -> list[Retraction]:
    base = store.retractions_dir
    if not base.is_dir():
        return []
    return [Retraction.model_validate(json.loads(p.read_text(encoding="utf-8"))) for p in sorted(base.glob("*.json"))
            if not p.name.startswith(".")]


def reindex(store: Store, url: str | None = None) -> dict[str, Any]:
    """Rebuild the ledger from the manifests in batches/ and quarantine/ and the files in retractions/.

    The default SQLite ledger is built in a new file that replaces the old one in one rename, so a crash
    mid-way leaves the old ledger; a server database (url) is rebuilt in place, in its own transactions."""
    from prefmix.lineage.manifest import read_manifest

    started = time.monotonic()
    if url is None:
        store.ensure()
        tmp = store.ledger_path.with_name(f".{store.ledger_path.name}.reindex-{os.getpid()}")
        for leftover in (tmp, *_sidecars(tmp)):
            leftover.unlink(missing_ok=True)
        ledger = Ledger(f"sqlite:///{tmp}")
    else:
        ledger = Ledger(url)
        ledger.drop()
    ledger.create()
    indexed, rows = [], 0
    for manifest, batch_dir in index_order([(read_manifest(d), d) for d in store.batch_dirs()]):
        result = ledger.index_batch(manifest, batch_dir)
        indexed.append(result["batch_id"])
        rows += result["records"]
    for retraction in read_retractions(store):
        ledger.record_retraction(retraction)
    if url is None:
        with ledger.engine.connect() as conn:  # fold the WAL into the file so the file alone is the database
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.exec_driver_sql("PRAGMA journal_mode=DELETE")
        ledger.engine.dispose()
        for sidecar in _sidecars(store.ledger_path):  # the old file's WAL must not be replayed onto the new one
            sidecar.unlink(missing_ok=True)
        os.replace(tmp, store.ledger_path)
        fsync_dir(store.root)
        ledger = Ledger(default_url(store))
    return {"ledger": ledger.where(), "batches": len(indexed), "records": rows, "seconds": round(time.monotonic() - started, 3)}


def _sidecars(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


__all__ = ["CHANGE_SCHEMA", "LAYOUT", "Ledger", "ProgrammingError", "default_url", "index_order", "line_name",
           "read_changes", "read_retractions", "reindex"]
