"""Build a small nightly setup (sample prompts, vendor shards, config) in a temp folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.support import REPO


def make_inputs(root: Path, *, prompts: int = 120, items: int = 60, seed: int = 7) -> dict[str, Any]:
    from prefmix.annotations.samples import write_sample_shards
    from prefmix.samples import write_prompts

    inputs = root / "inputs"
    write_prompts(inputs / "prompts.parquet", prompts, seed=seed)
    shards = write_sample_shards(inputs / "human", seed=seed, n_items=items)
    return {
        "prompts": [{"path": str(inputs / "prompts.parquet")}],
        "shards": [shard.model_dump(mode="json") for shard in shards],
    }


def write_config(root: Path, teacher_url: str, model: str, inputs: dict[str, Any], **extra: Any) -> Path:
    """configs/demo.yaml pointed at root/store, the inputs and one teacher; extra = {"a__b": value} sets a.b."""
    data: dict[str, Any] = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    data["store"] = str(root / "store")
    data["prompts"] = inputs["prompts"]
    data["human"]["shards"] = inputs["shards"]
    data["human"]["calibration_sample"] = 40
    data["teachers"] = [{"name": "tiny", "model": model, "endpoints": [teacher_url]}]
    data["generation"]["sampling"]["max_tokens"] = 24
    for dotted, value in extra.items():
        node = data
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
