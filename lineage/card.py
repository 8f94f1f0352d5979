"""Dataset card (README.md with Hugging Face YAML front matter) for a batch directory.

The front matter's `configs.data_files` maps each split to its Parquet files so
`datasets.load_dataset(<batch dir>)` yields train and eval splits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from prefmix.contract import ContentRef, Manifest, ModelRef, TeacherRef
from prefmix.records import SPLITS
from prefmix.store import atomic_write_text

CARD = "README.md"


def split_files(batch_dir: Path, manifest: Manifest) -> dict[str, list[str]]:
    """split -> data files. A file holding several splits (or none) is listed under 'train'."""
    result: dict[str, list[str]] = {}
    for f in manifest.files:
        found = pl.scan_parquet(batch_dir / f.path).select(pl.col("split").unique()).collect()["split"].to_list()
        split = found[0] if len(found) == 1 and found[0] in SPLITS else "train"
        result.setdefault(split, []).append(f.path)
    return {s: result[s] for s in SPLITS if s in result} | {s: v for s, v in result.items() if s not in SPLITS}


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if c is None else str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def composition(batch_dir: Path, manifest: Manifest) -> pl.DataFrame:
    paths = [batch_dir / f.path for f in manifest.files]
    return (
        pl.scan_parquet(paths)
        .group_by("split", "source", "domain")
        .agg(pl.len().alias("rows"))
        .sort("split", "source", "domain")
        .collect()
    )


def _models(models: list[TeacherRef] | list[ModelRef]) -> str:
    return ", ".join(m.model + (f"@{m.revision}" if m.revision else "") for m in models)


def _ref(value: ContentRef | None) -> str | None:
    return f"{value.id} ({value.sha256[:12]})" if value else None


def render(batch_dir: Path, manifest: Manifest, location: Path | None = None) -> str:
    """The card; `location` is where the batch will live (the load example names it)."""
    batch_dir = Path(batch_dir)
    splits = split_files(batch_dir, manifest)
    front = {
        "pretty_name": f"prefmix dataset {manifest.dataset.name} v{manifest.dataset.version}" if manifest.dataset
        else f"prefmix batch {manifest.batch_id}",
        "tags": ["preference", "dpo", "rlhf", "prefmix"],
        "configs": [
            {"config_name": "default", "data_files": [{"split": s, "path": paths} for s, paths in splits.items()]}
        ],
    }
    comp = composition(batch_dir, manifest)
    gate = manifest.gate
    checks = gate.checks if gate else []
    runs = manifest.synthetic_runs
    parts = [
        "---",
        yaml.safe_dump(front, sort_keys=False).rstrip(),
        "---",
        (f"# prefmix dataset `{manifest.dataset.name}` v{manifest.dataset.version} (batch `{manifest.batch_id}`)"
         if manifest.dataset else f"# prefmix batch `{manifest.batch_id}`"),
        "",
        f"Preference pairs (prompt, chosen, rejected) for DPO/RLHF: {manifest.rows} rows, "
        f"content hash `{manifest.content_hash}`, status **{manifest.status}**.",
        "",
        "## How to load",
        "",
        "```python",
        "from datasets import load_dataset",
        f'ds = load_dataset("{location or batch_dir}")  # splits: {", ".join(splits)}',
        "```",
        "",
        "## Composition",
        "",
        _table(["split", "source", "domain", "rows"], comp.rows()),
        "",
        "## Sources",
        "",
        _table(
            ["role", "path", "sha256"],
            [[i.role, i.path or i.run_id, (i.sha256 or "")[:16]] for i in manifest.inputs],
        ),
        "",
        "## Models",
        "",
        _table(
            ["run", "strategy", "teachers", "judge", "vLLM", "template", "constitution"],
            [
                [r.run_id, r.strategy, _models(r.teachers), _models([r.judge]), r.vllm_version, _ref(r.template),
                 _ref(r.constitution)]
                for r in runs
            ],
        )
        if runs
        else "No synthetic data.",
        "",
        "## Gate",
        "",
        f"Verdict: **{gate.verdict if gate else 'not gated'}**",
        "",
        _table(
            ["check", "severity", "success", "observed"],
            [[c.name, c.severity, c.success, json.dumps(c.observed, default=str)] for c in checks],
        )
        if checks
        else "",
        "",
        "## Provenance",
        "",
        f"Code: {manifest.code_version.model_dump_json()}; flow run: {manifest.flow_run_id}. "
        "Full lineage in `manifest.json`; audit with `prefmix lineage show|trace|verify|reproduce`.",
        "",
    ]
    return "\n".join(parts)


def write_card(batch_dir: Path, manifest: Manifest, location: Path | None = None) -> Path:
    return atomic_write_text(Path(batch_dir) / CARD, render(batch_dir, manifest, location))
