"""Signals of judge doubt from canonical rows, the route score, and its monotonicity (property-style, seeded)."""

from __future__ import annotations

import copy
import math
import random

import polars as pl
import pytest
from prefmix.routing import learn
from prefmix.routing.checks import load, verifiable
from prefmix.routing.score import RouteModel, score
from prefmix.routing.signals import SIGNALS, signals

from prefmix.config import RouteCheck, RouteSignals, parse
from prefmix.errors import ConfigError
from tests.routing.pairs import frame, pair, random_pool

SETTINGS = RouteSignals()


def by_id(rows: pl.DataFrame) -> dict[str, dict[str, object]]:
    return {r["record_id"]: r for r in signals(rows, SETTINGS).iter_rows(named=True)}


def test_vote_signals_disagreement_and_order_flip() -> None:
    rows = frame([
        pair(0, winners={"a": ("chosen", "chosen"), "b": ("chosen", "chosen"), "c": ("chosen", "chosen")}),
        pair(1, winners={"a": ("chosen", "chosen"), "b": ("rejected", "rejected"), "c": ("chosen", "chosen")}),
        pair(2, winners={"a": ("chosen", "chosen"), "b": ("chosen", "rejected"), "c": ("tie", "tie")}),
        pair(3, winners={"a": ("chosen", "chosen")}),  # one judge: no disagreement across judges
        pair(4, winners={"a": ("chosen", None), "b": (None, None)}),  # unparseable votes are left out
        pair(5),  # no votes at all
    ])
    got = list(signals(rows, SETTINGS).iter_rows(named=True))
    assert [r["judges"] for r in got] == [3, 3, 3, 1, 1, 0]
    assert got[0]["judge_disagreement"] == 0.0 and got[0]["order_flip"] == 0.0
    assert got[1]["judge_disagreement"] == pytest.approx(1 / 3) and got[1]["order_flip"] == 0.0
    # judge b: 0.5 (one order each way), judge c: two ties -> 0.5; mean support (1 + .5 + .5) / 3
    assert got[2]["judge_disagreement"] == pytest.approx(1 - 2 / 3) and got[2]["order_flip"] == pytest.approx(1 / 3)
    assert got[3]["judge_disagreement"] is None and got[3]["order_flip"] == 0.0
    assert got[4]["judge_disagreement"] is None and got[4]["order_flip"] is None
    assert got[5]["judge_disagreement"] is None and got[5]["order_flip"] is None and got[5]["judges"] == 0


def test_margin_length_and_truncation_signals() -> None:
    rows = frame([
        pair(0, chosen_score=9.0, rejected_score=4.0, expected=(8.5, 3.0), chosen="x" * 10, rejected="y" * 10, finish=["stop", "stop"]),
        pair(1, chosen_score=6.0, rejected_score=5.0, expected=(6.0, 6.5), chosen="x" * 90, rejected="y" * 10, finish=["length", "stop"]),
        pair(2, chosen_score=None, rejected_score=None, chosen="x" * 5, rejected="y" * 50),
    ])
    got = list(signals(rows, SETTINGS).iter_rows(named=True))
    assert got[0]["small_margin"] == 0.0 and got[0]["small_expected_margin"] == 0.0 and got[0]["length_ratio"] == 0.0
    assert got[0]["truncated"] == 0.0
    assert got[1]["small_margin"] == pytest.approx(0.8)  # margin 1 of 5
    assert got[1]["small_expected_margin"] == 1.0  # the judge's own probabilities favour the rejected
    assert got[1]["length_ratio"] == 1.0 and got[1]["truncated"] == 1.0  # 9x longer, capped at 3x
    assert got[2]["small_margin"] is None and got[2]["small_expected_margin"] is None and got[2]["truncated"] is None
    assert got[2]["length_ratio"] == 0.0  # a shorter chosen is no doubt


def prior_model(**weights: float) -> RouteModel:
    config = parse({"routing": {"weights": weights}} if weights else {})
    return learn.fit(pl.DataFrame(), config.routing)


def test_route_score_formula_and_reason() -> None:
    rows = frame([pair(0, winners={"a": ("chosen", "chosen"), "b": ("rejected", "rejected")}, chosen_score=9, rejected_score=2),
                  pair(1, "law", chosen_score=9, rejected_score=2, chosen="x", rejected="y")])
    model = RouteModel(intercepts={"law": 0.5}, default_intercept=-1.0, weights={name: 1.0 for name in SIGNALS})
    got = list(score(signals(rows, SETTINGS), model).iter_rows(named=True))
    # pair 0: base -1 + judge_disagreement 0.5 (one of two judges against) + order_flip 0
    assert got[0]["route_score"] == pytest.approx(1 / (1 + math.exp(-(-1.0 + 0.5))))
    assert got[0]["route_reason"] == "judge_disagreement"
    assert got[0]["judge_confidence"] == pytest.approx(1 - got[0]["route_score"])
    # pair 1: no signal; the law base sits 1.5 above the default: that is the reason
    assert got[1]["route_score"] == pytest.approx(1 / (1 + math.exp(-0.5))) and got[1]["route_reason"] == "domain_agreement"


def test_more_doubt_on_any_signal_never_lowers_the_score() -> None:
    """Property over seeded random signals and random non-negative models: raising one signal never lowers a score."""
    rng = random.Random(1)
    for _ in range(200):
        model = RouteModel(intercepts={"law": rng.uniform(-4, 2)}, default_intercept=rng.uniform(-4, 2),
                           weights={name: rng.choice([0.0, rng.uniform(0, 5)]) for name in SIGNALS})
        row = {"record_id": "r", "domain": rng.choice(["law", "general"]), "judges": 3,
               **{name: rng.choice([None, rng.random()]) for name in SIGNALS}}
        name = rng.choice(SIGNALS)
        higher = dict(row, **{name: min(1.0, (row[name] or 0.0) + rng.uniform(0, 1))})
        both = pl.DataFrame([row, higher], schema={"record_id": pl.String, "domain": pl.String, "judges": pl.Int64,
                                                   **{n: pl.Float64 for n in SIGNALS}})
        low, high = score(both, model).get_column("route_score").to_list()
        assert high >= low - 1e-12, (name, row, higher, model)


def test_a_judge_turning_against_the_chosen_never_lowers_the_score() -> None:
    """Property on raw votes: moving any one vote from chosen to tie to rejected (more disagreement) never lowers the
    score, under the prior and under models fitted on random labels (whose weights stay >= 0)."""
    rng = random.Random(2)
    base = random_pool(60, seed=3)
    config = parse({})
    models = [prior_model()]
    for k in range(3):
        fake = signals(random_pool(80, seed=10 + k), SETTINGS).with_columns(
            queue_id=pl.lit("q"), task_id=pl.col("record_id"), wrong=pl.Series([rng.random() < 0.3 for _ in range(80)]))
        models.append(learn.fit(fake, config.routing))
    for model in models:
        assert all(w >= 0 for w in model.weights.values())
    rows = base.to_dicts()
    for _ in range(60):
        row = copy.deepcopy(rng.choice(rows))
        votes = row["generation"]["judge_votes"]
        candidates = [i for i, v in enumerate(votes) if v["winner"] in ("chosen", "tie") and v["judge"] != "judge-a"]
        if not candidates:
            continue
        worse = copy.deepcopy(row)
        i = rng.choice(candidates)
        worse["generation"]["judge_votes"][i]["winner"] = "tie" if votes[i]["winner"] == "chosen" else "rejected"
        worse["prompt"] += " (changed)"  # another record id
        both = frame([row, worse])
        before = signals(both, SETTINGS).row(0, named=True)
        after = signals(both, SETTINGS).row(1, named=True)
        assert (after["judge_disagreement"] or 0) >= (before["judge_disagreement"] or 0)
        for model in models:
            got = score(signals(both, SETTINGS), model).get_column("route_score").to_list()
            # a flip may appear or disappear with the change; disagreement rises: the net must not fall when the flip
            # signal did not fall either
            if (after["order_flip"] or 0) >= (before["order_flip"] or 0):
                assert got[1] >= got[0] - 1e-12


def test_checks_divert_verifiable_items() -> None:
    rows = frame([pair(0, "general", prompt="What is 12 * 7?", chosen="The answer is 84", rejected="It is 74"),
                  pair(1, "general", prompt="Explain tides."),
                  pair(2, "law", prompt="What is 2 + 2?", chosen="4", rejected="5")])
    checks = load([RouteCheck(name="arithmetic", prompt=r"(?i)^what is [0-9 +*/-]+\?$", answer=r"[0-9]+\s*$", domains=["general"]),
                   RouteCheck(name="custom", function="tests.routing.test_signals_score:_law_only")])
    assert verifiable(rows, checks).to_list() == ["arithmetic", None, "custom"]
    with pytest.raises(ConfigError, match=r"routing.checks\[0\].*cannot be imported"):
        load([RouteCheck(name="x", function="no.such.module:fn")])


def _law_only(rows: pl.DataFrame) -> pl.Series:
    return rows.get_column("domain") == "law"
