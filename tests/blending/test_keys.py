"""The key pass computes exactly prefmix.records.prompt_key; sampling and split keys are pinned."""

from __future__ import annotations

import sys

import numpy as np
import polars as pl
from prefmix.blending.keys import prompt_digest, sample_keys
from prefmix.blending.split import is_eval_key, threshold

from prefmix.hashing import mix64
from prefmix.records import prompt_key


def test_prompt_digest_matches_prompt_key_on_every_kind_of_text() -> None:
    spaces = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    texts = [
        "plain single spaced text",
        " leading", "trailing ", "double  space", "tabs\tand\nnewlines\r\n\x0b\x0cform",
        "file\x1cgroup\x1drecord\x1eunit\x1fseparators",
        "caf\u0065\u0301 decomposed", "café composed", "ﬁ ligature stays", "\u00a0nbsp\u3000ideographic\u2028line",
        "", "   ", "emoji 🙂 and 中文", "control\x00char", "zero\u200bwidth",
        *[f"a{ch}b{ch}{ch}c{ch}" for ch in spaces],
    ]
    for text in texts:
        assert prompt_digest(text.encode("utf-8")).hex() == prompt_key(text), repr(text)


def test_sample_key_and_split_rule_are_pinned() -> None:
    # These numbers decide which rows a published batch holds; they must never change silently.
    assert mix64(np.array([0, 1, 2**63], dtype=np.uint64)).tolist() == [0, 6238072747940578789, 2720858781877447050]
    assert sample_keys(pl.Series([0, 12345], dtype=pl.UInt64), 7).to_list() == [13225839796362995591, 6394763869009554598]
    assert threshold(0.05) == 922337203685477580
    assert threshold(0.0) == 0 and threshold(1.0) == 2**64
    assert is_eval_key("0" * 64, 0.05) and not is_eval_key("f" * 64, 0.05)


def test_worker_processes_give_the_same_keys_and_errors(write, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest
    from prefmix.blending import keys as keypass

    from prefmix.errors import InputError
    from tests.support.records import records

    files = [write(f"h{i}", records(30 + i, "human", "general", f"h{i}")) for i in range(3)]
    inputs = keypass.inspect(files, "human")
    alone = keypass.scan(inputs, workers=1)
    original = keypass.PARALLEL_MIN_ROWS
    keypass.PARALLEL_MIN_ROWS = 0
    try:
        spread = keypass.scan(inputs, workers=2)
        assert spread.equals(alone) and spread.height == 93
        wrong = keypass.inspect([write("syn", records(4, "synthetic", "general", "s", teacher="t"))], "synthetic")
        mislabeled = [*inputs, keypass.Input(wrong[0].path, "human", 4)]
        with pytest.raises(InputError, match=r"syn\.parquet: row 0: source is 'synthetic' but the file was given as human input"):
            keypass.scan(mislabeled, workers=2)
    finally:
        keypass.PARALLEL_MIN_ROWS = original
