"""expected_score on judge replies captured from vLLM 0.32 (CPU) serving the small real teacher.

Fixtures in tests/data/logprobs/ are whole chat-completion responses (with the
request that produced them) of the pointwise judge under JSON-schema structured
output with `logprobs: true, top_logprobs: 20`.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from prefmix.generators.expected_score import (
    FORBIDDEN_LOGPROB,
    expected_score,
    score_details,
    score_distribution,
    score_position,
    score_window,
)
from prefmix.generators.pairing import parse_score

DATA = Path(__file__).resolve().parent.parent / "data" / "logprobs"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))


def content(name: str) -> list[dict[str, Any]]:
    return fixture(name)["response"]["choices"][0]["logprobs"]["content"]


def p(logprob: float) -> float:
    return math.exp(logprob)


def test_fixtures_are_real_schema_replies():
    for name in ("score1_t1", "score1_t0", "score10_t1", "score8_t1", "score8_t0"):
        data = fixture(name)
        assert data["request"]["logprobs"] is True and data["request"]["top_logprobs"] == 20
        assert data["request"]["response_format"]["type"] == "json_schema"
        reply = data["response"]["choices"][0]["message"]["content"]
        assert parse_score(reply) == json.loads(reply)["score"]


def test_grammar_renormalises_the_score_position():
    """Under the schema, forced tokens have logprob 0, forbidden ones -9999, and the digits sum to 1."""
    lp = content("score1_t1")
    i, before = score_position(lp)
    assert (i, before) == (3, "")
    assert [e["token"] for e in lp[:3]] == ['{"', "score", '":']
    assert all(e["logprob"] == 0.0 for e in lp[:3])
    digits = {a["token"]: a["logprob"] for a in lp[i]["top_logprobs"] if a["logprob"] > FORBIDDEN_LOGPROB}
    assert set(digits) == {str(d) for d in range(1, 10)}
    assert sum(p(v) for v in digits.values()) == pytest.approx(1.0, abs=1e-4)


def test_hand_computed_expected_score_with_ten_split_after_one():
    lp = content("score1_t1")
    first = {a["token"]: p(a["logprob"]) for a in lp[3]["top_logprobs"] if a["logprob"] > FORBIDDEN_LOGPROB}
    after_one = {a["token"]: p(a["logprob"]) for a in lp[4]["top_logprobs"] if a["logprob"] > FORBIDDEN_LOGPROB}
    assert lp[3]["token"] == "1" and set(after_one) == {",", ',"', "0"}
    ten = after_one["0"] / sum(after_one.values())
    dist = {int(t): q for t, q in first.items()}
    dist[10] = dist[1] * ten
    dist[1] *= 1 - ten
    want = sum(k * q for k, q in dist.items()) / sum(dist.values())
    assert expected_score(lp, 1, 10) == pytest.approx(want)
    assert expected_score(lp, 1, 10) == pytest.approx(2.7106, abs=1e-3)


def test_logprobs_do_not_depend_on_judge_temperature():
    """The same judge request at temperature 1.0 and 0: different rationale, same expected score."""
    hot, cold = content("score1_t1"), content("score1_t0")
    assert fixture("score1_t1")["request"]["temperature"] == 1.0
    assert fixture("score1_t0")["request"]["temperature"] == 0.0
    assert expected_score(hot, 1, 10) == pytest.approx(expected_score(cold, 1, 10), abs=1e-9)


def test_sampled_ten():
    lp = content("score10_t1")
    assert [e["token"] for e in lp[3:5]] == ["1", "0"]
    details = score_details(lp, 1, 10)
    assert details is not None and details["unresolved"] == 0.0
    assert details["distribution"][10] == pytest.approx(0.2187, abs=1e-3)
    assert details["expected"] == pytest.approx(3.8170, abs=1e-3)


def test_unresolved_one_when_another_digit_was_sampled():
    """Sampled "8": the mass on "1" counts as 1 (its "0" continuation was never computed) and is reported."""
    hot, cold = score_details(content("score8_t1"), 1, 10), score_details(content("score8_t0"), 1, 10)
    assert hot is not None and cold is not None
    assert 10 not in hot["distribution"]
    assert hot["unresolved"] == pytest.approx(hot["distribution"][1])
    assert cold["unresolved"] == 0.0
    # Same first-digit distribution: digits 2-9 agree, and the greedy reply splits "1" into 1 and 10.
    for k in range(2, 10):
        assert hot["distribution"][k] == pytest.approx(cold["distribution"][k], abs=1e-9)
    assert cold["distribution"][1] + cold["distribution"][10] == pytest.approx(hot["distribution"][1], abs=1e-9)
    assert hot["expected"] < cold["expected"] - 0.5


def test_range_filters_scores():
    lp = content("score1_t1")
    dist = score_distribution(lp, 1, 5)
    assert set(dist) == {1, 2, 3, 4, 5}
    e = expected_score(lp, 1, 5)
    assert e is not None and 1.0 <= e <= 5.0
    assert expected_score(lp, 20, 30) is None


def test_no_json_no_score():
    assert expected_score(content("noschema_t0"), 1, 10) is None
    assert score_details(content("noschema_t0"), 1, 10) is None


@pytest.mark.parametrize("bad", [None, [], {}, "text", {"content": None}, [{"no": "token"}]])
def test_degenerate_inputs(bad: Any):
    assert expected_score(bad, 1, 10) is None


def test_accepts_the_whole_logprobs_object():
    logprobs = fixture("score10_t1")["response"]["choices"][0]["logprobs"]
    assert expected_score(logprobs, 1, 10) == expected_score(logprobs["content"], 1, 10)


def test_truncated_before_the_score():
    assert expected_score(content("score1_t1")[:3], 1, 10) is None
    assert expected_score(content("score1_t1")[:2], 1, 10) is None


def test_digit_merged_with_the_colon_token():
    """A tokenizer that emits '":7' as one token: the part before the value is matched on every alternative."""
    lp = copy.deepcopy(content("score8_t0"))
    colon, digit = lp[2], lp[3]
    merged = {
        "token": colon["token"] + digit["token"], "logprob": digit["logprob"],
        "top_logprobs": [{"token": colon["token"] + a["token"], "logprob": a["logprob"]} for a in digit["top_logprobs"]],
    }
    lp[2:4] = [merged]
    assert score_position(lp) == (2, '":')
    assert expected_score(lp, 1, 10) == pytest.approx(expected_score(content("score8_t0"), 1, 10))


def test_whole_number_tokens_and_whitespace():
    """A tokenizer with "10" as one token and a space before the value (no disable_any_whitespace)."""
    lp = copy.deepcopy(content("score8_t0"))
    first = lp[3]
    after_one = {a["token"]: a["logprob"] for a in lp[4]["top_logprobs"] if a["logprob"] > FORBIDDEN_LOGPROB}
    share_ten = p(after_one["0"]) / sum(p(v) for v in after_one.values())
    alts = []
    for a in first["top_logprobs"]:
        if a["token"] == "1":
            alts.append({"token": " 1", "logprob": a["logprob"] + math.log(1 - share_ten)})
            alts.append({"token": " 10", "logprob": a["logprob"] + math.log(share_ten)})
        else:
            alts.append({"token": " " + a["token"], "logprob": a["logprob"]})
    lp[2:5] = [{"token": '":', "logprob": 0.0, "top_logprobs": []},
               {"token": " 1", "logprob": alts[0]["logprob"], "top_logprobs": alts},
               {"token": ",", "logprob": 0.0, "top_logprobs": []}]
    assert score_position(lp) == (3, " ")
    assert expected_score(lp, 1, 10) == pytest.approx(expected_score(content("score8_t0"), 1, 10), abs=1e-6)


def test_ties_broken_by_expected_score():
    """Two candidates both scored 1 (a tie on integers) differ on expected score."""
    a, b = content("score1_t0"), content("score8_t0")
    assert parse_score(fixture("score1_t0")["response"]["choices"][0]["message"]["content"]) == 1
    assert parse_score(fixture("score8_t0")["response"]["choices"][0]["message"]["content"]) == 1
    ea, eb = expected_score(a, 1, 10), expected_score(b, 1, 10)
    assert ea is not None and eb is not None and ea != eb


def _merged_colon() -> list[dict[str, Any]]:
    lp = copy.deepcopy(content("score8_t0"))
    colon, digit = lp[2], lp[3]
    lp[2:4] = [{"token": colon["token"] + digit["token"], "logprob": digit["logprob"],
                "top_logprobs": [{"token": colon["token"] + a["token"], "logprob": a["logprob"]} for a in digit["top_logprobs"]]}]
    return lp


@pytest.mark.parametrize("name", ["score1_t1", "score1_t0", "score10_t1", "score8_t1", "score8_t0", "noschema_t0", "merged"])
def test_score_window_keeps_what_the_expected_score_reads(name: str):
    """What a judge result keeps of its logprobs (the cache stores it): the same details for every range, the
    tokens of every position, alternatives only at the score position and the next one, no bytes."""
    lp = _merged_colon() if name == "merged" else content(name)
    window = score_window(lp)
    assert [e["token"] for e in window] == [e["token"] for e in lp]
    for lo, hi in [(1, 10), (1, 5), (2, 9)]:
        assert score_details(window, lo, hi) == score_details(lp, lo, hi)
    with_alternatives = [i for i, e in enumerate(window) if "top_logprobs" in e]
    found = score_position(lp)
    assert with_alternatives == ([] if found is None else [i for i in (found[0], found[0] + 1) if i < len(lp)])
    assert all(set(a) == {"token", "logprob"} for i in with_alternatives for a in window[i]["top_logprobs"])
    assert len(json.dumps(window)) < len(json.dumps(lp)) / 3
