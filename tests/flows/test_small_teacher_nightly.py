"""The nightly flow on the small REAL teacher (SmolLM2-135M-Instruct), as `make demo` runs it: configs/demo.yaml's
teacher, judge and generation settings, pointed at the session's small-teacher server.

What a newcomer sees must be text: the published batch's synthetic rows carry no control character (other than
newline and tab) and no U+FFFD, and nearly every chosen answer is made of words. The measure: split on
whitespace, strip surrounding punctuation, drop what is left empty; a token is a word when it is alphabetic.
At least 95% of chosen answers have a word share of 0.8 or more. The manifest names the small model with the
sha256 of its files; every synthetic row records both candidates' finish reasons, and under the default
`truncated: reject` no chosen answer stopped at max_tokens.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from tests.support import REPO
from tests.support.cli import last_json, prefmix
from tests.support.nightly import make_inputs

pytestmark = [pytest.mark.slow, pytest.mark.small_model]

NOT_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f\ufffd]")
WORD_SHARE, ROWS_WITH_WORDS = 0.8, 0.95


def word_share(text: str) -> float:
    """Share of whitespace tokens (surrounding punctuation stripped, empty ones dropped) that are alphabetic."""
    tokens = [t.strip(string.punctuation + "\u201c\u201d\u2018\u2019") for t in text.split()]
    tokens = [t for t in tokens if t]
    return sum(t.isalpha() for t in tokens) / len(tokens) if tokens else 0.0


def demo_config(root: Path, url: str, inputs: dict[str, Any]) -> Path:
    """configs/demo.yaml with the sample inputs, a store under root and its small teacher served at url (the
    launch section stays, so the manifest names the folder; with endpoints nothing is started)."""
    data: dict[str, Any] = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    data["store"] = str(root / "store")
    data["prompts"] = inputs["prompts"]
    data["human"]["shards"] = inputs["shards"]
    (teacher,) = data["teachers"]
    teacher["launch"]["model_dir"] = str((REPO / "configs" / teacher["launch"]["model_dir"]).resolve())
    teacher["endpoints"] = [url]
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def small_nightly(small_teacher, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], pl.DataFrame]:
    root = tmp_path_factory.mktemp("small-nightly")
    inputs = make_inputs(root, prompts=32, items=16)
    config = demo_config(root, small_teacher.base_url, inputs)
    done = prefmix("run", "nightly", "--config", str(config), "--json", "--date", "2026-12-01", timeout=1800)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    summary = last_json(done.stdout)
    assert summary["status"] == "published", summary
    frame = pl.read_parquet(Path(summary["batch_dir"]) / "data" / "*.parquet")
    return summary, frame.filter(pl.col("source") == "synthetic")


def test_synthetic_rows_are_text_made_of_words(small_nightly) -> None:
    summary, synthetic = small_nightly
    assert synthetic.height >= 5, summary["synthetic"]
    for column in ("prompt", "chosen", "rejected"):
        bad = synthetic.filter(pl.col(column).str.contains(NOT_TEXT.pattern))
        assert bad.height == 0, (column, bad[column].to_list()[:3])
    shares = [word_share(t) for t in synthetic["chosen"].to_list()]
    wordy = sum(s >= WORD_SHARE for s in shares) / len(shares)
    assert wordy >= ROWS_WITH_WORDS, sorted(zip(shares, synthetic["chosen"].to_list()))[:3]
    assert summary["verdict"] in ("pass", "warn") and "text_integrity" not in summary["failed_checks"]


def test_manifest_names_the_small_model_and_its_sha256(small_nightly, small_teacher) -> None:
    from prefmix.generators.small_teacher import MODEL_ID, content_sha256

    summary, _ = small_nightly
    manifest = json.loads(Path(summary["manifest"]).read_text())
    (model,) = [m for m in manifest["models"] if m["model"] == small_teacher.model_name]
    assert model["weights"] == MODEL_ID and set(model["roles"]) == {"generator", "judge"}
    assert Path(model["path"]) == small_teacher.model_dir.resolve()
    assert model["sha256"] == content_sha256(small_teacher.model_dir)


def test_finish_reasons_recorded_and_no_truncated_answer_chosen(small_nightly) -> None:
    summary, synthetic = small_nightly
    gen = synthetic["generation"].struct.unnest()
    reasons = gen["finish_reasons"].to_list()
    assert all(len(r) == 2 and set(r) <= {"stop", "length"} for r in reasons), reasons[:5]
    assert all(r[0] == "stop" for r in reasons)  # truncated: reject (the default), never a cut answer as chosen
    # the small judge ties often: expected scores are recorded beside the integers, and broke some ties
    assert gen["chosen_expected"].is_not_null().all() and gen["rejected_expected"].is_not_null().all()
    (run,) = summary["synthetic"]
    assert run["tokens_per_pair"] and run["tokens_per_pair"] > 0
    assert run["prompts_in"] == run["records"] + sum(run["rejections"].values())
