"""Three nights that grow one dataset from landing zones, against a counting proxy in front of the real vLLM server.

Night 1 ingests the first deliveries. Night 2 adds one vendor delivery and 50 prompts (and a copy of a night-1
delivery under a new name): it sends requests only for the 50, its version holds night 1's rows plus the new ones
at the ratios, the copy is skipped. Before night 3 the night-2 vendor delivery is retracted: version 3 holds no row
of it, impact lists version 2, `lineage diff NAME v2 v3` lists exactly the removed rows, and version 1, rebuilt
after night 3, has its original content hash.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from tests.deploy.proxy import CountingProxy
from tests.support import REPO
from tests.support.cli import last_json, prefmix
from tests.support.nightly import tiny_teacher

pytestmark = pytest.mark.vllm

DATASET = "prefs"
NEW_PROMPTS = 50


def _config(root: Path, teacher_url: str, model: str) -> Path:
    data: dict[str, Any] = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    zone = root / "landing"
    data.update({
        "store": str(root / "store"),
        "dataset": DATASET,
        "prompts": [{"glob": str(zone / "prompts" / "*.parquet")}],
    })
    tiny_teacher(data, teacher_url, model)
    data["human"]["shards"] = [
        {"glob": str(zone / "acme" / "*.parquet"), "layout": "pairs", "vendor": "acme-labels", "columns": {"item_id": "pair_id"}},
        {"path": str(zone / "rankwise"), "layout": "rankings", "vendor": "rankwise"},
    ]
    data["human"]["calibration_sample"] = 0  # every request of a night is then a generation request
    data["generation"].update({"chunk_size": 16})
    # The tiny teacher writes random tokens, which the gate's content checks rightly flag; this test is about how
    # a dataset grows, so text integrity only warns here.
    data["gate"]["severity"] = {"text_integrity": "warning", "truncated_share": "warning"}
    data["generation"]["sampling"]["max_tokens"] = 12
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _shards(folder: Path, seed: int, items: int) -> dict[str, Path]:
    from prefmix.annotations.samples import write_sample_shards

    written = {Path(s.path).name: Path(s.path) for s in write_sample_shards(folder, seed=seed, n_items=items)}
    return {"pairs": written["acme_pairs.parquet"], "rankings": written["rankwise_rankings.parquet"]}


@pytest.fixture(scope="module")
def nights(vllm_teacher, prefect_server, tmp_path_factory) -> dict[str, Any]:
    from prefmix.samples import write_prompts

    root = tmp_path_factory.mktemp("nights")
    zone = root / "landing"
    for sub in ("prompts", "acme", "rankwise"):
        (zone / sub).mkdir(parents=True)
    made = _shards(root / "made-1", seed=7, items=30)
    shutil.copy(made["pairs"], zone / "acme" / "2026-12-01.parquet")
    shutil.copy(made["rankings"], zone / "rankwise" / "2026-12-01.parquet")
    write_prompts(zone / "prompts" / "2026-12-01.parquet", 40, seed=7)
    env = {k: v for k, v in prefect_server.env.items() if k not in ("PREFMIX_STORE", "PREFMIX_CONFIG", "PREFMIX_CRASH_AT")}
    out: dict[str, Any] = {"root": root, "zone": zone, "store": root / "store", "env": env}
    with CountingProxy(vllm_teacher.base_url) as proxy:
        config = _config(root, proxy.base_url, vllm_teacher.model_name)
        out["config"] = config

        def night(day: str) -> dict[str, Any]:
            proxy.reset()
            done = prefmix("run", "nightly", "--config", str(config), "--json", "--date", day, env=env, timeout=1800)
            assert done.returncode == 0, done.stderr[-3000:]
            lines = [line for line in done.stdout.splitlines() if line.strip()]
            summary = json.loads(lines[-1])  # the summary is one JSON line, last
            return {"summary": summary, "requests": proxy.chat_requests}

        out["n1"] = night("2026-12-01")
        # Night 2: one new vendor delivery, 50 new prompts, and a copy of night 1's delivery under a new name.
        new_pairs = _shards(root / "made-2", seed=8, items=20)["pairs"]
        shutil.copy(new_pairs, zone / "acme" / "2026-12-02.parquet")
        shutil.copy(zone / "acme" / "2026-12-01.parquet", zone / "acme" / "2026-12-01-resent.parquet")
        write_prompts(zone / "prompts" / "2026-12-02.parquet", NEW_PROMPTS, seed=8)
        out["n2"] = night("2026-12-02")
        # Night 3: the night-2 vendor delivery is retracted; nothing new arrives.
        from prefmix.hashing import sha256_file

        out["retracted"] = sha256_file(zone / "acme" / "2026-12-02.parquet")
        done = prefmix("retract", "--delivery", out["retracted"], "--reason", "vendor re-labelled this export", "--json",
                       "--store", str(out["store"]), env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        out["retraction"] = last_json(done.stdout)
        out["n3"] = night("2026-12-03")
    return out


def _rows(batch_dir: str) -> pl.DataFrame:
    return pl.read_parquet(Path(batch_dir) / "data" / "*.parquet")


def test_night_one_ingests_every_delivery_and_publishes_version_1(nights):
    s = nights["n1"]["summary"]
    assert (s["dataset"], s["version"], s["status"]) == (DATASET, 1, "published")
    assert (s["new_deliveries"], s["skipped_deliveries"], s["new_prompts"], s["generated_prompts"]) == (3, 0, 40, 40)
    assert nights["n1"]["requests"] == s["requests"] > 0
    for key in ("dataset", "version", "batch_id", "status", "rows", "new_deliveries", "skipped_deliveries", "new_prompts",
                "generated_prompts", "requests", "retracted_rows"):
        assert key in s


def test_night_two_generates_only_the_new_prompts_and_skips_the_copy(nights):
    s1, s2 = nights["n1"]["summary"], nights["n2"]["summary"]
    assert (s2["version"], s2["new_deliveries"], s2["skipped_deliveries"]) == (2, 2, 1)
    assert (s2["new_prompts"], s2["generated_prompts"]) == (NEW_PROMPTS, NEW_PROMPTS)
    # Requests only for the 50: what the proxy saw is what the run sent, at night 1's requests per prompt.
    assert nights["n2"]["requests"] == s2["requests"] == NEW_PROMPTS * s1["requests"] // 40
    store = nights["store"]
    run = json.loads((store / "runs" / "nightly-2026-12-02" / "run.json").read_text())
    from prefmix.hashing import sha256_file

    new_prompts = sha256_file(nights["zone"] / "prompts" / "2026-12-02.parquet")
    assert run["prompts_in"] == NEW_PROMPTS and [p["sha256"] for p in run["fingerprint_inputs"]["prompts"]] == [new_prompts]
    manifest = json.loads(Path(s2["manifest"]).read_text())
    copies = [d for d in manifest["dataset"]["deliveries"] if d["status"] == "duplicate"]
    assert [(Path(d["path"]).name, Path(d["duplicate_of"]).name, d["version"]) for d in copies] == [
        ("2026-12-01-resent.parquet", "2026-12-01.parquet", 1)]


def test_version_two_holds_night_one_plus_the_new_rows_at_the_ratios(nights):
    v1, v2 = _rows(nights["n1"]["summary"]["batch_dir"]), _rows(nights["n2"]["summary"]["batch_dir"])
    # size all_human: every human row to date, less pairs whose prompt a new pair also has (dedup keeps one per prompt)
    gone = v1.filter(pl.col("source") == "human").join(v2.select("record_id"), on="record_id", how="anti")
    assert gone.height <= 5 and set(gone["prompt"]) <= set(v2["prompt"])
    diff = prefmix("lineage", "diff", DATASET, "v1", "v2", "--json", "--store", str(nights["store"]), env=nights["env"])
    reasons = {r["record_id"]: r["reason"] for r in last_json(diff.stdout)["removed"]}
    assert all(reasons[rid] == "duplicate_prompt" for rid in gone["record_id"])
    new = v2.filter(pl.col("origin_sha256") == nights["retracted"])
    assert new.height > 0 and set(new["source"]) == {"human"}
    counts = dict(v2.group_by("source").len().iter_rows())
    assert abs(counts["human"] - 0.7 * v2.height) <= len(set(v2["domain"]))  # exact quotas per domain
    assert v2.height > v1.height
    # A prompt never moves between train and eval.
    both = v1.select("prompt", "split").unique().join(v2.select("prompt", "split").unique(), on="prompt", suffix="_2")
    assert (both["split"] == both["split_2"]).all()


def test_night_three_leaves_the_retracted_delivery_out(nights):
    s3 = nights["n3"]["summary"]
    assert (s3["version"], s3["new_deliveries"], s3["generated_prompts"], s3["requests"], nights["n3"]["requests"]) == (3, 0, 0, 0, 0)
    v2, v3 = _rows(nights["n2"]["summary"]["batch_dir"]), _rows(s3["batch_dir"])
    assert v3.filter(pl.col("origin_sha256") == nights["retracted"]).is_empty()
    manifest = json.loads(Path(s3["manifest"]).read_text())
    rid = nights["retraction"]["retraction"]["retraction_id"]
    assert manifest["dataset"]["retractions"] == [rid]
    assert s3["retracted_rows"] == manifest["dataset"]["excluded"][f"retraction:{rid}"] > 0
    env, store = nights["env"], str(nights["store"])

    impact = prefmix("lineage", "impact", "--delivery", nights["retracted"], "--json", "--store", store, env=env)
    assert impact.returncode == 0, impact.stderr
    assert [v["version"] for v in last_json(impact.stdout)["versions"]] == [2]

    diff = prefmix("lineage", "diff", DATASET, "v2", "v3", "--json", "--store", store, env=env)
    assert diff.returncode == 0, diff.stderr
    data = last_json(diff.stdout)
    removed = {r["record_id"] for r in data["removed"]}
    assert removed == set(v2["record_id"]) - set(v3["record_id"])
    from_delivery = set(v2.filter(pl.col("origin_sha256") == nights["retracted"])["record_id"])
    assert from_delivery <= removed
    assert {r["reason"] for r in data["removed"] if r["record_id"] in from_delivery} == {f"retraction:{rid}"}
    assert {r["record_id"] for r in data["added"]} == set(v3["record_id"]) - set(v2["record_id"])


def test_versions_are_listed_with_stable_paths_that_datasets_loads(nights):
    import datasets

    env, store = nights["env"], nights["store"]
    listed = prefmix("versions", DATASET, "--json", "--store", str(store), env=env)
    assert listed.returncode == 0, listed.stderr
    rows = last_json(listed.stdout)
    assert [(r["version"], r["latest"]) for r in rows] == [(1, False), (2, False), (3, True)]
    assert (store / "datasets" / DATASET / "LATEST").read_text().strip() == "v3"
    loaded = datasets.load_dataset(str(store / "datasets" / DATASET / "v2"))
    assert sum(loaded[s].num_rows for s in loaded) == nights["n2"]["summary"]["rows"]


def test_version_one_reproduces_after_night_three(nights):
    s1 = nights["n1"]["summary"]
    done = prefmix("lineage", "reproduce", s1["batch_id"], "--json", "--store", str(nights["store"]), env=nights["env"])
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = last_json(done.stdout)
    assert result["same"] and result["content_hash"] == json.loads(Path(s1["manifest"]).read_text())["content_hash"]
