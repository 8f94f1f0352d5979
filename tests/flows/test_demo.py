"""`prefmix demo` as `make demo` runs it, then the README's next steps verbatim from the repository root.

The demo launches the small REAL teacher (SmolLM2-135M-Instruct, built by `make setup`) for the run, as teacher,
judge and agent, with the default sizes. What a newcomer sees must be text: the published batch's synthetic rows
carry no control character (other than newline and tab) and no U+FFFD, and nearly every chosen answer is made of
words (split on whitespace, strip surrounding punctuation, drop what is left empty; a token is a word when it is
alphabetic; at least 95% of chosen answers have a word share of 0.8 or more). The agent rollouts (the demo tool
environment, resolved by its own checks) give step pairs that the blend takes at the configured kind shares, that
`datasets` loads, and that render under the teacher's chat template with the prompt a prefix of prompt + chosen.

The README's commands are read out of README.md (the fenced block after "Then:"), so the test breaks when the
README and the tool drift apart. BATCH_ID and RECORD_ID are the only words replaced.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import string
import subprocess
from pathlib import Path
from typing import Any, Iterator

import polars as pl
import pytest
import yaml

from tests.support import REPO
from tests.support.cli import last_json, prefmix
from tests.support.prefect_server import PrefectServer

pytestmark = [pytest.mark.slow, pytest.mark.server]

DEMO_STORE = REPO / "demo-store"
NOT_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f\ufffd]")
WORD_SHARE, ROWS_WITH_WORDS = 0.8, 0.95


def word_share(text: str) -> float:
    """Share of whitespace tokens (surrounding punctuation stripped, empty ones dropped) that are alphabetic."""
    tokens = [t.strip(string.punctuation + "\u201c\u201d\u2018\u2019") for t in text.split()]
    tokens = [t for t in tokens if t]
    return sum(t.isalpha() for t in tokens) / len(tokens) if tokens else 0.0


def readme_next_steps() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"Then:\n\n```bash\n(.*?)```", text, flags=re.S)
    assert block, "README.md has no ```bash block after 'Then:'"
    lines = [line.split("  #")[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line]


@pytest.fixture(scope="module")
def demo(prefect_server: PrefectServer) -> Iterator[dict[str, Any]]:
    """The demo writes demo-store/ at the repo root (what the README's commands read): a developer's own demo
    store is kept aside while it runs."""
    aside = REPO / f"demo-store.before-test-{os.getpid()}"
    if DEMO_STORE.exists():
        DEMO_STORE.rename(aside)
    env = {k: v for k, v in prefect_server.env.items() if k not in ("PREFMIX_STORE", "PREFMIX_CONFIG")}
    try:
        done = prefmix("demo", "--json", env=env, timeout=2400)
        summary = last_json(done.stdout) if done.stdout.strip() else {}
        assert done.returncode == 0, (summary.get("status"), summary.get("failed_checks"), done.stderr[-3000:])
        frame = pl.read_parquet(Path(summary["batch_dir"]) / "data" / "*.parquet")
        yield {"summary": summary, "frame": frame, "env": env,
               "config": yaml.safe_load((DEMO_STORE / "inputs" / "demo-config.yaml").read_text())}
    finally:
        shutil.rmtree(DEMO_STORE, ignore_errors=True)
        if aside.exists():
            aside.rename(DEMO_STORE)


def test_synthetic_rows_are_text_made_of_words(demo: dict[str, Any]) -> None:
    summary = demo["summary"]
    assert summary["status"] == "published" and summary["version"] == 1, summary
    answers = demo["frame"].filter((pl.col("source") == "synthetic") & (pl.col("kind") == "single_turn"))
    assert answers.height >= 5, summary["synthetic"]
    for column in ("prompt", "chosen", "rejected"):
        bad = answers.filter(pl.col(column).str.contains(NOT_TEXT.pattern))
        assert bad.height == 0, (column, bad[column].to_list()[:3])
    shares = [word_share(t) for t in answers["chosen"].to_list()]
    wordy = sum(s >= WORD_SHARE for s in shares) / len(shares)
    assert wordy >= ROWS_WITH_WORDS, sorted(zip(shares, answers["chosen"].to_list()))[:3]
    assert summary["verdict"] in ("pass", "warn") and "text_integrity" not in summary["failed_checks"]


def test_manifest_names_the_small_model_and_its_sha256(demo: dict[str, Any]) -> None:
    from prefmix.generators.small_teacher import MODEL_ID, content_sha256

    (teacher,) = demo["config"]["teachers"]
    manifest = json.loads(Path(demo["summary"]["manifest"]).read_text())
    (model,) = [m for m in manifest["models"] if m["model"] == teacher["model"]]
    assert model["weights"] == MODEL_ID and set(model["roles"]) == {"generator", "judge"}
    folder = Path(teacher["launch"]["model_dir"])
    assert Path(model["path"]) == folder and model["sha256"] == content_sha256(folder)


def test_finish_reasons_recorded_and_no_truncated_answer_chosen(demo: dict[str, Any]) -> None:
    summary = demo["summary"]
    answers = demo["frame"].filter((pl.col("source") == "synthetic") & (pl.col("kind") == "single_turn"))
    gen = answers["generation"].struct.unnest()
    reasons = gen["finish_reasons"].to_list()
    assert all(len(r) == 2 and set(r) <= {"stop", "length"} for r in reasons), reasons[:5]
    assert all(r[0] == "stop" for r in reasons)  # truncated: reject (the default), never a cut answer as chosen
    # the small judge ties often: expected scores are recorded beside the integers
    assert gen["chosen_expected"].is_not_null().all() and gen["rejected_expected"].is_not_null().all()
    (run,) = summary["synthetic"]
    assert run["tokens_per_pair"] and run["tokens_per_pair"] > 0
    assert run["prompts_in"] == run["records"] + sum(run["rejections"].values())


def test_step_pairs_at_the_configured_kind_shares_from_checked_rollouts(demo: dict[str, Any]) -> None:
    from prefmix.blending.quotas import apportion, exact

    agent = demo["summary"]["agent"]
    rolled = agent["rollouts"]
    env = demo["config"]["agent"]["environment"]
    assert rolled["attempts"] == env["tasks"] * env["attempts"] and rolled["requests"] >= rolled["attempts"]
    assert all(d["trajectories_in"] == d["trajectories_in_rows"] + d["trajectories_rejected"] for d in agent["derivations"])
    domain = demo["config"]["agent"]["rules"]["domain"]
    shares = demo["config"]["blend"]["domain_kind_shares"][domain]["synthetic"]
    synthetic = demo["frame"].filter((pl.col("domain") == domain) & (pl.col("source") == "synthetic"))
    got = dict(synthetic.group_by("kind").len().iter_rows())
    assert got == {k: n for k, n in apportion(synthetic.height, {k: exact(v) for k, v in shares.items()}).items() if n}
    steps = synthetic.filter(pl.col("kind") == "step_pair")
    assert steps.height >= 1
    # what decided them is the environment's own check of the answers, on the runs the teacher made tonight
    lineage = steps["generation"].struct.unnest()
    assert set(lineage["strategy"]) == {"tool_rollouts"} and set(lineage["teacher"]) == {demo["config"]["teachers"][0]["name"]}
    assert set(steps["origin_sha256"]) == {rolled["sha256"]}


def test_agent_rows_load_with_datasets_and_render_under_the_teachers_chat_template(demo: dict[str, Any]) -> None:
    import datasets
    from transformers import AutoTokenizer

    data = Path(demo["summary"]["batch_dir"]) / "data"
    loaded = datasets.load_dataset("parquet", data_files={s: str(data / f"{s}-*.parquet") for s in ("train", "eval")
                                                          if list(data.glob(f"{s}-*.parquet"))})
    rows = [r for split in loaded.values() for r in split if r["kind"] == "step_pair"]
    assert rows, "no step pair in the published batch"
    tokenizer = AutoTokenizer.from_pretrained(demo["config"]["teachers"][0]["launch"]["model_dir"])
    for row in rows:
        tools = json.loads(row["tools"])
        prompt = [_message(m) for m in row["context"]]
        head = tokenizer.apply_chat_template(prompt, tools=tools, tokenize=False, add_generation_prompt=True)
        for side in ("chosen_messages", "rejected_messages"):
            completion = [_message(m) for m in row[side]]
            assert [m["role"] for m in completion] == ["assistant"]  # one agent step: no tool output in the loss
            full = tokenizer.apply_chat_template(prompt + completion, tools=tools, tokenize=False)
            assert full.startswith(head), (row["record_id"], side)


def _message(m: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m["role"], "content": m["content"] or ""}
    if m.get("tool_calls"):
        out["tool_calls"] = [{"id": c["id"], "type": "function",
                              "function": {"name": c["name"], "arguments": json.loads(c["arguments"])}} for c in m["tool_calls"]]
    if m.get("tool_call_id"):
        out["tool_call_id"] = m["tool_call_id"]
    return out


def test_readme_post_demo_commands_answer_right(demo: dict[str, Any]) -> None:
    batch_id = demo["summary"]["batch_id"]
    record = demo["frame"].sort("record_id").row(0, named=True)
    commands = readme_next_steps()
    assert any("batches --json" in c for c in commands) and any("lineage trace" in c for c in commands)
    outputs: dict[str, subprocess.CompletedProcess[str]] = {}
    for command in commands:
        line = command.replace("BATCH_ID", batch_id).replace("RECORD_ID", record["record_id"])
        done = subprocess.run(["bash", "-c", line], cwd=REPO, env=demo["env"], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{line}\n{done.stderr[-2000:]}"
        outputs[command] = done

    versions = next(o for c, o in outputs.items() if "versions demo" in c).stdout
    assert "v1" in versions and "demo-store/datasets/demo/v1" in versions
    listed = json.loads(next(o for c, o in outputs.items() if "batches --json" in c).stdout)
    assert [b["batch_id"] for b in listed] == [batch_id] and listed[0]["status"] == "published"
    shown = next(o for c, o in outputs.items() if "lineage show" in c).stdout
    assert batch_id in shown and "content hash" in shown
    loaded = next(o for c, o in outputs.items() if "load_dataset" in c).stdout
    assert "DatasetDict" in loaded and "prompt" in loaded
    traced = next(o for c, o in outputs.items() if "lineage trace" in c).stdout
    assert f"batch {batch_id} (published)" in traced
    assert f"origin  {record['origin_uri']} row {record['origin_row']} sha256 {record['origin_sha256']}" in traced
