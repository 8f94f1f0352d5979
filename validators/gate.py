"""run_gate: measure a staged batch, validate it with GX, decide, and write the report."""

from __future__ import annotations

import contextlib
import gc
import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

from prefmix.config import Config
from prefmix.contract import GateCheck, GateFacts, GateReport, GateResult
from prefmix.store import atomic_write_json
from prefmix.validators import agent, html, metrics, overlap, policy, report, suite, suites
from prefmix.validators.earlier import earlier_batches
from prefmix.validators.measure import excerpt

OVERLAP = {"near_duplicates", "contamination"}


def run_gate(config: Config, batch_dir: Path, facts: GateFacts | None = None) -> GateResult:
    """Gate the batch in batch_dir; reports go to batch_dir/report/. Raises InputError on unreadable data."""
    with _collector_paused():
        return _run_gate(config, batch_dir, facts)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off while the gate runs: its full passes walk every object of the process
    (Great Expectations' modules hold millions), 7% of the gate's CPU on 1M rows, while the gate's own
    data lives in Arrow and numpy buffers it never needed to walk. Cycles made meanwhile are collected
    after."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _run_gate(config: Config, batch_dir: Path, facts: GateFacts | None) -> GateResult:
    batch_dir = Path(batch_dir)
    facts = facts or GateFacts()
    severities = policy.severities(config.gate)
    active = {name for name, level in severities.items() if level != "off"}
    user = suites.load(config.gate) if config.gate.suites else []
    keep = config.gate.samples
    batch = metrics.read_batch(batch_dir, with_annotation=facts.human_agreement is None)
    out = batch_dir / "report"
    # The overlap checks (tokenising every prompt: the longest step) run beside the row and agent checks and
    # the summary figure, and the prompt sketch they leave is written beside validation and the report;
    # measures and errors come in the order the steps are listed.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefmix-gate") as side:
        near = side.submit(overlap.measure, batch.frame, config.gate, batch_dir, keep, active) if active & OVERLAP else None
        sketch = side.submit(lambda: overlap.write_sketch(near.result()[1], out / overlap.SKETCH)) if near is not None else None
        measures = metrics.measure(config, batch, facts.human_agreement, facts.judge_human, active)
        try:
            agent_measures = []
            if active & set(agent.CHECKS):
                earlier = earlier_batches(batch_dir) if "task_group_split" in active else []
                agent_measures = agent.measure(config, batch.files, earlier, keep, active)
        except Exception:
            if near is not None:
                near.result()  # an overlap error comes first, as it would have without the thread
            raise
        try:  # the summary figure while the overlap checks finish; a failure surfaces where the PNG is written
            figure: Any = report.summary_figure(batch.frame)
        except Exception as exc:
            figure = exc
        if near is not None:
            measures += near.result()[0]
        measures += agent_measures
        result = _decide_and_report(config, batch, batch_dir, facts, measures, severities, user, keep, figure)
        if sketch is not None:
            sketch.result()
        return result


def _decide_and_report(config: Config, batch: metrics.Batch, batch_dir: Path, facts: GateFacts,
                       measures: list[metrics.Measure], severities: dict[str, str], user: list[suites.UserCheck],
                       keep: int, figure: Any) -> GateResult:
    """GX validates the measures (and the user's suites on the rows); the verdict; the report files."""
    rows = metrics.rows_frame(batch, batch_dir) if user else None
    run = suite.validate(measures, severities, batch_dir.name, user, rows, keep)
    success = suite.by_check(run)
    checks = [
        GateCheck(
            name=m.name,
            severity=severities[m.name],  # type: ignore[arg-type]
            success=success[m.name],
            observed=_plain(m.observed),
            expected=m.expected,
            message=_message(m, success[m.name]),
            samples=_plain(m.samples[:keep]),
        )
        for m in measures
        if severities[m.name] != "off"
    ]
    results = suite.user_results(run)
    checks += [_user_check(u, results[u.name], keep) for u in user]
    verdict, failed_critical, failed_warning = policy.decide(checks)

    out = batch_dir / "report"
    validation_json = atomic_write_json(out / "validation.json", suite.result_json(run))
    if config.gate.data_docs:
        docs = suite.build_docs(run, out / "gx")
    else:
        suite.forget(run)
        docs = None
    if isinstance(figure, Exception):
        raise figure
    png = report.finish_png(figure, out / "summary.png", f"{batch_dir.name}: {verdict}")
    page = html.write_report(
        out / "report.html", batch_id=batch_dir.name, verdict=verdict, checks=checks, failed_critical=failed_critical,
        failed_warning=failed_warning, frame=batch.frame, facts=facts, pictures=[png, out / "composition.png"],
        links={"GX Data Docs": "gx/index.html" if docs else "", "validation result (JSON)": "validation.json"},
    )
    return GateResult(
        verdict=verdict,
        checks=checks,
        failed_critical=failed_critical,
        failed_warning=failed_warning,
        report=GateReport(data_docs=str(docs) if docs else None, summary_png=str(png), validation_json=str(validation_json),
                          html=str(page)),
    )


def _user_check(u: suites.UserCheck, result: dict[str, Any], keep: int) -> GateCheck:
    """A user expectation as a gate check: GX's own figures (unexpected count and share, or the observed value)
    and its partial unexpected rows as samples."""
    detail = result.get("result") or {}
    success = bool(result.get("success"))
    observed: dict[str, Any] = {k: detail[k] for k in ("observed_value", "element_count", "unexpected_count",
                                                       "unexpected_percent", "partial_unexpected_list") if k in detail}
    if "partial_unexpected_list" in observed:
        observed["partial_unexpected_list"] = observed["partial_unexpected_list"][:keep]
    if result.get("exception_info", {}).get("raised_exception"):
        observed["exception"] = str(result["exception_info"].get("exception_message"))[:300]
    kwargs = {k: v for k, v in u.expectation["kwargs"].items() if k not in ("result_format", "catch_exceptions")}
    expected = f"{u.expectation['type']}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    samples = [{k: (metrics_excerpt(v) if isinstance(v, str) else v) for k, v in row.items()}
               for row in (detail.get("partial_unexpected_index_list") or [])[:keep] if isinstance(row, dict)]
    if not samples and detail.get("partial_unexpected_list"):
        samples = [{"value": metrics_excerpt(v) if isinstance(v, str) else v} for v in detail["partial_unexpected_list"][:keep]]
    count = detail.get("unexpected_count")
    figure = f"{count} unexpected" if count is not None else f"observed {json.dumps(detail.get('observed_value'), default=str)}"
    return GateCheck(
        name=u.name, severity=u.severity, success=success, observed=_plain(observed), expected=expected,  # type: ignore[arg-type]
        message=f"{u.name}: {'ok' if success else 'FAILED'}, {figure} (suite {u.suite})", samples=_plain(samples),
        suite=u.suite,
    )


def metrics_excerpt(text: str) -> str:
    return excerpt(text) or ""


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
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _plain(value.item())
    return value


from prefmix.validators.artifacts import gate_artifacts  # noqa: E402  (re-exported: flows call validators.gate.gate_artifacts)

Check = GateCheck  # the name the gate's tests and docs use
__all__ = ["Check", "GateFacts", "GateReport", "GateResult", "gate_artifacts", "run_gate"]
