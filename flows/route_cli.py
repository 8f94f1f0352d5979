"""`prefmix route [queue]` and `prefmix route pull`: one command whose first word says which (queue by default),
run here through flows.runner (one-line errors: exit 2 for input/config, 3 for an unreachable labeling tool)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from prefmix.argtypes import amount, count, share
from prefmix.errors import UserError

HELP = "send the synthetic pairs where the judge is doubtful to people (queue), or take their answers back (pull)"
DESCRIPTION = """\
prefmix route [queue] --config F [--budget N | --budget-share S | --budget-money M] [--to label-studio [URL]] [--out DIR]
    Plans the next labeling queue: scores every synthetic pair not yet routed (judge disagreement, order flips,
    margins, length ratio, the domain's judge-vs-human agreement), sets aside pairs a check can verify, and picks
    tasks under the budget (N tasks, a share S of the candidates, or money M at routing.prices) with the
    per-domain minimum, the gold share and k annotators per task of the config's `routing:` section. --to pushes
    it to a Label Studio server (token from the environment or a Prefect Secret block), --out writes Label
    Studio tasks JSON and an Argilla v2 dataset into DIR; with neither it is a dry run (nothing written).

prefmix route pull --config F [--queue ID] [--export FILE] [--partial]
    Takes the answers of every open queue back from Label Studio (or from an export file), writes the newly
    completed tasks as a judgments shard into the landing zone the nightly reads (routing.returned, default
    <store>/routing/returned), and updates what routing learned (per-domain and per-signal agreement, the
    anchoring check). List that folder in human.shards:  {glob: "<store>/routing/returned/*.parquet",
    layout: judgments, vendor: label-studio}.
"""

QUEUE_ONLY = ("budget", "budget_share", "budget_money", "to", "out")
PULL_ONLY = ("queue_id", "export", "partial")


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("action", nargs="?", choices=["queue", "pull"], default="queue",
                        help="queue: plan and send the next queue (default); pull: take answers back")
    parser.add_argument("--config", required=True, help="YAML config file (its routing: section)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key (repeatable), value parsed as YAML")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--budget", type=count, metavar="N", help="queue: N tasks (gold included)")
    budget.add_argument("--budget-share", type=share, metavar="S", help="queue: a share S of the candidate pairs")
    budget.add_argument("--budget-money", type=amount, metavar="M", help="queue: labels costing at most M (routing.prices)")
    parser.add_argument("--to", nargs="+", metavar=("TOOL", "URL"), help="queue: push to `label-studio [URL]` (default URL: routing.label_studio.url)")
    parser.add_argument("--out", metavar="DIR", help="queue: write label-studio-tasks.json and argilla/ into DIR")
    parser.add_argument("--queue", dest="queue_id", metavar="ID", help="pull: only this queue (default: every open one)")
    parser.add_argument("--export", metavar="FILE", help="pull: read a Label Studio JSON export instead of the server")
    parser.add_argument("--url", help="pull: the Label Studio URL (default: where the queue was pushed)")
    parser.add_argument("--partial", action="store_true", help="pull: deliver tasks with fewer than k answers too (they close)")
    parser.add_argument("--json", action="store_true", help="print the summary as one line of JSON")


def _given(args: argparse.Namespace, name: str) -> bool:
    value = getattr(args, name)
    return value not in (None, False)


def handler(args: argparse.Namespace) -> int:
    wrong = PULL_ONLY if args.action == "queue" else QUEUE_ONLY
    for name in wrong:
        if _given(args, name):
            flag = "--" + {"queue_id": "queue"}.get(name, name).replace("_", "-")
            raise UserError(f"prefmix route {args.action}: {flag} belongs to `prefmix route {'pull' if args.action == 'queue' else 'queue'}`")
    to, url = None, args.url
    if args.to:
        if len(args.to) > 2:
            raise UserError("--to: expected TOOL [URL], e.g. --to label-studio http://127.0.0.1:8080")
        to = args.to[0]
        url = args.to[1] if len(args.to) == 2 else None

    from prefmix.flows import runner

    runner.quiet_prefect()
    from prefmix.flows.route import PullSummary, RouteSummary, configure, preflight, route

    config = configure(args.config, args.overrides, args.budget, args.budget_share, args.budget_money)  # before Prefect starts
    preflight(config, args.action, to, url, args.out, args.export, args.queue_id)
    params: dict[str, Any] = {"config_path": args.config, "overrides": args.overrides, "action": args.action,
                              "budget": args.budget, "budget_share": args.budget_share, "budget_money": args.budget_money,
                              "to": to, "url": url, "out": args.out, "queue_id": args.queue_id, "export": args.export,
                              "partial": args.partial}
    result = PullSummary if args.action == "pull" else RouteSummary
    summary = runner.run(route, params, result, show_progress=False)
    if args.json:
        print(json.dumps(summary.model_dump(mode="json"), separators=(",", ":"), default=str))
    elif isinstance(summary, PullSummary):
        print_pull(summary)
    else:
        print_queue(summary)
    return 0


def print_queue(s: Any) -> None:
    print(f"queue {s.queue_id}: {s.tasks} tasks ({s.routed} routed, {s.gold} gold, {s.hidden} without the judge's suggestion), "
          f"k={s.annotators} -> {s.labels} labels, cost {s.cost:g} ({s.vendor})")
    print(f"candidates: {s.candidates} synthetic pairs, {s.already_routed} already routed, "
          f"{sum(s.to_check.values())} to checks, {s.not_routable} not routable")
    if s.per_domain:
        print("per domain: " + ", ".join(f"{d} {p.tasks} ({p.gold} gold)" for d, p in sorted(s.per_domain.items())))
    if s.reasons:
        print("reasons: " + ", ".join(f"{r} {n}" for r, n in sorted(s.reasons.items(), key=lambda kv: (-kv[1], kv[0]))))
    print(f"expected judge errors found: {s.expected_errors:.1f}; model fitted on {s.model.fitted_on} returned labels")
    if s.short_of_candidates:
        print(f"note: the budget allowed {s.requested_tasks} tasks; there were candidates for {s.tasks}")
    if s.minimum_shortfall:
        print("note: per-domain minimum not met for want of candidates: " + ", ".join(f"{d} short {n}" for d, n in sorted(s.minimum_shortfall.items())))
    if s.dry_run:
        print("dry run: nothing sent or recorded (--to label-studio [URL] or --out DIR sends)")
    if s.pushed:
        print(f"sent: Label Studio project {s.pushed.project_id} ({s.pushed.project_title!r}) at {s.pushed.url}: "
              f"{s.pushed.imported} new tasks, {s.pushed.already_there} already there")
    if s.files:
        print(f"files: {s.files}/label-studio-tasks.json, {s.files}/argilla/")
    if s.queue_dir:
        print(f"queue: {s.queue_dir}")


def print_pull(s: Any) -> None:
    for q in s.queues:
        c = q.counts
        print(f"pulled {q.queue_id}: {c.get('tasks', 0)} tasks, {c.get('annotations', 0)} annotations ({c.get('submitted', 0)} submitted, "
              f"{c.get('skipped', 0)} skipped, {c.get('cancelled', 0)} cancelled, {c.get('no_choice', 0)} without a choice); "
              f"delivered {q.delivered_tasks} tasks ({q.delivered_labels} labels){' -> ' + q.shard if q.shard else ''}; "
              f"{q.waiting_tasks} waiting")
    if not s.queues:
        print("no open queue had answers to pull")
    o = s.outcome
    per_label = "n/a" if o.errors_per_label is None else f"{o.errors_per_label:.3f}"
    print(f"to date: {o.labels} labels, spend {o.spend:g}, judge errors found {o.judge_errors} ({per_label} per label)")
    a = s.anchoring
    print(f"anchoring: agreement with the judge {_pct(a.shown.share)} shown vs {_pct(a.hidden.share)} hidden; "
          f"flagged: {', '.join(a.flagged) or 'none'}")
    print(f"report: {s.report}")
    print(f"picture: {s.picture}")
    if not s.landing_zone_listed:
        print(f"warning: {s.returned_dir} is not a landing zone of human.shards; add "
              f"{{glob: \"{s.returned_dir}/*.parquet\", layout: judgments, vendor: label-studio}}", file=sys.stderr)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
