"""Reproducibility, shortfalls, upsampling, dedup, splits, empty and zero-ratio sources, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import polars as pl
import pyarrow.parquet as pq
import pytest

from prefmix.blending import blend
from prefmix.blending.split import is_eval_key
from prefmix.errors import InputError, QuotaShortfall
from prefmix.records import SCHEMA, prompt_key
from tests.blending.blend_helpers import config, hashes, read_all
from tests.support.records import records

Write = Callable[..., Path]


@pytest.fixture
def pair(write: Write) -> tuple[Path, Path]:
    human = write("human", records(200, "human", "general", "hg"), records(50, "human", "medicine", "hm"))
    synthetic = write(
        "synthetic",
        records(300, "synthetic", "general", "sg", teacher="teacher-a"),
        records(100, "synthetic", "medicine", "sm", teacher="teacher-b"),
    )
    return human, synthetic


def test_same_config_same_inputs_give_identical_bytes(pair: tuple[Path, Path], tmp_path: Path) -> None:
    human, synthetic = pair
    cfg = config(ratios={"human": 0.7, "synthetic": 0.3}, shard_rows=64, eval_fraction=0.2)
    first = blend(cfg, [human], [synthetic], tmp_path / "one", "batch-1")
    second = blend(cfg, [human.parent / "human.parquet"], [synthetic], tmp_path / "two", "batch-1")
    assert first.files == second.files
    assert len(first.files) > 2  # several train shards and an eval shard
    assert hashes(tmp_path / "one", first.files) == hashes(tmp_path / "two", second.files)
    assert first.summary == second.summary
    # shards have the configured size, the canonical schema, and the batch id / split set
    sizes = [pq.read_metadata(tmp_path / "one" / f).num_rows for f in first.files if "train" in f]
    assert all(n == 64 for n in sizes[:-1]) and 0 < sizes[-1] <= 64
    table = pq.read_table(tmp_path / "one" / first.files[0])
    assert table.schema.equals(SCHEMA, check_metadata=False)
    assert set(table.column("batch_id").to_pylist()) == {"batch-1"}
    assert (tmp_path / "one" / "report" / "composition.png").stat().st_size > 1000


@pytest.mark.parametrize("eval_fraction", [0.2, 0.8])
def test_bytes_do_not_depend_on_threads_or_read_batches(
    pair: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, eval_fraction: float
) -> None:
    import prefmix.blending.write as write

    human, synthetic = pair
    # medicine needs 150 of each source from 50 human / 100 synthetic rows: copies, some across shard cuts
    cfg = config(
        ratios={"human": 0.5, "synthetic": 0.5}, size=600, domain_shares={"general": 0.5, "medicine": 0.5},
        upsample={"allowed": True, "max_repeats": 3}, shard_rows=16, eval_fraction=eval_fraction,
    )
    runs = {}
    for name, workers, read_rows in (("default", write.MAX_WORKERS, write.READ_ROWS), ("one-thread", 1, 7), ("four", 4, 1000)):
        monkeypatch.setattr(write, "MAX_WORKERS", workers)
        monkeypatch.setattr(write, "READ_ROWS", read_rows)
        result = blend(cfg, [human], [synthetic], tmp_path / name, "b")
        runs[name] = (result, hashes(tmp_path / name, result.files))
    (result, first), *others = runs.values()
    assert all(h == first for _, h in others)
    assert result.rows == 600 and len(result.files) > 10
    rows = read_all(tmp_path / "default", result.files)
    assert rows.height == 600
    splits = result.summary.splits
    assert (splits["eval"] > splits["train"]) == (eval_fraction > 0.5)
    for split in ("train", "eval"):
        files = [f for f in result.files if f.startswith(f"data/{split}-")]
        sizes = [pq.read_metadata(tmp_path / "default" / f).num_rows for f in files]
        assert sum(sizes) == splits[split] and all(n == 16 for n in sizes[:-1])
        assert set(read_all(tmp_path / "default", files)["split"]) == {split}
    # upsampled copies stay adjacent and in input order inside each split
    for split in ("train", "eval"):
        part = rows.filter(pl.col("split") == split)
        order = part.select("origin_uri", "origin_row").rows()
        assert order == sorted(order, key=lambda r: (r[0].startswith("file:///vendor/s"), r[0], r[1]))


def test_rerun_into_same_folder_replaces_shards(pair: tuple[Path, Path], tmp_path: Path) -> None:
    human, synthetic = pair
    blend(config(ratios={"human": 0.7, "synthetic": 0.3}, shard_rows=20), [human], [synthetic], tmp_path / "out", "b")
    result = blend(config(ratios={"human": 0.7, "synthetic": 0.3}, shard_rows=1000), [human], [synthetic], tmp_path / "out", "b")
    assert sorted(f"data/{p.name}" for p in (tmp_path / "out" / "data").iterdir()) == sorted(result.files)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_shortfall_lists_every_cell_in_one_line(pair: tuple[Path, Path], tmp_path: Path) -> None:
    human, synthetic = pair
    cfg = config(ratios={"human": 0.2, "synthetic": 0.8}, size=1000, domain_shares={"general": 0.5, "medicine": 0.5})
    with pytest.raises(QuotaShortfall) as caught:
        blend(cfg, [human], [synthetic], tmp_path / "out", "b")
    message = str(caught.value)
    assert "\n" not in message
    assert "general/synthetic wanted 400, available 300" in message
    assert "medicine/human wanted 100, available 50" in message
    assert "medicine/synthetic wanted 400, available 100" in message
    assert "general/human" not in message  # 100 of 200: met
    assert "upsample" in message
    assert not (tmp_path / "out").exists()  # nothing written


def test_upsampling_repeats_rows_up_to_the_cap(pair: tuple[Path, Path], tmp_path: Path) -> None:
    human, synthetic = pair
    cfg = config(
        ratios={"human": 0.5, "synthetic": 0.5}, size=300, domain_shares={"medicine": 1.0},
        upsample={"allowed": True, "max_repeats": 3},
    )
    result = blend(cfg, [human], [synthetic], tmp_path / "out", "b")
    rows = read_all(tmp_path / "out", result.files)
    human_rows = rows.filter(pl.col("source") == "human")
    assert human_rows.height == 150
    copies = human_rows.group_by("record_id").len()["len"]
    assert copies.max() == 3 and copies.min() == 3 and copies.len() == 50
    assert result.summary.upsampled["medicine"] == {"human": 100, "synthetic": 50}
    # beyond the cap it still fails, naming the cap
    over = config(
        ratios={"human": 0.5, "synthetic": 0.5}, size=302, domain_shares={"medicine": 1.0},
        upsample={"allowed": True, "max_repeats": 3},
    )
    with pytest.raises(QuotaShortfall, match=r"medicine/human wanted 151, available 50 \(at most 150 with upsampling\)"):
        blend(over, [human], [synthetic], tmp_path / "over", "b")


def test_human_wins_dedup_collisions(write: Write, tmp_path: Path) -> None:
    shared = [f"shared prompt {i}" for i in range(30)]
    human = write("human", records(30, "human", "general", "h", prompts=shared), records(20, "human", "general", "h2"))
    # synthetic: the same 30 prompts (different answers), 10 exact copies of human records, 40 own rows
    exact_copies = records(10, "human", "general", "h2").with_columns(source=pl.lit("synthetic"))
    synthetic = write(
        "synthetic",
        records(30, "synthetic", "general", "s", teacher="teacher-a", prompts=[f"  Shared   prompt {i}".replace("S", "s") for i in range(30)]),
        exact_copies,
        records(40, "synthetic", "general", "s2", teacher="teacher-a"),
    )
    result = blend(config(ratios={"human": 0.6, "synthetic": 0.4}, domains=["general"]), [human], [synthetic], tmp_path / "out", "b")
    dedup = result.summary.dedup.model_dump()
    assert dedup["exact_record_id"] == 10
    assert dedup["duplicate_prompt"] == 30
    assert dedup["cross_source"] == 40 and dedup["within_source"] == 0
    assert dedup["by_source"]["synthetic"] == {"exact_record_id": 10, "duplicate_prompt": 30}
    assert result.summary.available["general"] == {"human": 50, "synthetic": 40}
    rows = read_all(tmp_path / "out", result.files)
    kept = rows.filter(pl.col("prompt").str.contains("hared"))
    assert set(kept["source"]) == {"human"} and kept.height == 30
    assert rows["record_id"].n_unique() == rows.height
    # with prompt dedup off the 30 same-prompt synthetic pairs stay available
    off = blend(
        config(ratios={"human": 0.6, "synthetic": 0.4}, domains=["general"], dedup={"prompts": False}),
        [human], [synthetic], tmp_path / "off", "b",
    )
    assert off.summary.dedup.duplicate_prompt == 0
    assert off.summary.available["general"] == {"human": 50, "synthetic": 70}


def test_split_is_stable_across_ratios_and_never_leaks(pair: tuple[Path, Path], tmp_path: Path) -> None:
    human, synthetic = pair
    splits = []
    for i, ratios in enumerate(({"human": 0.7, "synthetic": 0.3}, {"human": 0.4, "synthetic": 0.6})):
        result = blend(config(ratios=ratios, eval_fraction=0.25, seed=i), [human], [synthetic], tmp_path / f"r{i}", "b")
        rows = read_all(tmp_path / f"r{i}", result.files)
        for row in rows.select("prompt", "split").iter_rows(named=True):
            assert (row["split"] == "eval") == is_eval_key(prompt_key(row["prompt"]), 0.25)
        splits.append(dict(zip(rows["record_id"], rows["split"])))
        assert 0 < result.summary.splits["eval"] < result.rows
    common = splits[0].keys() & splits[1].keys()
    assert len(common) > 100
    assert all(splits[0][k] == splits[1][k] for k in common)


def test_pairs_sharing_a_prompt_share_a_split(write: Write, tmp_path: Path) -> None:
    prompts = [f"prompt {i % 40}" for i in range(200)]  # five pairs per prompt
    human = write("human", records(200, "human", "general", "h", prompts=prompts))
    result = blend(
        config(ratios={"human": 1.0}, domains=["general"], dedup={"prompts": False}, eval_fraction=0.3),
        [human], [], tmp_path / "out", "b",
    )
    rows = read_all(tmp_path / "out", result.files)
    assert rows.height == 200
    per_prompt = rows.group_by("prompt").agg(pl.col("split").n_unique().alias("n"))
    assert per_prompt["n"].max() == 1
    train = set(rows.filter(pl.col("split") == "train")["prompt"])
    assert train.isdisjoint(set(rows.filter(pl.col("split") == "eval")["prompt"]))


def test_empty_source_with_nonzero_ratio_is_an_error(write: Write, tmp_path: Path) -> None:
    human = write("human", records(20, "human", "general", "h"))
    empty = write("empty", records(0, "synthetic", "general", "e", teacher="teacher-a"))
    for synthetic in ([], [empty]):
        with pytest.raises(InputError) as caught:
            blend(config(ratios={"human": 0.7, "synthetic": 0.3}), [human], synthetic, tmp_path / "out", "b")
        assert str(caught.value) == (
            f"blend: source 'synthetic' is empty ({len(synthetic)} files, 0 rows) but blend.ratios gives it 0.3; "
            "add synthetic input or set its ratio to 0"
        )
    assert not (tmp_path / "out").exists()


def test_zero_ratio_excludes_a_source(pair: tuple[Path, Path], tmp_path: Path) -> None:
    human, synthetic = pair
    result = blend(
        config(ratios={"human": 1.0, "synthetic": 0.0}, domain_ratios={"medicine": {"human": 0.5, "synthetic": 0.5}}),
        [human], [synthetic], tmp_path / "out", "b",
    )
    assert result.summary.achieved["general"] == {"human": 200, "synthetic": 0}
    assert result.summary.achieved["medicine"] == {"human": 50, "synthetic": 50}
    assert result.summary.excluded["source_ratio_zero"] == 300
    # a zero-ratio source may be empty
    alone = blend(config(ratios={"human": 1.0, "synthetic": 0.0}), [human], [], tmp_path / "alone", "b")
    assert alone.rows == 250


def test_bad_input_is_one_line_naming_the_file(write: Write, tmp_path: Path) -> None:
    human = write("human", records(5, "human", "general", "h"))
    broken = tmp_path / "inputs" / "broken.parquet"
    pl.DataFrame({"prompt": ["p"], "chosen": ["c"]}).write_parquet(broken)
    with pytest.raises(InputError, match=r"broken\.parquet: not in the canonical record schema \(missing column 'record_id'\)"):
        blend(config(ratios={"human": 1.0}), [human, broken], [], tmp_path / "out", "b")
    mislabeled = write("mislabeled", records(3, "synthetic", "general", "m", teacher="teacher-a"))
    with pytest.raises(InputError, match=r"mislabeled\.parquet: row 0: source is 'synthetic' but the file was given as human input"):
        blend(config(ratios={"human": 1.0}), [mislabeled], [], tmp_path / "out", "b")
    missing = tmp_path / "nope.parquet"
    with pytest.raises(InputError, match="nope.parquet: human input file not found"):
        blend(config(ratios={"human": 1.0}), [missing], [], tmp_path / "out", "b")
    assert not (tmp_path / "out").exists()
