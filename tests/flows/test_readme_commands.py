"""The README's next steps after `make demo`, run verbatim from the repository root.

The commands are read out of README.md (the fenced block after "Then:"), so the test breaks when the README
and the tool drift apart. BATCH_ID and RECORD_ID are the only words replaced.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

from tests.support import REPO
from tests.support.cli import prefmix
from tests.support.prefect_server import PrefectServer

DEMO_STORE = REPO / "demo-store"


def readme_next_steps() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"Then:\n\n```bash\n(.*?)```", text, flags=re.S)
    assert block, "README.md has no ```bash block after 'Then:'"
    lines = [line.split("  #")[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line]


@pytest.fixture
def demo_store() -> Path:
    """The demo writes demo-store/ at the repo root (that is what the README's commands read): keep a
    developer's own demo store aside while the test runs."""
    aside = REPO / f"demo-store.before-test-{os.getpid()}"
    if DEMO_STORE.exists():
        DEMO_STORE.rename(aside)
    try:
        yield DEMO_STORE
    finally:
        shutil.rmtree(DEMO_STORE, ignore_errors=True)
        if aside.exists():
            aside.rename(DEMO_STORE)


@pytest.mark.vllm
@pytest.mark.server
def test_readme_post_demo_commands_answer_right(prefect_server: PrefectServer, demo_store: Path) -> None:
    env = {k: v for k, v in prefect_server.env.items() if k not in ("PREFMIX_STORE", "PREFMIX_CONFIG")}
    demo = prefmix("demo", "--prompts", "160", "--items", "40", "--json", env=env, timeout=1800)
    assert demo.returncode == 0, demo.stderr[-3000:]
    batch_id = json.loads(demo.stdout)["batch_id"]
    batch = demo_store / "batches" / batch_id
    record = pl.read_parquet(sorted((batch / "data").glob("*.parquet"))[0]).row(0, named=True)

    commands = readme_next_steps()
    assert any("batches --json" in c for c in commands) and any("lineage trace" in c for c in commands)
    outputs: dict[str, subprocess.CompletedProcess[str]] = {}
    for command in commands:
        line = command.replace("BATCH_ID", batch_id).replace("RECORD_ID", record["record_id"])
        done = subprocess.run(["bash", "-c", line], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
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
