"""The one rule for a share in reports and state files: part / whole, rounded to 6 places; None when whole is 0."""

from __future__ import annotations


def share_of(part: int | float, whole: int | float) -> float | None:
    """part / whole rounded to 6 places, or None when there is nothing to divide by (no votes, no labels, ...)."""
    return round(part / whole, 6) if whole else None
