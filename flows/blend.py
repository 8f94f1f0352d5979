"""The ad hoc blend flow: mix human records with finished generation runs into the store's staging.

It does not gate or publish (that is the nightly flow's job): a staged batch is
something to look at and compare ratios on. The next nightly run's janitor
clears staging/, so a staged ad hoc batch lives until then.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from prefmix.flows.steps import blend_batch, ingest_human, write_human_records
from prefmix.config import Config, load
from prefmix.errors import InputError
from prefmix.store import Store, sha256_file


def configure(config_path: str, overrides: list[str] | None, ratios: dict[str, float] | None) -> Config:
    """Config file + overrides; `ratios` replaces blend.ratios (validated like the file's)."""
    extra = [f"blend.ratios={json.dumps(ratios)}"] if ratios else []
    return load(config_path, [*(overrides or []), *extra])


def synthetic_files(store: Store, runs: list[str] | None) -> list[str]:
    """Record files of the named generation runs, or of every finished run (one with summary.json)."""
    base = store.root / "runs"
    if runs is None:
        names = sorted(p.parent.name for p in base.glob("*/summary.json")) if base.is_dir() else []
    else:
        names = list(runs)
        for name in names:
            if not (base / name / "summary.json").exists():
                raise InputError(f"run {name!r}: no finished generation run at {base / name} (summary.json missing)")
    return [str(p) for name in names for p in sorted((base / name / "chunks").glob("chunk-*.parquet"))]


def default_batch_id(config: Config, files: list[str]) -> str:
    payload = json.dumps({"blend": config.blend.model_dump(mode="json"), "seed": config.seed,
                          "inputs": sorted(sha256_file(f) for f in files)}, sort_keys=True)
    day = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d")
    return f"adhoc-{day}-{hashlib.sha256(payload.encode()).hexdigest()[:10]}"


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    ratios = params.get("ratios") or {}
    mix = "-".join(f"{k}{round(v * 100)}" for k, v in sorted(ratios.items())) or "config"
    return f"blend-{params.get('batch_id') or mix}"


@flow(name="blend", flow_run_name=_flow_run_name, log_prints=True, validate_parameters=True)
def blend(config_path: str, overrides: list[str] | None = None, ratios: dict[str, float] | None = None,
          batch_id: str | None = None, runs: list[str] | None = None) -> dict[str, Any]:
    """Blend the config's human shards with finished generation runs into staging/<batch_id>."""
    logger = get_run_logger()
    config = configure(config_path, overrides, ratios)
    store = Store.at(config.store)
    human = ingest_human(config)
    synthetic = synthetic_files(store, runs)
    with store.lock("blend"):
        human_file = write_human_records(store, "adhoc-human", human.records)
        batch_id = batch_id or default_batch_id(config, [human_file, *synthetic])
        staged, result = blend_batch(config, store, batch_id, [human_file], synthetic)
    summary = {
        "batch_id": batch_id,
        "staged": str(staged),
        "rows": result.rows,
        "ratios": config.blend.ratios,
        "achieved": result.summary.get("achieved"),
        "human_file": human_file,
        "synthetic_files": len(synthetic),
        "store": str(store.root),
    }
    logger.info("blend %s: %s rows staged at %s", batch_id, result.rows, staged)
    _summary_artifact(summary)
    return summary


def _summary_artifact(summary: dict[str, Any]) -> None:
    achieved: dict[str, dict[str, int]] = summary.get("achieved") or {}
    sources = sorted({s for per in achieved.values() for s in per})
    lines = [
        f"# Blend `{summary['batch_id']}` (staged, not gated)",
        "",
        f"- rows: **{summary['rows']}**",
        f"- ratios asked: {', '.join(f'{k} {v:g}' for k, v in sorted(summary['ratios'].items()))}",
        f"- synthetic record files: {summary['synthetic_files']}",
        f"- staged at: `{summary['staged']}`",
        "",
    ]
    if achieved:
        lines += ["| domain | " + " | ".join(sources) + " |", "|---|" + "---|" * len(sources)]
        lines += [f"| {d} | " + " | ".join(str(per.get(s, 0)) for s in sources) + " |" for d, per in sorted(achieved.items())]
    key = "blend-" + "".join(c if c.isalnum() else "-" for c in summary["batch_id"].lower())
    create_markdown_artifact("\n".join(lines), key=key[:100], description=f"ad hoc blend {summary['batch_id']}")

