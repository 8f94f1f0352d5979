"""`prefmix annotations report SHARD... [--json] [--layout L] [--config FILE] [--out DIR]`."""

from __future__ import annotations

import argparse
from typing import Any

LAYOUT_CHOICES = ("auto", "pairs", "rankings", "judgments")


REPORT_DESCRIPTION = ("Read, validate and aggregate human shards; print agreement, calibration and exclusions, "
                      "and save a PNG of per-annotator gold accuracy. Rows are numbered from 0 (the origin_row of a record).")


def report_arguments(report: argparse.ArgumentParser) -> None:
    report.add_argument("shards", nargs="*", metavar="SHARD", help="Parquet shard(s); default: the config's human.shards")
    report.add_argument("--json", action="store_true", help="print the statistics as JSON instead of tables")
    report.add_argument("--layout", choices=LAYOUT_CHOICES, default="auto", help="layout of SHARDs not in the config (auto: by column names)")
    report.add_argument("--vendor", default="unknown", help="vendor name for SHARDs not in the config")
    report.add_argument("--config", metavar="FILE", help="prefmix YAML config (domains, aggregation policy, shard column mappings)")
    report.add_argument("--out", metavar="DIR", default=".", help="folder for annotator_accuracy.png (default: current folder)")


def _shards(args: argparse.Namespace, config: Any) -> list[Any]:
    from pathlib import Path

    import pyarrow.parquet as pq

    from prefmix.annotations.readers import detect_layout
    from prefmix.config import HumanShard
    from prefmix.errors import ConfigError

    configured = {str(Path(s.path).resolve()): s for s in config.human.shards}
    if not args.shards:
        if not configured:
            raise ConfigError("annotations report: give SHARD paths or a --config with human.shards")
        return list(config.human.shards)
    chosen = []
    for path in args.shards:
        known = configured.get(str(Path(path).resolve()))
        if known is not None:
            chosen.append(known)
            continue
        layout = args.layout
        if layout == "auto":
            try:
                layout = detect_layout(pq.read_schema(path).names)
            except Exception:  # unreadable files get their one-line error from the reader
                layout = "pairs"
        chosen.append(HumanShard(path=path, layout=layout, vendor=args.vendor))
    return chosen


def report(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from rich.console import Console

    from prefmix.annotations.ingest import ingest_shards
    from prefmix.annotations.report import plot_accuracy, render
    from prefmix.config import Config, load

    from prefmix.errors import UserError

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: --out must be a folder, found a file")
    from prefmix.intake import concrete

    config = concrete(load(args.config)) if args.config else Config()  # landing zones as the files in them now
    result = ingest_shards(_shards(args, config), config.domains, config.human.aggregation)
    chart = plot_accuracy(result.stats, out)
    if args.json:
        inputs = [i.model_dump(mode="json", exclude={"role", "run_id"}) for i in result.inputs]
        print(json.dumps({**result.stats, "inputs": inputs, "chart": str(chart) if chart else None}, indent=2, default=str))
        return 0
    console = Console()
    render(result.stats, console)
    console.print(f"Chart of per-annotator accuracy saved to {chart}" if chart else "No chart: no annotator judged a gold item.")
    return 0
