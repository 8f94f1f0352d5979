"""The nightly run's summary, read from the batch's final manifest (the one place it is built): the version
published, and what intake, generation and retraction did that night."""

from __future__ import annotations

from pathlib import Path

from prefmix.contract import Manifest, NightlySummary, RecoverReport
from prefmix.store import Store


def nightly_summary(manifest: Manifest, batch_dir: Path, recovered: RecoverReport, store: Store,
                    already_finished: bool = False) -> NightlySummary:
    from prefmix.contract import PUBLISHED

    gate = manifest.gate
    report = gate.report.resolved(batch_dir).model_dump() if gate else {}
    info = manifest.dataset
    counts = {}
    if info is not None:
        counts = {
            "dataset": info.name, "version": info.version if manifest.status in PUBLISHED else None,
            "new_deliveries": len(info.new_deliveries), "skipped_deliveries": len(info.skipped_deliveries),
            "new_prompts": info.new_prompts, "generated_prompts": info.generated_prompts, "requests": info.requests,
            "retracted_rows": info.retracted_rows, "agent": info.agent,
        }
    return NightlySummary(
        batch_id=manifest.batch_id,
        status=manifest.status,
        verdict=gate.verdict if gate else None,
        failed_checks=[*gate.failed_critical, *gate.failed_warning] if gate else [],
        rows=manifest.blend.rows,
        achieved=manifest.blend.achieved,
        batch_dir=str(batch_dir),
        manifest=str(Path(batch_dir) / "manifest.json"),
        report=report,
        composition=str(Path(batch_dir) / "report" / "composition.png"),
        annotation=manifest.annotation_stats.headline() if manifest.annotation_stats else {},
        judge_human=manifest.judge_human,
        synthetic=[run.summary for run in manifest.synthetic_runs],
        recovered=recovered,
        store=str(store.root),
        already_finished=already_finished,
        **counts,
    )
