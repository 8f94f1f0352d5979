"""The Great Expectations side of the gate: one suite, one validation, Data Docs.

Every prefmix check is computed by validators/metrics.py, content.py and overlap.py and handed to GX as an
`ExpectGateMetricToBeBetween` (a GX custom batch expectation carrying the measured value, its bounds and
the check's severity); the team's own expectations (validators/suites.py) go into the same suite and GX
evaluates them on the batch's rows. So the whole gate is one GX validation result and one Data Docs page.
The import and the ephemeral context are paid once per process.
"""

from __future__ import annotations

import functools
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

from prefmix.validators.measure import Measure
from prefmix.validators.suites import UserCheck, _gx_fields

_LOCK = threading.Lock()
SUITE_PREFIX = "prefmix-gate"


@functools.cache
def _gx() -> Any:
    """Import GX once (3-4 s) and define the custom expectation."""
    from typing import ClassVar, Optional, Tuple

    import great_expectations as gx
    from great_expectations.expectations.expectation import BatchExpectation

    class ExpectGateMetricToBeBetween(BatchExpectation):
        """A prefmix gate check: the batch metric `metric` (measured over the whole batch by prefmix, with
        Polars) lies within [min_value, max_value]; a missing value means the check does not apply."""

        metric: str
        observed: Optional[float] = None
        min_value: Optional[float] = None
        max_value: Optional[float] = None
        description: Optional[str] = "prefmix gate check"

        metric_dependencies: ClassVar[Tuple[str, ...]] = ("table.row_count",)
        success_keys: ClassVar[Tuple[str, ...]] = ("metric", "observed", "min_value", "max_value")

        def _validate(self, metrics: dict, runtime_configuration: Optional[dict] = None,
                      execution_engine: Any = None) -> dict:
            value = self.observed
            ok = value is None or (
                (self.min_value is None or value >= self.min_value) and (self.max_value is None or value <= self.max_value)
            )
            return {"success": ok, "result": {"observed_value": value}}

    # This module's annotations are strings (from __future__); GX's pydantic v1 models need them resolved.
    ExpectGateMetricToBeBetween.update_forward_refs(Optional=Optional, Any=Any, Tuple=Tuple, ClassVar=ClassVar)
    gx.ExpectGateMetricToBeBetween = ExpectGateMetricToBeBetween  # type: ignore[attr-defined]
    return gx


@functools.cache
def _context() -> tuple[Any, Any]:
    """The process-wide ephemeral context and its whole-dataframe batch definition."""
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no tqdm noise in CLI/flow logs
    asset = context.data_sources.add_pandas(name="prefmix").add_dataframe_asset(name="rows")
    return context, asset.add_batch_definition_whole_dataframe("batch")


def validate(measures: list[Measure], severities: dict[str, str], batch_id: str,
             user: list[UserCheck] | None = None, rows: Any = None, samples: int = 5) -> dict[str, Any]:
    """Run one GX validation: prefmix's measures and the user's expectations (on `rows`, a pandas frame of the
    batch, needed only when there are user expectations); returns the result and its suite/definition."""
    import pandas as pd
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    from great_expectations.expectations.metadata_types import FailureSeverity

    gx = _gx()
    level = {"critical": FailureSeverity.CRITICAL, "warning": FailureSeverity.WARNING}
    active = [m for m in measures if severities[m.name] != "off"]
    user = user or []
    frame = rows if user else pd.DataFrame({"batch": [batch_id]})
    with _LOCK:
        context, batch_definition = _context()
        suite = gx.ExpectationSuite(name=f"{SUITE_PREFIX}-{_safe(batch_id)}-{uuid.uuid4().hex[:8]}")
        for m in active:
            suite.add_expectation(
                gx.ExpectGateMetricToBeBetween(
                    metric=m.name,
                    observed=None if m.value is None else float(m.value),
                    min_value=m.min_value,
                    max_value=m.max_value,
                    severity=level[severities[m.name]],
                    description=f"{m.name} ({severities[m.name]}): {m.description}",
                    meta={"check": m.name, "gate_severity": severities[m.name]},
                )
            )
        for u in user:
            fields = _gx_fields(u.expectation)
            fields["meta"] = {**fields.get("meta", {}), "check": u.name, "gate_severity": u.severity, "suite": u.suite}
            fields["severity"] = level[u.severity].value
            fields.pop("id", None)  # ids belong to the team's suite; this run's suite gets its own
            suite.add_expectation(ExpectationConfiguration(**fields).to_domain_obj())
        suite = context.suites.add(suite)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=suite.name, data=batch_definition, suite=suite)
        )
        result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": max(20, samples)}
        if user and "record_id" in frame.columns:
            result_format["unexpected_index_column_names"] = ["record_id"]
        result = definition.run(batch_parameters={"dataframe": frame}, result_format=result_format)
        return {"result": result, "suite": suite, "definition": definition}


def user_results(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """check name -> GX result dict (unexpected counts and samples) of each user expectation."""
    return {
        r.expectation_config.meta["check"]: r.to_json_dict()
        for r in run["result"].results
        if r.expectation_config.meta.get("suite") is not None
    }


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
