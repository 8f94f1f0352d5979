"""CLI: `prefmix demo`, `prefmix run nightly|generate|blend`, `prefmix trigger`."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "configs" / "demo.yaml"


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="write sample data and run the nightly flow once on embedded defaults")
    demo.add_argument("--store", help="store folder (default: PREFMIX_STORE, else the demo config's)")
    demo.add_argument("--prompts", type=int, default=240, help="sample prompts to write (default 240)")
    demo.add_argument("--items", type=int, default=300, help="human items per sample shard (default 300)")
    demo.add_argument("--json", action="store_true", help="print the run summary as JSON")
    demo.set_defaults(handler=_demo)

    run = sub.add_parser("run", help="run a flow on a config")
    run_sub = run.add_subparsers(dest="flow", required=True, metavar="FLOW", parser_class=type(run))
    nightly = run_sub.add_parser("nightly", help="ingest, generate, blend, gate, publish, record")
    nightly.add_argument("--config", required=True, help="YAML config file")
    nightly.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="override a config key (repeatable)")
    nightly.add_argument("--limit", type=int, help="generate for at most N prompts")
    nightly.add_argument("--date", dest="run_date", help="run date YYYY-MM-DD (default: today, UTC)")
    nightly.add_argument("--json", action="store_true", help="print the run summary as JSON")
    nightly.set_defaults(handler=_run_nightly)


def _quiet_prefect_console() -> None:
    # The rich display owns the terminal; Prefect's own INFO lines still reach its API and the UI.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL", "WARNING")
    # The ephemeral server would try to send telemetry, which fails loudly on a closed network.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _one_line_user_errors() -> None:
    """Keep Prefect's console from echoing a user error (or a store write refused by the OS) as a traceback:
    the CLI prints it as one line."""
    import logging

    from prefmix.errors import RunAborted, UserError

    def user_error_names() -> set[str]:
        found, todo = {"RunAborted", "OSError", "PermissionError", "FileNotFoundError"}, [UserError]
        while todo:
            cls = todo.pop()
            found.add(cls.__name__)
            todo.extend(cls.__subclasses__())
        return found

    def keep(record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (UserError, RunAborted, OSError)):  # OSError: _run_flow prints it as one line
            return False
        if record.levelno >= logging.ERROR and record.name.startswith(("prefect.flow_runs", "prefect.task_runs")):
            # "Finished in state Failed('Task run encountered an exception InputError: ...')" carries no exc_info
            return not re.search(r"\b(" + "|".join(sorted(user_error_names())) + r")\b[:(]", record.getMessage())
        return True

    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and keep not in handler.filters:
            handler.addFilter(keep)
    # Prefect's event queue says "Still processing items" while it drains at exit: progress, not a problem.
    logging.getLogger("EventsWorker").setLevel(logging.ERROR)


def _run_flow(config_path: str, overrides: list[str], run_date: str | None, limit: int | None,
              as_json: bool) -> int:
    from prefmix.config import load

    load(config_path, overrides)  # a bad config fails here, before Prefect starts
    _quiet_prefect_console()
    from prefmix.flows import progress
    from prefmix.flows.nightly import nightly

    _one_line_user_errors()

    if not as_json:
        progress.install(progress.RichReporter())
    try:
        state = nightly(config_path=config_path, overrides=overrides, run_date=run_date, limit=limit,
                        return_state=True)
    finally:
        progress.install(None)
    try:
        summary = state.result()
    except OSError as exc:  # the store's disk refused a write: say where, once; nothing half-published stays current
        print(f"prefmix: failed: {exc}; the previous published batch stays latest, the next run clears what was staged",
              file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print_summary(summary)
    return 0 if summary["status"] in ("published", "overridden") else 1


def _run_nightly(args: argparse.Namespace) -> int:
    return _run_flow(args.config, args.overrides, args.run_date, args.limit, args.json)


def _demo(args: argparse.Namespace) -> int:
    import yaml

    from prefmix.annotations.samples import write_sample_shards
    from prefmix.config import load
    from prefmix.samples import write_prompts
    from prefmix.store import Store, atomic_write_text

    config = load(DEMO_CONFIG)
    store = Store.at(args.store or config.store)
    inputs = store.inputs
    write_prompts(inputs / "prompts" / "prompts.parquet", args.prompts, seed=config.seed, domains=config.domains)
    shards = write_sample_shards(inputs / "human", seed=config.seed, n_items=args.items)

    data: dict[str, Any] = yaml.safe_load(DEMO_CONFIG.read_text())
    data["store"] = str(store.root)
    data["prompts"] = [{"path": str(inputs / "prompts" / "prompts.parquet")}]
    data["human"]["shards"] = [shard.model_dump(mode="json", exclude_defaults=False) for shard in shards]
    for teacher in data.get("teachers", []):
        launch = teacher.get("launch")
        if launch and launch.get("model_dir") and not Path(launch["model_dir"]).is_absolute():
            launch["model_dir"] = str((DEMO_CONFIG.parent / launch["model_dir"]).resolve())
    config_path = inputs / "demo-config.yaml"
    atomic_write_text(config_path, yaml.safe_dump(data, sort_keys=False))
    return _run_flow(str(config_path), [], None, None, args.json)


def print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    status = summary["status"]
    colour = {"published": "green", "quarantined": "red", "overridden": "yellow"}.get(status, "white")
    console.print(f"\n[bold]batch[/] {summary['batch_id']}  [bold {colour}]{status}[/]  gate verdict: "
                  f"[bold]{summary['verdict']}[/]  rows: {summary['rows']}")
    if summary.get("failed_checks"):
        console.print(f"[red]failed checks:[/] {', '.join(summary['failed_checks'])}")

    achieved: dict[str, dict[str, int]] = summary.get("achieved") or {}
    if achieved:
        table = Table(title="rows per domain and source")
        sources = sorted({s for per in achieved.values() for s in per})
        table.add_column("domain")
        for source in sources:
            table.add_column(source, justify="right")
        table.add_column("total", justify="right")
        totals = {s: 0 for s in sources}
        for domain, per in sorted(achieved.items()):
            table.add_row(domain, *(str(per.get(s, 0)) for s in sources), str(sum(per.values())))
            for s in sources:
                totals[s] += per.get(s, 0)
        table.add_row("[bold]all", *(f"[bold]{totals[s]}" for s in sources), f"[bold]{sum(totals.values())}")
        console.print(table)

    for run in summary.get("synthetic") or []:
        rejected = ", ".join(f"{k} {v}" for k, v in (run.get("rejections") or {}).items()) or "none"
        console.print(f"synthetic: {run.get('prompts_in')} prompts -> {run.get('records')} pairs; rejected: {rejected}")
    annotation = summary.get("annotation") or {}
    if annotation:
        console.print("human agreement: " + ", ".join(f"{k} {_fmt(v)}" for k, v in annotation.items()))
    judge = summary.get("judge_human")
    if judge:
        console.print(f"judge-human agreement: {_fmt(judge.get('agreement'))} on {judge.get('judged', '?')} pairs")
    console.print(f"data:     {summary['batch_dir']}/data")
    console.print(f"manifest: {summary['manifest']}")
    for name, path in (summary.get("report") or {}).items():
        if path:
            console.print(f"{name + ':':<9} {path}")
    console.print(f"store:    {summary['store']}")


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)
