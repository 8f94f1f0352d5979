"""`prefmix blend`: run a blend on its own and print what it did."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prefmix.contract import BlendSummary


DESCRIPTION = ("Blend canonical-record Parquet by the config's ratios; prints requested vs achieved rows. "
               "Writing into the store's staging/ holds the store lock, so a nightly run cannot clear it mid-blend.")


def blend_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="prefmix YAML config")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)")
    parser.add_argument("--out", type=Path, help="output folder (default: <store>/staging/<batch id>)")
    parser.add_argument("--batch-id", help="batch id written into every row (default: blend-<UTC time>)")
    parser.add_argument(
        "--human", nargs="+", action="extend", metavar="PATH",
        help="human canonical-record Parquet files or folders (default: the config's human shards with layout 'pairs')",
    )
    parser.add_argument("--synthetic", nargs="+", action="extend", metavar="PATH", help="synthetic canonical-record Parquet files or folders")
    parser.add_argument("--store", help="store folder for the default --out; wins over PREFMIX_STORE, which wins over the config's")


def blend(args: argparse.Namespace) -> int:
    import contextlib

    from prefmix.blending.blend import blend as run_blend
    from prefmix.config import load
    from prefmix.errors import ConfigError
    from prefmix.store import Store, check_batch_id

    from prefmix.intake import concrete

    config = concrete(load(args.config, args.set))  # landing zones as the files in them now
    batch_id = args.batch_id or datetime.now(timezone.utc).strftime("blend-%Y%m%dT%H%M%SZ")
    human = args.human
    if human is None:
        other = [s.path for s in config.human.shards if s.layout != "pairs"]
        if other:
            raise ConfigError(
                f"{args.config}: human shard {other[0]} has a vendor layout; ingest it to records first and pass --human"
            )
        human = [s.path for s in config.human.shards]
    store = Store.at(args.store or config.store_root())
    out = Path(args.out) if args.out else store.staging(check_batch_id(batch_id))
    # Inside the store, staging/ is emptied by the next run's janitor under the store lock: hold it while writing.
    inside = out.resolve().is_relative_to(store.root)
    with store.lock(f"prefmix blend {batch_id}") if inside else contextlib.nullcontext():
        result = run_blend(config, human, args.synthetic or [], out, batch_id)
    print_summary(result.summary, out, result.chart)
    return 0


def print_summary(summary: "BlendSummary", out: Path, chart: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"blend {summary.batch_id}: {summary.rows} rows (a ratio is a share of output rows)")
    for column in ("domain", "source", "requested", "achieved", "available", "upsampled"):
        table.add_column(column, justify="left" if column in ("domain", "source") else "right")
    for domain, by_source in summary.requested.items():
        for source, wanted in by_source.items():
            table.add_row(
                domain,
                source,
                str(wanted),
                str(summary.achieved[domain][source]),
                str(summary.available[domain][source]),
                str(summary.upsampled[domain][source]),
            )
    console.print(table)
    dedup = summary.dedup
    console.print(
        f"dedup removed: {dedup.exact_record_id} exact record_id, {dedup.duplicate_prompt} duplicate prompt "
        f"({dedup.within_source} within a source, {dedup.cross_source} synthetic lost to human)"
    )
    excluded = {k: v for k, v in summary.excluded.items() if v}
    if excluded:
        console.print("excluded: " + ", ".join(f"{v} {k}" for k, v in excluded.items()))
    console.print(f"not sampled: {summary.not_sampled}; splits: {summary.splits['train']} train, {summary.splits['eval']} eval")
    console.print(f"shards: {out / 'data'} ({len(summary.files)} files)")
    console.print(f"chart: {out / chart}")
