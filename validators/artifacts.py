"""Prefect artifacts for a gate verdict: a markdown summary and a table of failed checks."""

from __future__ import annotations

import json

from prefmix.contract import GateResult
from prefmix.slug import slug


def artifact_key(prefix: str, batch_id: str) -> str:
    """Prefect keys allow lowercase letters, digits and dashes only."""
    return slug(f"{prefix}-{batch_id}")


def summary_markdown(result: GateResult, batch_id: str) -> str:
    icon = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}[result.verdict]
    lines = [
        f"# Gate {icon}: batch `{batch_id}`",
        "",
        f"- checks run: {len(result.checks)}",
        f"- failed critical: {', '.join(result.failed_critical) or 'none'}",
        f"- failed warning: {', '.join(result.failed_warning) or 'none'}",
        f"- batch report: {result.report.html or 'not written'}",
        f"- Data Docs: {result.report.data_docs or 'not built'}",
        f"- summary plot: {result.report.summary_png}",
        "",
        "| check | severity | result | observed | expected |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in result.checks:
        observed = json.dumps(c.observed, default=str)
        observed = observed if len(observed) <= 80 else observed[:77] + "..."
        lines.append(f"| {c.name} | {c.severity} | {'ok' if c.success else 'FAILED'} | {observed} | {c.expected} |")
    return "\n".join(lines) + "\n"


def failed_table(result: GateResult) -> list[dict[str, str]]:
    return [
        {"check": c.name, "severity": c.severity, "observed": json.dumps(c.observed, default=str), "expected": c.expected,
         "message": c.message}
        for c in result.checks
        if not c.success
    ]


def gate_artifacts(result: GateResult, batch_id: str) -> None:
    """Publish the verdict as Prefect artifacts; does nothing outside a flow or task run."""
    from prefect.context import FlowRunContext, TaskRunContext

    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    create_markdown_artifact(
        summary_markdown(result, batch_id), key=artifact_key("gate", batch_id), description=f"gate verdict: {result.verdict}"
    )
    # An empty table is still recorded so every gated batch has one ("no failed checks").
    rows = failed_table(result) or [{"check": "none", "severity": "", "observed": "", "expected": "", "message": "no failed checks"}]
    create_table_artifact(rows, key=artifact_key("gate-failed", batch_id), description="failed gate checks")
