"""verify, reproduce, impact, trace, diff, show, batches: library and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from prefmix.lineage import audit
from prefmix.lineage.ledger import reindex
from pydantic import ValidationError

from prefmix.cli import main
from prefmix.contract import ManifestInput
from tests.lineage.lineage_helpers import publish_batch


def cli(capsys: pytest.CaptureFixture[str], store, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--store", str(store.root)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_reproduce_gives_the_same_hash(store, config, records, capsys):
    publish_batch(store, config, "b1", [records["human1"]], [records["syn1"]])
    result = audit.reproduce(store, "b1")
    assert result["same"] and result["content_hash"] == result["expected"]
    code, out, _ = cli(capsys, store, "lineage", "reproduce", "b1", "--json")
    assert code == 0 and json.loads(out)["same"] is True


def test_reproduce_shows_the_first_difference(store, config, records, capsys):
    publish_batch(store, config, "b1", [records["human1"]], [records["syn1"]])
    from tests.lineage.lineage_helpers import blend_function

    real = blend_function()

    def drifted(config, human, synthetic, out_dir, batch_id):
        # Same inputs, one text changed in the output: the kind of drift reproduce must pinpoint.
        result = real(config, human, synthetic, out_dir, batch_id)
        path = sorted((Path(out_dir) / "data").glob("train*.parquet"))[0]
        frame = pl.read_parquet(path)
        frame = frame.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("changed")).otherwise(pl.col("chosen")).alias("chosen"))
        frame.write_parquet(path)
        return result

    result = audit.reproduce(store, "b1", blend=drifted)
    assert not result["same"]
    diff = result["first_difference"]
    assert diff["file"].startswith("data/train") and diff["row"] == 3 and diff["column"] == "chosen"


def test_reproduce_refuses_a_changed_input(store, config, records, capsys):
    publish_batch(store, config, "b1", [records["human1"]], [records["syn1"]])
    records["syn1"].write_bytes(records["syn1"].read_bytes() + b"x")
    code, _, err = cli(capsys, store, "lineage", "reproduce", "b1")
    assert code == 2
    assert err.count("\n") == 1 and str(records["syn1"]) in err and "changed since batch b1" in err


def test_verify_catches_a_single_changed_byte(store, config, records, capsys):
    batch = publish_batch(store, config, "b1", [records["human1"]], [records["syn1"]])
    code, out, _ = cli(capsys, store, "lineage", "verify", "b1")
    assert code == 0 and "ok" in out
    target = sorted((batch / "data").glob("*.parquet"))[0]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    code, out, _ = cli(capsys, store, "lineage", "verify", "b1")
    assert code == 1
    assert f"data/{target.name}" in out and "sha256" in out
    report = audit.verify(store, "b1")
    assert [p["path"] for p in report["problems"]] == [f"data/{target.name}"]


def test_verify_catches_an_edited_manifest(store, config, records):
    batch = publish_batch(store, config, "b1", [records["human1"]], [records["syn1"]])
    manifest = json.loads((batch / "manifest.json").read_text())
    manifest["flow_run_id"] = "someone-else"
    (batch / "manifest.json").write_text(json.dumps(manifest))
    report = audit.verify(store, "b1")
    assert not report["ok"] and "seal" in report["problems"][0]["problem"]


def test_impact_lists_exactly_the_batches_that_used_a_shard(store, config, records, capsys):
    h1, h2, s1, s2 = records["human1"], records["human2"], records["syn1"], records["syn2"]
    publish_batch(store, config, "a", [h1], [s1], shards=[h1], run_ids=["run-1"])
    publish_batch(store, config, "b", [h1, h2], [s1, s2], shards=[h1, h2], run_ids=["run-1", "run-2"])
    publish_batch(store, config, "c", [h2], [s2], shards=[h2], run_ids=["run-2"])
    publish_batch(store, config, "d", [h1], [s2], shards=[h1], run_ids=["run-2"], passed=False)  # quarantined: still listed

    def used(ref: str) -> list[str]:
        return [b["batch_id"] for b in audit.impact(store, ref)["batches"]]

    from prefmix.store import sha256_file

    assert used(str(h1)) == ["a", "b", "d"]
    assert used(sha256_file(h2)) == ["b", "c"]
    assert used("sha256:" + sha256_file(h2)) == ["b", "c"]
    assert used("run-1") == ["a", "b"]
    assert used("nothing-like-this") == []
    code, out, _ = cli(capsys, store, "lineage", "impact", str(h1), "--json")
    data = json.loads(out)
    assert code == 0 and [b["batch_id"] for b in data["batches"]] == ["a", "b", "d"]
    assert {b["batch_id"]: b["status"] for b in data["batches"]}["d"] == "quarantined"
    # By the vendor file the rows came from (records' origin_uri / origin_sha256), whatever the flow listed as inputs.
    vendor_b = pl.read_parquet(records["human2"]).row(0, named=True)
    assert used(vendor_b["origin_uri"]) == ["b", "c"] and used(vendor_b["origin_sha256"]) == ["b", "c"]
    rows_from_b = {b["batch_id"]: b["matched"][0]["rows"] for b in audit.impact(store, vendor_b["origin_uri"])["batches"]}
    assert rows_from_b == {"b": 56, "c": 56}
    # The ledger is only an index: rebuilt from the manifests it answers the same.
    assert reindex(store)["batches"] == 4
    assert used(str(h1)) == ["a", "b", "d"]


def test_trace_finds_origin_and_generation(store, config, records, capsys):
    publish_batch(store, config, "a", [records["human1"]], [records["syn1"]], run_ids=["run-1"])
    publish_batch(store, config, "b", [records["human1"]], [records["syn1"]], run_ids=["run-1"])
    synthetic = pl.read_parquet(records["syn1"]).row(2, named=True)
    result = audit.trace(store, synthetic["record_id"])
    assert [h["batch_id"] for h in result["batches"]] == ["a", "b"]
    hit = result["batches"][0]
    assert (hit["origin_uri"], hit["origin_sha256"], hit["origin_row"]) == (synthetic["origin_uri"], synthetic["origin_sha256"], synthetic["origin_row"])
    assert hit["run_id"] == "run-1" and hit["run"]["vllm_version"] == "0.0-test"
    assert hit["generation"]["strategy"] == "pointwise"
    human = pl.read_parquet(records["human1"]).row(0, named=True)
    code, out, _ = cli(capsys, store, "lineage", "trace", human["record_id"], "--json")
    hits = json.loads(out)["batches"]
    assert code == 0 and hits[0]["annotation"]["annotator_ids"] == ["a1", "a2"] and hits[0]["source"] == "human"
    code, out, _ = cli(capsys, store, "lineage", "trace", "0" * 64)
    assert code == 1 and "in no indexed batch" in out


def test_diff_counts_rows_and_changes(store, config, records, capsys):
    publish_batch(store, config, "a", [records["human1"]], [records["syn1"]])
    publish_batch(store, config, "b", [records["human1"], records["human2"]], [records["syn1"], records["syn2"]])
    result = audit.diff(store, "a", "b")
    added = {(r["source"], r["domain"]): r["rows"] for r in result["added"]}
    assert added[("human", "law")] == 14 and added[("synthetic", "law")] == 6
    assert result["removed"] == []
    assert {i["path"] for i in result["inputs_added"]} == {str(records["human2"]), str(records["syn2"])}
    code, out, _ = cli(capsys, store, "lineage", "diff", "a", "b")
    assert code == 0 and "rows added" in out


def test_show_and_batches(store, config, records, capsys):
    publish_batch(store, config, "a", [records["human1"]], [records["syn1"]])
    publish_batch(store, config, "q", [records["human1"]], [records["syn1"]], passed=False)
    code, out, _ = cli(capsys, store, "lineage", "show", "a")
    assert code == 0 and "content hash" in out and "published" in out
    code, out, _ = cli(capsys, store, "batches", "--json")
    rows = {r["batch_id"]: r for r in json.loads(out)}
    assert rows["a"]["latest"] and rows["a"]["status"] == "published"
    assert rows["q"]["status"] == "quarantined" and not rows["q"]["latest"]
    assert {"name": "unique_record_id", "severity": "critical"} in rows["q"]["failed_checks"]
    code, out, _ = cli(capsys, store, "batches")
    assert code == 0 and "unique_record_id(critical)" in out


def test_unknown_batch_and_bad_input_are_one_line_errors(store, config, records, capsys):
    code, _, err = cli(capsys, store, "lineage", "show", "nope")
    assert code == 2 and err.count("\n") == 1 and "batch nope: not found" in err
    # An input role the manifest does not know is refused where the entry is made (the typed contract).
    with pytest.raises(ValidationError, match="role"):
        ManifestInput(role="vendor", path="x")


def test_dataset_card_loads_with_datasets(store, config, records):
    batch = publish_batch(store, config, "a", [records["human1"], records["human2"]], [records["syn1"], records["syn2"]])
    import datasets

    ds = datasets.load_dataset(str(batch))
    manifest = json.loads((batch / "manifest.json").read_text())
    assert set(ds) <= {"train", "eval"} and "train" in ds
    assert sum(ds[s].num_rows for s in ds) == manifest["rows"]
    assert set(ds["train"]["split"]) == {"train"}
    card = (batch / "README.md").read_text()
    assert card.startswith("---\n") and "## Gate" in card and str(batch) in card


def test_reindex_and_store_from_config(store, config, records, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PREFMIX_STORE", raising=False)
    publish_batch(store, config, "a", [records["human1"]], [records["syn1"]])
    store.ledger_path.write_bytes(b"not a database")  # lost or damaged: the manifests are the truth
    conf = tmp_path / "prefmix.yaml"
    conf.write_text(f"store: {store.root}\n")
    assert main(["lineage", "reindex", "--json", "--config", str(conf)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["batches"] == 1 and data["records"] == 80
    rid = pl.read_parquet(records["human1"])["record_id"][0]
    assert main(["lineage", "trace", rid, "--json", "--config", str(conf)]) == 0
    assert json.loads(capsys.readouterr().out)["batches"][0]["batch_id"] == "a"
    (tmp_path / "elsewhere").mkdir()  # an audit never creates a store, so the other store must exist
    monkeypatch.setenv("PREFMIX_STORE", str(tmp_path / "elsewhere"))
    assert main(["batches", "--json", "--config", str(conf)]) == 0
    assert json.loads(capsys.readouterr().out) == []  # PREFMIX_STORE wins over --config
