"""Learning from returned labels: per-domain and per-signal judge-vs-human agreement, and the route model they fit.

Labels: one row per returned routed task (gold items are not about the judge), the people's verdict by plurality
of the counted votes (a draw or a tie gives no verdict), `wrong` when that verdict is not the judge's pick.

The model (prefmix.routing.score) is fitted on those rows by penalized logistic regression:
minimize  NLL(wrong | a[domain] + sum_i w_i s_i)
        + sum_d lambda_d / 2 * (a_d - prior_d)^2      lambda_d = prior_labels * p_d * (1 - p_d)
        + weight_strength / 2 * sum_i (w_i - w0_i)^2
subject to w_i >= 0 (monotone). prior_d is the logit of the domain's prior error rate (the nightly's measured
agreement when there is one, smoothed toward routing.learning.prior_agreement), w0 the configured weights; with
no labels the fit is the prior. Tasks were chosen *because* of their signals, but the model conditions on those
same signals (and the domain), so the selection does not bias it.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from prefmix.routing.score import RouteModel, logit, sigmoid
from prefmix.routing.signals import SIGNALS
from pydantic import BaseModel, ConfigDict, Field

from prefmix.config import Learning, Routing
from prefmix.contract import JudgeHumanAgreement
from prefmix.shares import share_of

HIGH = 0.5  # a signal at or above this is "high" in the per-signal agreement table


class Share(BaseModel):
    model_config = ConfigDict(extra="forbid")

    judged: int = 0
    agree: int = 0
    share: float | None = None


class SignalAgreement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    high: Share = Field(default_factory=Share, description=f"tasks with the signal >= {HIGH}")
    low: Share = Field(default_factory=Share, description=f"tasks with the signal < {HIGH} (null counts as low)")


class AgreementState(BaseModel):
    """store/routing/agreement.json: what returned labels say about the judge, and the model the next queue uses."""

    model_config = ConfigDict(extra="forbid")

    labels: int = 0
    queues: list[str] = Field(default_factory=list)
    per_domain: dict[str, Share] = Field(default_factory=dict)
    per_signal: dict[str, SignalAgreement] = Field(default_factory=dict)
    model: RouteModel
    votes_sha256: str | None = None
    excluded_annotators: list[str] = Field(default_factory=list, description="flagged by the anchoring check")


def _share(frame: pl.DataFrame) -> Share:
    judged = frame.height
    agree = int((~frame.get_column("wrong")).sum()) if judged else 0
    return Share(judged=judged, agree=agree, share=share_of(agree, judged))


def labels(votes: pl.DataFrame, excluded: list[str] | None = None) -> pl.DataFrame:
    """Per routed task with a verdict: queue_id, task_id, domain, SIGNALS, route_score, judge_choice, verdict,
    votes, wrong. `votes`: one row per counted vote (prefmix.routing.state VOTES_SCHEMA); `excluded` annotators'
    votes are left out."""
    counted = votes.filter(~pl.col("is_gold") & pl.col("judge_choice").is_not_null())
    if excluded:
        counted = counted.filter(~pl.col("annotator_id").is_in(excluded))
    per = counted.group_by("queue_id", "task_id").agg(
        pl.col("domain", "judge_choice", "route_score", *SIGNALS).first(),
        a=(pl.col("preference") == "a").sum(),
        b=(pl.col("preference") == "b").sum(),
        tie=(pl.col("preference") == "tie").sum(),
        votes=pl.len(),
    )
    top = pl.max_horizontal("a", "b", "tie")
    draws = (pl.col("a") == top).cast(pl.Int8) + (pl.col("b") == top).cast(pl.Int8) + (pl.col("tie") == top).cast(pl.Int8)
    verdict = pl.when(draws > 1).then(None).when(pl.col("a") == top).then(pl.lit("a")).when(pl.col("b") == top).then(pl.lit("b"))
    per = per.with_columns(verdict=verdict).filter(pl.col("verdict").is_not_null())
    return per.with_columns(wrong=pl.col("verdict") != pl.col("judge_choice")).sort("queue_id", "task_id")


def prior(routing: Routing, measured: JudgeHumanAgreement | None) -> tuple[dict[str, float], float]:
    """(domain -> prior base log-odds, default): the nightly's agreement per domain, smoothed toward the prior."""
    learning = routing.learning
    default = logit(1.0 - learning.prior_agreement)
    out: dict[str, float] = {}
    for domain, share in (measured.per_domain if measured else {}).items():
        agreement = (share.agree + learning.prior_labels * learning.prior_agreement) / (share.judged + learning.prior_labels)
        out[domain] = logit(1.0 - agreement)
    return out, default


def fit(rows: pl.DataFrame, routing: Routing, measured: JudgeHumanAgreement | None = None) -> RouteModel:
    """The route model after the labels in `rows` (labels()); the prior when there are none."""
    priors, default = prior(routing, measured)
    w0 = np.array([getattr(routing.weights, name) for name in SIGNALS], dtype=float)
    if rows.height == 0:
        return RouteModel(intercepts=priors, default_intercept=default, weights=dict(zip(SIGNALS, w0.tolist())))
    domains = sorted(rows.get_column("domain").unique().to_list())
    index = {d: i for i, d in enumerate(domains)}
    d_idx = np.array([index[d] for d in rows.get_column("domain").to_list()])
    x = rows.select([pl.col(name).fill_null(0.0) for name in SIGNALS]).to_numpy().astype(float)
    y = rows.get_column("wrong").cast(pl.Float64).to_numpy()
    a0 = np.array([priors.get(d, default) for d in domains])
    p0 = 1.0 / (1.0 + np.exp(-a0))
    lam_a = routing.learning.prior_labels * p0 * (1.0 - p0)
    lam_w = routing.learning.weight_strength
    theta = _minimize(x, y, d_idx, a0, lam_a, w0, lam_w, len(domains))
    fitted = dict(priors)
    fitted.update({d: float(theta[i]) for d, i in index.items()})
    weights = {name: max(0.0, float(w)) for name, w in zip(SIGNALS, theta[len(domains):])}
    return RouteModel(intercepts=fitted, default_intercept=default, weights=weights, fitted_on=rows.height)


def _minimize(x: np.ndarray, y: np.ndarray, d_idx: np.ndarray, a0: np.ndarray, lam_a: np.ndarray, w0: np.ndarray,
              lam_w: float, n_domains: int) -> np.ndarray:
    from scipy.optimize import minimize

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, w = theta[:n_domains], theta[n_domains:]
        eta = a[d_idx] + x @ w
        # log(1 + e^eta) - y * eta, computed stably
        nll = float(np.sum(np.logaddexp(0.0, eta) - y * eta))
        residual = 1.0 / (1.0 + np.exp(-eta)) - y
        grad_a = np.bincount(d_idx, weights=residual, minlength=n_domains) + lam_a * (a - a0)
        grad_w = x.T @ residual + lam_w * (w - w0)
        penalty = 0.5 * float(np.sum(lam_a * (a - a0) ** 2)) + 0.5 * lam_w * float(np.sum((w - w0) ** 2))
        return nll + penalty, np.concatenate([grad_a, grad_w])

    start = np.concatenate([a0, w0])
    bounds = [(None, None)] * n_domains + [(0.0, None)] * len(w0)
    result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 500})
    return np.asarray(result.x)


def state(rows: pl.DataFrame, model: RouteModel, queues: list[str], votes_sha256: str | None,
          excluded: list[str]) -> AgreementState:
    """Per-domain and per-signal agreement of the labels, with the model fitted on them."""
    per_domain = {d: _share(rows.filter(pl.col("domain") == d)) for d in sorted(rows.get_column("domain").unique().to_list())}
    per_signal = {
        name: SignalAgreement(
            high=_share(rows.filter(pl.col(name).fill_null(0.0) >= HIGH)),
            low=_share(rows.filter(pl.col(name).fill_null(0.0) < HIGH)),
        )
        for name in SIGNALS
    }
    return AgreementState(labels=rows.height, queues=sorted(queues), per_domain=per_domain, per_signal=per_signal,
                          model=model, votes_sha256=votes_sha256, excluded_annotators=sorted(excluded))


__all__ = ["AgreementState", "Learning", "fit", "labels", "prior", "sigmoid", "state"]
