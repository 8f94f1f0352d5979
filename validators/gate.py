"""run_gate: measure a staged batch, validate it with GX, decide, and write the report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from prefmix.config import Config
from prefmix.contract import GateCheck, GateFacts, GateReport, GateResult
from prefmix.store import atomic_write_json
from prefmix.validators import metrics, policy, report, suite


def run_gate(config: Config, batch_dir: Path, facts: GateFacts | None = None) -> GateResult:
    """Gate the batch in batch_dir; reports go to batch_dir/report/. Raises InputError on unreadable data."""
    batch_dir = Path(batch_dir)
    facts = facts or GateFacts()
    severities = policy.severities(config.gate)
    batch = metrics.read_batch(batch_dir, with_annotation=facts.human_agreement is None)
    measures = metrics.measure(config, batch, facts.human_agreement, facts.judge_human)

    run = suite.validate(measures, severities, batch_dir.name)
    success = suite.by_check(run)
    checks = [
        GateCheck(
            name=m.name,
            severity=severities[m.name],  # type: ignore[arg-type]
            success=success[m.name],
            observed=_plain(m.observed),
            expected=m.expected,
            message=_message(m, success[m.name]),
        )
        for m in measures
        if severities[m.name] != "off"
    ]
    verdict, failed_critical, failed_warning = policy.decide(checks)

    out = batch_dir / "report"
    validation_json = atomic_write_json(out / "validation.json", suite.result_json(run))
    if config.gate.data_docs:
        docs = suite.build_docs(run, out / "gx")
    else:
        suite.forget(run)
        docs = None
    png = report.summary_png(batch.frame, out / "summary.png", f"{batch_dir.name}: {verdict}")
    return GateResult(
        verdict=verdict,
        checks=checks,
        failed_critical=failed_critical,
        failed_warning=failed_warning,
        report=GateReport(data_docs=str(docs) if docs else None, summary_png=str(png), validation_json=str(validation_json)),
    )


def _message(m: metrics.Measure, success: bool) -> str:
    value = "n/a" if m.value is None else f"{m.value:g}"
    head = f"{m.name}: {'ok' if success else 'FAILED'}, observed {value}, expected {m.expected}"
    return f"{head} ({m.note})" if m.note else head


def _plain(value: Any) -> Any:
    """JSON-safe observed values (no NaN/inf, plain numbers)."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


from prefmix.validators.artifacts import gate_artifacts  # noqa: E402  (re-exported: flows call validators.gate.gate_artifacts)

Check = GateCheck  # the name the gate's tests and docs use
__all__ = ["Check", "GateFacts", "GateReport", "GateResult", "gate_artifacts", "run_gate"]
