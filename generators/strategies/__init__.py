"""Preference strategies: each turns one prompt row into a record or a reasoned rejection."""

from __future__ import annotations

from prefmix.generators.strategies import constitutional, pairwise, pointwise
from prefmix.generators.strategies.base import Context, Outcome, StrategyFn, Tally

STRATEGIES: dict[str, StrategyFn] = {
    "pointwise": pointwise.run,
    "pairwise": pairwise.run,
    "constitutional": constitutional.run,
}

__all__ = ["STRATEGIES", "Context", "Outcome", "Tally"]
