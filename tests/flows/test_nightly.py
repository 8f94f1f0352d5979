"""The walking skeleton end to end: nightly flow against a real vLLM server, then the store."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import polars as pl
import pytest

from tests.support.cli import prefmix
from tests.support.nightly import make_inputs, write_config

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def nightly_run(vllm_teacher, tmp_path_factory):
    root = tmp_path_factory.mktemp("nightly")
    inputs = make_inputs(root)
    config = write_config(root, vllm_teacher.base_url, vllm_teacher.model_name, inputs)
    done = prefmix("run", "nightly", "--config", str(config), "--json", "--date", "2026-11-26")
    assert done.returncode == 0, done.stderr[-3000:]
    return root, config, json.loads(done.stdout)


def test_publishes_a_batch_with_both_sources_at_the_configured_ratio(nightly_run):
    root, config, summary = nightly_run
    assert summary["status"] == "published"
    listing = prefmix("batches", "--json", "--store", str(root / "store"))
    assert listing.returncode == 0, listing.stderr
    batches = json.loads(listing.stdout)
    published = [b for b in batches if b["batch_id"] == summary["batch_id"]]
    assert published and published[0]["status"] == "published"

    files = sorted(str(p) for p in (Path(summary["batch_dir"]) / "data").glob("*.parquet"))
    ds = datasets.load_dataset("parquet", data_files=files, split="train")
    for column in ("prompt", "chosen", "rejected", "source", "record_id"):
        assert column in ds.column_names
    frame = pl.from_arrow(ds.data.table)
    counts = dict(frame.group_by("source").len().iter_rows())
    assert set(counts) == {"human", "synthetic"}
    total = counts["human"] + counts["synthetic"]
    assert abs(counts["human"] - 0.7 * total) <= 1
    assert frame["record_id"].n_unique() == frame.height
    assert (frame["chosen"] != frame["rejected"]).all()


def test_manifest_names_teacher_vllm_version_human_shards_and_verdict(nightly_run, vllm_teacher):
    root, config, summary = nightly_run
    manifest = json.loads(Path(summary["manifest"]).read_text())
    text = json.dumps(manifest)
    assert vllm_teacher.model_name in text
    assert vllm_teacher.vllm_version in text
    shards = [i for i in manifest["inputs"] if i["role"] == "human_shard"]
    assert shards and all(len(i["sha256"]) == 64 for i in shards)
    assert manifest["config"]["blend"]["ratios"] == {"human": 0.7, "synthetic": 0.3}
    assert manifest["gate"]["verdict"] in ("pass", "warn")


def test_synthetic_rows_carry_generation_lineage(nightly_run, vllm_teacher):
    root, config, summary = nightly_run
    frame = pl.read_parquet(Path(summary["batch_dir"]) / "data" / "*.parquet")
    synthetic = frame.filter(pl.col("source") == "synthetic")
    assert synthetic.height > 0
    generation = synthetic["generation"].struct.unnest()
    assert (generation["judge"].is_not_null()).all()
    assert (generation["vllm_version"] == vllm_teacher.vllm_version).all()
    assert synthetic["origin_sha256"].str.len_chars().min() == 64


@pytest.mark.parametrize(
    "mutation, key",
    [
        ({"blend__ratios": {"human": 0.6, "synthetic": 0.3}}, "blend.ratios"),
        ({"blend__ratioz": {"human": 1.0}}, "blend.ratioz"),
    ],
)
def test_bad_config_is_one_line_exit_2_and_writes_nothing(tmp_path, mutation, key):
    inputs = {"prompts": [], "shards": []}
    config = write_config(tmp_path, "http://127.0.0.1:9/v1", "x", inputs, **mutation)
    done = prefmix("run", "nightly", "--config", str(config))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "store").exists()
