"""Judge-vs-human calibration end to end with the real tiny vLLM judge.

The tiny teacher has random weights, so the share itself is noise; the test
checks the accounting: every sampled pair is judged or counted unjudged, per
domain counts add up, and the same seed samples the same pairs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from prefmix.annotations.calibration import judge_human_agreement, sample_for_calibration
from prefmix.annotations.ingest import ingest
from prefmix.annotations.samples import SAMPLE_AGGREGATION, write_sample_shards
from prefmix.config import Config, Generation, Human, Teacher

pytestmark = pytest.mark.vllm


def test_judge_human_agreement_with_real_judge(vllm_teacher, tmp_path: Path) -> None:
    from prefmix.generators.run import judge_pairs

    shards = write_sample_shards(tmp_path / "human", seed=1, n_items=40)
    config = Config(
        store=str(tmp_path / "store"),
        human=Human(shards=shards, aggregation=SAMPLE_AGGREGATION, calibration_sample=16),
        teachers=[Teacher(name="tiny", model=vllm_teacher.model_name, endpoints=[vllm_teacher.base_url])],
        generation=Generation(strategy="pairwise", judge_max_tokens=32),
    )
    human = ingest(config)
    sample = sample_for_calibration(human.records, config.human.calibration_sample, config.seed)
    assert sample.height == 16
    assert sample["record_id"].to_list() == sample_for_calibration(human.records, 16, config.seed)["record_id"].to_list()
    verdicts = judge_pairs(config, sample)
    result = judge_human_agreement(sample, verdicts).model_dump()
    assert result["pairs"] == 16 and result["unknown_record_ids"] == 0
    assert result["judged"] + result["unjudged"] == 16
    assert result["agree"] + result["disagree"] == result["judged"]
    assert result["judged"] == 0 or 0.0 <= result["share"] <= 1.0
    assert sum(d["pairs"] for d in result["per_domain"].values()) == 16
    assert sum(d["judged"] for d in result["per_domain"].values()) == result["judged"]
