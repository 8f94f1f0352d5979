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
    tiny_teacher(data, teacher_url, model)
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


# What the tiny teacher's noise fails by design: characters that are not text, answers cut at max_tokens.
TINY_TEXT_CHECKS_OFF = {"text_integrity": "off", "truncated_share": "off"}

# The generation settings the flow-mechanics tests are written for: configs/demo.yaml's are tuned for the small real
# model (a greedy judge, ties broken by expected scores, a template asking for short answers), under which a
# random-weight judge's scores tie or fail far more often and the blend runs short of synthetic rows.
TINY_GENERATION = {"strategy": "pointwise", "samples_per_prompt": 2,
                   "sampling": {"temperature": 1.0, "top_p": 1.0, "max_tokens": 48, "seed": 7},
                   "min_margin": 1, "tie_break": "none", "truncated": "keep", "chunk_size": 64}


def tiny_teacher(data: dict[str, Any], teacher_url: str, model: str, gate_reads_text: bool = False) -> dict[str, Any]:
    """Config data (configs/demo.yaml's, which serves the small real teacher and runs agent rollouts) pointed at the
    tiny random teacher, for tests of the flow's mechanics. Its answers almost never stop on their own, so they are kept although cut
    at max_tokens, and its text is noise: the gate's checks of the text are off (with `gate_reads_text`, they stay
    on, as in tests/validators/test_nightly_report_links.py)."""
    data["teachers"] = [{"name": "tiny", "model": model, "endpoints": [teacher_url]}]
    data["generation"] = {**TINY_GENERATION, "sampling": dict(TINY_GENERATION["sampling"])}  # type: ignore[dict-item]
    # No agent stage and one ratio for every domain, as the flow-mechanics tests expect (tests of agent rows set
    # their own agent section and kind shares: tests/flows/test_agent_nights.py)
    data.pop("agent", None)
    for key in ("domain_ratios", "domain_kind_shares"):
        data["blend"].pop(key, None)
    if not gate_reads_text:
        data.setdefault("gate", {}).setdefault("severity", {}).update(TINY_TEXT_CHECKS_OFF)
    return data
