"""The anchoring check: do people agree with the judge more when they are shown its suggestion?

Overall: the share of votes that agree with the judge's pick, on tasks sent with the suggestion and without.
Per annotator, paired so that item difficulty cancels: on routed tasks with two or more votes, a vote's *excess*
is its agreement with the judge (1/0) minus the mean agreement of the task's other votes. An annotator's gap is
mean excess with the suggestion shown minus mean excess with it hidden; its z is gap / standard error (Welch).
An annotator is flagged when they have min_votes votes in both conditions, gap >= flag_gap and z >= min_z.
Flagged annotators' votes are left out of what routing learns (prefmix.routing.learn).
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from prefmix.config import Anchoring
from prefmix.shares import share_of


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    votes: int = 0
    agree: int = 0
    share: float | None = None

    @classmethod
    def counted(cls, group: dict[str, Any] | None) -> Condition:
        """From a group's counts (n votes, agree of them with the judge); no group, no votes."""
        votes, agree = int((group or {}).get("n", 0)), int((group or {}).get("agree", 0))
        return cls(votes=votes, agree=agree, share=share_of(agree, votes))


class AnnotatorAnchoring(BaseModel):
    model_config = ConfigDict(extra="forbid")

    annotator_id: str
    shown: Condition
    hidden: Condition
    gap: float | None = None
    z: float | None = None
    flagged: bool = False


class AnchoringReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shown: Condition = Field(default_factory=Condition, description="votes on tasks sent with the suggestion")
    hidden: Condition = Field(default_factory=Condition, description="votes on tasks sent without it")
    annotators: list[AnnotatorAnchoring] = Field(default_factory=list)
    flagged: list[str] = Field(default_factory=list)


def check(votes: pl.DataFrame, settings: Anchoring) -> AnchoringReport:
    """votes: annotator_id, task_id, queue_id, preference, judge_choice, suggestion_shown, is_gold (one row a vote)."""
    routed = votes.filter(~pl.col("is_gold") & pl.col("judge_choice").is_not_null())
    routed = routed.with_columns(agrees=(pl.col("preference") == pl.col("judge_choice")).cast(pl.Float64))
    overall = routed.group_by("suggestion_shown").agg(n=pl.len(), agree=pl.col("agrees").sum())
    by = {r["suggestion_shown"]: r for r in overall.iter_rows(named=True)}
    shown, hidden = Condition.counted(by.get(True)), Condition.counted(by.get(False))

    task = ["queue_id", "task_id"]
    paired = routed.with_columns(n=pl.len().over(task), total=pl.col("agrees").sum().over(task)).filter(pl.col("n") > 1)
    paired = paired.with_columns(excess=pl.col("agrees") - (pl.col("total") - pl.col("agrees")) / (pl.col("n") - 1))
    raw = routed.group_by("annotator_id", "suggestion_shown").agg(n=pl.len(), agree=pl.col("agrees").sum())
    stats = paired.group_by("annotator_id", "suggestion_shown").agg(
        m=pl.col("excess").mean(), var=pl.col("excess").var(), k=pl.len()
    )
    raw_by = {(r["annotator_id"], r["suggestion_shown"]): r for r in raw.iter_rows(named=True)}
    stat_by = {(r["annotator_id"], r["suggestion_shown"]): r for r in stats.iter_rows(named=True)}
    people: list[AnnotatorAnchoring] = []
    for who in sorted(routed.get_column("annotator_id").drop_nulls().unique().to_list()):
        conds = {flag: Condition.counted(raw_by.get((who, flag))) for flag in (True, False)}
        s, h = stat_by.get((who, True)), stat_by.get((who, False))
        gap = z = None
        flagged = False
        if s is not None and h is not None:
            gap = float(s["m"] - h["m"])
            se = math.sqrt((s["var"] or 0.0) / s["k"] + (h["var"] or 0.0) / h["k"])
            z = gap / se if se > 0 else (math.inf if gap > 0 else 0.0)
            enough = s["k"] >= settings.min_votes and h["k"] >= settings.min_votes
            flagged = bool(enough and gap >= settings.flag_gap and z >= settings.min_z)
        people.append(AnnotatorAnchoring(annotator_id=who, shown=conds[True], hidden=conds[False],
                                         gap=None if gap is None else round(gap, 6),
                                         z=None if z is None or math.isinf(z) else round(z, 4), flagged=flagged))
    return AnchoringReport(shown=shown, hidden=hidden, annotators=people, flagged=[p.annotator_id for p in people if p.flagged])
