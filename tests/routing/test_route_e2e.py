"""Issue 16 end to end against a real Label Studio server: `prefmix route --to label-studio URL` pushes the queue
routing chose (gold items from a vendor's judgments shard among them), simulated annotators submit as
themselves through the API (four honest ones with known error rates, one of whom skips and one cancels, and
one who always agrees with a shown suggestion), `prefmix route pull` takes the answers back into the landing
zone, and the answers enter annotations' aggregation as human pairs with route lineage. Checked: the
un-swapped preferences, counts, lead times, lineage, and that the anchoring check flags the biased annotator."""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from prefmix.routing import label_studio as ls_mod
from prefmix.routing import samples
from prefmix.routing.queue import Queue, shown_order
from prefmix.routing.select import half_up

from prefmix.config import load
from prefmix.records import to_arrow
from prefmix.store import write_parquet
from tests.routing.simulated_annotators import Act, panel, run_annotators, sign_up
from tests.support.cli import last_json, prefmix

pytestmark = pytest.mark.labelstudio

DOMAINS = ["general", "finance", "medicine", "law"]
PERSONAS = panel(steady_error=0.10, steady_cancel=0.15, hasty_error=0.15, hasty_skip=0.15)
TASKS = 72
SEED = 11


def vendor_shard(path: Path, n_gold: int = 16) -> Path:
    """A vendor's judgments shard: a few items, and gold items with known answers (the queue's gold comes from here)."""
    rows = []
    for i in range(n_gold + 4):
        gold = i < n_gold
        for annotator in ("v1", "v2", "v3"):
            rows.append({"item_id": f"vendor-{i}", "prompt": f"[{DOMAINS[i % 4]}] vendor question {i}",
                         "domain": DOMAINS[i % 4], "response_a": f"vendor answer A{i}", "response_b": f"vendor answer B{i} (other)",
                         "annotator_id": annotator, "preference": "a" if i % 3 else "b", "is_gold": gold,
                         "gold_answer": ("a" if i % 3 else "b") if gold else None})
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows).write_parquet(path)
    return path


@pytest.fixture(scope="module")
def e2e(label_studio: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("route-e2e")
    pool, truth = samples.pool(samples.PoolSpec(n=500, seed=SEED, base_error=0.25, peer_accuracy=0.85, domains=tuple(DOMAINS)))
    write_parquet(to_arrow(pool), root / "pool" / "synthetic" / "run-1.parquet")
    store = root / "store"
    returned = store / "routing" / "returned"
    config = {
        "name": "route-e2e", "store": str(store), "seed": 3, "domains": DOMAINS,
        "human": {"shards": [{"path": str(vendor_shard(root / "vendor" / "acme.parquet")), "layout": "judgments", "vendor": "acme"},
                             {"glob": str(returned / "*.parquet"), "layout": "judgments", "vendor": "label-studio"}],
                  "aggregation": {"min_annotators": 3, "min_agreement": 0.6}},
        "routing": {"candidates": [{"glob": str(root / "pool" / "synthetic" / "*.parquet")}],
                    "budget": {"tasks": TASKS}, "min_per_domain": 2, "gold_share": 0.1, "annotators": 3,
                    "prices": {"label-studio": {"*": 0.4, "law": 0.9}}, "anchoring": {"hidden_share": 0.5},
                    "label_studio": {"url": label_studio.url, "project": label_studio.title("prefmix e2e {queue_id}")}},
    }
    config_path = root / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {**{k: v for k, v in os.environ.items() if k != "PREFMIX_STORE"}, "LABEL_STUDIO_API_KEY": label_studio.token}

    pushed = prefmix("route", "--config", str(config_path), "--to", "label-studio", "--json", env=env)
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    summary = last_json(pushed.stdout)
    queue = Queue.model_validate_json((store / "routing" / "queues" / summary["queue_id"] / "queue.json").read_text())
    answers = {i.task_id: (i.gold_label if i.is_gold else truth[i.record_id]) for i in queue.items}

    annotators = sign_up(label_studio, PERSONAS)
    acts = run_annotators(label_studio.url, summary["pushed"]["project_id"], annotators, queue, answers, seed=SEED)

    pulled = prefmix("route", "pull", "--config", str(config_path), "--json", env=env)
    assert pulled.returncode == 0, pulled.stderr[-3000:]
    return {"summary": summary, "pull": last_json(pulled.stdout), "queue": queue, "truth": truth, "acts": acts,
            "annotators": annotators, "config": config_path, "store": store, "label_studio": label_studio, "env": env}


def test_push_sends_the_planned_queue_with_k_per_task_and_nothing_private(e2e: dict[str, Any]) -> None:
    summary, queue, server = e2e["summary"], e2e["queue"], e2e["label_studio"]
    assert summary["tasks"] == TASKS and summary["gold"] == half_up(0.1 * TASKS) and summary["pushed"]["imported"] == TASKS
    assert all(item.is_gold == item.task_id.split("-")[-1].startswith("g") for item in queue.items)
    assert {i.record_id for i in queue.items if i.is_gold} <= set(
        __import__("prefmix.routing.candidates", fromlist=["gold_pool"]).gold_pool(load(e2e["config"])).get_column("gold_id"))
    sdk = ls_mod.client(server.url, server.token)
    tasks = [t.model_dump(mode="json") for t in sdk.tasks.list(project=summary["pushed"]["project_id"], fields="all")]
    assert len(tasks) == TASKS and {t["overlap"] for t in tasks} == {3}
    for task in tasks:
        meta = task["meta"]["prefmix"]
        assert meta["private"] and not {"gold_answer", "judge_choice", "route_score"} & set(meta)  # nothing to copy from
    shown = Counter(bool(t["predictions"]) for t in tasks)
    routed = TASKS - summary["gold"]
    assert shown[False] == summary["gold"] + summary["hidden"] and summary["hidden"] == half_up(0.5 * routed)


def test_pull_unswaps_counts_and_keeps_lead_times(e2e: dict[str, Any]) -> None:
    acts: list[Act] = e2e["acts"]
    (pull,) = e2e["pull"]["queues"]
    by_outcome = Counter(a.outcome for a in acts)
    assert by_outcome["skipped"] and by_outcome["cancelled"]
    counts = pull["counts"]
    assert (counts["submitted"], counts["skipped"], counts["cancelled"]) == (by_outcome["submitted"], by_outcome["skipped"],
                                                                          by_outcome["cancelled"])
    assert counts["tasks_complete"] == TASKS and pull["delivered_tasks"] == TASKS and pull["waiting_tasks"] == 0
    shard = pl.read_parquet(pull["shard"])
    submitted = {(a.annotator_id, a.ls_annotation_id): a for a in acts if a.outcome == "submitted"}
    assert shard.height == len(submitted) == pull["delivered_labels"] == 3 * TASKS
    swapped = 0
    for row in shard.iter_rows(named=True):
        act = submitted[(row["annotator_id"], row["ls_annotation_id"])]
        assert row["preference"] == act.meant and row["lead_time_s"] == pytest.approx(act.lead_time_s)
        assert row["shown_order"] == shown_order(act.task_id) and row["suggestion_shown"] is act.suggestion_seen
        swapped += (row["shown_order"] == "ba") and ((act.shown_side == "left") == (act.meant == "b"))
    assert swapped > 10  # un-swapping really changed labels: a click on the left meant the rejected


def test_answers_enter_the_dataset_as_human_pairs_with_route_lineage(e2e: dict[str, Any]) -> None:
    from prefmix.annotations.ingest import ingest_shards
    from prefmix.intake import concrete

    config = concrete(load(e2e["config"]))
    ingest = ingest_shards(config.human.shards, config.domains, config.human.aggregation)
    pairs = ingest.records.filter(pl.col("route").is_not_null())
    queue: Queue = e2e["queue"]
    items = {i.task_id: i for i in queue.items}
    leads: dict[str, list[float]] = defaultdict(list)
    meant: dict[str, list[str]] = defaultdict(list)
    for act in e2e["acts"]:
        if act.outcome == "submitted":
            leads[act.task_id].append(act.lead_time_s)
            meant[act.task_id].append(act.meant)
    routed = [i for i in queue.items if not i.is_gold]
    assert 0 < pairs.height <= len(routed)
    for row in pairs.iter_rows(named=True):
        route = row["route"]
        item = items[route["task_id"]]
        assert route["label_source"] == "human_vendor" and route["queue_id"] == queue.queue_id and not item.is_gold
        assert route["reason"] == item.route_reason and route["score"] == pytest.approx(item.route_score)
        assert route["lead_time_s"] == pytest.approx(sum(leads[item.task_id]) / len(leads[item.task_id]))
        majority = Counter(meant[item.task_id]).most_common(1)[0][0]
        want = (item.response_a, item.response_b) if majority == "a" else (item.response_b, item.response_a)
        assert (row["chosen"], row["rejected"]) == want
        assert row["annotation"]["vendor"] == "label-studio" and row["annotation"]["annotator_count"] == 3
    # vendor rows carry no route; gold tasks became gold calibration, not pairs
    assert ingest.records.filter(pl.col("route").is_null() & (pl.col("annotation").struct.field("vendor") == "label-studio")).height == 0


def test_the_anchoring_check_flags_the_annotator_who_follows_the_suggestion(e2e: dict[str, Any]) -> None:
    anchoring = e2e["pull"]["anchoring"]
    anchored = next(a for a in e2e["annotators"] if a.persona.follows_suggestion)
    assert anchoring["flagged"] == [anchored.annotator_id]
    row = next(a for a in anchoring["annotators"] if a["annotator_id"] == anchored.annotator_id)
    assert row["shown"]["share"] == 1.0 and row["gap"] > 0.2
    assert anchoring["shown"]["share"] > anchoring["hidden"]["share"]
    state = json.loads((e2e["store"] / "routing" / "agreement.json").read_text())
    assert state["excluded_annotators"] == [anchored.annotator_id]  # left out of what routing learns


def test_what_was_learned_is_what_the_next_queue_uses(e2e: dict[str, Any]) -> None:
    state = json.loads((e2e["store"] / "routing" / "agreement.json").read_text())
    assert state["labels"] > 0 and state["model"]["fitted_on"] == state["labels"] and state["queues"] == [e2e["queue"].queue_id]
    assert set(state["per_domain"]) <= set(DOMAINS) and state["per_signal"]["judge_disagreement"]["high"]["judged"] > 0
    again = prefmix("route", "--config", str(e2e["config"]), "--budget", "20", "--json", env=e2e["env"])
    assert again.returncode == 0, again.stderr[-2000:]
    plan = last_json(again.stdout)
    assert plan["dry_run"] and plan["model"] == state["model"] and plan["already_routed"] == TASKS - e2e["summary"]["gold"]
    assert e2e["pull"]["outcome"]["judge_errors"] > 0 and Path(e2e["pull"]["picture"]).is_file()
