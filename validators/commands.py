"""CLI: `prefmix gate BATCH` re-runs the gate on a staged or quarantined batch."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def gate_arguments(gate: argparse.ArgumentParser) -> None:
    from prefmix.context import STORE_HELP

    gate.add_argument("batch", metavar="BATCH", help="batch id")
    gate.add_argument("--config", help="YAML config (default: the config recorded in the batch manifest)")
    gate.add_argument("--store", help=STORE_HELP)
    gate.add_argument("--json", action="store_true", help="print the gate result as JSON")


def _manifest(path: Path) -> dict[str, Any]:
    from prefmix.errors import InputError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable manifest ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def _locate(args: argparse.Namespace) -> tuple[Any, Path]:
    """The config and the batch directory: --config wins, else the manifest's recorded config."""
    from prefmix.config import Config, load, parse
    from prefmix.errors import InputError

    from prefmix.context import resolve

    config: Config | None = load(args.config) if args.config else None
    store = resolve(args.store, args.config).store.require()
    batch_dir = store.find_batch(args.batch)
    if batch_dir is None:
        raise InputError(f"{store.root}: no batch {args.batch!r} in batches/, quarantine/ or staging/")
    if batch_dir == store.batch_dir(args.batch):
        # A published batch is immutable (its manifest hashes its files); re-gating would rewrite its report.
        raise InputError(f"{batch_dir}: batch {args.batch!r} is published; prefmix gate re-runs staged or quarantined batches")
    if config is None:
        manifest_path = batch_dir / "manifest.json"
        recorded = _manifest(manifest_path).get("config")
        if recorded is None:
            raise InputError(f"{manifest_path}: has no 'config'; pass --config FILE")
        config = parse(recorded, f"{manifest_path}:config")
    return config, batch_dir


def gate(args: argparse.Namespace) -> int:
    config, batch_dir = _locate(args)
    from prefmix.validators.gate import run_gate

    result = run_gate(config, batch_dir)
    if args.json:
        print(json.dumps(result.model_dump(mode="json"), indent=2))
    else:
        _print(result, batch_dir)
    return 1 if result.verdict == "fail" else 0


def _print(result: Any, batch_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"gate: {batch_dir.name} ({batch_dir.parent.name})")
    for column in ("check", "severity", "result", "observed", "expected"):
        table.add_column(column, overflow="fold")
    for c in result.checks:
        observed = json.dumps(c.observed, default=str)
        status = "[green]ok[/]" if c.success else ("[red]FAILED[/]" if c.severity == "critical" else "[yellow]FAILED[/]")
        table.add_row(c.name, c.severity, status, observed if len(observed) <= 60 else observed[:57] + "...", c.expected)
    console = Console()
    console.print(table)
    colour = {"pass": "green", "warn": "yellow", "fail": "red"}[result.verdict]
    console.print(f"verdict: [bold {colour}]{result.verdict}[/]")
    for name in [*result.failed_critical, *result.failed_warning]:
        console.print(f"  {result.check(name).message}")
    if result.report.html:
        console.print(f"report: {result.report.html}")
    if result.report.data_docs:
        console.print(f"Data Docs: {result.report.data_docs}")
    console.print(f"summary: {result.report.summary_png}")
