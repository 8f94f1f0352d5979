"""A seeded test queue with a known truth per task (the better response, in prefmix order)."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime

from prefmix.routing.queue import Queue, QueueItem

DOMAINS = ["general", "code", "medicine", "law"]
JUDGE = "judge-smol-v1"


def build_queue(n: int = 40, *, seed: int = 7, queue_id: str = "rq-test-001", k: int = 3, k1_every: int = 10,
                gold_every: int = 10) -> tuple[Queue, dict[str, str]]:
    """`n` items; the judge is wrong on every law item (truth "b": the rejected is better) and on a few others.

    Every `gold_every`-th item is gold (its gold label is the truth); every `k1_every`-th item (offset 5) needs one
    annotator instead of k; the suggestion is hidden on about half the items (seeded). Returns (queue, truth).
    """
    rng = random.Random(seed)
    items: list[QueueItem] = []
    truth: dict[str, str] = {}
    for i in range(n):
        domain = DOMAINS[i % len(DOMAINS)]
        task_id = f"{queue_id}-{i:03d}"
        record_id = hashlib.sha256(f"record-{seed}-{i}".encode()).hexdigest()[:32]
        judge_choice = "b" if i % 13 == 6 else "a"  # a few items where the routed judge's pick is the rejected one
        wrong = domain == "law" or i % 11 == 3
        correct = judge_choice
        better = ("b" if correct == "a" else "a") if wrong else correct
        is_gold = i % gold_every == 0
        items.append(
            QueueItem(
                task_id=task_id,
                record_id=record_id,
                prompt=f"[{domain}] Question {i}: explain item {i} in one sentence.",
                response_a=f"Answer A{i}: the pair's chosen response for item {i}.",
                response_b=f"Answer B{i}: the pair's rejected response for item {i}, a little longer.",
                domain=domain,
                judge_choice=judge_choice,  # type: ignore[arg-type]
                judge_confidence=round(rng.uniform(0.5, 0.99), 3),
                route_score=round(rng.uniform(0.0, 1.0), 4),
                route_reason=rng.choice(["judge_disagreement", "order_flip", "small_margin", "domain_agreement"]),
                is_gold=is_gold,
                gold_label=better if is_gold else None,  # type: ignore[arg-type]
                show_suggestion=rng.random() < 0.5,
                annotators=1 if i % k1_every == 5 else k,
            )
        )
        truth[task_id] = better
    queue = Queue(queue_id=queue_id, items=items, created_at=datetime(2026, 12, 1, tzinfo=UTC), seed=seed, judge=JUDGE)
    return queue, truth
