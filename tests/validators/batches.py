"""Small canonical batches for gate tests: clean by default, with one fault injected per test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from prefmix.config import Config
from prefmix.records import to_arrow
from prefmix.store import atomic_write_json, write_parquet
from tests.support.records import DOMAINS, canonical

__all__ = ["DOMAINS", "clean_frame", "gate_config", "write_batch"]

WORDS = np.array(
    "the a plan budget risk patient lease contract dose rate fund tenant symptom review careful answer "
    "because therefore however simple clear steps first second then finally check ask consider".split()
)


def gate_config(**gate: object) -> Config:
    """Default config with these gate settings, Data Docs off unless asked (they are tested separately)."""
    cfg = Config()
    cfg.gate.data_docs = False
    for key, value in gate.items():
        setattr(cfg.gate, key, value)
    return cfg


def clean_frame(per_domain: int = 40, seed: int = 0, human_shares: dict[str, float] | None = None) -> pl.DataFrame:
    """per_domain rows in each default domain at the default 70/30 human/synthetic ratio; 10% eval."""
    rng = np.random.default_rng(seed)
    rows = []
    for domain in DOMAINS:
        n_human = round(per_domain * (human_shares or {}).get(domain, 0.7))
        for i in range(per_domain):
            source = "human" if i < n_human else "synthetic"
            words = lambda k: " ".join(rng.choice(WORDS, size=k))  # noqa: E731
            prompt = f"In {domain}, question number {i}: {words(12)}?"
            chosen, rejected = f"Good answer: {words(20)}.", f"Weak answer: {words(15)}."
            human = source == "human"
            rows.append(
                {
                    "prompt": prompt,
                    "chosen": chosen,
                    "rejected": rejected,
                    "domain": domain,
                    "source": source,
                    "chosen_score": 1.0 if human else float(rng.uniform(6, 9)),
                    "rejected_score": 0.0 if human else float(rng.uniform(1, 4)),
                    "origin_uri": f"file:///inputs/{source}.parquet",
                    "origin_sha256": "0" * 64,
                    "origin_row": i,
                    "annotation": {"vendor": "acme", "annotator_ids": ["a", "b"], "annotator_count": 2,
                                   "agreement": 0.8, "review_passes": 1, "adjudicated": False} if human else None,
                    "generation": None if human else {"teacher": "tiny", "judge": "tiny", "strategy": "pointwise"},
                    "batch_id": "b1",
                    "split": "eval" if i % 10 == 9 else "train",
                }
            )
    return canonical(rows)


def write_batch(root: Path, frame: pl.DataFrame | pa.Table | None = None, batch_id: str = "b1",
                config: Config | None = None, area: str = "staging") -> Path:
    """Write a batch dir under root/<area>/<batch_id> (data/part-00000.parquet + manifest.json).

    A polars frame is conformed to the canonical schema; a pyarrow table is written as is.
    """
    frame = clean_frame() if frame is None else frame
    batch_dir = root / area / batch_id
    table = frame if isinstance(frame, pa.Table) else to_arrow(frame)
    write_parquet(table, batch_dir / "data" / "part-00000.parquet")
    manifest = {"batch_id": batch_id, "status": "staged", "config": (config or Config()).redacted()}
    atomic_write_json(batch_dir / "manifest.json", manifest)
    return batch_dir
