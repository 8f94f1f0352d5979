"""The rules of the trajectory derivations, as one typed config section (the lead mounts it in prefmix.config)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from prefmix.config import Fraction, Model

Mode = Literal["trajectory", "step", "labels", "kto"]


class Reviews(Model):
    """Human step reviews (ratings -1/0/1) -> per-step labels by the first-error rule."""

    zero_rating: Literal["good", "bad"] = Field(
        "good", description="what a 0 (neutral) rating means; PRM800K's 0 is 'okay, not wrong', hence good by default"
    )
    min_annotators: int = Field(1, ge=1, description="counted reviews a step needs before it is labelled")
    min_agreement: Fraction = Field(0.0, description="least share of counted reviews on the winning rating")
    min_gold_accuracy: Fraction = Field(0.0, description="annotators below this accuracy on gold trajectories are excluded")


class MonteCarlo(Model):
    """Step labels from outcomes of the runs that continue from the same prefix (Math-Shepherd style)."""

    estimate: Literal["hard", "soft"] = Field("hard", description="hard: any rollout from the prefix resolved; soft: share")
    soft_threshold: Fraction = Field(0.5, description="soft: a step is good when its success share is at least this")
    min_rollouts: int = Field(1, ge=1, description="steps with fewer rollouts end the labelled part of a run")


class Rules(Model):
    seed: int = 0
    domain: str = Field("code", description="domain of every derived row (the blend apportions by domain)")
    max_pairs_per_task: int = Field(
        4, ge=1, description="most pairs kept per task and environment, in seeded order (the rest: cut_by_cap)"
    )
    reviews: Reviews = Field(default_factory=Reviews)
    monte_carlo: MonteCarlo = Field(default_factory=MonteCarlo)
