"""The route score: the probability that people would disagree with the judge's pick on this pair.

    route_score = sigmoid( a[domain] + sum_i w_i * s_i )

- s_i: the doubt signals of prefmix.routing.signals (each in [0, 1]; a null signal adds nothing);
- w_i >= 0: log-odds of a judge error per unit of signal (routing.weights, refitted from returned labels);
- a[domain]: the domain's base log-odds of a judge error, logit(1 - agreement), where agreement is the
  domain's judge-vs-human agreement (the nightly's measurement and returned labels, shrunk toward
  routing.learning.prior_agreement); a domain never measured gets the prior's.

Because every w_i >= 0 and sigmoid is increasing, more doubt on any signal never lowers the score. The score is
also the expected number of judge errors one human verdict on the pair finds, which is what a budget buys.
The reason recorded with each pair is the term that added most log-odds: a signal (w_i * s_i), or
`domain_agreement` (how far the domain's base sits above the prior's), or `base_rate` when nothing adds.
"""

from __future__ import annotations

import math

import polars as pl
from prefmix.routing.signals import SIGNALS
from pydantic import BaseModel, ConfigDict, Field

EPS = 1e-3


def logit(p: float) -> float:
    p = min(max(p, EPS), 1.0 - EPS)
    return math.log(p / (1.0 - p))


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class RouteModel(BaseModel):
    """The numbers a route score is computed from; recorded with every queue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    intercepts: dict[str, float] = Field(default_factory=dict, description="domain -> base log-odds of a judge error")
    default_intercept: float = Field(description="base log-odds for a domain with no intercept (the prior's)")
    weights: dict[str, float] = Field(description="signal -> log-odds per unit, >= 0")
    fitted_on: int = Field(0, description="returned labels the model was fitted on (0: prior only)")

    def intercept(self, domain: str) -> float:
        return self.intercepts.get(domain, self.default_intercept)


def score(signals: pl.DataFrame, model: RouteModel) -> pl.DataFrame:
    """The signals frame (record_id, domain, SIGNALS...) plus route_score, route_reason and judge_confidence
    (1 - route_score: the model's probability that the judge's pick is what people pick)."""
    base = pl.col("domain").replace_strict(model.intercepts, default=model.default_intercept, return_dtype=pl.Float64)
    terms = {name: (pl.col(name).fill_null(0.0) * model.weights.get(name, 0.0)) for name in SIGNALS}
    terms["domain_agreement"] = base - model.default_intercept
    logits = base + pl.sum_horizontal(*(terms[name] for name in SIGNALS))
    names = list(terms)
    contributions = pl.concat_list([terms[name] for name in names])
    top = contributions.list.arg_max()
    reason = (
        pl.when(contributions.list.max() > 1e-12)
        .then(top.replace_strict(dict(enumerate(names)), return_dtype=pl.String))
        .otherwise(pl.lit("base_rate"))
    )
    route_score = 1.0 / (1.0 + (-logits).exp())
    return signals.with_columns(route_score=route_score, route_reason=reason).with_columns(
        judge_confidence=1.0 - pl.col("route_score")
    )
