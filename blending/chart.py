"""The composition chart: requested vs achieved rows per domain and source."""

from __future__ import annotations

import io
from pathlib import Path

from prefmix.contract import BlendSummary
from prefmix.records import SOURCES
from prefmix.store import atomic_write_bytes


def composition_png(summary: BlendSummary, path: Path) -> Path:
    """Grouped bars (requested hatched, achieved solid) per domain and source; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    requested, achieved = summary.requested, summary.achieved
    domains = list(requested)
    series = [
        ("human requested", requested, "human", "#9ecae1", "//"),
        ("human achieved", achieved, "human", "#3182bd", ""),
        ("synthetic requested", requested, "synthetic", "#fdae6b", "//"),
        ("synthetic achieved", achieved, "synthetic", "#e6550d", ""),
    ]
    width = 0.2
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(domains) + 2), 4.0), dpi=100)
    for i, (label, counts, source, color, hatch) in enumerate(series):
        xs = [d + (i - 1.5) * width for d in range(len(domains))]
        ax.bar(xs, [counts.get(dom, {}).get(source, 0) for dom in domains], width, label=label, color=color, hatch=hatch)
    # the achieved share under each domain: the number the ratio config is about
    labels = []
    for dom in domains:
        got = achieved.get(dom, {})
        total = sum(got.values())
        shares = " / ".join(f"{100 * got.get(src, 0) / total:.0f}%" for src in SOURCES) if total else "empty"
        labels.append(f"{dom}\n{total} rows\nhuman / synthetic {shares}")
    ax.set_xticks(range(len(domains)), labels, fontsize=8)
    ax.set_ylabel("rows")
    ax.set_title(f"blend composition: {summary.rows} rows (ratio = share of output rows)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
