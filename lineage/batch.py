"""Batch identity: the id a batch is published under, chosen from what it is made of."""

from __future__ import annotations

import datetime as dt

from prefmix.config import Config
from prefmix.contract import ManifestInput
from prefmix.hashing import short_hash
from prefmix.store import check_batch_id

__all__ = ["adhoc_batch_id", "check_batch_id", "nightly_batch_id"]


def nightly_batch_id(config: Config, inputs: list[ManifestInput], day: str) -> str:
    """Same day, same config, same input bytes -> same batch id, so a rerun of a day finds its own batch."""
    digest = short_hash({"config": config.redacted(), "inputs": sorted(i.sha256 or "" for i in inputs)})
    return f"b{day.replace('-', '')}-{digest}"


def adhoc_batch_id(config: Config, input_hashes: list[str]) -> str:
    """An ad hoc blend's id: the UTC day, and a hash of the blend settings, seed and input bytes."""
    digest = short_hash({"blend": config.blend.model_dump(mode="json"), "seed": config.seed, "inputs": sorted(input_hashes)})
    return f"adhoc-{dt.datetime.now(dt.timezone.utc):%Y%m%d}-{digest}"
