"""The Great Expectations side of the gate: one suite, one validation, Data Docs.

Every check is computed by validators/metrics.py and handed to GX as one
column of a one-row metrics frame; each check is then one
`ExpectGateMetricToBeBetween` (a GX custom expectation: a between-check bound to
a named gate metric, carrying the check's severity) so the whole gate is one GX
validation result. The import and the ephemeral context are paid once per process.
"""

from __future__ import annotations

import functools
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

from prefmix.validators.metrics import Measure

_LOCK = threading.Lock()
SUITE_PREFIX = "prefmix-gate"


@functools.cache
def _gx() -> Any:
    """Import GX once (3-4 s) and define the custom expectation."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    class ExpectGateMetricToBeBetween(gxe.ExpectColumnValuesToBeBetween):
        """A prefmix gate check: the batch metric in `column` lies within [min_value, max_value].

        The metric is computed over the whole batch (Polars) and handed over as one
        value; a missing value means the check does not apply to this batch.
        """

        description: str | None = "prefmix gate check"

    gx.ExpectGateMetricToBeBetween = ExpectGateMetricToBeBetween  # type: ignore[attr-defined]
    return gx


@functools.cache
def _context() -> tuple[Any, Any]:
    """The process-wide ephemeral context and its whole-dataframe batch definition."""
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no tqdm noise in CLI/flow logs
    asset = context.data_sources.add_pandas(name="prefmix").add_dataframe_asset(name="gate_metrics")
    return context, asset.add_batch_definition_whole_dataframe("batch")


def validate(measures: list[Measure], severities: dict[str, str], batch_id: str) -> dict[str, Any]:
    """Run one GX validation over the measures; returns the result as a JSON-able dict plus its ids."""
    import pandas as pd
    from great_expectations.expectations.metadata_types import FailureSeverity

    gx = _gx()
    level = {"critical": FailureSeverity.CRITICAL, "warning": FailureSeverity.WARNING}
    active = [m for m in measures if severities[m.name] != "off"]
    frame = pd.DataFrame({m.name: pd.Series([m.value], dtype="float64") for m in active})
    with _LOCK:
        context, batch_definition = _context()
        suite = gx.ExpectationSuite(name=f"{SUITE_PREFIX}-{_safe(batch_id)}-{uuid.uuid4().hex[:8]}")
        for m in active:
            suite.add_expectation(
                gx.ExpectGateMetricToBeBetween(
                    column=m.name,
                    min_value=m.min_value,
                    max_value=m.max_value,
                    severity=level[severities[m.name]],
                    description=f"{m.name} ({severities[m.name]}): {m.description}",
                    meta={"check": m.name, "gate_severity": severities[m.name]},
                )
            )
        suite = context.suites.add(suite)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=suite.name, data=batch_definition, suite=suite)
        )
        result = definition.run(batch_parameters={"dataframe": frame}, result_format={"result_format": "SUMMARY"})
        return {"result": result, "suite": suite, "definition": definition}


def by_check(run: dict[str, Any]) -> dict[str, bool]:
    """check name -> success, read back from the GX validation result."""
    return {r.expectation_config.meta["check"]: bool(r.success) for r in run["result"].results}


def result_json(run: dict[str, Any]) -> dict[str, Any]:
    return run["result"].to_json_dict()


def build_docs(run: dict[str, Any], target: Path) -> Path | None:
    """Render Data Docs for this validation into target/ (replaced atomically); returns index.html."""
    context, _ = _context()
    site = f"prefmix_{uuid.uuid4().hex[:8]}"
    tmp = target.parent / f".{target.name}.{site}.tmp"
    with _LOCK:
        context.add_data_docs_site(
            site,
            {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(tmp)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        try:
            context.build_data_docs(site_names=[site])
        finally:
            context.delete_data_docs_site(site)
            _forget(context, run)
    index = tmp / "index.html"
    if not index.exists():
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    old = target.parent / f".{target.name}.old.{site}"
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target / "index.html"


def forget(run: dict[str, Any]) -> None:
    """Drop this run's suite, definition and result from the context (docs not wanted)."""
    context, _ = _context()
    with _LOCK:
        _forget(context, run)


def _forget(context: Any, run: dict[str, Any]) -> None:
    # The ephemeral stores would otherwise grow with every batch gated in this process,
    # and every later Data Docs index would list earlier batches.
    store = context.validation_results_store
    for key in store.list_keys():
        if key.expectation_suite_identifier.name == run["suite"].name:
            store.remove_key(key)
    context.validation_definitions.delete(run["definition"].name)
    context.suites.delete(run["suite"].name)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)[:60]
