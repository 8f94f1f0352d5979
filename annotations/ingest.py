"""Public API of the annotations room: vendor shards in, canonical human pairs + numbers out.

    ingest(config) -> HumanIngest(records, rejections, stats, inputs)

`stats` is the room's report as plain data (what `prefmix annotations report --json`
prints); `report` is the same numbers as the typed AnnotationStats that other
rooms read, validated once here.

Nothing is written here. Every shard is read and validated before any result
exists, so a malformed shard raises InputError and leaves nothing partial.
Accounting per shard: items_in == items_with_pairs + items_rejected (for
judgments and pairs layouts items_with_pairs == pairs_out; a ranking item can
give several pairs, see annotations.aggregate).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import polars as pl

from prefmix.annotations import agreement
from prefmix.annotations.aggregate import Aggregated, aggregate, empty_rejections
from prefmix.annotations.readers import Shard, read_shard
from prefmix.config import Aggregation, Config, HumanShard, Limits
from prefmix.contract import AnnotationStats, ManifestInput
from prefmix.records import empty


@dataclass
class HumanIngest:
    records: pl.DataFrame
    rejections: pl.DataFrame
    stats: dict[str, Any]
    inputs: list[ManifestInput] = field(default_factory=list)

    @cached_property
    def report(self) -> AnnotationStats:
        return AnnotationStats.model_validate(self.stats)


def ingest(config: Config) -> HumanIngest:
    """Read, validate and aggregate every configured human shard."""
    return ingest_shards(config.human.shards, config.domains, config.human.aggregation, config.human.limits)


def ingest_shards(shards: list[HumanShard], domains: list[str], policy: Aggregation,
                  limits: Limits | None = None) -> HumanIngest:
    """A prompt or response longer than `limits` (default: the config defaults) is a counted rejection."""
    read = [read_shard(shard, domains) for shard in shards]  # validate all before aggregating any
    results = [aggregate(shard, policy, limits) for shard in read]
    shard_stats = [_shard_stats(shard, result, policy) for shard, result in zip(read, results)]
    records = pl.concat([r.records for r in results]) if results else empty()
    rejections = pl.concat([r.rejections for r in results]) if results else empty_rejections()
    pooled = _pooled_votes(read, results)
    totals = _totals(shard_stats, records, rejections)
    stats = {
        "policy": policy.model_dump(mode="json"),
        "overall": _overall(pooled, shard_stats, totals),
        "totals": totals,
        "shards": shard_stats,
        "per_domain": _per_domain(read, pooled, records, rejections),
        "annotators": [dict(a, shard=s["path"]) for s in shard_stats for a in s.get("annotators", [])],
        "excluded_annotators": [
            {"shard": s["path"], "vendor": s["vendor"], **a} for s in shard_stats for a in s.get("annotators", []) if a["excluded"]
        ],
    }
    inputs = [ManifestInput(role="human_shard", path=s.path, sha256=s.sha256, layout=s.layout, vendor=s.vendor, rows=s.rows)
              for s in read]
    result = HumanIngest(records=records, rejections=rejections, stats=stats, inputs=inputs)
    result.report  # noqa: B018  (a shape the contract does not know fails here, where it was made)
    return result


def _reasons(rejections: pl.DataFrame) -> dict[str, int]:
    counts = rejections.group_by("reason").len().sort("reason")
    return dict(zip(counts.get_column("reason").to_list(), counts.get_column("len").to_list()))


def _shard_stats(shard: Shard, result: Aggregated, policy: Aggregation) -> dict[str, Any]:
    pairs_out = result.records.height
    rejected = result.rejections.height
    items_with_pairs = result.extra.get("items_with_pairs", pairs_out)
    if items_with_pairs + rejected != result.items_in:
        # an accounting bug, not bad input: refuse to hand on numbers that do not add up
        raise RuntimeError(f"{shard.path}: {result.items_in} items in, {items_with_pairs} with pairs + {rejected} rejected")
    stats: dict[str, Any] = {
        "path": shard.path,
        "sha256": shard.sha256,
        "vendor": shard.vendor,
        "layout": shard.layout,
        "rows": shard.rows,
        "items_in": result.items_in,
        "items_with_pairs": items_with_pairs,
        "pairs_out": pairs_out,
        "items_rejected": rejected,
        "rejected_by_reason": _reasons(result.rejections),
        "reconciled": True,
        **{k: v for k, v in result.extra.items() if k != "items_with_pairs"},
    }
    if result.votes is not None and result.gold is not None and result.all_votes is not None:
        gold = result.gold
        excluded = gold.filter(pl.col("excluded")).get_column("annotator_id").to_list()
        stats["agreement"] = agreement.summary(result.votes)
        stats["agreement_before_exclusion"] = agreement.summary(result.all_votes)
        stats["agreement_non_gold"] = agreement.summary(result.votes.filter(~pl.col("is_gold")))
        stats["per_domain"] = agreement.by_domain(result.votes)
        stats["per_review_pass"] = agreement.by_review_pass(shard.frame, excluded)
        stats["annotators"] = [
            {**row, "accuracy": None if row["accuracy"] is None else round(row["accuracy"], 6)} for row in gold.to_dicts()
        ]
        stats["excluded_annotators"] = excluded
        stats["uncalibrated_annotators"] = gold.filter(pl.col("n_gold") == 0).get_column("annotator_id").to_list()
        stats["gold_items"] = int(shard.frame.filter(pl.col("is_gold")).get_column("item_id").n_unique())
    else:
        agreements = result.records.get_column("annotation").struct.field("agreement").drop_nulls()
        stats["mean_pair_agreement"] = round(float(agreements.mean()), 6) if agreements.len() else None  # type: ignore[arg-type]
        stats["agreement"] = {"alpha": None, "percent_agreement": None, "note": "alpha needs per-annotator judgments (judgments layout)"}
    return stats


def _totals(shard_stats: list[dict[str, Any]], records: pl.DataFrame, rejections: pl.DataFrame) -> dict[str, Any]:
    items_in = sum(s["items_in"] for s in shard_stats)
    with_pairs = sum(s["items_with_pairs"] for s in shard_stats)
    return {
        "shards": len(shard_stats),
        "rows_in": sum(s["rows"] for s in shard_stats),
        "items_in": items_in,
        "items_with_pairs": with_pairs,
        "pairs_out": records.height,
        "items_rejected": rejections.height,
        "rejected_by_reason": _reasons(rejections),
        "reconciled": items_in == with_pairs + rejections.height,
        "duplicate_record_ids": records.height - int(records.get_column("record_id").n_unique()) if records.height else 0,
    }


def _pooled_votes(read: list[Shard], results: list[Aggregated]) -> pl.DataFrame | None:
    """Counted votes of every judgment shard in one table (item ids are only unique within a shard)."""
    votes = [r.votes.with_columns(item_id=pl.lit(s.path + "#") + pl.col("item_id")) for s, r in zip(read, results) if r.votes is not None]
    return pl.concat(votes) if votes else None


def _overall(pooled: pl.DataFrame | None, shard_stats: list[dict[str, Any]], totals: dict[str, Any]) -> dict[str, Any]:
    """The headline: pooled agreement of all judgment shards, exclusions, pairs and rejections."""
    headline = agreement.summary(pooled) if pooled is not None else {"alpha": None, "percent_agreement": None}
    return {
        **headline,
        "excluded_annotators": [a for s in shard_stats for a in s.get("excluded_annotators", [])],
        "pairs": totals["pairs_out"],
        "rejected": totals["items_rejected"],
    }


def _per_domain(read: list[Shard], pooled: pl.DataFrame | None, records: pl.DataFrame, rejections: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """Across shards: pairs out, rejections and (judgment shards) agreement per domain."""
    item_domains = pl.concat(
        [s.frame.select(pl.lit(s.path).alias("origin_uri"), "origin_row", "domain") for s in read]
    ) if read else pl.DataFrame(schema={"origin_uri": pl.String, "origin_row": pl.Int64, "domain": pl.String})
    rejected_domain = rejections.join(item_domains, on=["origin_uri", "origin_row"], how="left")
    out: dict[str, dict[str, Any]] = {}
    domains = sorted(set(records.get_column("domain").to_list()) | set(rejected_domain.get_column("domain").drop_nulls().to_list()))
    for domain in domains:
        entry: dict[str, Any] = {
            "pairs_out": int((records.get_column("domain") == domain).sum()),
            "items_rejected": int((rejected_domain.get_column("domain") == domain).sum()),
            "rejected_by_reason": dict(Counter(rejected_domain.filter(pl.col("domain") == domain).get_column("reason").to_list())),
        }
        if pooled is not None:
            entry.update(agreement.summary(pooled.filter(pl.col("domain") == domain)))
        out[domain] = entry
    return out
