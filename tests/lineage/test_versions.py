"""Which pool files the next version is blended from (lineage.versions.plan_version), as data: the retention window,
pairs made under another fingerprint, --regenerate, retractions of whole files and of single rows; and which
prompts still need generating (generators.pending)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from prefmix.config import PromptSet
from prefmix.contract import PoolFile, PromptRange, Retraction
from prefmix.generators.pending import covered_rows, pending, ranges_of
from prefmix.lineage.versions import plan_version
from prefmix.samples import write_prompts
from tests.lineage.lineage_helpers import make_records, pool_file

F, G = "f" * 64, "g" * 64


def synthetic(name: str, day: str, fingerprint: str, sha: str, start: int, stop: int) -> PoolFile:
    return PoolFile(path=f"/pool/{name}.parquet", sha256=name * 4, source="synthetic", rows=stop - start, day=day,
                    deliveries=[sha], run_id=name, fingerprint=fingerprint, teachers=["tiny"],
                    coverage=[PromptRange(sha256=sha, start=start, stop=stop)])


def human(name: str, day: str, vendor: str = "acme") -> PoolFile:
    return PoolFile(path=f"/pool/{name}.parquet", sha256=name * 4, source="human", rows=10, day=day, deliveries=[name * 4],
                    vendor=vendor)


def plan(store, files, **kw):  # type: ignore[no-untyped-def]
    defaults = {"fingerprint": F, "window_days": None, "rules": [], "new_deliveries": set()}
    return plan_version(store, "d", "2026-12-10", None, files, **{**defaults, **kw})


def test_window_drops_files_older_than_its_nights(store):
    result = plan(store, [human("a", "2026-11-01"), human("b", "2026-12-05"), synthetic("s", "2026-11-20", F, "p" * 64, 0, 5)],
                  window_days=14)
    assert [i.path for i in result.inputs] == ["/pool/b.parquet"]
    assert result.excluded == {"window": 15}
    assert result.reasons.dropped_deliveries == {"a" * 4: "window"} and result.reasons.dropped_runs == {"s": "window"}


def test_pairs_under_another_fingerprint_or_regenerated_are_superseded(store):
    old = synthetic("old", "2026-12-01", G, "p" * 64, 0, 10)
    same = synthetic("same", "2026-12-02", F, "p" * 64, 0, 10)
    tonight = synthetic("new", "2026-12-10", F, "p" * 64, 0, 10)
    assert [i.run_id for i in plan(store, [old, same]).inputs] == ["same"]
    regenerated = plan(store, [old, same, tonight], regenerated_by="new")
    assert [i.run_id for i in regenerated.inputs] == ["new"] and regenerated.excluded == {"superseded": 20}
    partial = synthetic("half", "2026-12-10", F, "p" * 64, 0, 5)  # --limit: the older run still covers rows 5..9
    assert {i.run_id for i in plan(store, [same, partial], regenerated_by="half").inputs} == {"same", "half"}


def test_retractions_take_whole_files_or_single_rows(store, tmp_path: Path):
    h1 = pool_file(make_records(tmp_path / "h1.parquet", "human", 3, "vendor-a"), "human", "2026-12-01")
    h2 = pool_file(make_records(tmp_path / "h2.parquet", "human", 3, "vendor-b"), "human", "2026-12-02")
    vendor = Retraction(retraction_id="r1", kind="vendor", value="vendor-a", reason="x", at="t", by="me")
    row = pl.read_parquet(h2.path).row(0, named=True)
    annotator = Retraction(retraction_id="r2", kind="annotator", value="a1", reason="x", at="t", by="me", dataset="other")
    assert {i.path for i in plan(store, [h1, h2], rules=[vendor, annotator]).inputs} == {h2.path}  # r2: another dataset
    delivery = Retraction(retraction_id="r3", kind="delivery", value=row["origin_sha256"], reason="x", at="t", by="me")
    everything = plan(store, [h1, h2], rules=[vendor, delivery])
    assert everything.inputs == [] and everything.excluded == {"retraction:r1": 12, "retraction:r3": 12}
    assert everything.retracted_rows == 24
    one = Retraction(retraction_id="r4", kind="annotator", value="a1", reason="x", at="t", by="me", dataset="d")
    filtered = plan(store, [h2], rules=[one])
    assert filtered.excluded == {"retraction:r4": 12} and filtered.inputs[0].rows == 0
    assert Path(filtered.inputs[0].path).parent == store.pool_dir / "filtered"
    again = plan(store, [h2], rules=[one])  # the filtered copy is reused, not written again
    assert again.inputs[0].path == filtered.inputs[0].path and again.inputs[0].sha256 == filtered.inputs[0].sha256


def test_pending_prompts_are_the_rows_no_run_settled(tmp_path: Path):
    path = write_prompts(tmp_path / "p.parquet", 12, seed=1) or tmp_path / "p.parquet"
    from prefmix.hashing import sha256_file

    sha = sha256_file(path)
    zone = PromptSet(path=str(path))
    assert pending([(zone, 12)], {sha: [(0, 12)]}, ["general", "finance", "medicine", "law"], {str(path): sha}).height == 0
    left = pending([(zone, 12)], {sha: [(0, 4), (8, 12)]}, ["general", "finance", "medicine", "law"], {str(path): sha})
    assert left["origin_row"].to_list() == [4, 5, 6, 7]
    assert ranges_of(left) == [(sha, 4, 8)] and covered_rows([(0, 4), (2, 6), (8, 9)]) == 7
