"""blend(): the whole mix, from input Parquet files to train/eval shards, a summary and a chart."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

from prefmix.config import Config
from prefmix.contract import BlendResult, BlendSummary


def _nested(frame: "pl.DataFrame", outer: str, inner: str, value: str, outers: list[str], inners: list[str]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {o: {i: 0 for i in inners} for o in outers}
    for row in frame.iter_rows(named=True):
        table.setdefault(row[outer], {}).setdefault(row[inner], 0)
        table[row[outer]][row[inner]] += int(row[value])
    return table


def _source(frame: "pl.DataFrame") -> "pl.DataFrame":
    import polars as pl

    return frame.with_columns(source=pl.when(pl.col("synthetic")).then(pl.lit("synthetic")).otherwise(pl.lit("human")))


def blend(config: Config, human: list[str | Path], synthetic: list[str | Path], out_dir: Path, batch_id: str) -> BlendResult:
    """Mix human and synthetic canonical-record Parquet into out_dir/data shards; see blending/__init__.py."""
    import polars as pl

    from prefmix.store import atomic_write_json

    from prefmix.blending import keys as keypass
    from prefmix.blending.chart import composition_png
    from prefmix.blending.dedup import dedup
    from prefmix.blending.eligible import eligible
    from prefmix.blending.quotas import SOURCES, cells, check_quotas, check_sources, plan
    from prefmix.blending.sample import available, select, with_cell
    from prefmix.blending.split import eval_expr, threshold
    from prefmix.blending.write import write_shards

    settings = config.blend
    domains = list(config.domains)
    inputs = keypass.inspect(human, "human") + keypass.inspect(synthetic, "synthetic")
    input_rows = {s: sum(i.rows for i in inputs if i.source == s) for s in SOURCES}
    check_sources(settings, domains, input_rows, {s: sum(1 for i in inputs if i.source == s) for s in SOURCES})

    keys = keypass.scan(inputs)
    keys = keys.with_columns(keypass.sample_keys(keys["rid_hi"], config.seed))
    # each step replaces the frame it came from, so at most two key frames are alive at once
    keys, excluded = eligible(keys, settings, domains)
    keys, removed = dedup(keys, settings.dedup.prompts)
    # the split needs only the split key's first word; drop what later steps never read
    kinds_split = {source: [d for d in domains if source in settings.kind_shares_for(d)] for source in SOURCES}
    keys = with_cell(keys, bool(settings.teacher_shares), kinds_split).with_columns(eval=eval_expr(settings.eval_fraction))
    keys = keys.drop("rid_hi", "pk_hi", "pk_lo", "sk_hi")

    per_cell = available(keys)
    avail = {d: {s: sum(n for (cd, cs, _, _), n in per_cell.items() if cd == d and cs == s) for s in SOURCES} for d in domains}
    quotas = plan(settings, domains, avail)
    wanted = cells(quotas)
    check_quotas(wanted, per_cell, settings)

    selection = select(keys, wanted)
    kept = keys.height
    del keys
    files = write_shards(inputs, selection, Path(out_dir), batch_id, settings.shard_rows)

    chosen = _source(selection)
    rows = int(chosen["copies"].sum() or 0)
    eval_rows = int(chosen.filter(pl.col("eval"))["copies"].sum() or 0)
    achieved = _nested(chosen.group_by("domain", "source").agg(pl.col("copies").sum()), "domain", "source", "copies", domains, list(SOURCES))
    extra = chosen.with_columns(extra=pl.col("copies") - 1).group_by("domain", "source").agg(pl.col("extra").sum())
    synth = chosen.filter(pl.col("synthetic")).group_by("domain", "teacher").agg(pl.col("copies").sum())
    source_kind = pl.format("{}/{}", pl.col("source"), pl.col("kind").cast(pl.String)).alias("source_kind")
    by_kind = chosen.group_by("domain", source_kind).agg(pl.col("copies").sum())
    kind_quotas = {d: {f"{s}/{k}": q for s, per in by_source.items() for k, q in per.items()} for d, by_source in quotas.kinds.items()}
    summary = BlendSummary.model_validate({
        "batch_id": batch_id,
        "ratio_semantics": "a ratio is a share of output rows",
        "seed": config.seed,
        "size": settings.size,
        "rows": rows,
        "requested": quotas.sources,
        "achieved": achieved,
        "available": avail,
        "by_teacher": {
            "requested": quotas.teachers,
            "achieved": _nested(synth, "domain", "teacher", "copies", domains, []),
        },
        "by_kind": {
            "requested": kind_quotas,
            "achieved": _nested(by_kind, "domain", "source_kind", "copies", domains, []),
        },
        "upsampled": _nested(extra, "domain", "source", "extra", domains, list(SOURCES)),
        "dedup": removed,
        "excluded": excluded,
        "input_rows": input_rows,
        "not_sampled": kept - chosen.height,
        "selected_unique": chosen.height,
        "splits": {"train": rows - eval_rows, "eval": eval_rows},
        "split_rule": f"eval if int(split_key[:16], 16) < {threshold(settings.eval_fraction)}, split_key = "
                      "sha256(task_group) for agent rows, else the prompt key",
        "files": files,
    })
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "report" / "blend.json", summary.model_dump(mode="json"))
    composition_png(summary, out_dir / "report" / "composition.png")
    return BlendResult(files=files, rows=rows, summary=summary)
