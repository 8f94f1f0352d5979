"""Ratios -> exact integer quotas per (domain, source[, kind][, teacher]). Pure functions on counts.

Order of the splits: a domain's rows by source (`ratios`), each source's rows by kind (`kind_shares`, or the
domain's `domain_kind_shares`, when the source is listed), then single-turn synthetic rows by teacher (`teacher_shares`).

Every split of a whole number of rows uses the largest-remainder method with
exact fractions (a ratio 0.7 is 7/10, not the nearest double), so quotas always
add up to the total; ties in the remainder go to the name that sorts first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Mapping

from prefmix.config import Blend
from prefmix.errors import ConfigError, InputError, QuotaShortfall
from prefmix.records import KINDS, SOURCES

Counts = dict[str, dict[str, int]]
Cell = tuple[str, str, str, str]  # (domain, source, kind or '*', teacher or '*')
ANY = "*"


def exact(value: float) -> Fraction:
    """The decimal a user wrote (0.7 -> 7/10), not its binary approximation."""
    return Fraction(repr(float(value)))


def apportion(total: int, weights: Mapping[str, Fraction]) -> dict[str, int]:
    """Split `total` by `weights` with the largest-remainder method; the result sums to `total` exactly."""
    whole = sum(weights.values(), Fraction(0))
    if total == 0 or whole == 0:
        return {name: 0 for name in weights}
    shares = {name: total * w / whole for name, w in weights.items()}
    seats = {name: math.floor(s) for name, s in shares.items()}
    left = total - sum(seats.values())
    order = sorted(weights, key=lambda name: (-(shares[name] - seats[name]), name))
    for name in order[:left]:
        seats[name] += 1
    return seats


@dataclass
class Quotas:
    """What the blend must output: rows per domain and source, and per teacher inside synthetic."""

    sources: Counts
    teachers: Counts = field(default_factory=dict)  # domain -> teacher -> rows; empty when no teacher_shares
    kinds: dict[str, Counts] = field(default_factory=dict)  # domain -> source -> kind -> rows, listed sources only


def ratios(blend: Blend, domain: str) -> dict[str, Fraction]:
    return {source: exact(share) for source, share in blend.ratios_for(domain).items()}


def check_sources(blend: Blend, domains: list[str], input_rows: Mapping[str, int], files: Mapping[str, int]) -> None:
    """An empty source with a nonzero ratio is an error; a zero ratio simply excludes the source."""
    for source in SOURCES:
        wanting = [d for d in domains if ratios(blend, d)[source] > 0]
        if input_rows.get(source, 0) == 0 and wanting:
            share = blend.ratios_for(wanting[0])[source]
            where = "blend.ratios" if wanting[0] not in blend.domain_ratios else f"blend.domain_ratios.{wanting[0]}"
            raise InputError(
                f"blend: source {source!r} is empty ({files.get(source, 0)} files, 0 rows) but {where} gives it "
                f"{share:g}; add {source} input or set its ratio to 0"
            )


def domain_totals(blend: Blend, domains: list[str], available: Counts) -> dict[str, int]:
    """Rows per domain when size is a number: by domain_shares, else by what each domain can supply at its ratios."""
    assert isinstance(blend.size, int)
    if blend.domain_shares:
        return apportion(blend.size, {d: exact(blend.domain_shares.get(d, 0.0)) for d in domains})
    repeats = blend.upsample.max_repeats if blend.upsample.allowed else 1
    capacity: dict[str, Fraction] = {}
    for d in domains:
        wanted = {s: r for s, r in ratios(blend, d).items() if r > 0}
        capacity[d] = min((Fraction(available[d][s] * repeats) / r for s, r in wanted.items()), default=Fraction(0))
    if sum(capacity.values()) == 0:
        # nothing can be supplied anywhere; spread evenly so the shortfall report names every domain
        capacity = {d: Fraction(1) for d in domains}
    return apportion(blend.size, capacity)


def plan(blend: Blend, domains: list[str], available: Counts) -> Quotas:
    """Quotas per domain and source (and teacher) from the config and the deduplicated availability."""
    sources: Counts = {}
    if blend.size == "all_human":
        for d in domains:
            r = ratios(blend, d)
            if r["human"] == 0:
                raise ConfigError(
                    f"blend: size 'all_human' cannot size domain {d!r}, whose human ratio is 0; set blend.size to a row count"
                )
            human = available[d]["human"]
            # synthetic to match the ratio: human * r_s / r_h, rounded half up
            sources[d] = {"human": human, "synthetic": math.floor(human * r["synthetic"] / r["human"] + Fraction(1, 2))}
    else:
        totals = domain_totals(blend, domains, available)
        for d in domains:
            sources[d] = apportion(totals[d], ratios(blend, d))
    kinds: dict[str, Counts] = {
        d: {s: apportion(sources[d][s], {k: exact(v) for k, v in sorted(shares.items())}) for s, shares in blend.kind_shares_for(d).items()}
        for d in domains if blend.kind_shares_for(d)
    }
    teachers: Counts = {}
    if blend.teacher_shares:
        shares = {t: exact(s) for t, s in sorted(blend.teacher_shares.items())}
        single = {d: kinds[d]["synthetic"].get(KINDS[0], 0) if "synthetic" in kinds.get(d, {}) else sources[d]["synthetic"]
                  for d in domains}
        teachers = {d: apportion(single[d], shares) for d in domains}
    return Quotas(sources, teachers, kinds)


def cells(quotas: Quotas) -> dict[Cell, int]:
    """Sampling cells (domain, source, kind or '*', teacher or '*') and their quotas."""
    out: dict[Cell, int] = {}
    for d, by_source in quotas.sources.items():
        for source in SOURCES:
            by_kind = quotas.kinds.get(d, {}).get(source, {ANY: by_source[source]})
            for kind, q in by_kind.items():
                # teacher shares split the single-turn synthetic rows (all synthetic rows when kinds are not split)
                by_teacher = quotas.teachers.get(d) if source == "synthetic" and kind in (KINDS[0], ANY) else None
                for teacher, tq in (by_teacher or {ANY: q}).items():
                    out[(d, source, kind, teacher)] = tq
    return out


def cell_name(cell: Cell) -> str:
    d, s, k, t = cell
    return f"{d}/{s}" + (f"/{k}" if k != ANY else "") + (f"[{t}]" if t != ANY else "")


def check_quotas(wanted: Mapping[Cell, int], available: Mapping[Cell, int], blend: Blend) -> None:
    """Every cell's quota is within what is available (times max_repeats when upsampling is allowed); else one
    QuotaShortfall that names each cell short, with what it wanted and had."""
    upsample = blend.upsample
    short: list[str] = []
    for key, q in wanted.items():
        have = available.get(key, 0)
        cap = have * upsample.max_repeats if upsample.allowed else have
        if q > cap:
            short.append(f"{cell_name(key)} wanted {q}, available {have}" + (f" (at most {cap} with upsampling)" if upsample.allowed else ""))
    if not short:
        return
    hint = (
        f"raise blend.upsample.max_repeats (now {upsample.max_repeats}), add input or lower blend.size"
        if upsample.allowed
        else "add input, lower blend.size, or set blend.upsample.allowed with a max_repeats"
    )
    raise QuotaShortfall(f"blend: quota cannot be met for {len(short)} cell(s): {'; '.join(short)}; {hint}")
