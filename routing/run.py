"""The two things the route flow does, as plain functions: plan and send a queue; pull answers back and learn.

Everything that can be wrong with the inputs (config, candidates, gold, the target folder, the token) is found
before anything is written; the store's routing state changes under routing's own lock (prefmix.routing.state).
The flow (prefmix.flows.route) passes in what only it may read: the nightly's measured judge-vs-human agreement.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from prefmix.routing import checks as checks_mod
from prefmix.routing import label_studio as ls
from prefmix.routing import learn, receive, report
from prefmix.routing.anchoring import check as anchoring_check
from prefmix.routing.candidates import candidate_files, gold_pool, read_candidates
from prefmix.routing.models import (
    DomainPlan,
    PullSummary,
    Pushed,
    QueuePull,
    RouteSummary,
)
from prefmix.routing.plan import Planned, describe, plan_queue
from prefmix.routing.queue import Queue
from prefmix.routing.state import Delivered, Delivery, RoutingStore, Sent
from prefmix.routing.tool import calling, token

from prefmix.config import Config
from prefmix.contract import JudgeHumanAgreement
from prefmix.errors import InputError
from prefmix.hashing import sha256_file
from prefmix.store import Store, atomic_write_text


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def seed_of(config: Config) -> int:
    return config.routing.seed if config.routing.seed is not None else config.seed


def current_model(config: Config, rstore: RoutingStore, measured: JudgeHumanAgreement | None) -> learn.RouteModel:
    """The model the next queue uses: fitted on every delivered label (less flagged annotators) and the nightly's prior."""
    state = rstore.agreement()
    excluded = state.excluded_annotators if state else []
    return learn.fit(learn.labels(rstore.votes(), excluded), config.routing, measured)


@dataclass
class Drawn:
    planned: Planned
    candidates: int
    already_routed: int


def draw(config: Config, store: Store, measured: JudgeHumanAgreement | None) -> Drawn:
    """Plan the next queue (nothing written)."""
    rstore = RoutingStore(store)
    model = current_model(config, rstore, measured)
    raw = read_candidates(candidate_files(config, store.pool_dir), config.domains)
    routed = rstore.routed_record_ids()
    fresh = raw.filter(~pl.col("record_id").is_in(list(routed))) if routed else raw
    planned = plan_queue(fresh, gold_pool(config), config.routing, model, checks_mod.load(config.routing.checks), seed_of(config))
    return Drawn(planned=planned, candidates=raw.height, already_routed=raw.height - fresh.height)


def check_out(out: Path | None) -> None:
    if out is None:
        return
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    argilla = out / "argilla"
    if argilla.exists() and any(argilla.iterdir()):
        raise InputError(f"--out {out}: {argilla} is not empty; an Argilla dataset folder is written whole")


def send(config: Config, store: Store, drawn: Drawn, *, label_studio_url: str | None, out: Path | None) -> RouteSummary:
    """Push the queue to Label Studio (if a URL) and/or write its files (if `out`), then record it as sent.
    With neither it is a dry run: nothing is written and the same records stay candidates."""
    planned, queue = drawn.planned, drawn.planned.queue
    target = config.routing.label_studio
    dry_run = label_studio_url is None and out is None
    check_out(out)
    secret = token(target) if label_studio_url is not None and queue.items else None
    pushed: Pushed | None = None
    rstore = RoutingStore(store)
    if not dry_run and queue.items:
        with rstore.lock(f"route {queue.queue_id}"):
            if label_studio_url is not None and secret is not None:
                title = target.project.format(queue_id=queue.queue_id)
                with calling(label_studio_url, "push"):
                    done = ls.push(queue, label_studio_url, secret, title, timeout=target.timeout_s, keep_private=target.keep_private)
                pushed = Pushed(url=label_studio_url, project_id=done.project_id, project_title=done.project_title,
                                created_project=done.created_project, imported=done.imported, already_there=done.already_there)
            if out is not None:
                ls.write_label_studio_tasks(queue, out / "label-studio-tasks.json", keep_private=target.keep_private)
                ls.write_argilla_dataset(queue, out / "argilla")
            sent = Sent(label_studio_url=label_studio_url, project_id=pushed.project_id if pushed else None,
                        project_title=pushed.project_title if pushed else None, keep_private=target.keep_private,
                        files=str(out) if out is not None else None, at=_now())
            rstore.save_queue(queue, _plan_record(config, drawn), planned.scored, sent)
    return _summary(config, store, drawn, dry_run or not queue.items, pushed, out,
                    rstore.queue_dir(queue.queue_id) if not dry_run and queue.items else None)


def _plan_record(config: Config, drawn: Drawn) -> dict[str, Any]:
    return {"queue_id": drawn.planned.queue.queue_id, "routing": config.routing.model_dump(mode="json"),
            "model": drawn.planned.model.model_dump(mode="json"), **describe(drawn.planned),
            "candidates": drawn.candidates, "already_routed": drawn.already_routed}


def _summary(config: Config, store: Store, drawn: Drawn, dry_run: bool, pushed: Pushed | None, out: Path | None,
             folder: Path | None) -> RouteSummary:
    planned = drawn.planned
    counts = describe(planned)
    return RouteSummary(
        queue_id=planned.queue.queue_id, dry_run=dry_run, vendor=config.routing.vendor,
        budget=config.routing.budget.model_dump(), candidates=drawn.candidates, already_routed=drawn.already_routed,
        not_routable=planned.not_routable, to_check=counts["to_check"], scored=planned.scored.height,
        tasks=counts["tasks"], routed=counts["routed"], gold=counts["gold"], hidden=counts["hidden"],
        annotators=config.routing.annotators, labels=counts["labels"], cost=counts["cost"],
        requested_tasks=planned.selection.requested, short_of_candidates=planned.selection.short_of_candidates,
        minimum_shortfall=planned.selection.shortfall,
        per_domain={d: DomainPlan(**v) for d, v in counts["per_domain"].items()}, reasons=counts["reasons"],
        expected_errors=counts["expected_errors"], model=planned.model, pushed=pushed,
        files=str(out) if out is not None and not dry_run else None, queue_dir=str(folder) if folder else None,
        store=str(store.root),
    )


# -- pull --------------------------------------------------------------------------------------------------


def listed(config: Config, folder: Path) -> bool:
    """Does human.shards list the returned folder as a landing zone (so the nightly takes what pull writes)?"""
    probe = str(folder.resolve() / "probe.parquet")
    for zone in config.human.shards:
        if zone.glob is not None and fnmatch.fnmatch(probe, zone.glob):
            return True
        if zone.path is not None and Path(zone.path).resolve() == folder.resolve():
            return True
    return False


def fetch(config: Config, store: Store, *, queue_id: str | None = None, export: Path | None = None,
          url: str | None = None) -> list[tuple[Queue, ls.Returned]]:
    """Every returned answer of the queues asked for: from their Label Studio projects, or from an export file."""
    rstore = RoutingStore(store)
    if export is not None:
        try:
            tasks = json.loads(Path(export).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"--export {export}: not a Label Studio JSON export ({exc})") from None
        if not isinstance(tasks, list):
            raise InputError(f"--export {export}: expected a Label Studio JSON export (a list of tasks)")
        groups: dict[str, list[dict[str, Any]]] = {}
        for task in tasks:
            info = ((task or {}).get("meta") or {}).get(ls.META_KEY) if isinstance(task, dict) else None
            if info and info.get("queue_id"):
                groups.setdefault(str(info["queue_id"]), []).append(task)
        wanted = [queue_id] if queue_id else sorted(groups)
        out = []
        for qid in wanted:
            queue = rstore.load_queue(qid)
            try:
                out.append((queue, ls.from_tasks(groups.get(qid, []), source=str(export), queue=queue)))
            except (KeyError, ValueError, TypeError) as exc:
                raise InputError(f"--export {export}: queue {qid}: {exc}") from None
        return out
    wanted = [queue_id] if queue_id else rstore.queue_ids()
    pulls = []
    for qid in wanted:
        queue = rstore.load_queue(qid)
        sent = rstore.sent(qid)
        if sent.project_id is None:
            if queue_id:
                raise InputError(f"queue {qid} was written as files ({sent.files}), not pushed; pull it with --export FILE")
            continue
        if len(rstore.delivered(qid).tasks) >= len(queue.items):
            continue  # every task delivered: nothing more can come
        pulls.append((queue, sent))
    if not pulls:
        return []
    secret = token(config.routing.label_studio)
    out = []
    for queue, sent in pulls:
        where = url or sent.label_studio_url or ""
        with calling(where, f"pull of queue {queue.queue_id}"):
            out.append((queue, ls.pull(where, secret, sent.project_id, queue=queue, timeout=config.routing.label_studio.timeout_s)))
    return out


def deliver(config: Config, store: Store, fetched: list[tuple[Queue, ls.Returned]], measured: JudgeHumanAgreement | None,
            *, partial: bool = False) -> PullSummary:
    """Write each queue's newly delivered tasks as one judgments shard into the landing zone, then learn and report."""
    rstore = RoutingStore(store)
    folder = rstore.returned_dir(config.routing.returned)
    pulled: list[QueuePull] = []
    with rstore.lock("route pull"):
        votes = rstore.votes()
        for queue, returned in fetched:
            delivered = rstore.delivered(queue.queue_id)
            if _unfinished(delivered, folder):
                votes = _redo_unfinished(delivered, queue, returned, folder, votes)
                rstore.save_delivered(queue.queue_id, delivered)
            ids = receive.ready(returned, queue, delivered.tasks, partial)
            shard = None
            labels = 0
            if ids:
                name = f"{queue.queue_id}-{len(delivered.deliveries) + 1:03d}.parquet"
                part = receive.only(returned, ids)
                labels = part.frame.height
                # intent first: a crash after this line is finished by the next pull (same file, same tasks)
                delivered.deliveries.append(Delivery(file=name, sha256=None, tasks=len(ids), labels=labels, at=_now()))
                delivered.tasks.extend(ids)
                rstore.save_delivered(queue.queue_id, delivered)
                shard = part.write(folder / name)
                delivered.deliveries[-1].sha256 = sha256_file(shard)
                rstore.save_delivered(queue.queue_id, delivered)
                votes = receive.merge(votes, receive.votes(part, queue, name))
            pulled.append(QueuePull(queue_id=queue.queue_id, source=returned.source, counts=returned.counts,
                                    delivered_tasks=len(ids), delivered_labels=labels,
                                    waiting_tasks=len(queue.items) - len(delivered.tasks), shard=str(shard) if shard else None))
        votes_sha = rstore.save_votes(votes) if pulled else rstore.votes_sha256()
        anchoring = anchoring_check(votes, config.routing.anchoring)
        rows = learn.labels(votes, anchoring.flagged)
        model = learn.fit(rows, config.routing, measured)
        state = learn.state(rows, model, sorted(set(votes.get_column("queue_id").to_list())), votes_sha, anchoring.flagged)
        rstore.save_agreement(state)
        outcome = report.spend(votes, rows)
        picture = report.picture(report.observed(votes, anchoring.flagged), rstore.report_dir / "route-score.png")
        agreement = {d: (s.agree, s.judged) for d, s in state.per_domain.items()}
        text = report.markdown("Routing: human labels where the judge fails", outcome, anchoring, agreement,
                               [f"- this pull delivered {sum(p.delivered_tasks for p in pulled)} tasks "
                                f"({sum(p.delivered_labels for p in pulled)} labels) into `{folder}`"], str(picture))
        report_path = atomic_write_text(rstore.report_dir / "report.md", text + "\n")
    return PullSummary(
        queues=pulled, returned_dir=str(folder), landing_zone_listed=listed(config, folder),
        delivered_tasks=sum(p.delivered_tasks for p in pulled), delivered_labels=sum(p.delivered_labels for p in pulled),
        outcome=outcome, anchoring=anchoring, agreement={d: s.share for d, s in state.per_domain.items()}, model=model,
        report=str(report_path), picture=str(picture), store=str(store.root),
    )


def _unfinished(delivered: Delivered, folder: Path) -> bool:
    return any(d.sha256 is None or not (folder / d.file).is_file() for d in delivered.deliveries)


def _redo_unfinished(delivered: Delivered, queue: Queue, returned: ls.Returned, folder: Path, votes: pl.DataFrame) -> pl.DataFrame:
    """Finish a delivery a killed pull recorded but did not write (its file missing or its hash not recorded)."""
    start = 0
    for delivery in delivered.deliveries:
        ids = delivered.tasks[start:start + delivery.tasks]
        start += delivery.tasks
        path = folder / delivery.file
        if delivery.sha256 is not None and path.is_file():
            continue
        part = receive.only(returned, ids)
        written = part.write(path)
        delivery.sha256 = sha256_file(written)
        delivery.labels = part.frame.height
        votes = receive.merge(votes, receive.votes(part, queue, delivery.file))
    return votes
