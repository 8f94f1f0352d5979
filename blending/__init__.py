"""blending: exact, seeded mixing of human and synthetic preference pairs.

What a ratio means: **a ratio is a share of OUTPUT ROWS.** `blend.ratios`
{human: 0.7, synthetic: 0.3} means 70% of the rows written for a domain are
human pairs and 30% synthetic; `blend.domain_ratios[d]` replaces those shares
for domain d; `blend.teacher_shares` splits each domain's synthetic rows
between teachers (shares of the synthetic output rows). A ratio is not a
sampling probability, not a share of a source's rows and not a token share.

Size: a row count (split over domains by `blend.domain_shares`, or if none are
given in proportion to how many rows each domain can supply at its ratios), or
"all_human": every eligible human row after dedup, plus round(h * r_s / r_h)
synthetic rows per domain. Quotas use the largest-remainder method, so they add
up exactly. A quota that cannot be met fails with QuotaShortfall listing every
(domain, source, wanted, available), unless `blend.upsample.allowed`, where
rows repeat up to `max_repeats` copies each (and beyond that it still fails).
A source with no rows and a nonzero ratio is an error; a zero ratio excludes
the source.

Order of work: key pass (record_id, prompt key, domain, teacher per row) ->
exclusions (unconfigured domain, zero ratio, teacher without a share) ->
dedup (record_id, then normalized prompt; human wins) -> quotas -> seeded
selection (lowest mix64(seed, record_id) first) -> split by prompt key ->
streamed shards. See docs/blending.md.
"""

# blending.blend keeps its heavy imports (Polars, Arrow) inside blend(), so this stays cheap for `prefmix --help`
from prefmix.blending.blend import BlendResult, blend

__all__ = ["BlendResult", "blend"]
