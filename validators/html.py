"""The batch report a person can open anywhere: one HTML file, styles inline, pictures embedded as base64,
no script and no network (GX's Data Docs load CSS and JavaScript from CDNs and are empty offline).

Holds the verdict, every check (figure, threshold, severity, result), the sample rows of failed checks,
the composition (rows by domain x source, the summary plot) and the agreement figures. Links to the GX
Data Docs and validation JSON are relative, so they stay right when the batch folder moves.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from html import escape
from pathlib import Path
from typing import Any, Iterable

import polars as pl

from prefmix.contract import GateCheck, GateFacts
from prefmix.store import atomic_write_text

STYLE = """
body{font:14px/1.45 -apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1200px;
color:#1d232a;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dee4;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
.verdict{display:inline-block;font-weight:700;font-size:18px;padding:4px 14px;border-radius:6px;color:#fff}
.verdict-pass{background:#1a7f37}.verdict-warn{background:#9a6700}.verdict-fail{background:#cf222e}
.muted{color:#57606a}table{border-collapse:collapse;width:100%;margin:6px 0 12px}
th,td{border:1px solid #d8dee4;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}tr.failed-critical td{background:#ffebe9}tr.failed-warning td{background:#fff8c5}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:700}.warnc{color:#9a6700;font-weight:700}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
pre{white-space:pre-wrap;word-break:break-word;margin:0}
img{max-width:100%;border:1px solid #d8dee4}
ul.failed{margin:6px 0 0 0;padding-left:20px}
"""


def write_report(path: Path, *, batch_id: str, verdict: str, checks: list[GateCheck], failed_critical: list[str],
                 failed_warning: list[str], frame: pl.DataFrame, facts: GateFacts, pictures: Iterable[Path],
                 links: dict[str, str]) -> Path:
    """Render and write the report atomically; returns its path."""
    return atomic_write_text(path, render(
        batch_id=batch_id, verdict=verdict, checks=checks, failed_critical=failed_critical,
        failed_warning=failed_warning, frame=frame, facts=facts, pictures=pictures, links=links,
    ))


def render(*, batch_id: str, verdict: str, checks: list[GateCheck], failed_critical: list[str],
           failed_warning: list[str], frame: pl.DataFrame, facts: GateFacts, pictures: Iterable[Path],
           links: dict[str, str]) -> str:
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # No request may leave the page: a CSP that allows only inline styles and data: images.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">",
        f"<title>Gate {escape(verdict.upper())}: {escape(batch_id)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Batch <code>{escape(batch_id)}</code></h1>",
        f'<p><span class="verdict verdict-{escape(verdict)}" id="verdict">Gate verdict: {escape(verdict.upper())}</span> '
        f'<span class="muted">{frame.height:,} rows &middot; {len(checks)} checks &middot; gated {when}</span></p>',
        _failed_lists(failed_critical, failed_warning),
        _links(links),
        "<h2>Checks</h2>",
        _checks_table(checks),
        _samples(checks),
        "<h2>Composition</h2>",
        _composition(frame),
        *[_picture(p) for p in pictures if p.is_file()],
        "<h2>Agreement</h2>",
        _agreement(checks, facts),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _failed_lists(critical: list[str], warning: list[str]) -> str:
    def items(names: list[str]) -> str:
        return "".join(f"<li><code>{escape(n)}</code></li>" for n in names) or "<li>none</li>"

    return (
        '<div id="failed-checks"><h2>Failed checks</h2>'
        f'<p><b>Critical</b> (block publication):</p><ul class="failed" id="failed-critical">{items(critical)}</ul>'
        f'<p><b>Warning</b> (published, flagged):</p><ul class="failed" id="failed-warning">{items(warning)}</ul></div>'
    )


def _links(links: dict[str, str]) -> str:
    shown = [f'<a href="{escape(href)}">{escape(label)}</a>' for label, href in links.items() if href]
    return f'<p class="muted">Also: {" &middot; ".join(shown)}</p>' if shown else ""


def _figure(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 300 else text[:297] + "..."


def _checks_table(checks: list[GateCheck]) -> str:
    rows = []
    for c in checks:
        cls = "" if c.success else f' class="failed-{c.severity}"'
        status = '<span class="ok">ok</span>' if c.success else (
            '<span class="bad">FAILED</span>' if c.severity == "critical" else '<span class="warnc">FAILED</span>')
        origin = f'<br><span class="muted">suite {escape(c.suite)}</span>' if c.suite else ""
        rows.append(
            f"<tr{cls}><td><code>{escape(c.name)}</code>{origin}</td><td>{escape(c.severity)}</td><td>{status}</td>"
            f"<td><pre>{escape(_figure(c.observed))}</pre></td><td>{escape(c.expected)}</td>"
            f"<td>{escape(c.message)}</td></tr>"
        )
    return ("<table id=\"checks\"><tr><th>check</th><th>severity</th><th>result</th><th>figure</th>"
            "<th>threshold</th><th>message</th></tr>" + "".join(rows) + "</table>")


def _samples(checks: list[GateCheck]) -> str:
    failed = [c for c in checks if not c.success]
    if not failed:
        return ""
    out = ["<h2>Failing sample rows</h2>"]
    for c in failed:
        out.append(f'<h3 id="samples-{escape(c.name)}"><code>{escape(c.name)}</code> ({escape(c.severity)})</h3>')
        if not c.samples:
            out.append('<p class="muted">no row-level samples: this check is about the whole batch</p>')
            continue
        columns = list(dict.fromkeys(k for s in c.samples for k in s))
        head = "".join(f"<th>{escape(k)}</th>" for k in columns)
        body = "".join(
            "<tr>" + "".join(f"<td><pre>{escape(_cell(s.get(k)))}</pre></td>" for k in columns) + "</tr>" for s in c.samples
        )
        out.append(f"<table><tr>{head}</tr>{body}</table>")
    return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)


def _composition(frame: pl.DataFrame) -> str:
    if frame.height == 0:
        return "<p>no rows</p>"
    comp = frame.group_by("domain", "source").len().sort("domain", "source")
    sources = sorted(str(s) for s in comp["source"].unique().to_list())
    table: dict[str, dict[str, int]] = {}
    for domain, source, n in comp.iter_rows():
        table.setdefault(str(domain), {})[str(source)] = int(n)
    splits = dict(frame.group_by("split").len().iter_rows())
    head = "".join(f"<th>{escape(s)}</th>" for s in sources)
    body = []
    for domain, counts in table.items():
        total = sum(counts.values())
        cells = "".join(
            f'<td class="num">{counts.get(s, 0):,} ({counts.get(s, 0) / total:.1%})</td>' for s in sources
        )
        body.append(f"<tr><td>{escape(domain)}</td>{cells}<td class=\"num\">{total:,}</td></tr>")
    split_text = ", ".join(f"{escape(str(k))}: {v:,}" for k, v in sorted(splits.items(), key=lambda kv: str(kv[0])))
    return (f'<table id="composition"><tr><th>domain</th>{head}<th>rows</th></tr>{"".join(body)}</table>'
            f'<p class="muted">splits: {split_text}</p>')


def _picture(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<p><img alt="{escape(path.stem)}" src="data:image/png;base64,{data}"></p>'


def _agreement(checks: list[GateCheck], facts: GateFacts) -> str:
    by_name = {c.name: c for c in checks}
    rows = []
    for name, label, fact in (("human_agreement", "human annotator agreement", facts.human_agreement),
                              ("judge_human", "judge-human calibration", facts.judge_human)):
        check = by_name.get(name)
        value = fact if fact is not None else (check.observed if check else None)
        shown = "n/a" if value is None else (f"{value:.3f}" if isinstance(value, (int, float)) else _figure(value))
        threshold = check.expected if check else ""
        rows.append(f"<tr><td>{escape(label)}</td><td class=\"num\">{escape(shown)}</td><td>{escape(threshold)}</td>"
                    f"<td>{escape(check.message if check else 'check off')}</td></tr>")
    return ("<table id=\"agreement\"><tr><th>figure</th><th>value</th><th>threshold</th><th>note</th></tr>"
            + "".join(rows) + "</table>")
