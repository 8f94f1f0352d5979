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

from prefmix.records import SPLITS
from prefmix.store import atomic_write_text

CARD = "README.md"


def split_files(batch_dir: Path, manifest: dict[str, Any]) -> dict[str, list[str]]:
    """split -> data files. A file holding several splits (or none) is listed under 'train'."""
    result: dict[str, list[str]] = {}
    for f in manifest["files"]:
        found = pl.scan_parquet(batch_dir / f["path"]).select(pl.col("split").unique()).collect()["split"].to_list()
        split = found[0] if len(found) == 1 and found[0] in SPLITS else "train"
        result.setdefault(split, []).append(f["path"])
    return {s: result[s] for s in SPLITS if s in result} | {s: v for s, v in result.items() if s not in SPLITS}


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if c is None else str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def composition(batch_dir: Path, manifest: dict[str, Any]) -> pl.DataFrame:
    paths = [batch_dir / f["path"] for f in manifest["files"]]
    return (
        pl.scan_parquet(paths)
        .group_by("split", "source", "domain")
        .agg(pl.len().alias("rows"))
        .sort("split", "source", "domain")
        .collect()
    )


def _models(value: Any) -> str:
    """'model@revision' for a teacher dict, a list of them, or plain names."""
    items = value if isinstance(value, list) else [value] if value else []
    out = []
    for item in items:
        if isinstance(item, dict):
            out.append(f"{item.get('model') or item.get('name')}" + (f"@{item['revision']}" if item.get("revision") else ""))
        else:
            out.append(str(item))
    return ", ".join(out)


def _ref(value: Any) -> str | None:
    if isinstance(value, dict):
        return f"{value.get('id')} ({str(value.get('sha256') or '')[:12]})"
    return value if isinstance(value, str) else None


def render(batch_dir: Path, manifest: dict[str, Any], location: Path | None = None) -> str:
    """The card; `location` is where the batch will live (the load example names it)."""
    batch_dir = Path(batch_dir)
    splits = split_files(batch_dir, manifest)
    front = {
        "pretty_name": f"prefmix batch {manifest['batch_id']}",
        "tags": ["preference", "dpo", "rlhf", "prefmix"],
        "configs": [
            {"config_name": "default", "data_files": [{"split": s, "path": paths} for s, paths in splits.items()]}
        ],
    }
    comp = composition(batch_dir, manifest)
    gate = manifest.get("gate") or {}
    checks = gate.get("checks") or []
    runs = manifest.get("synthetic_runs") or []
    status = manifest.get("status_history") or []
    parts = [
        "---",
        yaml.safe_dump(front, sort_keys=False).rstrip(),
        "---",
        f"# prefmix batch `{manifest['batch_id']}`",
        "",
        f"Preference pairs (prompt, chosen, rejected) for DPO/RLHF: {manifest.get('rows')} rows, "
        f"content hash `{manifest['content_hash']}`, status **{status[-1]['status'] if status else 'unknown'}**.",
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
            [[i.get("role"), i.get("path") or i.get("run_id"), (i.get("sha256") or "")[:16]] for i in manifest.get("inputs") or []],
        ),
        "",
        "## Models",
        "",
        _table(
            ["run", "strategy", "teachers", "judge", "vLLM", "template", "constitution"],
            [
                [
                    r.get("run_id"),
                    r.get("strategy"),
                    _models(r.get("teachers") or r.get("teacher_models") or r.get("teacher")),
                    _models(r.get("judge")),
                    r.get("vllm_version"),
                    _ref(r.get("template")) or r.get("template_sha256"),
                    _ref(r.get("constitution")) or r.get("constitution_sha256"),
                ]
                for r in runs
            ],
        )
        if runs
        else "No synthetic data.",
        "",
        "## Gate",
        "",
        f"Verdict: **{gate.get('verdict', 'not gated' if not gate else 'unknown')}**",
        "",
        _table(
            ["check", "severity", "success", "observed"],
            [[c.get("name"), c.get("severity"), c.get("success"), json.dumps(c.get("observed"), default=str)] for c in checks],
        )
        if checks
        else "",
        "",
        "## Provenance",
        "",
        f"Code: {json.dumps(manifest.get('code_version'))}; flow run: {manifest.get('flow_run_id')}. "
        "Full lineage in `manifest.json`; audit with `prefmix lineage show|trace|verify|reproduce`.",
        "",
    ]
    return "\n".join(parts)


def write_card(batch_dir: Path, manifest: dict[str, Any], location: Path | None = None) -> Path:
    return atomic_write_text(Path(batch_dir) / CARD, render(batch_dir, manifest, location))
