"""Unit tests for each pairing rule of DESIGN.md."""

from __future__ import annotations

from prefmix.generators.pairing import (
    NoPair, Pick, distinct, parse_score, parse_winner, pick_pairwise, pick_pointwise, pick_revision, seeded_rng, unswap,
    vote_winner,
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


# expected scores break integer ties, by their own margin -----------------------------
def test_integer_tie_is_broken_by_expected_scores_beyond_their_margin() -> None:
    assert pick_pointwise(["a", "b"], [1, 1], 1.0, rng(), [2.31, 2.62], 0.1) == Pick(1, 0, 1.0, 1.0, by_expected=True)
    within = pick_pointwise(["a", "b"], [1, 1], 1.0, rng(), [2.31, 2.36], 0.1)
    assert isinstance(within, NoPair) and within.reason == "tie" and "gap below 0.1" in within.detail
    # margin 0 still needs a gap: equal expected scores are a tie
    assert pick_pointwise(["a", "b"], [1, 1], 0.0, rng(), [2.5, 2.5], 0.0).reason == "tie"  # type: ignore[union-attr]
    # without tie-breaking (margin None) or without expected scores, a tie stays a tie
    assert pick_pointwise(["a", "b"], [1, 1], 0.0, rng(), [2.3, 2.9], None) == NoPair("tie", "all scored 1")
    assert pick_pointwise(["a", "b"], [1, 1], 0.0, rng(), [None, 2.9], 0.1).reason == "tie"  # type: ignore[union-attr]


def test_expected_scores_never_override_integer_scores_or_min_margin() -> None:
    # integers decide when they differ, whatever the expected scores say
    assert pick_pointwise(["a", "b"], [7, 5], 1.0, rng(), [2.0, 9.0], 0.1) == Pick(0, 1, 7.0, 5.0)
    # min_margin applies to integers only; an integer gap below it is not rescued by expected scores
    assert pick_pointwise(["a", "b"], [6, 5], 2.0, rng(), [9.0, 1.0], 0.1).reason == "below_margin"  # type: ignore[union-attr]
    # tied best among several: the expected score picks among them (no coin toss)
    assert pick_pointwise(["a", "b", "c"], [9, 9, 2], 1.0, rng(), [8.1, 8.7, 2.0], 0.1) == Pick(1, 2, 9.0, 2.0)


# truncation: a candidate cut at max_tokens never becomes chosen ------------------------
def test_truncated_candidate_is_never_chosen() -> None:
    # the judge prefers the truncated one: no pair, under its own reason
    got = pick_pointwise(["cut", "whole"], [8, 5], 1.0, rng(), can_choose=[False, True])
    assert isinstance(got, NoPair) and got.reason == "truncated"
    # the complete one wins: a pair, the truncated one rejected
    assert pick_pointwise(["cut", "whole"], [3, 5], 1.0, rng(), can_choose=[False, True]) == Pick(1, 0, 5.0, 3.0)
    # with three, the best complete answer is chosen over a better-scored truncated one if it beats the worst
    assert pick_pointwise(["cut", "whole", "weak"], [9, 6, 2], 1.0, rng(), can_choose=[False, True, True]) == Pick(1, 2, 6.0, 2.0)
    assert pick_pointwise(["a", "b"], [9, 5], 1.0, rng(), can_choose=[False, False]).reason == "truncated"  # type: ignore[union-attr]
    # tied, the expected scores prefer the truncated one: truncated; too close to tell: tie
    assert pick_pointwise(["cut", "whole"], [1, 1], 1.0, rng(), [2.9, 2.2], 0.1, [False, True]).reason == "truncated"  # type: ignore[union-attr]
    assert pick_pointwise(["cut", "whole"], [1, 1], 1.0, rng(), [2.25, 2.2], 0.1, [False, True]).reason == "tie"  # type: ignore[union-attr]


def test_vote_winner_reads_integers_then_expected_scores() -> None:
    assert vote_winner((7, None), (5, None), 0.1) == "chosen"
    assert vote_winner((5, 9.0), (7, 1.0), 0.1) == "rejected"
    assert vote_winner((1, 2.2), (1, 2.6), 0.1) == "rejected"
    assert vote_winner((1, 2.2), (1, 2.25), 0.1) == "tie"
    assert vote_winner((1, 2.2), (1, 2.6), None) == "tie"
    assert vote_winner((None, None), (1, 2.6), 0.1) is None


def test_pairwise_votes_undo_the_order_in_chosen_terms() -> None:
    from prefmix.generators.strategies.pairwise import order_votes

    # candidate 1 was chosen: the call with candidate 0 shown first is order "ba"
    votes = order_votes("j", "B", "A", chosen=1)
    assert [(v["order"], v["winner"]) for v in votes] == [("ab", "chosen"), ("ba", "chosen")]
    # a judge that flips with the order: in chosen terms its two readings disagree
    votes = order_votes("j", "A", "A", chosen=0)
    assert [(v["order"], v["winner"]) for v in votes] == [("ab", "chosen"), ("ba", "rejected")]
    votes = order_votes("j", "tie", None, chosen=0)
    assert [(v["order"], v["winner"]) for v in votes] == [("ab", "tie"), ("ba", None)]
    assert all(v["chosen_score"] is None and v["judge"] == "j" for v in votes)
