"""Answers back without a server: delivery of completed tasks (once, crash-safe), the votes routing learns from,
the per-domain and per-signal agreement the next queue uses, and the anchoring check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from prefmix.routing import label_studio as ls_mod
from prefmix.routing import learn, samples
from prefmix.routing.anchoring import check
from prefmix.routing.plan import plan_queue
from prefmix.routing.queue import Queue, shown_order, to_shown
from prefmix.routing.run import current_model, deliver, listed
from prefmix.routing.state import RoutingStore, Sent

from prefmix.config import Anchoring, Config, parse
from prefmix.store import Store

DOMAINS = list(samples.DOMAINS)


def config_for(store: Path, **routing: Any) -> Config:
    section = {"budget": {"tasks": 60}, "min_per_domain": 4, "gold_share": 0.1, "annotators": 3,
               "anchoring": {"hidden_share": 0.5}, **routing}
    return parse({"store": str(store), "domains": DOMAINS, "seed": 1, "routing": section,
                  "human": {"shards": [{"glob": str(store / "routing" / "returned" / "*.parquet"), "layout": "judgments",
                                        "vendor": "label-studio"}]}})


def gold_pool() -> pl.DataFrame:
    from prefmix.records import record_id
    from prefmix.routing.candidates import GOLD_SCHEMA

    frame = samples.gold(20)
    ids = [record_id(p, a, b) for p, a, b in zip(frame["prompt"], frame["response_a"], frame["response_b"])]
    return frame.with_columns(gold_id=pl.Series(ids), gold_source=pl.lit("t")).select(list(GOLD_SCHEMA))


@pytest.fixture
def sent(tmp_path: Path) -> dict[str, Any]:
    """A planned queue from a simulated pool, recorded as sent (files), and its truth."""
    config = config_for(tmp_path / "store")
    pool, truth = samples.pool(samples.PoolSpec(n=600, seed=4))
    store = Store.at(config.store)
    rstore = RoutingStore(store)
    planned = plan_queue(pool, gold_pool(), config.routing, current_model(config, rstore, None), [], 1)
    rstore.save_queue(planned.queue, {}, planned.scored, Sent(files=str(tmp_path / "out"), at="now"))
    return {"config": config, "store": store, "queue": planned.queue, "truth": truth, "pool": pool}


def export(queue: Queue, truth: dict[str, str], answered: int | None = None, *, follower: int | None = 4,
           k_missing: set[str] = frozenset()) -> list[dict[str, Any]]:
    """Label Studio export JSON: users 2..6, three per task, honest 90% except `follower` who picks a shown suggestion."""
    tasks = []
    annotation = 1000
    for ls_id, item in enumerate(queue.items[:answered], start=1):
        payload = ls_mod.task_payload(item, queue, keep_private=True)
        better = item.gold_label if item.is_gold else truth[item.record_id]
        users = [2 + (ls_id + j) % 5 for j in range(item.annotators)]
        if item.task_id in k_missing:
            users = users[:1]
        anns = []
        for j, user in enumerate(users):
            annotation += 1
            label = better if (ls_id * 7 + j * 3) % 10 else ("a" if better == "b" else "b")
            if user == follower and item.show_suggestion:
                label = item.judge_choice
            anns.append({"id": annotation, "completed_by": user, "was_cancelled": False, "lead_time": 10.0 + user + j,
                         "result": [{"id": "r", **ls_mod.pairwise_result(to_shown(label, shown_order(item.task_id)))}],
                         "created_at": "2026-12-01T10:00:00Z"})
        tasks.append({"id": ls_id, **payload, "annotations": anns})
    return tasks


def returned(queue: Queue, tasks: list[dict[str, Any]]) -> ls_mod.Returned:
    return ls_mod.from_tasks(tasks, source="export.json", queue=queue)


def test_completed_tasks_are_delivered_once_and_votes_feed_learning(sent: dict[str, Any]) -> None:
    config, store, queue, truth = sent["config"], sent["store"], sent["queue"], sent["truth"]
    rstore = RoutingStore(store)
    half = len(queue.items) // 2
    missing = {queue.items[0].task_id}
    first = deliver(config, store, [(queue, returned(queue, export(queue, truth, half, k_missing=missing)))], None)
    (pull,) = first.queues
    assert pull.delivered_tasks == half - 1 and pull.waiting_tasks == len(queue.items) - (half - 1)
    shard = Path(pull.shard)
    assert shard.parent == rstore.returned_dir(None) and listed(config, shard.parent) and first.landing_zone_listed
    rows = pl.read_parquet(shard)
    assert set(rows.get_column("task_id")) == {i.task_id for i in queue.items[1:half]}
    assert rows.height == pull.delivered_labels == 3 * (half - 1)
    delivered = rstore.delivered(queue.queue_id)
    assert delivered.deliveries[0].sha256 and len(delivered.tasks) == half - 1

    # the same answers again: nothing new; every answer in: only the rest, in a second file
    again = deliver(config, store, [(queue, returned(queue, export(queue, truth, half, k_missing=missing)))], None)
    assert again.queues[0].delivered_tasks == 0 and again.queues[0].shard is None
    full = deliver(config, store, [(queue, returned(queue, export(queue, truth)))], None)
    second = pl.read_parquet(full.queues[0].shard)
    assert set(second.get_column("task_id")) == {i.task_id for i in queue.items} - set(rows.get_column("task_id"))
    assert full.queues[0].waiting_tasks == 0
    votes = rstore.votes()
    assert votes.height == 3 * len(queue.items) and votes.unique(["task_id", "annotator_id"]).height == votes.height

    # what was learned is in agreement.json and is what the next queue uses
    state = rstore.agreement()
    assert state is not None and state.labels == full.outcome.rows[0].tasks_with_verdict + sum(
        r.tasks_with_verdict for r in full.outcome.rows[1:])
    assert set(state.per_signal) >= {"judge_disagreement", "order_flip"} and state.model.fitted_on == state.labels
    assert state.excluded_annotators == full.anchoring.flagged  # flagged annotators are left out of learning
    assert learn.labels(votes, state.excluded_annotators).height == state.labels
    assert current_model(config, rstore, None) == state.model


def test_a_delivery_recorded_but_not_written_is_finished_by_the_next_pull(sent: dict[str, Any]) -> None:
    config, store, queue, truth = sent["config"], sent["store"], sent["queue"], sent["truth"]
    rstore = RoutingStore(store)
    back = returned(queue, export(queue, truth))
    deliver(config, store, [(queue, back)], None)
    delivered = rstore.delivered(queue.queue_id)
    path = rstore.returned_dir(None) / delivered.deliveries[0].file
    content = pl.read_parquet(path)
    path.unlink()  # as if the pull was killed after recording its intent
    delivered.deliveries[0].sha256 = None
    rstore.save_delivered(queue.queue_id, delivered)
    deliver(config, store, [(queue, back)], None)
    assert pl.read_parquet(path).equals(content) and rstore.delivered(queue.queue_id).deliveries[0].sha256
    assert len(list(path.parent.glob("*.parquet"))) == 1


def test_returned_labels_move_the_domain_agreement_the_next_queue_uses(tmp_path: Path) -> None:
    """People say the judge is wrong on every law pair: the law base rate goes up, so do law route scores."""
    config = config_for(tmp_path / "store")
    pool, _ = samples.pool(samples.PoolSpec(n=600, seed=4))
    votes = samples.votes(plan_queue(pool, gold_pool(), config.routing, learn.fit(pl.DataFrame(), config.routing), [], 1).queue,
                          {rid: "a" for rid in pool.get_column("record_id")}, error_rates=(0.0, 0.0, 0.0))
    law_wrong = votes.with_columns(preference=pl.when(pl.col("domain") == "law").then(pl.lit("b")).otherwise("preference"))
    rows = learn.labels(law_wrong)
    before = learn.fit(pl.DataFrame(), config.routing)
    after = learn.fit(rows, config.routing)
    assert after.intercept("law") > before.intercept("law") + 0.5
    assert after.intercept("general") < before.intercept("general")
    # and so the next queue scores law pairs higher, the others lower
    from prefmix.routing.score import score
    from prefmix.routing.signals import signals

    sig = signals(pool, config.routing.signals)
    mean = lambda model, domain: score(sig, model).filter(pl.col("domain") == domain)["route_score"].mean()  # noqa: E731
    assert mean(after, "law") > mean(before, "law") and mean(after, "general") < mean(before, "general")
    state = learn.state(rows, after, ["q"], None, [])
    assert state.per_domain["law"].share == 0.0 and state.per_domain["general"].share == 1.0
    assert all(w >= 0 for w in after.weights.values())


def test_the_anchoring_check_flags_who_follows_a_shown_suggestion() -> None:
    pool, truth = samples.pool(samples.PoolSpec(n=3000, seed=9))
    config = parse({"domains": DOMAINS, "routing": {"budget": {"tasks": 300}, "gold_share": 0.05, "annotators": 3,
                                                    "anchoring": {"hidden_share": 0.5}}})
    queue = plan_queue(pool, gold_pool(), config.routing, learn.fit(pl.DataFrame(), config.routing), [], 3).queue
    votes = samples.votes(queue, truth, error_rates=(0.05, 0.1, 0.15, 0.2, 0.1), seed=2, follows_suggestion=3)
    report = check(votes, Anchoring())
    assert report.flagged == ["sim-3"]
    follower = next(a for a in report.annotators if a.annotator_id == "sim-3")
    assert follower.shown.share == 1.0 and follower.gap > 0.2
    assert report.shown.share > report.hidden.share  # agreement with the suggestion is higher where it was shown
    for seed in range(3):  # honest people with the same error rates are not flagged
        assert check(samples.votes(queue, truth, error_rates=(0.05, 0.1, 0.15, 0.2, 0.1), seed=seed), Anchoring()).flagged == []


def test_votes_file_and_agreement_are_plain_files_in_the_store(sent: dict[str, Any]) -> None:
    config, store, queue, truth = sent["config"], sent["store"], sent["queue"], sent["truth"]
    summary = deliver(config, store, [(queue, returned(queue, export(queue, truth)))], None)
    root = store.root / "routing"
    assert (root / "votes.parquet").is_file() and json.loads((root / "agreement.json").read_text())["labels"] > 0
    assert Path(summary.picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = Path(summary.report).read_text()
    assert "judge errors found" in text and "| label-studio |" in text and "| ls-user-4 |" in text
