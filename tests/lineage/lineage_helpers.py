"""Small real batches for lineage tests: a blend, a manifest, a published batch.

The record files come from the shared factory (tests/support/records.py); `make_records` is re-exported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import polars as pl

from prefmix.lineage.manifest import build_manifest
from prefmix.lineage.publish import publish, quarantine, stage_dir
from prefmix.config import Config
from prefmix.records import prompt_key, to_arrow
from prefmix.store import Store, write_parquet
from tests.support.records import make_records

__all__ = ["blend_function", "build_batch", "gate_result", "make_records", "publish_batch", "simple_blend"]


def simple_blend(config: Config, human: list[Path], synthetic: list[Path], out_dir: Path, batch_id: str) -> None:
    """Stand-in blend (used only while blending.blend is not importable): all rows, split by prompt hash."""
    frame = pl.concat([pl.read_parquet(p) for p in [*human, *synthetic]]).sort("record_id")
    cut = int(config.blend.eval_fraction * 2**32)
    split = [("eval" if int(prompt_key(p)[:8], 16) < cut else "train") for p in frame["prompt"].to_list()]
    frame = frame.with_columns(pl.Series("split", split), pl.lit(batch_id).alias("batch_id"))
    for name in ("train", "eval"):
        part = frame.filter(pl.col("split") == name)
        if part.height:
            write_parquet(to_arrow(part), Path(out_dir) / "data" / f"{name}-00000.parquet")


def blend_function() -> Callable[..., Any]:
    try:
        from prefmix.blending.blend import blend

        return blend
    except ImportError:
        return simple_blend


def gate_result(passed: bool = True) -> dict[str, Any]:
    checks = [
        {"name": "not-null-prompt", "expectation": "expect_column_values_to_not_be_null", "column": "prompt", "success": True, "severity": "critical", "observed": 0, "expected": 0},
        {"name": "unique-record-id", "expectation": "expect_column_values_to_be_unique", "column": "record_id", "success": passed, "severity": "critical", "observed": 0 if passed else 3, "expected": 0},
        {"name": "pii-share", "expectation": "expect_pii_share_below", "column": None, "success": False, "severity": "warning", "observed": 0.02, "expected": 0.01},
    ]
    return {"verdict": "pass" if passed else "fail", "passed": passed, "checks": checks}


def build_batch(
    store: Store,
    config: Config,
    batch_id: str,
    human: list[Path],
    synthetic: list[Path],
    *,
    shards: list[Path] = (),  # type: ignore[assignment]
    run_ids: list[str] = (),  # type: ignore[assignment]
    passed: bool = True,
    blend: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """Stage and blend a batch, return its manifest (not yet published)."""
    staged = stage_dir(store, batch_id)
    (blend or blend_function())(config, list(human), list(synthetic), staged, batch_id)
    inputs = [{"role": "human_records", "path": str(p)} for p in human]
    inputs += [{"role": "synthetic_records", "path": str(p)} for p in synthetic]
    inputs += [{"role": "human_shard", "path": str(p), "vendor": "acme"} for p in shards]
    runs = [{"run_id": r, "teacher_models": ["tiny-teacher"], "judge": "tiny-teacher", "vllm_version": "0.0-test", "template_sha256": "t" * 64, "sampling": {"temperature": 1.0}} for r in run_ids]
    return build_manifest(
        batch_id=batch_id,
        config=config,
        batch_dir=staged,
        inputs=inputs,
        synthetic_runs=runs,
        blend_summary={"requested": {"human": 56, "synthetic": 24}, "achieved": {"human": 56, "synthetic": 24}, "dedup_removed": 0},
        annotation_stats={"agreement": 1.0},
        judge_human={"accuracy": 0.5},
        gate=gate_result(passed),
        flow_run_id="flow-run-1",
    )


def publish_batch(store: Store, config: Config, batch_id: str, human: list[Path], synthetic: list[Path], **kw: Any) -> Path:
    manifest = build_batch(store, config, batch_id, human, synthetic, **kw)
    if manifest["gate"]["passed"]:
        return publish(store, batch_id, manifest, ledger_url=config.lineage.ledger_url)
    return quarantine(store, batch_id, manifest, ledger_url=config.lineage.ledger_url)
