"""Pairing rules (DESIGN.md): pure functions from judge verdicts to a chosen/rejected pick or a reasoned no-pair.

- ties produce no pair; unparseable or missing judge output produces no pair (counted);
- chosen != rejected always; every random pick is seeded;
- a pairwise judge is asked in both orders, the swap is undone, and a judge that
  disagrees with itself produces no pair.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from typing import Any, Literal, Sequence, TypeVar

from prefmix.records import normalize_text

REASONS = (
    "tie",
    "below_margin",
    "judge_parse_error",
    "judge_inconsistent",
    "request_failed",
    "empty_response",
    "over_length",
)
Reason = Literal[
    "tie", "below_margin", "judge_parse_error", "judge_inconsistent", "request_failed", "empty_response", "over_length"
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


def pick_pointwise(
    texts: Sequence[str], scores: Sequence[float | None], min_margin: float, rng: random.Random
) -> Pick | NoPair:
    """Best vs worst scored candidate; ties among the best (or worst) are broken by `rng`."""
    scored = [i for i, s in enumerate(scores) if s is not None]
    if len(scored) < 2:
        return NoPair("judge_parse_error", f"{len(scored)} of {len(scores)} candidates have a judge score")
    values = {i: float(scores[i]) for i in scored}  # type: ignore[arg-type]
    best, worst = max(values.values()), min(values.values())
    if best == worst:
        return NoPair("tie", f"all scored {best:g}")
    if best - worst < min_margin:
        return NoPair("below_margin", f"margin {best - worst:g} < {min_margin:g}")
    chosen = seeded_choice([i for i in scored if values[i] == best], rng)
    rejected = seeded_choice([i for i in scored if values[i] == worst], rng)
    if same_text(texts[chosen], texts[rejected]):
        return NoPair("tie", "chosen and rejected texts are identical")
    return Pick(chosen, rejected, best, worst)


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
