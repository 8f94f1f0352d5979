"""Unit tests for each pairing rule of DESIGN.md."""

from __future__ import annotations

from prefmix.generators.pairing import (
    NoPair, Pick, distinct, parse_score, parse_winner, pick_pairwise, pick_pointwise, pick_revision, seeded_rng, unswap,
)


def rng(seed: int = 0):
    return seeded_rng("test", seed)


# ties -------------------------------------------------------------------------
def test_pointwise_tie_gives_no_pair() -> None:
    assert pick_pointwise(["a", "b", "c"], [7, 7, 7], 0.0, rng()) == NoPair("tie", "all scored 7")


def test_pointwise_identical_texts_never_pair_even_with_different_scores() -> None:
    got = pick_pointwise(["Same  text", "same text".replace("s", "S", 1)], [9, 2], 0.0, rng())
    assert isinstance(got, NoPair) and got.reason == "tie"


def test_pairwise_tie_in_both_orders_gives_no_pair() -> None:
    assert pick_pairwise(["x", "y"], "tie", "tie").reason == "tie"  # type: ignore[union-attr]


def test_revision_equal_to_original_is_a_tie() -> None:
    assert pick_revision("An answer.", "  An   answer. ") == NoPair("tie", "revision equals the original")


# margin -----------------------------------------------------------------------
def test_margin_below_minimum_gives_no_pair_and_at_minimum_pairs() -> None:
    assert pick_pointwise(["a", "b"], [6, 5], 2.0, rng()).reason == "below_margin"  # type: ignore[union-attr]
    assert pick_pointwise(["a", "b"], [7, 5], 2.0, rng()) == Pick(0, 1, 7.0, 5.0)


def test_best_is_chosen_and_worst_is_rejected() -> None:
    assert pick_pointwise(["a", "b", "c"], [3, 9, 5], 1.0, rng()) == Pick(1, 0, 9.0, 3.0)


# missing / unparseable ------------------------------------------------------------
def test_missing_scores_are_never_invented() -> None:
    got = pick_pointwise(["a", "b"], [None, 9], 0.0, rng())
    assert isinstance(got, NoPair) and got.reason == "judge_parse_error"
    # with three candidates, the two scored ones may still pair; the missing one is left out
    assert pick_pointwise(["a", "b", "c"], [None, 9, 2], 0.0, rng()) == Pick(1, 2, 9.0, 2.0)


def test_unparseable_pairwise_verdict_gives_no_pair() -> None:
    assert pick_pairwise(["x", "y"], "A", None).reason == "judge_parse_error"  # type: ignore[union-attr]
    assert pick_pairwise(["x", "y"], None, None).reason == "judge_parse_error"  # type: ignore[union-attr]


def test_parse_score_accepts_only_in_range_numbers() -> None:
    assert parse_score('{"score": 8, "rationale": "ok"}') == 8.0
    assert parse_score('{"score": 11}') is None
    assert parse_score('{"score": 0}') is None
    assert parse_score('{"score": "8"}') is None
    assert parse_score('{"score": true}') is None
    assert parse_score('{"rationale": "no score"}') is None
    assert parse_score("not json") is None
    assert parse_score("") is None and parse_score(None) is None
    assert parse_score("[8]") is None


def test_parse_score_of_schema_guided_reply_cut_by_max_tokens() -> None:
    # the number is complete once a delimiter follows it
    assert parse_score('{"score": 2\n \n \n') == 2.0
    assert parse_score('{ \n "score": 10 ,') == 10.0
    # "1" may be the start of "10": unparseable
    assert parse_score('{"score": 1') is None
    assert parse_score('{ \n \n ') is None


def test_parse_winner() -> None:
    assert parse_winner('{"winner": "B", "rationale": "x"}') == "B"
    assert parse_winner('{"winner":"tie"\n\n') == "tie"
    assert parse_winner('{"winner":"ti') is None
    assert parse_winner('{"winner": "C"}') is None
    assert parse_winner("garbage") is None


# swap ------------------------------------------------------------------------------
def test_unswap() -> None:
    assert (unswap("A"), unswap("B"), unswap("tie")) == ("B", "A", "tie")


def test_swap_is_undone_when_both_orders_agree() -> None:
    # order 1: candidate 0 shown as A wins; order 2: candidate 0 is now shown as B and wins
    assert pick_pairwise(["zero", "one"], "A", "B") == Pick(0, 1)
    assert pick_pairwise(["zero", "one"], "B", "A") == Pick(1, 0)


def test_self_inconsistent_judge_gives_no_pair() -> None:
    # position bias: "A" in both orders means a different candidate each time
    assert pick_pairwise(["zero", "one"], "A", "A").reason == "judge_inconsistent"  # type: ignore[union-attr]
    assert pick_pairwise(["zero", "one"], "B", "B").reason == "judge_inconsistent"  # type: ignore[union-attr]
    assert pick_pairwise(["zero", "one"], "A", "tie").reason == "judge_inconsistent"  # type: ignore[union-attr]


def test_pairwise_identical_texts_never_pair() -> None:
    assert pick_pairwise(["same", "same "], "A", "B").reason == "tie"  # type: ignore[union-attr]


# seeded picks ----------------------------------------------------------------------
def test_tied_best_is_broken_by_the_seed_reproducibly() -> None:
    texts, scores = ["a", "b", "c", "d"], [9, 9, 9, 1]
    picks = [pick_pointwise(texts, scores, 0.0, seeded_rng("run", i)).chosen for i in range(40)]  # type: ignore[union-attr]
    again = [pick_pointwise(texts, scores, 0.0, seeded_rng("run", i)).chosen for i in range(40)]  # type: ignore[union-attr]
    assert picks == again
    assert set(picks) == {0, 1, 2}  # all tied best candidates get picked for some seed, never the worst


def test_seeded_rng_depends_only_on_its_parts() -> None:
    assert seeded_rng(0, "abc", 3).random() == seeded_rng(0, "abc", 3).random()
    assert seeded_rng(0, "abc", 3).random() != seeded_rng(1, "abc", 3).random()


# candidates ------------------------------------------------------------------------
def test_distinct_drops_empty_and_duplicate_texts() -> None:
    assert distinct(["a", "", "  ", "A", "a ", None, "b"]) == [0, 3, 6]


def test_empty_revision() -> None:
    assert pick_revision("orig", "   ").reason == "empty_response"  # type: ignore[union-attr]
    assert pick_revision("orig", "better") == Pick(1, 0)
