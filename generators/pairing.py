"""Pairing rules (DESIGN.md): pure functions from judge verdicts to a chosen/rejected pick or a reasoned no-pair.

- ties produce no pair; unparseable or missing judge output produces no pair (counted);
- a pointwise tie in integer scores may be broken by the judge's expected scores (score-token probabilities),
  only by a gap of at least their own margin (`expected_margin`; `min_margin` is for integer scores);
- a candidate cut at max_tokens never becomes chosen unless the run keeps truncated answers (reason `truncated`);
- chosen != rejected always; every random pick is seeded;
- a pairwise judge is asked in both orders, the swap is undone, and a judge that
  disagrees with itself produces no pair.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence, TypeVar

from prefmix.records import normalize_text

REASONS = (
    "tie",
    "truncated",
    "below_margin",
    "judge_parse_error",
    "judge_inconsistent",
    "request_failed",
    "empty_response",
    "over_length",
)
Reason = Literal[
    "tie", "truncated", "below_margin", "judge_parse_error", "judge_inconsistent", "request_failed", "empty_response", "over_length"
]
Winner = Literal["A", "B", "tie"]
SCORE_RANGE = (1, 10)
T = TypeVar("T")


@dataclass(frozen=True)
class Pick:
    """Indices into the candidate list, with the judge scores when there are any."""

    chosen: int
    rejected: int
    chosen_score: float | None = None
    rejected_score: float | None = None
    by_expected: bool = False  # the integer scores tied and the expected scores decided


@dataclass(frozen=True)
class NoPair:
    reason: Reason
    detail: str = ""


def seeded_rng(*parts: Any) -> random.Random:
    """A Random whose state depends only on `parts` (never on process hash seeds or time)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def seeded_choice(options: Sequence[T], rng: random.Random) -> T:
    return options[rng.randrange(len(options))]


# A schema-guided reply cut off by max_tokens after its first field is complete still carries a definite
# value: the grammar puts that field first, and a number followed by a delimiter (or a closed string) cannot
# change. Anything short of that is unparseable.
_SCORE_PREFIX = re.compile(r'^\s*\{\s*"score"\s*:\s*(-?\d+(?:\.\d+)?)(?=[\s,}])')
_WINNER_PREFIX = re.compile(r'^\s*\{\s*"winner"\s*:\s*"(A|B|tie)"')


def _json_object(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def parse_score(text: str | None, lo: int = SCORE_RANGE[0], hi: int = SCORE_RANGE[1]) -> float | None:
    """The `score` of a pointwise judge reply, or None when missing, non-numeric or out of range."""
    obj = _json_object(text)
    score: Any = obj.get("score") if obj else None
    if obj is None and text and (m := _SCORE_PREFIX.match(text)):
        score = float(m.group(1))
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not lo <= score <= hi:
        return None
    return float(score)


def parse_winner(text: str | None) -> Winner | None:
    """The `winner` of a pairwise judge reply ("A", "B" or "tie"), or None."""
    obj = _json_object(text)
    winner = obj.get("winner") if obj else None
    if obj is None and text and (m := _WINNER_PREFIX.match(text)):
        winner = m.group(1)
    return winner if winner in ("A", "B", "tie") else None


def distinct(texts: Sequence[str | None]) -> list[int]:
    """Indices of the first occurrence of each distinct non-empty text (normalized), in order."""
    seen: set[str] = set()
    keep: list[int] = []
    for i, text in enumerate(texts):
        norm = normalize_text(text or "")
        if norm and norm not in seen:
            seen.add(norm)
            keep.append(i)
    return keep


def same_text(a: str, b: str) -> bool:
    return normalize_text(a) == normalize_text(b)


def _ranked(pool: Sequence[int], key: Callable[[int], tuple[float, float]], rng: random.Random, best: bool) -> int:
    """The best (or worst) of `pool` by `key`; exact ties broken by `rng`."""
    edge = max(key(i) for i in pool) if best else min(key(i) for i in pool)
    return seeded_choice([i for i in pool if key(i) == edge], rng)


def _beats(a: tuple[float, float | None], b: tuple[float, float | None], min_margin: float,
           expected_margin: float | None) -> NoPair | None:
    """None when a (integer, expected) reading beats b decisively, else why not: the integers by min_margin,
    or, tied, the expected scores by expected_margin (None: no tie-breaking)."""
    if a[0] != b[0]:
        if a[0] < b[0]:
            return NoPair("tie", f"scored {a[0]:g} < {b[0]:g}")
        if a[0] - b[0] < min_margin:
            return NoPair("below_margin", f"margin {a[0] - b[0]:g} < {min_margin:g}")
        return None
    if expected_margin is None or a[1] is None or b[1] is None:
        return NoPair("tie", f"all scored {a[0]:g}")
    gap = a[1] - b[1]
    if gap <= 0 or gap < expected_margin:
        return NoPair("tie", f"all scored {a[0]:g}; expected {a[1]:.3f} vs {b[1]:.3f}, gap below {expected_margin:g}")
    return None


def pick_pointwise(
    texts: Sequence[str],
    scores: Sequence[float | None],
    min_margin: float,
    rng: random.Random,
    expected: Sequence[float | None] | None = None,
    expected_margin: float | None = None,
    can_choose: Sequence[bool] | None = None,
) -> Pick | NoPair:
    """Best vs worst scored candidate.

    Candidates are ordered by (integer score, expected score); `expected` with `expected_margin` set breaks
    integer ties (a gap of at least expected_margin, > 0), else a tie is no pair. Only candidates with
    `can_choose` (not cut at max_tokens) may be chosen; when the judge ranks an excluded one above every
    eligible one the reason is `truncated`. Exact ties are broken by `rng`.
    """
    scored = [i for i, s in enumerate(scores) if s is not None]
    if len(scored) < 2:
        return NoPair("judge_parse_error", f"{len(scored)} of {len(scores)} candidates have a judge score")
    use_expected = expected is not None and expected_margin is not None
    exp = [e if use_expected else None for e in (expected or [None] * len(scores))]
    reading = {i: (float(scores[i]), exp[i]) for i in scored}  # type: ignore[arg-type]
    key = lambda i: (reading[i][0], reading[i][1] if reading[i][1] is not None else -math.inf)  # noqa: E731
    eligible = [i for i in scored if can_choose is None or can_choose[i]]
    if not eligible:
        return NoPair("truncated", f"every scored candidate ({len(scored)}) stopped at max_tokens")
    chosen = _ranked(eligible, key, rng, best=True)
    rejected = _ranked([i for i in scored if i != chosen], key, rng, best=False)
    margin = expected_margin if use_expected else None
    why = _beats(reading[chosen], reading[rejected], min_margin, margin)
    if why is not None:
        top = _ranked(scored, key, rng, best=True)
        if top not in eligible and _beats(reading[top], reading[chosen], 0.0, margin) is None:
            return NoPair("truncated", f"the judge ranked a candidate cut at max_tokens first ({reading[top][0]:g})")
        return why
    if same_text(texts[chosen], texts[rejected]):
        return NoPair("tie", "chosen and rejected texts are identical")
    by_expected = reading[chosen][0] == reading[rejected][0]
    return Pick(chosen, rejected, reading[chosen][0], reading[rejected][0], by_expected)


def vote_winner(chosen: tuple[float | None, float | None], rejected: tuple[float | None, float | None],
                expected_margin: float | None) -> str | None:
    """One judge's pointwise reading of a pair: chosen | rejected | tie (integers first, then expected scores
    by expected_margin when set); None when a score is missing."""
    if chosen[0] is None or rejected[0] is None:
        return None
    if chosen[0] != rejected[0]:
        return "chosen" if chosen[0] > rejected[0] else "rejected"
    if expected_margin is None or chosen[1] is None or rejected[1] is None:
        return "tie"
    gap = chosen[1] - rejected[1]
    if abs(gap) > 0 and abs(gap) >= expected_margin:
        return "chosen" if gap > 0 else "rejected"
    return "tie"


def unswap(winner: Winner) -> Winner:
    """A verdict given with the candidates shown in swapped order, in the original order's terms."""
    return {"A": "B", "B": "A", "tie": "tie"}[winner]  # type: ignore[return-value]


def pick_pairwise(texts: Sequence[str], first: Winner | None, swapped: Winner | None) -> Pick | NoPair:
    """Candidates 0 and 1; `first` judged with 0 as A, `swapped` with 1 as A. Kept only when both orders agree."""
    if len(texts) != 2:
        raise ValueError("pairwise judging compares exactly two candidates")
    if first is None or swapped is None:
        missing = [name for name, v in (("A/B", first), ("B/A", swapped)) if v is None]
        return NoPair("judge_parse_error", f"no verdict for order {' and '.join(missing)}")
    second = unswap(swapped)
    if first == "tie" and second == "tie":
        return NoPair("tie", "judge called a tie in both orders")
    if first != second:
        return NoPair("judge_inconsistent", f"order A/B says {first}, order B/A says {swapped} (= {second} unswapped)")
    if same_text(texts[0], texts[1]):
        return NoPair("tie", "both candidates have the same text")
    return Pick(0, 1) if first == "A" else Pick(1, 0)


def pick_revision(original: str, revision: str) -> Pick | NoPair:
    """Constitutional pair: candidates [original, revision]; chosen = revision."""
    if not normalize_text(revision):
        return NoPair("empty_response", "revision is empty")
    if same_text(original, revision):
        return NoPair("tie", "revision equals the original")
    return Pick(1, 0)
