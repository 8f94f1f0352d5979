"""The batch summary PNG: composition (rows by domain x source) and score distributions."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from prefmix.records import SOURCES
from prefmix.store import atomic_write_bytes


def summary_png(frame: pl.DataFrame, path: Path, title: str) -> Path:
    """Draw the composition and score histograms; written atomically."""
    return finish_png(summary_figure(frame), path, title)


def summary_figure(frame: pl.DataFrame) -> Any:
    """The summary plot's figure, all but its title (the verdict, known last): the gate builds it while the
    overlap checks run and finishes it with finish_png."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5), dpi=100)
    ax_comp, ax_scores, ax_margin = fig.subplots(1, 3)

    comp = frame.group_by("domain", "source").len()
    domains = sorted(str(d) for d in comp["domain"].unique().to_list())
    bottom = np.zeros(len(domains))
    for source in [*SOURCES, *sorted(set(map(str, comp["source"].unique().to_list())) - set(SOURCES))]:
        counts = dict(comp.filter(pl.col("source") == source).select("domain", "len").iter_rows())
        values = np.array([counts.get(d, 0) for d in domains], dtype=float)
        if values.any():
            ax_comp.bar(domains, values, bottom=bottom, label=source)
            bottom += values
    ax_comp.set_title("rows by domain x source")
    ax_comp.legend(loc="upper right")
    ax_comp.tick_params(axis="x", rotation=30)

    for column in ("chosen_score", "rejected_score"):
        values = frame[column].drop_nulls().drop_nans().to_numpy()
        if values.size:
            ax_scores.hist(values, bins=40, alpha=0.6, label=column)
    ax_scores.set_title("score distributions")
    if ax_scores.has_data():
        ax_scores.legend(loc="upper right")

    margins = (
        frame.filter(pl.col("source") == "synthetic")
        .select(m=pl.col("chosen_score") - pl.col("rejected_score"))["m"]
        .drop_nulls()
        .drop_nans()
        .to_numpy()
    )
    if margins.size:
        ax_margin.hist(margins, bins=40, color="tab:green")
    ax_margin.set_title("synthetic margin (chosen - rejected)")
    return fig


def finish_png(fig: Any, path: Path, title: str) -> Path:
    """Title the summary figure, render it and write it atomically."""
    fig.suptitle(title)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.16, top=0.86, wspace=0.25)  # fixed: tight_layout draws twice
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())
