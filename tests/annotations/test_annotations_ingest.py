"""End to end on the seeded sample shards: ingest(config), accounting, lineage, the report command."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from prefmix.annotations.ingest import HumanIngest, ingest
from prefmix.annotations.samples import SAMPLE_AGGREGATION, WEAK, write_sample_shards
from prefmix.config import Config, Human
from prefmix.records import SCHEMA, to_arrow
from prefmix.store import sha256_file
from tests.support.cli import prefmix


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, HumanIngest]:
    shards = write_sample_shards(tmp_path_factory.mktemp("samples"), seed=3, n_items=120)
    config = Config(human=Human(shards=shards, aggregation=SAMPLE_AGGREGATION))
    return config, ingest(config)


def test_samples_are_seeded(tmp_path: Path) -> None:
    one = write_sample_shards(tmp_path / "one", seed=5, n_items=40)
    two = write_sample_shards(tmp_path / "two", seed=5, n_items=40)
    three = write_sample_shards(tmp_path / "three", seed=6, n_items=40)
    assert [sha256_file(a.path) for a in one] == [sha256_file(b.path) for b in two]
    assert [sha256_file(a.path) for a in one] != [sha256_file(c.path) for c in three]
    assert [s.layout for s in one] == ["pairs", "rankings", "judgments"]
    assert one[2].columns["preference"] == "choice"  # vendor column names via the mapping


def test_records_are_canonical_with_lineage(sample: tuple[Config, HumanIngest]) -> None:
    config, result = sample
    assert to_arrow(result.records).schema == SCHEMA
    assert set(result.records["source"].unique()) == {"human"}
    digests = {s.path: sha256_file(s.path) for s in config.human.shards}
    assert all(digests[u] == h for u, h in zip(result.records["origin_uri"], result.records["origin_sha256"]))
    assert set(result.records["domain"].unique()) == {"general", "finance", "medicine", "law"}
    assert (result.records["chosen"] != result.records["rejected"]).all()
    # chosen responses are the specific ones: longer in the large majority of pairs
    longer = (result.records["chosen"].str.len_chars() > result.records["rejected"].str.len_chars()).mean()
    assert longer > 0.8
    assert [i.path for i in result.inputs] == [s.path for s in config.human.shards]
    assert [i.sha256 for i in result.inputs] == list(digests.values())
    assert result.inputs[2].rows == pl.read_parquet(config.human.shards[2].path).height


def test_every_item_is_a_pair_or_a_counted_rejection(sample: tuple[Config, HumanIngest]) -> None:
    _, result = sample
    totals = result.stats["totals"]
    assert totals["reconciled"] and totals["items_in"] == 360
    assert totals["items_in"] == totals["items_with_pairs"] + totals["items_rejected"]
    assert sum(totals["rejected_by_reason"].values()) == result.rejections.height
    assert result.rejections["reason"].null_count() == 0
    for shard in result.stats["shards"]:
        assert shard["items_in"] == shard["items_with_pairs"] + shard["items_rejected"]
    judgments = result.stats["shards"][2]
    assert judgments["rejected_by_reason"]["gold_item"] == judgments["gold_items"] > 0
    json.dumps(result.stats)


def test_weak_annotator_is_the_only_exclusion(sample: tuple[Config, HumanIngest]) -> None:
    _, result = sample
    assert [e["annotator_id"] for e in result.stats["excluded_annotators"]] == [WEAK]
    shard = result.stats["shards"][2]
    assert shard["agreement"]["alpha"] > shard["agreement_before_exclusion"]["alpha"]
    assert set(shard["per_review_pass"]) == {"1", "2"}
    assert shard["adjudicated_pairs"] > 0
    overall = result.stats["overall"]
    assert overall["excluded_annotators"] == [WEAK]
    assert overall["alpha"] == shard["agreement"]["alpha"]  # one judgment shard: pooled == that shard
    assert (overall["pairs"], overall["rejected"]) == (result.records.height, result.rejections.height)
    per_domain = result.stats["per_domain"]
    assert set(per_domain) == {"general", "finance", "medicine", "law"}
    assert all(d["alpha"] is not None for d in per_domain.values())


def test_report_command_json_and_chart(sample: tuple[Config, HumanIngest], tmp_path: Path) -> None:
    config, result = sample
    path = tmp_path / "prefmix.yaml"
    path.write_text(yaml.safe_dump({"human": {"shards": [s.model_dump() for s in config.human.shards], "aggregation": SAMPLE_AGGREGATION.model_dump()}}))
    done = prefmix("annotations", "report", "--config", str(path), "--json", "--out", str(tmp_path / "out"), timeout=120)
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    assert stats["totals"] == result.stats["totals"]
    chart = Path(stats["chart"])
    assert chart == tmp_path / "out" / "annotator_accuracy.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_command_table(sample: tuple[Config, HumanIngest], tmp_path: Path) -> None:
    """A shard given by path (layout auto-detected from canonical column names) prints the tables."""
    config, _ = sample
    shard = config.human.shards[1]  # rankings, canonical column names: auto-detected
    done = prefmix("annotations", "report", shard.path, "--out", str(tmp_path), timeout=120,
                   env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "rankings" in done.stdout and "Accounting: 120 items in" in done.stdout
    assert "No chart: no annotator judged a gold item." in done.stdout
