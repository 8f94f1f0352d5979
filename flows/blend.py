"""The ad hoc blend flow: mix human records with finished generation runs into the store's staging.

It does not gate or publish (that is the nightly flow's job): a staged batch is
something to look at and compare ratios on. The next nightly run's janitor
clears staging/, so a staged ad hoc batch lives until then.
"""

from __future__ import annotations

import json

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from prefmix.config import Config, load
from prefmix.contract import AdhocBlendSummary
from prefmix.flows.steps import blend_batch, ingest_human, write_human_records
from prefmix.hashing import sha256_file
from prefmix.slug import slug
from prefmix.store import Store

__all__ = ["AdhocBlendSummary", "blend", "configure"]


def configure(config_path: str, overrides: list[str] | None, ratios: dict[str, float] | None) -> Config:
    """Config file + overrides; `ratios` replaces blend.ratios (validated like the file's)."""
    extra = [f"blend.ratios={json.dumps(ratios)}"] if ratios else []
    from prefmix.intake import concrete

    return concrete(load(config_path, [*(overrides or []), *extra]))  # landing zones as the files in them now


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    ratios = params.get("ratios") or {}
    mix = "-".join(f"{k}{round(v * 100)}" for k, v in sorted(ratios.items())) or "config"
    return f"blend-{params.get('batch_id') or mix}"


@flow(name="blend", flow_run_name=_flow_run_name, log_prints=True, validate_parameters=True)
def blend(config_path: str, overrides: list[str] | None = None, ratios: dict[str, float] | None = None,
          batch_id: str | None = None, runs: list[str] | None = None) -> AdhocBlendSummary:
    """Blend the config's human shards with finished generation runs into staging/<batch_id>."""
    from prefmix.generators.run import finished_record_files
    from prefmix.lineage.batch import adhoc_batch_id

    logger = get_run_logger()
    config = configure(config_path, overrides, ratios)
    store = Store.at(config.store_root())
    human = ingest_human(config)
    synthetic = finished_record_files(store, runs)
    with store.lock("blend"):
        human_file = write_human_records(store, "adhoc-human", human.records)
        batch_id = batch_id or adhoc_batch_id(config, [sha256_file(f) for f in [human_file, *synthetic]])
        staged, result = blend_batch(config, store, batch_id, [human_file], synthetic)
    summary = AdhocBlendSummary(batch_id=batch_id, staged=str(staged), rows=result.rows, ratios=config.blend.ratios,
                                achieved=result.summary.achieved, human_file=human_file, synthetic_files=len(synthetic),
                                store=str(store.root))
    logger.info("blend %s: %s rows staged at %s", batch_id, result.rows, staged)
    _summary_artifact(summary)
    return summary


def _summary_artifact(summary: AdhocBlendSummary) -> None:
    sources = sorted({s for per in summary.achieved.values() for s in per})
    lines = [
        f"# Blend `{summary.batch_id}` (staged, not gated)",
        "",
        f"- rows: **{summary.rows}**",
        f"- ratios asked: {', '.join(f'{k} {v:g}' for k, v in sorted(summary.ratios.items()))}",
        f"- synthetic record files: {summary.synthetic_files}",
        f"- staged at: `{summary.staged}`",
        "",
    ]
    if summary.achieved:
        lines += ["| domain | " + " | ".join(sources) + " |", "|---|" + "---|" * len(sources)]
        lines += [f"| {d} | " + " | ".join(str(per.get(s, 0)) for s in sources) + " |" for d, per in sorted(summary.achieved.items())]
    create_markdown_artifact("\n".join(lines), key=slug(f"blend-{summary.batch_id}"), description=f"ad hoc blend {summary.batch_id}")
