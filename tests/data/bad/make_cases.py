"""Rebuild the bad-input corpus beside this file: `python tests/data/bad/make_cases.py`.

Writes small good inputs (good/), one bad file per case (files/) and cases.yaml,
which says for each case how to change the good config (a deep merge, or a raw
config file), which CLI command to run, and what the one stderr line must name.
In cases.yaml, {bad} is this folder, {store} the test's store folder and
{config} the config file the test writes.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

HERE = Path(__file__).resolve().parent
GOOD, FILES = HERE / "good", HERE / "files"
DOMAINS = ["general", "finance", "medicine", "law"]
HUGE = 1_000_000  # characters: an error line must not echo it

BASE: dict[str, Any] = {
    "name": "bad-inputs",
    "store": "{store}",
    "seed": 7,
    "domains": DOMAINS,
    "prompts": [{"path": "{bad}/good/prompts.parquet"}],
    "human": {"shards": [{"path": "{bad}/good/pairs.parquet", "layout": "pairs", "vendor": "acme"}], "calibration_sample": 0},
    # Nothing listens on the discard port: a case that reached the teacher would fail differently (exit 3).
    "teachers": [{"name": "tiny", "model": "tiny-teacher", "endpoints": ["http://127.0.0.1:9/v1"]}],
    "generation": {"chunk_size": 4, "sampling": {"max_tokens": 8}, "error_budget": {"window": 4}},
}


def prompts(n: int = 8) -> pl.DataFrame:
    return pl.DataFrame({"prompt": [f"Question {i} about {DOMAINS[i % 4]}?" for i in range(n)],
                         "domain": [DOMAINS[i % 4] for i in range(n)]})


def pairs(n: int = 8) -> pl.DataFrame:
    return pl.DataFrame({
        "item_id": [f"p{i:03d}" for i in range(n)],
        "prompt": [f"Human prompt {i}?" for i in range(n)],
        "chosen": [f"A careful answer {i}." for i in range(n)],
        "rejected": [f"A sloppy answer {i}." for i in range(n)],
        "domain": [DOMAINS[i % 4] for i in range(n)],
        "annotator_ids": [["w1", "w2"] for _ in range(n)],
        "agreement": [1.0] * n,
    })


def judgments(n: int = 4) -> pl.DataFrame:
    return pl.DataFrame({
        "item_id": [f"j{i}" for i in range(n)], "prompt": [f"Judge prompt {i}?" for i in range(n)],
        "domain": [DOMAINS[i % 4] for i in range(n)], "response_a": ["yes"] * n, "response_b": ["no"] * n,
        "annotator_id": ["w1"] * n, "preference": ["a", "b", "maybe", "a"],
    })


def set_row(frame: pl.DataFrame, column: str, row: int, value: Any) -> pl.DataFrame:
    values = frame[column].to_list()
    values[row] = value
    return frame.with_columns(pl.Series(column, values, dtype=frame.schema[column] if value is not None else None))


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def invalid_utf8_parquet(good: pl.DataFrame, column: str, row: int) -> bytes:
    """A Parquet file whose string column holds bytes that are not UTF-8 (written unchecked by Arrow)."""
    table = good.to_arrow()
    raw = [s.encode() for s in good[column].to_list()]
    raw[row] = b"caf\xe9 \xff\xfe"
    offsets, data = [0], b""
    for item in raw:
        data += item
        offsets.append(len(data))
    bad = pa.Array.from_buffers(pa.string(), len(raw), [None, pa.py_buffer(pa.array(offsets, pa.int32()).buffers()[1]), pa.py_buffer(data)])
    table = table.set_column(table.schema.get_field_index(column), column, bad)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def shard(path: str, layout: str = "pairs") -> dict[str, Any]:
    return {"human": {"shards": [{"path": "{bad}/files/" + path, "layout": layout, "vendor": "acme"}]}}


def prompt_file(path: str) -> dict[str, Any]:
    return {"prompts": [{"path": "{bad}/files/" + path}]}


def constitution(path: str) -> dict[str, Any]:
    return {"generation": {"strategy": "constitutional", "constitution": "{bad}/files/" + path}}


def file_case(name: str, merge: dict[str, Any], file: str, expect: tuple[str, ...]) -> dict[str, Any]:
    """A case whose bad input is `file`: the one stderr line names the file first, then `expect`."""
    return {"name": name, "merge": merge, "expect": [file, *expect]}


def prompt_case(name: str, *expect: str, file: str | None = None) -> dict[str, Any]:
    """A bad prompt file, files/NAME.parquet unless `file` says otherwise."""
    file = file or f"{name}.parquet"
    return file_case(name, prompt_file(file), file, expect)


def shard_case(name: str, *expect: str, file: str | None = None, layout: str = "pairs") -> dict[str, Any]:
    """A bad vendor shard, files/NAME.parquet unless `file` says otherwise."""
    file = file or f"{name}.parquet"
    return file_case(name, shard(file, layout), file, expect)


def constitution_case(name: str, *expect: str) -> dict[str, Any]:
    """A bad constitution, files/NAME.yaml."""
    return file_case(name, constitution(f"{name}.yaml"), f"{name}.yaml", expect)


NIGHTLY = ["run", "nightly", "--config", "{config}", "--json"]  # --json: no progress lines on stderr


def build() -> list[dict[str, Any]]:
    """Write every file; return the cases."""
    GOOD.mkdir(exist_ok=True)
    FILES.mkdir(exist_ok=True)
    good_prompts, good_pairs = prompts(), pairs()
    good_prompts.write_parquet(GOOD / "prompts.parquet")
    good_pairs.write_parquet(GOOD / "pairs.parquet")
    files: dict[str, bytes] = {
        # config files that are wrong as files
        "config_not_a_mapping.yaml": b"- store: ./store\n- seed: 7\n",
        "config_invalid_yaml.yaml": b"name: x\nblend: {ratios: [unclosed\n",
        "config_invalid_utf8.yaml": b"name: caf\xe9\nseed: 7\n",
        # prompt files
        "prompts_not_parquet.parquet": b"prompt,domain\nhello,general\n",
        "prompts_truncated.parquet": parquet_bytes(good_prompts)[: len(parquet_bytes(good_prompts)) // 2],
        "prompts_zero_bytes.parquet": b"",
        "prompts_missing_column.parquet": parquet_bytes(good_prompts.drop("domain")),
        "prompts_wrong_type.parquet": parquet_bytes(good_prompts.with_columns(pl.int_range(pl.len()).alias("prompt"))),
        "prompts_null.parquet": parquet_bytes(set_row(good_prompts, "prompt", 3, None)),
        "prompts_empty_string.parquet": parquet_bytes(set_row(good_prompts, "prompt", 2, "   ")),
        "prompts_unknown_domain.parquet": parquet_bytes(set_row(good_prompts, "domain", 1, "astrology")),
        "prompts_huge_domain.parquet": parquet_bytes(set_row(good_prompts, "domain", 0, "x" * HUGE)),
        "prompts_zero_rows.parquet": parquet_bytes(good_prompts.head(0)),
        "prompts_invalid_utf8.parquet": invalid_utf8_parquet(good_prompts, "prompt", 5),
        "prompts_binary.parquet": parquet_bytes(good_prompts.with_columns(pl.col("prompt").cast(pl.Binary))),
        # human shards
        "shard_missing_column.parquet": parquet_bytes(good_pairs.drop("chosen")),
        "shard_wrong_type.parquet": parquet_bytes(good_pairs.with_columns(pl.lit("high").alias("agreement"))),
        "shard_null_prompt.parquet": parquet_bytes(set_row(good_pairs, "prompt", 4, None)),
        "shard_empty_chosen.parquet": parquet_bytes(set_row(good_pairs, "chosen", 6, "")),
        "shard_unknown_domain.parquet": parquet_bytes(set_row(good_pairs, "domain", 2, "astrology")),
        "shard_huge_domain.parquet": parquet_bytes(set_row(good_pairs, "domain", 5, "y" * HUGE)),
        # one item id on two rows with different prompts (judgments: one row per annotator of an item)
        "shard_duplicate_ids.parquet": parquet_bytes(set_row(set_row(judgments(), "preference", 2, "a"), "item_id", 3, "j1")),
        "shard_truncated.parquet": parquet_bytes(good_pairs)[:200],
        "shard_zero_bytes.parquet": b"",
        "shard_zero_rows.parquet": parquet_bytes(good_pairs.head(0)),
        "shard_invalid_utf8.parquet": invalid_utf8_parquet(good_pairs, "chosen", 3),
        "shard_bad_label.parquet": parquet_bytes(judgments()),
        # constitutions
        "constitution_no_principles.yaml": b"id: empty\nversion: 1\nprinciples: []\n",
        "constitution_not_a_mapping.yaml": b"- be helpful\n- be honest\n",
        "constitution_duplicate_ids.yaml": yaml.safe_dump({"id": "dup", "version": 1, "principles": [
            {"id": "p1", "critique": "Is it honest?", "revision": "Make it honest."},
            {"id": "p1", "critique": "Is it kind?", "revision": "Make it kind."}]}).encode(),
        # the store path is a file
        "store_is_a_file": b"not a folder\n",
    }
    for name, data in files.items():
        (FILES / name).write_bytes(data)

    cases: list[dict[str, Any]] = [
        # config: the file itself
        {"name": "config_not_a_mapping", "config_file": "files/config_not_a_mapping.yaml", "expect": ["config_not_a_mapping.yaml", "mapping"]},
        {"name": "config_invalid_yaml", "config_file": "files/config_invalid_yaml.yaml", "expect": ["config_invalid_yaml.yaml", "line 3", "not valid YAML"]},
        {"name": "config_invalid_utf8", "config_file": "files/config_invalid_utf8.yaml", "expect": ["config_invalid_utf8.yaml", "UTF-8"]},
        {"name": "config_missing", "config_file": "files/no_such_config.yaml", "expect": ["no_such_config.yaml", "not found"]},
        # config: keys and values
        {"name": "unknown_key", "merge": {"blend": {"ratioz": {"human": 1.0}}}, "expect": ["blend.ratioz", "unknown key"]},
        {"name": "unknown_top_level_key", "merge": {"storee": "/tmp/x"}, "expect": ["storee", "unknown key"]},
        {"name": "ratios_do_not_sum_to_1", "merge": {"blend": {"ratios": {"human": 0.6, "synthetic": 0.3}}}, "expect": ["blend.ratios", "sum to 1"]},
        {"name": "negative_ratio", "merge": {"blend": {"ratios": {"human": -0.2, "synthetic": 1.2}}}, "expect": ["blend.ratios.human", "greater than or equal to 0"]},
        {"name": "unknown_source", "merge": {"blend": {"ratios": {"human": 0.5, "vendor": 0.5}}}, "expect": ["blend.ratios", "'vendor'"]},
        {"name": "unknown_domain_in_ratios", "merge": {"blend": {"domain_ratios": {"astrology": {"human": 1.0}}}}, "expect": ["astrology", "domains"]},
        {"name": "teacher_shares_unknown_teacher", "merge": {"blend": {"teacher_shares": {"ghost": 1.0}}}, "expect": ["teacher_shares", "ghost"]},
        {"name": "wrong_type", "merge": {"generation": {"chunk_size": "many"}}, "expect": ["generation.chunk_size", "'many'"]},
        {"name": "judge_unknown_teacher", "merge": {"generation": {"judge": "ghost"}}, "expect": ["ghost", "teachers"]},
        {"name": "teacher_without_endpoint", "merge": {"teachers": [{"name": "t", "model": "m"}]}, "expect": ["teachers.0", "endpoints"]},
        {"name": "no_teachers", "merge": {"teachers": []}, "expect": ["teachers", "at least one"]},
        {"name": "store_path_is_a_file", "merge": {"store": "{bad}/files/store_is_a_file"}, "expect": ["store_is_a_file", "not a directory"], "store": "{bad}/files/store_is_a_file"},
        {"name": "bad_run_date", "merge": {}, "args": [*NIGHTLY, "--date", "2026-13-45"], "expect": ["--date", "2026-13-45", "YYYY-MM-DD"]},
        {"name": "run_date_path", "merge": {}, "args": [*NIGHTLY, "--date", "../../etc"], "expect": ["--date", "../../etc"]},
        {"name": "negative_limit", "merge": {}, "args": [*NIGHTLY, "--limit", "-1"], "expect": ["-1"]},
        # prompt files
        prompt_case("prompts_file_missing", "not found", file="no_such_prompts.parquet"),
        prompt_case("prompts_not_parquet", "Parquet"),
        prompt_case("prompts_truncated", "Parquet"),
        prompt_case("prompts_zero_bytes"),
        prompt_case("prompts_missing_column", "'domain'"),
        prompt_case("prompts_wrong_type", "'prompt'"),
        prompt_case("prompts_null", "row 3"),
        prompt_case("prompts_empty_string", "row 2"),
        prompt_case("prompts_unknown_domain", "row 1", "astrology"),
        prompt_case("prompts_huge_domain", "row 0"),
        prompt_case("prompts_zero_rows", "no prompt rows"),
        prompt_case("prompts_invalid_utf8"),
        prompt_case("prompts_binary_column", "'prompt'", file="prompts_binary.parquet"),
        # human shards
        shard_case("shard_file_missing", "not found", file="no_such_shard.parquet"),
        shard_case("shard_missing_column", "'chosen'"),
        shard_case("shard_wrong_type", "agreement"),
        shard_case("shard_null_prompt", "row 4"),
        shard_case("shard_empty_chosen", "row 6"),
        shard_case("shard_unknown_domain", "row 2", "astrology"),
        shard_case("shard_huge_domain", "row 5"),
        shard_case("shard_duplicate_ids", "row 3", "prompt", layout="judgments"),
        shard_case("shard_truncated", "Parquet"),
        shard_case("shard_zero_bytes", "empty"),
        shard_case("shard_zero_rows", "no rows"),
        shard_case("shard_invalid_utf8", "row 3", "UTF-8"),
        shard_case("shard_bad_label", "row 2", "preference", layout="judgments"),
        {"name": "shard_unknown_layout", "merge": {"human": {"shards": [{"path": "{bad}/good/pairs.parquet", "layout": "triples"}]}}, "expect": ["human.shards.0.layout", "triples"]},
        # constitutions
        constitution_case("constitution_no_principles", "no principles"),
        constitution_case("constitution_not_a_mapping", "mapping"),
        constitution_case("constitution_duplicate_ids", "'p1'"),
        file_case("constitution_missing", constitution("no_such_constitution.yaml"), "no_such_constitution.yaml", ("not found",)),
        # mistakes a new user made (issue 13): each ends before the store is touched
        {"name": "generate_negative_limit", "merge": {}, "args": ["run", "generate", "--config", "{config}", "--limit", "-1"], "expect": ["--limit", "-1", ">= 0"]},
        {"name": "no_inputs_at_all", "merge": {"prompts": [], "human": {"shards": []}}, "expect": ["source 'human' is empty", "blend.ratios"]},
        {"name": "no_prompts_but_synthetic_ratio", "merge": {"prompts": []}, "expect": ["source 'synthetic' is empty", "0.3"]},
        {"name": "unknown_gate_severity", "merge": {"gate": {"severity": {"not_a_check": "warning"}}}, "expect": ["gate.severity.not_a_check", "unknown check"]},
        {"name": "launch_model_dir_missing", "merge": {"teachers": [{"name": "tiny", "model": "tiny-teacher", "launch": {"model_dir": "{bad}/files/no_such_model"}}]},
         "expect": ["teachers.tiny.launch.model_dir", "no_such_model", "does not exist"]},
        {"name": "launch_model_dir_not_a_model", "merge": {"teachers": [{"name": "tiny", "model": "tiny-teacher", "launch": {"model_dir": "{bad}/files"}}]},
         "expect": ["teachers.tiny.launch.model_dir", "no config.json"]},
        {"name": "generate_bad_prompt_file", "merge": prompt_file("prompts_null.parquet"), "args": ["run", "generate", "--config", "{config}"], "expect": ["prompts_null.parquet", "row 3"]},
        {"name": "trace_store_missing", "merge": {}, "args": ["lineage", "trace", "0" * 64, "--store", "{store}"], "expect": ["no store here"]},
        {"name": "batches_store_missing", "merge": {}, "args": ["batches", "--json", "--store", "{store}"], "expect": ["no store here"]},
        # other commands
        {"name": "verify_batch_id_is_a_path", "merge": {}, "args": ["lineage", "verify", "../../etc", "--store", "{store}"], "expect": ["../../etc"]},
        # landing zones, datasets, versions and retraction (issue 15)
        {"name": "prompts_glob_matches_nothing", "merge": {"prompts": [{"glob": "{bad}/files/no-such-prompts-*.parquet"}]},
         "expect": ["no-such-prompts-*.parquet", "matches no file", "synthetic"]},
        {"name": "shards_glob_matches_nothing", "merge": {"human": {"shards": [{"glob": "{bad}/files/no-such-vendor-*.parquet"}]}},
         "expect": ["no-such-vendor-*.parquet", "matches no file", "human"]},
        {"name": "landing_zone_path_and_glob", "merge": {"prompts": [{"path": "{bad}/good/prompts.parquet", "glob": "{bad}/good/*.parquet"}]},
         "expect": ["prompts.0", "exactly one of"]},
        {"name": "dataset_name_is_a_path", "merge": {"dataset": "../elsewhere"}, "expect": ["dataset.name"]},
        {"name": "dataset_window_zero", "merge": {"dataset": {"name": "d", "window_days": 0}}, "expect": ["dataset.window_days"]},
        {"name": "regenerate_bad_prompt_file", "merge": prompt_file("prompts_null.parquet"), "args": [*NIGHTLY, "--regenerate"],
         "expect": ["prompts_null.parquet", "row 3"]},
        {"name": "retract_delivery_not_a_sha", "merge": {}, "args": ["retract", "--delivery", "not-a-sha", "--reason", "bad", "--store", "{store}"],
         "expect": ["--delivery", "64 hex"]},
        {"name": "retract_two_selectors", "merge": {}, "args": ["retract", "--vendor", "a", "--teacher", "b", "--reason", "x", "--store", "{store}"],
         "expect": ["exactly one selector"]},
        {"name": "retract_store_missing", "merge": {}, "args": ["retract", "--vendor", "acme", "--reason", "x", "--store", "{store}"],
         "expect": ["no store here"]},
        {"name": "impact_ref_and_selector", "merge": {}, "args": ["lineage", "impact", "x", "--vendor", "acme", "--store", "{store}"],
         "expect": ["not both"]},
        {"name": "diff_version_zero", "merge": {}, "args": ["lineage", "diff", "demo", "v0", "v2", "--store", "{store}"], "expect": ["'v0'", "N >= 1"]},
        {"name": "versions_store_missing", "merge": {}, "args": ["versions", "demo", "--store", "{store}"], "expect": ["no store here"]},
        {"name": "batches_store_is_a_file", "merge": {}, "args": ["batches", "--store", "{bad}/files/store_is_a_file"], "expect": ["store_is_a_file", "not a directory"], "store": "{bad}/files/store_is_a_file"},
    ]
    return cases


def main() -> None:
    cases = build()
    header = "# Generated by make_cases.py; rebuild with `python tests/data/bad/make_cases.py`.\n"
    (HERE / "cases.yaml").write_text(header + yaml.safe_dump({"base": BASE, "cases": cases}, sort_keys=False, width=200))
    print(f"{len(cases)} cases in {HERE / 'cases.yaml'}")


if __name__ == "__main__":
    main()
