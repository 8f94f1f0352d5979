"""Human-annotation report: rich tables of agreement, calibration and exclusions; a PNG of annotator accuracy."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from prefmix.store import atomic_write_bytes

CHART_NAME = "annotator_accuracy.png"


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _name(path: str) -> str:
    return Path(path).name


def tables(stats: dict[str, Any]) -> list[Table]:
    """The report as rich tables (shards, domains, review passes, annotators, rejections)."""
    out: list[Table] = []
    shards = Table(title="Human shards: agreement (Krippendorff's alpha, nominal; pairwise percent agreement)")
    for col in ("shard", "layout", "vendor", "rows", "items", "pairs out", "rejected", "alpha", "% agree", "alpha before excl."):
        shards.add_column(col, justify="right" if col not in ("shard", "layout", "vendor") else "left")
    for s in stats["shards"]:
        before = s.get("agreement_before_exclusion", {}).get("alpha")
        shards.add_row(
            _name(s["path"]), s["layout"], s["vendor"], str(s["rows"]), str(s["items_in"]), str(s["pairs_out"]),
            str(s["items_rejected"]), _num(s["agreement"].get("alpha")), _num(s["agreement"].get("percent_agreement")), _num(before),
        )
    out.append(shards)

    domains = Table(title="Per domain (all shards; agreement from judgment shards)")
    for col in ("domain", "pairs out", "rejected", "alpha", "% agree", "judgments"):
        domains.add_column(col, justify="left" if col == "domain" else "right")
    for domain, d in stats["per_domain"].items():
        domains.add_row(domain, str(d["pairs_out"]), str(d["items_rejected"]), _num(d.get("alpha")), _num(d.get("percent_agreement")), _num(d.get("judgments")))
    out.append(domains)

    passes = Table(title="Agreement after each review pass (latest answer per annotator up to that pass)")
    for col in ("shard", "pass", "judgments in pass", "alpha", "% agree"):
        passes.add_column(col, justify="left" if col == "shard" else "right")
    for s in stats["shards"]:
        for p, d in s.get("per_review_pass", {}).items():
            passes.add_row(_name(s["path"]), p, str(d["judgments_in_pass"]), _num(d["alpha"]), _num(d["percent_agreement"]))
    if passes.row_count:
        out.append(passes)

    threshold = stats["policy"]["min_gold_accuracy"]
    people = Table(title=f"Calibration: accuracy on gold items (excluded below {threshold:g})")
    for col in ("shard", "annotator", "judgments", "gold", "correct", "accuracy", "status"):
        people.add_column(col, justify="left" if col in ("shard", "annotator", "status") else "right")
    for a in stats["annotators"]:
        status = "[red]EXCLUDED[/red]" if a["excluded"] else ("no gold items" if a["n_gold"] == 0 else "ok")
        people.add_row(_name(a["shard"]), a["annotator_id"], str(a["judgments"]), str(a["n_gold"]), str(a["correct"]), _num(a["accuracy"]), status)
    if people.row_count:
        out.append(people)

    reasons = Table(title="Rejected items by reason")
    reasons.add_column("reason")
    reasons.add_column("items", justify="right")
    for reason, count in stats["totals"]["rejected_by_reason"].items():
        reasons.add_row(reason, str(count))
    out.append(reasons)
    return out


def render(stats: dict[str, Any], console: Console) -> None:
    for table in tables(stats):
        console.print(table)
    overall = stats.get("overall", {})
    console.print(
        f"Overall agreement (judgment shards pooled): alpha {_num(overall.get('alpha'))}, "
        f"percent agreement {_num(overall.get('percent_agreement'))}"
    )
    totals = stats["totals"]
    console.print(
        f"Accounting: {totals['items_in']} items in = {totals['items_with_pairs']} with pairs + "
        f"{totals['items_rejected']} rejected; {totals['pairs_out']} pairs out"
    )
    excluded = stats["excluded_annotators"]
    if excluded:
        names = ", ".join(f"{e['annotator_id']} ({_name(e['shard'])}, gold accuracy {_num(e['accuracy'])})" for e in excluded)
        console.print(f"Excluded before aggregation: {names}")
    else:
        console.print("Excluded before aggregation: none")


def plot_accuracy(stats: dict[str, Any], out_dir: Path) -> Path | None:
    """Bar chart of per-annotator gold accuracy (excluded in red, threshold dashed); None without gold items."""
    rows = [a for a in stats["annotators"] if a["n_gold"] > 0]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    several = len({a["shard"] for a in rows}) > 1
    labels = [f"{_name(a['shard'])}:{a['annotator_id']}" if several else a["annotator_id"] for a in rows]
    colors = ["#c0392b" if a["excluded"] else "#2e86c1" for a in rows]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(rows) + 1.5), 3.2), dpi=100)
    ax.bar(labels, [a["accuracy"] for a in rows], color=colors)
    threshold = stats["policy"]["min_gold_accuracy"]
    ax.axhline(threshold, color="black", linestyle="--", linewidth=1, label=f"min gold accuracy {threshold:g}")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy on gold items")
    ax.set_title("Annotator calibration (red = excluded)")
    ax.legend(loc="lower right", fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    # fixed metadata keeps the PNG byte-identical for identical stats
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return atomic_write_bytes(Path(out_dir) / CHART_NAME, buffer.getvalue())
