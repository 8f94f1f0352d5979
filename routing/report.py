"""What human labels bought: spend and labels per domain and vendor, judge errors found per label, the anchoring
check, and a picture of route score against the disagreement people showed.

A judge error found is a routed task whose people's verdict (prefmix.routing.learn.labels) is not the judge's
pick. Per label: divided by every label paid for (gold included: quality control costs labels too).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from prefmix.routing.anchoring import AnchoringReport
from pydantic import BaseModel, ConfigDict, Field

from prefmix.shares import share_of


class SpendRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vendor: str
    domain: str
    labels: int
    gold_labels: int
    spend: float
    tasks_with_verdict: int
    judge_errors: int
    errors_per_label: float | None = None


class Yield(BaseModel):
    """Totals over every delivered label."""

    model_config = ConfigDict(extra="forbid")

    labels: int = 0
    spend: float = 0.0
    judge_errors: int = 0
    errors_per_label: float | None = None
    rows: list[SpendRow] = Field(default_factory=list)


def spend(votes: pl.DataFrame, labelled: pl.DataFrame) -> Yield:
    """votes: VOTES_SCHEMA rows; labelled: prefmix.routing.learn.labels(votes) (per task verdicts)."""
    paid = votes.group_by("vendor", "domain").agg(
        labels=pl.len(), gold_labels=pl.col("is_gold").sum(), spend=pl.col("price_per_label").fill_null(0.0).sum()
    )
    vendors = votes.select("queue_id", "task_id", "vendor").unique(["queue_id", "task_id"])
    found = labelled.join(vendors, on=["queue_id", "task_id"], how="left").group_by("vendor", "domain").agg(
        tasks_with_verdict=pl.len(), judge_errors=pl.col("wrong").sum()
    )
    table = paid.join(found, on=["vendor", "domain"], how="left").with_columns(
        pl.col("tasks_with_verdict", "judge_errors").fill_null(0)
    ).sort("vendor", "domain")
    rows = [
        SpendRow(vendor=r["vendor"], domain=r["domain"], labels=r["labels"], gold_labels=r["gold_labels"],
                 spend=round(r["spend"], 6), tasks_with_verdict=r["tasks_with_verdict"], judge_errors=r["judge_errors"],
                 errors_per_label=share_of(r["judge_errors"], r["labels"]))
        for r in table.iter_rows(named=True)
    ]
    labels = sum(r.labels for r in rows)
    errors = sum(r.judge_errors for r in rows)
    return Yield(labels=labels, spend=round(sum(r.spend for r in rows), 6), judge_errors=errors,
                 errors_per_label=share_of(errors, labels), rows=rows)


def observed(votes: pl.DataFrame, excluded: list[str] | None = None) -> pl.DataFrame:
    """Per routed task: its route score and the share of its counted votes against the judge's pick."""
    routed = votes.filter(~pl.col("is_gold") & pl.col("judge_choice").is_not_null())
    if excluded:
        routed = routed.filter(~pl.col("annotator_id").is_in(excluded))
    return routed.group_by("queue_id", "task_id").agg(
        pl.col("route_score").first(), pl.col("domain").first(),
        disagreement=(pl.col("preference") != pl.col("judge_choice")).cast(pl.Float64).mean(), votes=pl.len(),
    ).sort("queue_id", "task_id")


def picture(points: pl.DataFrame, path: Path) -> Path:
    """PNG: each task's route score against the share of people who disagreed with the judge, binned means on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    if points.height:
        x = points.get_column("route_score").to_numpy()
        y = points.get_column("disagreement").to_numpy()
        ax.scatter(x, y, s=14, alpha=0.35, label=f"tasks ({points.height})")
        bins = points.with_columns(bin=(pl.col("route_score") * 10).floor().clip(0, 9)).group_by("bin").agg(
            x=pl.col("route_score").mean(), y=pl.col("disagreement").mean(), n=pl.len()
        ).sort("bin")
        ax.plot(bins["x"].to_numpy(), bins["y"].to_numpy(), "o-", color="C3", label="mean per score decile")
    ax.plot([0, 1], [0, 1], ":", color="grey", label="calibrated")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("route score (predicted chance people disagree with the judge)")
    ax.set_ylabel("share of people who disagreed with the judge")
    ax.set_title("route score vs observed disagreement")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    tmp.replace(path)
    return path


def markdown(title: str, outcome: Yield, anchoring: AnchoringReport, agreement: dict[str, tuple[int, int]],
             lines: list[str] | None = None, picture_path: str | None = None) -> str:
    """The report as markdown (the flow's Prefect artifact and routing/report/report.md)."""
    out = [f"# {title}", "", *(lines or []), ""]
    out += [f"- labels delivered to date: **{outcome.labels}**, spend {outcome.spend:g}",
            f"- judge errors found: **{outcome.judge_errors}** ({_num(outcome.errors_per_label)} per human label)", ""]
    if outcome.rows:
        out += ["| vendor | domain | labels | gold labels | spend | tasks with a verdict | judge errors | per label |",
                "|---|---|---:|---:|---:|---:|---:|---:|"]
        out += [f"| {r.vendor} | {r.domain} | {r.labels} | {r.gold_labels} | {r.spend:g} | {r.tasks_with_verdict} | "
                f"{r.judge_errors} | {_num(r.errors_per_label)} |" for r in outcome.rows]
        out.append("")
    if agreement:
        out += ["| domain | judge-vs-human agreement (returned labels) |", "|---|---:|"]
        out += [f"| {d} | {agree}/{judged} = {_num(agree / judged if judged else None)} |" for d, (agree, judged) in sorted(agreement.items())]
        out.append("")
    out += ["## Anchoring check", "",
            f"- agreement with the judge when its suggestion was shown: {_num(anchoring.shown.share)} ({anchoring.shown.votes} votes)",
            f"- when it was hidden: {_num(anchoring.hidden.share)} ({anchoring.hidden.votes} votes)",
            f"- flagged annotators: {', '.join(anchoring.flagged) or 'none'}", ""]
    if anchoring.annotators:
        out += ["| annotator | agree shown | agree hidden | paired gap | z | flagged |", "|---|---:|---:|---:|---:|---|"]
        out += [f"| {a.annotator_id} | {_num(a.shown.share)} ({a.shown.votes}) | {_num(a.hidden.share)} ({a.hidden.votes}) | "
                f"{_num(a.gap)} | {_num(a.z)} | {'yes' if a.flagged else ''} |" for a in anchoring.annotators]
        out.append("")
    if picture_path:
        out += [f"Route score against observed disagreement: `{picture_path}`", ""]
    return "\n".join(out)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
