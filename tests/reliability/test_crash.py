"""SIGKILL the nightly flow at seeded moments (named crash points and random offsets during generation),
rerun the same day, and check after each: LATEST is the previous batch or a complete new one, the dataset's LATEST
the previous version or the complete new one, no delivery marked ingested without the version that holds it,
`prefmix lineage verify` passes, the generation accounting has no lost or duplicated prompt or record, and no
staging debris. Each night brings its own prompt delivery (helpers.deliver). A `prefmix retract` killed after
writing its file, before the ledger indexed it, still takes effect at the next night."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest

from tests.reliability.helpers import (
    check_accounting, check_deliveries, check_published, debris, env_for, kill, latest, make_setup, nightly, start_nightly,
)
from tests.support.cli import last_json, prefmix

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

SEED = 20261126
# Named crash points across the pipeline (prefmix/crash.py, lineage/publish.py); `@n` = the n-th time it is hit.
NAMED = [
    "intake:after-survey",        # deliveries found and classified, nothing written
    "generate:after-chunk@{n}",   # generation: a chunk file was just committed
    "nightly:after-generate",     # generation done, nothing blended
    "intake:after-pool",          # tonight's pool files written, no version yet
    "blend:mid-write",            # blending: between shard writes
    "nightly:after-blend",        # staged batch written, not gated
    "nightly:after-gate",         # gated, no manifest
    "nightly:before-publish",     # manifest built, not moved
    "publish:before-rename",      # manifest + card written into staging
    "publish:after-rename",       # in batches/, LATEST not moved yet
    "publish:after-latest",       # LATEST moved, no version link yet
    "version:after-link",         # datasets/NAME/vN made, the dataset's LATEST not moved
    "version:after-latest",       # the dataset's LATEST moved, ledger not indexed (deliveries not marked yet)
]
DATASET = "demo"  # the name of configs/demo.yaml, which the setup's config is made from
NEW_VERSION_VISIBLE = ("version:after-latest",)  # killed after these, the dataset's LATEST is already the new version
TIMED = 3  # kills at seeded random offsets while the run is generating


def _cases() -> list[tuple[str, str | None, float | None]]:
    rng = random.Random(SEED)
    cases: list[tuple[str, str | None, float | None]] = []
    for point in NAMED:
        point = point.format(n=rng.randint(1, 5))
        cases.append((point, point, None))
    for i in range(TIMED):
        offset = round(rng.uniform(0.0, 1.0), 3)  # a fraction of the measured generation time
        cases.append((f"timed-{i}@{offset}", None, offset))
    return cases


CASES = _cases()
DAYS = {name: f"2026-12-{i + 1:02d}" for i, (name, _, _) in enumerate(CASES)}


@pytest.fixture(scope="module")
def setup(vllm_teacher, prefect_server, tmp_path_factory):
    """A store with one published batch (the 'previous' one) and the time a generation takes."""
    root = tmp_path_factory.mktemp("crash")
    # max_in_flight 2 stretches generation over a few seconds, so random offsets land inside it.
    config = make_setup(root, vllm_teacher.base_url, vllm_teacher.model_name, teachers=[
        {"name": "tiny", "model": vllm_teacher.model_name, "endpoints": [vllm_teacher.base_url], "max_in_flight": 2}])
    env = env_for(prefect_server.url)
    first = nightly(config, "2026-11-30", env)
    assert first.returncode == 0, first.stderr[-3000:]
    store = root / "store"
    sessions = sorted((store / "runs" / "nightly-2026-11-30" / "sessions").glob("*.json"))
    gen_s = sum(json.loads(p.read_text())["elapsed_s"] for p in sessions)
    return {"root": root, "config": config, "store": store, "env": env, "gen_s": max(gen_s, 0.5)}


def _kill_during_generation(setup: dict, day: str, fraction: float, log: Path) -> str:
    """Start the run, wait until its generation has started, SIGKILL it `fraction` of a generation later."""
    proc = start_nightly(setup["config"], day, setup["env"], log)
    run_json = setup["store"] / "runs" / f"nightly-{day}" / "run.json"
    deadline = time.monotonic() + 300
    while not run_json.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(fraction * setup["gen_s"])
    chunks = len(list(run_json.parent.glob("chunks/chunk-*.parquet")))
    finished = (run_json.parent / "summary.json").exists()
    kill(proc)
    return f"killed after {chunks} chunk files" + (" (generation had finished)" if finished else " (mid-generation)")


@pytest.mark.parametrize("name, point, offset", CASES, ids=[c[0] for c in CASES])
def test_killed_run_resumes_without_loss_or_half_published_batch(setup, name, point, offset, tmp_path,
                                                                record_property):
    store, env, day = setup["store"], setup["env"], DAYS[name]
    before = latest(store)
    assert before is not None
    version_before = _dataset_latest(store)

    where = ""
    if point is not None:
        crashed = nightly(setup["config"], day, env_for(env["PREFECT_API_URL"], PREFMIX_CRASH_AT=point))
        assert crashed.returncode == -signal.SIGKILL, f"{point} was not reached: {crashed.stderr[-2000:]}"
    else:
        where = _kill_during_generation(setup, day, offset, tmp_path / "killed.log")
        record_property("killed", where)
        print(f"{name}: {where}")

    # Right after the crash: the old batch, or (killed after the rename) the complete new one.
    after_crash = check_published(store, {before, *_batches(store)}, env)
    assert after_crash in (before, *_published_since(store, before))
    visible = {version_before + 1} if point in NEW_VERSION_VISIBLE else {version_before}
    if point is None and "generation had finished" in where:
        # A timed kill that lands after generation (a quieter machine than when gen_s was measured) may come after
        # the version went out; then that version is complete and its batch is the published one.
        visible.add(version_before + 1)
    latest_version = _dataset_latest(store)
    assert latest_version in visible
    assert (latest_version == version_before + 1) <= (after_crash != before)  # a new version only with its batch
    check_deliveries(store)

    rerun = nightly(setup["config"], day, env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads(rerun.stdout)
    assert summary["status"] == "published"
    assert check_published(store, {summary["batch_id"]}, env) == summary["batch_id"]
    assert summary["batch_id"] != before
    accounting = check_accounting(store, f"nightly-{day}")
    assert summary["synthetic"] and summary["synthetic"][0]["prompts_in"] == accounting["prompts_in"]
    assert debris(store) == []
    assert summary["version"] == version_before + 1 == _dataset_latest(store)
    check_deliveries(store)


def test_killed_retraction_still_takes_effect_at_the_next_night(setup):
    """`prefmix retract` SIGKILLed after writing retractions/<id>.json, before the ledger indexed it."""
    from prefmix.hashing import sha256_file

    store, env = setup["store"], setup["env"]
    first = setup["config"].parent / "inputs" / "prompts" / "first.parquet"
    sha = sha256_file(first)
    crashed = prefmix("retract", "--delivery", sha, "--reason", "prompts copied from a benchmark", "--store", str(store),
                      env=env_for(env["PREFECT_API_URL"], PREFMIX_CRASH_AT="retract:after-write"))
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    assert len(list((store / "retractions").glob("*.json"))) == 1
    done = nightly(setup["config"], "2026-12-28", env)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["status"] == "published" and summary["retracted_rows"] > 0
    import polars as pl

    rows = pl.read_parquet(Path(summary["batch_dir"]) / "data" / "*.parquet")
    assert rows.filter(pl.col("origin_sha256") == sha).is_empty()
    impact = prefmix("lineage", "impact", "--delivery", sha, "--json", "--store", str(store), env=env)
    versions = [v["version"] for v in last_json(impact.stdout)["versions"]]
    assert versions and summary["version"] not in versions
    check_deliveries(store)


def _dataset_latest(store: Path) -> int:
    return int((store / "datasets" / DATASET / "LATEST").read_text().strip().removeprefix("v"))


def _batches(store: Path) -> list[str]:
    return [p.name for p in (store / "batches").glob("*")] if (store / "batches").is_dir() else []


def _published_since(store: Path, before: str) -> list[str]:
    return [b for b in _batches(store) if b != before]
