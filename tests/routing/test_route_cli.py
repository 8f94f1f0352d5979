"""`prefmix route` and `prefmix route pull` in a subprocess, as a user runs them: a dry run writes nothing, --out
writes the files and records the queue, pull --export delivers a judgments shard into the landing zone whose
human pairs carry route lineage, and bad input is one line, exit 2, nothing written (exit 3 for a server that
is not there)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefmix.routing import samples
from prefmix.routing.queue import Queue

from prefmix.config import HumanShard, load
from prefmix.records import to_arrow
from prefmix.store import write_parquet
from tests.routing.exports import fake_export
from tests.support.cli import last_json, one_line, prefmix
from tests.support.processes import free_port

DOMAINS = list(samples.DOMAINS)


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Any]:
    pool, truth = samples.pool(samples.PoolSpec(n=300, seed=2))
    write_parquet(to_arrow(pool), tmp_path / "synthetic" / "run-1.parquet")
    samples.gold(30).write_parquet(tmp_path / "gold.parquet")
    store = tmp_path / "store"
    config = {
        "name": "route-cli", "store": str(store), "seed": 5, "domains": DOMAINS,
        "human": {"shards": [{"glob": str(store / "routing" / "returned" / "*.parquet"), "layout": "judgments",
                              "vendor": "label-studio"}], "aggregation": {"min_annotators": 3, "min_agreement": 0.6}},
        "routing": {"candidates": [{"glob": str(tmp_path / "synthetic" / "*.parquet")}], "gold": [{"path": str(tmp_path / "gold.parquet")}],
                    "budget": {"tasks": 30}, "min_per_domain": 2, "gold_share": 0.1, "annotators": 3,
                    "prices": {"label-studio": {"*": 0.5, "law": 1.0}}, "anchoring": {"hidden_share": 0.5},
                    "label_studio": {"api_key_env": "PREFMIX_TEST_ROUTE_TOKEN"}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return {"config": path, "store": store, "truth": truth, "root": tmp_path}


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in ("PREFMIX_STORE", "PREFMIX_TEST_ROUTE_TOKEN", "LABEL_STUDIO_API_KEY")}
    return {**out, **extra}


def test_dry_run_then_out_then_pull_from_an_export(setup: dict[str, Any]) -> None:
    config, store = str(setup["config"]), setup["store"]
    dry = prefmix("route", "--config", config, "--budget", "20", "--json", env=env())
    assert dry.returncode == 0, dry.stderr[-2000:]
    plan = last_json(dry.stdout)
    assert plan["dry_run"] and plan["tasks"] == 20 and plan["gold"] == 2 and plan["labels"] == 60
    assert not (store / "routing").exists()  # a dry run writes nothing

    out = setup["root"] / "out"
    sent = prefmix("route", "queue", "--config", config, "--out", str(out), "--json", env=env())
    assert sent.returncode == 0, sent.stderr[-2000:]
    summary = last_json(sent.stdout)
    assert not summary["dry_run"] and summary["tasks"] == 30 and summary["files"] == str(out)
    assert (out / "label-studio-tasks.json").is_file() and (out / "argilla" / ".argilla" / "settings.json").is_file()
    queue = Queue.model_validate_json((store / "routing" / "queues" / summary["queue_id"] / "queue.json").read_text())
    assert len(queue.items) == 30
    tasks = json.loads((out / "label-studio-tasks.json").read_text())
    assert all(set(t["meta"]["prefmix"]) >= {"private", "task_id"} for t in tasks)  # keep_private: no gold answers in files

    again = prefmix("route", "--config", config, "--budget", "12", "--json", env=env())
    assert last_json(again.stdout)["already_routed"] == 30 - summary["gold"]  # sent pairs are not sent again

    # the people answered in Label Studio; its export comes back (answers un-swapped by prefmix)
    export = setup["root"] / "export.json"
    export.write_text(json.dumps(fake_export(queue, tasks, setup["truth"])))
    pulled = prefmix("route", "pull", "--config", config, "--export", str(export), "--json", env=env())
    assert pulled.returncode == 0, pulled.stderr[-2000:]
    result = last_json(pulled.stdout)
    assert result["landing_zone_listed"] and result["delivered_tasks"] == 30 and result["delivered_labels"] == 90
    (shard,) = [q["shard"] for q in result["queues"]]
    assert Path(shard).parent == store / "routing" / "returned"
    assert Path(result["picture"]).is_file() and Path(result["report"]).is_file()
    assert result["outcome"]["spend"] == pytest.approx(sum(3 * i.price_per_label for i in queue.items))

    # the shard enters the dataset like any delivery: annotations' ingest makes human pairs with route lineage
    from prefmix.annotations.ingest import ingest_shards
    from prefmix.intake import concrete

    loaded = concrete(load(setup["config"]))
    assert [s.path for s in loaded.human.shards] == [shard]
    ingest = ingest_shards([HumanShard(**s.model_dump()) for s in loaded.human.shards], DOMAINS, loaded.human.aggregation)
    pairs = ingest.records
    items = {i.task_id: i for i in queue.items}
    assert pairs.height > 0 and pairs.height + int(ingest.rejections.height) == 30
    for row in pairs.iter_rows(named=True):
        route = row["route"]
        item = items[route["task_id"]]
        assert route["label_source"] == "human_vendor" and route["queue_id"] == queue.queue_id
        assert route["reason"] == item.route_reason and route["score"] == pytest.approx(item.route_score)
        assert route["lead_time_s"] == pytest.approx(12.0)  # the mean of the three votes' 11, 12 and 13 s
        better = setup["truth"][item.record_id]
        assert (row["chosen"], row["rejected"]) == ((item.response_a, item.response_b) if better == "a" else (item.response_b, item.response_a))


@pytest.mark.parametrize("args,message", [
    (["--set", "routing.nope=1"], r"routing.nope: unknown key"),
    (["--budget", "5", "--budget-share", "0.5"], r"not allowed with argument"),
    (["--budget-share", "1.5"], r"expected a share between 0 and 1"),
    (["pull", "--budget", "3"], r"--budget belongs to `prefmix route queue`"),
    (["--export", "x.json"], r"--export belongs to `prefmix route pull`"),
    (["--set", "routing.gold=[]"], r"routing.gold_share: no gold items"),
    (["--set", "routing.candidates=[{path: /nonexistent/c.parquet}]"], r"/nonexistent/c.parquet: file or folder not found"),
    (["--set", "routing.min_per_domain={law: 400}", "--set", "routing.budget.tasks=10"], r"fewer than the per-domain minimums"),
    (["--budget-money", "5"], r"per-domain minimums"),
    (["--to", "label-studio"], r"no URL"),
    (["--to", "argilla", "http://x"], r"expected label-studio"),
    (["--to", "label-studio", "http://127.0.0.1:9"], r"PREFMIX_TEST_ROUTE_TOKEN is not set"),
    (["pull", "--export", "/nonexistent/export.json"], r"not a Label Studio JSON export"),
    (["pull", "--queue", "rq-nope"], r"queue 'rq-nope': not in"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(setup: dict[str, Any], args: list[str], message: str) -> None:
    done = prefmix("route", "--config", str(setup["config"]), *args, env=env())
    assert done.returncode == 2, (done.returncode, done.stdout[-1000:], done.stderr[-2000:])
    line = one_line(done.stderr)
    assert pytest.importorskip("re").search(message, line), line
    assert not (setup["store"] / "routing").exists()


def test_an_unreachable_label_studio_is_exit_3(setup: dict[str, Any]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = prefmix("route", "--config", str(setup["config"]), "--to", "label-studio", url,
                   env=env(PREFMIX_TEST_ROUTE_TOKEN="secret-token-value"))
    assert done.returncode == 3, done.stderr[-2000:]
    line = one_line(done.stderr)
    assert url in line and "push failed" in line and "secret-token-value" not in done.stderr + done.stdout
    assert not (setup["store"] / "routing" / "queues").exists()  # not recorded as sent
