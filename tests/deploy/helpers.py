"""Readers of what the deploy tests' runs leave in the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def run_summary(store: Path, run_id: str) -> dict[str, Any]:
    return json.loads((store / "runs" / run_id / "summary.json").read_text())
