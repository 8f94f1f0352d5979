"""A Label Studio JSON export, as the server would give it after people answered a queue (no server needed)."""

from __future__ import annotations

from typing import Any

from prefmix.routing import label_studio as ls_mod
from prefmix.routing.queue import Queue, shown_order, to_shown


def fake_export(queue: Queue, tasks: list[dict[str, Any]], truth: dict[str, str]) -> list[dict[str, Any]]:
    """What Label Studio exports after three right answers per task (lead times 11, 12, 13 s)."""
    out = []
    annotation = 0
    for ls_id, (item, task) in enumerate(zip(queue.items, tasks), start=1):
        better = item.gold_label if item.is_gold else truth[item.record_id]
        anns = []
        for user in (2, 3, 4):
            annotation += 1
            anns.append({"id": annotation, "completed_by": user, "was_cancelled": False, "lead_time": 9.0 + user,
                         "result": [{"id": "r", **ls_mod.pairwise_result(to_shown(better, shown_order(item.task_id)))}]})
        out.append({"id": ls_id, "data": task["data"], "meta": task["meta"], "annotations": anns})
    return out
