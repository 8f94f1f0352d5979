"""The ledger on SQLite (the embedded default) and on a real PostgreSQL: versions reference records stored once,
trace / impact / diff answer from spans, deliveries are ingested in the version's transaction, retractions, and a
rebuild from the manifests answers the same."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import polars as pl
import pytest

from prefmix.config import Config
from prefmix.lineage import audit
from prefmix.lineage.ledger import Ledger, read_retractions, reindex
from prefmix.lineage.publish import recover
from prefmix.lineage.retract import record
from prefmix.store import Store
from tests.lineage.lineage_helpers import make_records, pool_file, publish_version
from tests.support.postgres import Postgres

DATASET = "prefs"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest) -> str | None:
    """None: the store's SQLite file; else a fresh database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return None
    server: Postgres = request.getfixturevalue("postgres")
    return server.url(server.create_database("ledger"))


@pytest.fixture
def dataset_config(store: Store, ledger_url: str | None) -> Config:
    return Config(store=str(store.root), dataset=DATASET, lineage={"ledger_url": ledger_url})


def ids(batch: Path) -> set[str]:
    return set(pl.read_parquet(batch / "data" / "*.parquet")["record_id"].to_list())


@pytest.fixture
def two_versions(store: Store, dataset_config: Config, records: dict[str, Path]) -> dict[str, Path]:
    url = dataset_config.lineage.ledger_url
    v1 = publish_version(store, dataset_config, DATASET, "2026-12-01",
                         [pool_file(records["human1"], "human", "2026-12-01"),
                          pool_file(records["syn1"], "synthetic", "2026-12-01", "run-1", "f" * 64)], ledger_url=url)
    v2 = publish_version(store, dataset_config, DATASET, "2026-12-02",
                         [pool_file(records["human2"], "human", "2026-12-02"),
                          pool_file(records["syn2"], "synthetic", "2026-12-02", "run-2", "f" * 64)], ledger_url=url)
    return {"v1": v1, "v2": v2}


def test_versions_hold_everything_to_date_and_reference_records_stored_once(store, dataset_config, records, two_versions):
    url = dataset_config.lineage.ledger_url
    ledger = Ledger.for_reading(store, url)
    assert [v["version"] for v in ledger.versions(DATASET)] == [1, 2]
    assert store.dataset_latest(DATASET) == 2 and store.version_path(DATASET, 2).resolve() == two_versions["v2"].resolve()
    v1, v2 = ids(two_versions["v1"]), ids(two_versions["v2"])
    human1 = set(pl.read_parquet(records["human1"])["record_id"].to_list())
    assert human1 <= v1 and human1 <= v2  # all_human: every human row of every delivery to date
    size = ledger.size()
    assert size["records"] == len(v1 | v2)  # lineage once per record, whatever the number of versions
    assert size["spans"] == len(v1 | v2) + 0  # no record left and came back: one span each

    # A third version from the same pool holds the same rows and adds nothing to the big tables.
    v3 = publish_version(store, dataset_config, DATASET, "2026-12-03", [], ledger_url=url)
    assert ids(v3) == v2
    after = Ledger.for_reading(store, url).size()
    assert (after["records"], after["spans"], after["tags"]) == (size["records"], size["spans"], size["tags"])
    assert after["versions"] == 3

    human2 = pl.read_parquet(records["human2"]).row(0, named=True)
    hits = audit.trace(store, human2["record_id"], url)["batches"]
    assert [(h["dataset"], h["version"]) for h in hits] == [(DATASET, 2), (DATASET, 3)]
    assert hits[0]["annotation"]["vendor"] == "vendor-b" and hits[0]["origin_sha256"] == human2["origin_sha256"]


def test_diff_lists_exactly_the_rows_that_changed_with_reasons(store, dataset_config, records, two_versions):
    url = dataset_config.lineage.ledger_url
    v1, v2 = ids(two_versions["v1"]), ids(two_versions["v2"])
    data = audit.diff_versions(store, DATASET, "v1", "v2", url)
    assert {r["record_id"] for r in data["added"]} == v2 - v1
    assert {r["record_id"] for r in data["removed"]} == v1 - v2
    human2 = set(pl.read_parquet(records["human2"])["record_id"].to_list())
    assert {r["record_id"] for r in data["added"] if r["reason"] == "new_delivery"} >= human2
    back = audit.diff_versions(store, DATASET, "2", "1", url)
    assert {r["record_id"] for r in back["removed"]} == v2 - v1 and {r["record_id"] for r in back["added"]} == v1 - v2


def test_deliveries_are_ingested_with_the_version_that_holds_them(store, dataset_config, records, two_versions):
    ledger = Ledger.for_reading(store, dataset_config.lineage.ledger_url)
    sha2 = pl.read_parquet(records["human2"])["origin_sha256"][0]
    sha1 = pl.read_parquet(records["human1"])["origin_sha256"][0]
    found = ledger.ingested(DATASET, [sha1, sha2, "0" * 64])
    assert {s: v["version"] for s, v in found.items()} == {sha1: 1, sha2: 2}
    assert [v["deliveries"] for v in ledger.versions(DATASET)] == [2, 2]


def test_retraction_leaves_rows_out_and_impact_lists_the_versions_that_held_them(store, dataset_config, records, two_versions):
    url = dataset_config.lineage.ledger_url
    sha2 = pl.read_parquet(records["human2"])["origin_sha256"][0]
    assert [v["version"] for v in audit.impact_selector(store, "delivery", sha2, None, url)["versions"]] == [2]
    assert [v["version"] for v in audit.impact_selector(store, "vendor", "vendor-a", DATASET, url)["versions"]] == [1, 2]
    retraction, rows = record(store, url, "delivery", sha2, "vendor re-sent a broken export")
    assert rows == 56 and read_retractions(store) == [retraction]
    v3 = publish_version(store, dataset_config, DATASET, "2026-12-03", [], ledger_url=url, rules=read_retractions(store))
    human2 = set(pl.read_parquet(records["human2"])["record_id"].to_list())
    assert not ids(v3) & human2
    data = audit.diff_versions(store, DATASET, "v2", "v3", url)
    assert {r["record_id"] for r in data["removed"]} == ids(two_versions["v2"]) - ids(v3)
    assert {r["reason"] for r in data["removed"] if r["record_id"] in human2} == {f"retraction:{retraction.retraction_id}"}
    manifest = audit.show(store, "prefs-2026-12-03")["manifest"]
    assert manifest["dataset"]["retracted_rows"] == 56 and manifest["dataset"]["retractions"] == [retraction.retraction_id]
    impact = audit.impact_selector(store, "delivery", sha2, None, url)["versions"]
    assert [(v["version"], v["rows"]) for v in impact] == [(2, 56)]
    with pytest.raises(Exception, match="matches no row"):
        record(store, url, "annotator", "nobody", "typo")
    assert len(read_retractions(store)) == 1


def _from_spans(ledger: Ledger, kind: str, value: str, dataset: str | None) -> dict[int | None, int]:
    """version -> rows a selector matches, counted from the matched records' own spans (what tallies must equal)."""
    import sqlalchemy as sa

    from prefmix.lineage.ledger import lines, origins, records, spans, tags

    if kind == "delivery":
        matched = sa.select(records.c.pk).where(records.c.origin_pk.in_(sa.select(origins.c.pk).where(origins.c.sha256 == value)))
    else:
        matched = sa.select(tags.c.record_pk).where(tags.c.kind == kind, tags.c.value == value)
    query = (sa.select(spans.c.first, sa.func.coalesce(spans.c.last, lines.c.latest), lines.c.dataset)
             .select_from(spans.join(lines, lines.c.pk == spans.c.line_pk)).where(spans.c.record_pk.in_(matched)))
    if dataset is not None:
        query = query.where(lines.c.dataset == dataset)
    out: dict[int | None, int] = {}
    with ledger.begin() as conn:
        for first, last, name in conn.execute(query):
            for version in range(first, last + 1):
                key = version if name else None
                out[key] = out.get(key, 0) + 1
    return out


def _selectors(records: dict[str, Path]) -> list[tuple[str, str]]:
    shas = sorted({pl.read_parquet(path)["origin_sha256"][0] for path in records.values()})
    return [*(("delivery", sha) for sha in shas), ("vendor", "vendor-a"), ("vendor", "vendor-b"), ("annotator", "a1"),
            ("annotator", "a2"), ("teacher", "tiny"), ("vendor", "nobody")]


def test_impact_by_selector_counts_the_rows_each_version_holds_after_additions_and_removals(store, dataset_config, records,
                                                                                            two_versions):
    url = dataset_config.lineage.ledger_url
    record(store, url, "vendor", "vendor-a", "mislabelled")
    publish_version(store, dataset_config, DATASET, "2026-12-03", [], ledger_url=url, rules=read_retractions(store))
    ledger = Ledger.for_reading(store, url)
    answers = {}
    for kind, value in _selectors(records):
        for dataset in (DATASET, None):
            got = {v["version"]: v["rows"] for v in ledger.impact_selector(kind, value, dataset)}
            assert got == _from_spans(ledger, kind, value, dataset), (kind, value)
            answers[(kind, value, dataset)] = got
    vendor_a = answers[("vendor", "vendor-a", DATASET)]
    assert sorted(vendor_a) == [1, 2] and vendor_a[1] > 0  # retracted: v3 closed their spans, holds none
    assert ledger.size()["tallies"] < ledger.size()["spans"]
    reindex(store, url)
    again = Ledger.for_reading(store, url)
    assert {k: {v["version"]: v["rows"] for v in again.impact_selector(*k)} for k in answers} == answers


def test_a_ledger_without_tallies_is_stale_and_rebuilt_by_recover(store, dataset_config, records, two_versions):
    import sqlalchemy as sa

    url = dataset_config.lineage.ledger_url
    ledger = Ledger.for_reading(store, url)
    before = {k: ledger.impact_selector(*k, DATASET) for k in _selectors(records)}
    with ledger.begin() as conn:  # the layout before tallies
        conn.execute(sa.text("DROP TABLE tallies"))
        conn.execute(sa.text("UPDATE meta SET value = '2' WHERE key = 'layout'"))
    ledger.engine.dispose()
    with pytest.raises(Exception, match="older layout"):
        Ledger.for_reading(store, url)
    report = recover(store, url)
    assert report.reindexed and report.ledger_error is None
    again = Ledger.for_reading(store, url)
    assert {k: again.impact_selector(*k, DATASET) for k in before} == before


def test_reindex_from_the_manifests_answers_the_same(store, dataset_config, records, two_versions):
    url = dataset_config.lineage.ledger_url
    rid = pl.read_parquet(records["syn2"])["record_id"][0]
    before = (audit.trace(store, rid, url)["batches"], audit.diff_versions(store, DATASET, "v1", "v2", url))
    result = reindex(store, url)
    assert result["batches"] == 2
    after = (audit.trace(store, rid, url)["batches"], audit.diff_versions(store, DATASET, "v1", "v2", url))
    assert after == before


def test_an_older_ledger_layout_is_rebuilt_by_recover(store, config, records):
    with sqlite3.connect(store.ledger_path) as db:  # the layout before versions: one row per record and batch
        db.execute("CREATE TABLE batches (pk INTEGER PRIMARY KEY, batch_id TEXT)")
        db.execute("CREATE TABLE records (record_id TEXT, batch_pk INTEGER, PRIMARY KEY (record_id, batch_pk))")
    with pytest.raises(Exception, match="older layout"):
        Ledger.for_reading(store)
    report = recover(store)
    assert report.reindexed and report.ledger_error is None
    assert not Ledger.for_reading(store).stale()


def test_retract_command_refuses_a_selector_that_matches_nothing_and_writes_nothing(store, dataset_config, two_versions, capsys):
    from prefmix.cli import main

    url = dataset_config.lineage.ledger_url
    before = sorted(p.relative_to(store.root) for p in store.root.rglob("*"))
    extra = ["--config", str(_config_file(store, url))] if url else ["--store", str(store.root)]
    code = main(["retract", "--annotator", "nobody", "--reason", "typo", *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "matches no row" in err
    assert sorted(p.relative_to(store.root) for p in store.root.rglob("*")) == before
    code = main(["retract", "--vendor", "vendor-b", "--reason", "re-labelled", "--json", *extra])
    out = capsys.readouterr().out
    assert code == 0 and json.loads(out)["rows_matched"] == 56
    assert [v["version"] for v in audit.impact_selector(store, "vendor", "vendor-b", DATASET, url)["versions"]] == [2]


def _config_file(store: Store, url: str) -> Path:
    path = store.root.parent / "ledger-config.yaml"
    path.write_text(f"store: {store.root}\nlineage: {{ledger_url: '{url}'}}\n")
    return path
