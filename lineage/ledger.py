"""The ledger: an index of manifests for fast audit queries (rebuildable from the manifests).

SQLite in the store by default, any SQLAlchemy URL (PostgreSQL) by config.
`records` is the big table (one row per published row); it is clustered on
record_id (WITHOUT ROWID on SQLite) and points at small `batches` and `origins`
tables by integer keys, so a trace is one index seek and the table stays narrow.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Iterator

import polars as pl
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from prefmix.contract import DataFile, Manifest, ManifestInput
from prefmix.errors import UserError
from prefmix.lineage.manifest import read_manifest
from prefmix.store import Store, fsync_dir

INSERT_CHUNK = 50_000
BUSY_TIMEOUT_S = 5

metadata = sa.MetaData()

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
)

files = sa.Table(
    "files",
    metadata,
    sa.Column("batch_pk", sa.Integer, sa.ForeignKey("batches.pk"), nullable=False, index=True),
    sa.Column("path", sa.String, nullable=False),
    sa.Column("sha256", sa.String, nullable=False, index=True),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
)

inputs = sa.Table(
    "inputs",
    metadata,
    sa.Column("batch_pk", sa.Integer, sa.ForeignKey("batches.pk"), nullable=False, index=True),
    sa.Column("role", sa.String, nullable=False),
    sa.Column("path", sa.String, index=True),
    sa.Column("sha256", sa.String, index=True),
    sa.Column("run_id", sa.String, index=True),
)

origins = sa.Table(
    "origins",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uri", sa.String, nullable=False),
    sa.Column("sha256", sa.String, nullable=False, index=True),
    sa.UniqueConstraint("uri", "sha256"),
)

# Which origin files each batch drew rows from (small: batches x origins), so `impact` finds a vendor
# shard or run chunk even when the flow listed only the normalized record files as inputs.
batch_origins = sa.Table(
    "batch_origins",
    metadata,
    sa.Column("batch_pk", sa.Integer, primary_key=True),
    sa.Column("origin_pk", sa.Integer, primary_key=True, index=True),
    sa.Column("rows", sa.BigInteger, nullable=False),
)

records = sa.Table(
    "records",
    metadata,
    sa.Column("record_id", sa.String, primary_key=True),
    sa.Column("batch_pk", sa.Integer, primary_key=True),
    sa.Column("origin_pk", sa.Integer, primary_key=True),
    sa.Column("origin_row", sa.BigInteger, primary_key=True),
    sa.Column("source", sa.String, nullable=False),
    sa.Column("run_id", sa.String),
    # Where the row sits in the batch: manifest files[file_no], row file_row (trace reads just that row group).
    sa.Column("file_no", sa.Integer, nullable=False),
    sa.Column("file_row", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,
)


def default_url(store: Store) -> str:
    return f"sqlite:///{store.ledger_path}"


class Ledger:
    def __init__(self, url: str) -> None:
        self.url = url
        connect_args = {"timeout": BUSY_TIMEOUT_S} if url.startswith("sqlite") else {}
        self.engine = sa.create_engine(url, connect_args=connect_args)
        self._created = False
        if url.startswith("sqlite"):
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
        return cls(url or default_url(store))

    def where(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextlib.contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """A transaction; a ledger locked by another writer past the busy timeout is a one-line UserError."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            if "locked" in str(exc.orig).lower() or "busy" in str(exc.orig).lower():
                raise UserError(f"{self.where()}: ledger is locked by another process; try again when it finishes") from None
            raise

    def create(self) -> None:
        """Create missing tables and indexes (an index added in a later version is added to an old ledger)."""
        if self._created:
            return
        with self.begin() as conn:
            metadata.create_all(conn)
            for table in metadata.sorted_tables:
                for index in table.indexes:
                    index.create(conn, checkfirst=True)
        self._created = True

    def drop(self) -> None:
        with self.begin() as conn:
            metadata.drop_all(conn)
        self._created = False

    # writing -----------------------------------------------------------------
    def index_batch(self, manifest: Manifest, batch_dir: Path) -> dict[str, Any]:
        """Index one batch (its manifest and the record ids of its Parquet files). Idempotent: a batch
        already indexed only gets its status and location updated."""
        self.create()
        batch_dir = Path(batch_dir)
        row = _batch_row(manifest, batch_dir)
        with self.begin() as conn:
            pk = conn.execute(sa.select(batches.c.pk).where(batches.c.batch_id == row["batch_id"])).scalar()
            if pk is not None:
                conn.execute(batches.update().where(batches.c.pk == pk).values(**row))
                return {"batch_id": row["batch_id"], "records": 0, "updated": True}
            pk = conn.execute(batches.insert().values(**row)).inserted_primary_key[0]
            conn.execute(files.insert(), [_file_row(pk, f) for f in manifest.files])
            input_rows = [_input_row(pk, i) for i in manifest.inputs]
            if input_rows:
                conn.execute(inputs.insert(), input_rows)
            count = 0
            for file_no, f in enumerate(manifest.files):
                count += self._index_records(conn, pk, file_no, batch_dir / f.path)
        return {"batch_id": row["batch_id"], "records": count, "updated": False}

    def _index_records(self, conn: sa.Connection, batch_pk: int, file_no: int, path: Path) -> int:
        frame = (
            pl.scan_parquet(path)
            .select(
                "record_id",
                "origin_uri",
                "origin_sha256",
                "origin_row",
                "source",
                pl.col("generation").struct.field("run_id").alias("run_id"),
                pl.int_range(pl.len(), dtype=pl.Int64).alias("file_row"),
            )
            .collect()
        )
        if frame.is_empty():
            return 0
        origin_pk = self._origin_keys(conn, frame.select("origin_uri", "origin_sha256").unique())
        rows = (
            frame.join(origin_pk, on=["origin_uri", "origin_sha256"], how="left")
            .select(
                "record_id", pl.lit(batch_pk).alias("batch_pk"), "origin_pk", "origin_row", "source", "run_id",
                pl.lit(file_no).alias("file_no"), "file_row",
            )
            .unique(["record_id", "origin_pk", "origin_row"])
        )
        for chunk in rows.iter_slices(INSERT_CHUNK):
            conn.execute(records.insert(), chunk.to_dicts())
        self._add_batch_origins(conn, batch_pk, rows.group_by("origin_pk").agg(pl.len().alias("rows")))
        return rows.height

    def _add_batch_origins(self, conn: sa.Connection, batch_pk: int, counts: pl.DataFrame) -> None:
        """Add this file's per-origin row counts to the batch's (a batch's files may share origins)."""
        known = dict(
            conn.execute(sa.select(batch_origins.c.origin_pk, batch_origins.c.rows).where(batch_origins.c.batch_pk == batch_pk)).all()
        )
        for origin_pk, n in counts.iter_rows():
            if origin_pk in known:
                cond = (batch_origins.c.batch_pk == batch_pk) & (batch_origins.c.origin_pk == origin_pk)
                conn.execute(batch_origins.update().where(cond).values(rows=known[origin_pk] + n))
            else:
                conn.execute(batch_origins.insert().values(batch_pk=batch_pk, origin_pk=origin_pk, rows=n))

    def _origin_keys(self, conn: sa.Connection, wanted: pl.DataFrame) -> pl.DataFrame:
        """origin (uri, sha256) -> origins.pk, inserting the new ones."""
        def lookup() -> pl.DataFrame:
            found = conn.execute(
                sa.select(origins.c.uri, origins.c.sha256, origins.c.pk).where(
                    origins.c.sha256.in_(wanted["origin_sha256"].unique().to_list())
                )
            ).all()
            return pl.DataFrame(
                found, schema={"origin_uri": pl.String, "origin_sha256": pl.String, "origin_pk": pl.Int64}, orient="row"
            )

        known = lookup()
        new = wanted.join(known, on=["origin_uri", "origin_sha256"], how="anti")
        if not new.is_empty():
            conn.execute(origins.insert(), new.rename({"origin_uri": "uri", "origin_sha256": "sha256"}).to_dicts())
            known = lookup()
        return known

    # reading -----------------------------------------------------------------
    def trace(self, record_id: str) -> list[dict[str, Any]]:
        """Every (batch, origin) a record id appears in."""
        query = (
            sa.select(
                batches.c.batch_id,
                batches.c.status,
                batches.c.location,
                origins.c.uri.label("origin_uri"),
                origins.c.sha256.label("origin_sha256"),
                records.c.origin_row,
                records.c.source,
                records.c.run_id,
                records.c.file_no,
                records.c.file_row,
            )
            .select_from(records.join(batches, records.c.batch_pk == batches.c.pk).join(origins, records.c.origin_pk == origins.c.pk))
            .where(records.c.record_id == record_id)
            .order_by(batches.c.created_at, batches.c.batch_id)
        )
        with self.begin() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def impact(self, ref: str) -> list[dict[str, Any]]:
        """Every batch that used an input given by path, sha256 or run id, or drew rows from an origin file
        given by URI, path or sha256 (one entry per batch, with what matched)."""
        paths = [ref]
        if "://" not in ref:
            absolute = str(Path(ref).expanduser().resolve())
            paths = sorted({ref, absolute})
        uris = [*paths, *(f"file://{p}" for p in paths if p.startswith("/"))]
        head = (batches.c.batch_id, batches.c.status, batches.c.location, batches.c.created_at)
        by_input = (
            sa.select(*head, inputs.c.role, inputs.c.path, inputs.c.sha256, inputs.c.run_id, sa.null().label("rows"))
            .select_from(inputs.join(batches, inputs.c.batch_pk == batches.c.pk))
            .where(sa.or_(inputs.c.path.in_(paths), inputs.c.sha256 == ref, inputs.c.run_id == ref))
        )
        # Origins first (a few index seeks), then the batches that drew from them.
        origin_rows = sa.select(origins.c.pk).where(sa.or_(origins.c.uri.in_(uris), origins.c.sha256 == ref))
        by_origin = (
            sa.select(*head, sa.literal("origin").label("role"), origins.c.uri, origins.c.sha256, sa.null().label("run_id"), batch_origins.c.rows)
            .select_from(
                batch_origins.join(origins, batch_origins.c.origin_pk == origins.c.pk).join(batches, batch_origins.c.batch_pk == batches.c.pk)
            )
        )
        found: dict[str, dict[str, Any]] = {}
        with self.begin() as conn:
            origin_pks = list(conn.execute(origin_rows).scalars())
            for query in (by_input, by_origin.where(batch_origins.c.origin_pk.in_(origin_pks))):
                for r in conn.execute(query):
                    m = dict(r._mapping)
                    entry = found.setdefault(m["batch_id"], {k: m[k] for k in ("batch_id", "status", "location", "created_at")} | {"matched": []})
                    match = {"role": m["role"], "path": m.get("path", m.get("uri")), "sha256": m["sha256"], "run_id": m["run_id"]}
                    if m["rows"] is not None:
                        match["rows"] = m["rows"]
                    entry["matched"].append(match)
        return sorted(found.values(), key=lambda e: (e["created_at"] or "", e["batch_id"]))

    def statuses(self) -> dict[str, tuple[str, str]]:
        """batch_id -> (status, location), to find batches the ledger has missed."""
        self.create()
        with self.begin() as conn:
            query = sa.select(batches.c.batch_id, batches.c.status, batches.c.location)
            return {r.batch_id: (r.status, r.location) for r in conn.execute(query)}

    def batch_ids(self) -> set[str]:
        self.create()
        with self.begin() as conn:
            return set(conn.execute(sa.select(batches.c.batch_id)).scalars())

    def batch_status(self, batch_id: str) -> str | None:
        self.create()
        with self.begin() as conn:
            return conn.execute(sa.select(batches.c.status).where(batches.c.batch_id == batch_id)).scalar()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (audit queries) never wait for the nightly writer
    cursor.execute("PRAGMA synchronous=NORMAL")
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
    }


def _file_row(batch_pk: int, f: DataFile) -> dict[str, Any]:
    return {"batch_pk": batch_pk, "path": f.path, "sha256": f.sha256, "rows": f.rows, "bytes": f.bytes}


def _input_row(batch_pk: int, i: ManifestInput) -> dict[str, Any]:
    return {"batch_pk": batch_pk, "role": i.role, "path": i.path, "sha256": i.sha256, "run_id": i.run_id}


def reindex(store: Store, url: str | None = None) -> dict[str, Any]:
    """Rebuild the ledger from the manifests in batches/ and quarantine/.

    The default SQLite ledger is built in a new file that replaces the old one in one rename, so a crash
    mid-way leaves the old ledger; a server database (url) is rebuilt in place."""
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
    for batch_dir in store.batch_dirs():
        result = ledger.index_batch(read_manifest(batch_dir), batch_dir)
        indexed.append(result["batch_id"])
        rows += result["records"]
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
