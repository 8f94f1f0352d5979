"""A real nightly on the tiny random-weight teacher (its text is noise): the default policy quarantines the
batch naming text_integrity, and every link a person follows to the batch report (run summary, manifest's
gate section, Prefect artifact) points at the quarantined folder, never at staging/."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from prefmix.validators.artifacts import artifact_key
from tests.support.cli import last_json, prefmix
from tests.support.nightly import make_inputs, write_config
from tests.support.prefect_server import PrefectServer, in_process

pytestmark = [pytest.mark.vllm, pytest.mark.server]


def test_tiny_teacher_nightly_is_quarantined_and_links_point_at_the_final_report(
        vllm_teacher, prefect_server: PrefectServer, tmp_path: Path) -> None:
    inputs = make_inputs(tmp_path, prompts=40, items=30)
    # A random-weight model never stops by itself: keep its cut answers so the batch is not empty; and the
    # gate's default policy, every check as shipped (the flow tests' helper may turn the text checks off).
    config = write_config(tmp_path, vllm_teacher.base_url, vllm_teacher.model_name, inputs,
                          generation__truncated="keep", gate__severity={})
    env = {**os.environ, "PREFECT_API_URL": prefect_server.url}
    done = prefmix("run", "nightly", "--config", str(config), "--json", "--date", "2026-11-27", env=env)
    summary = last_json(done.stdout)
    assert summary["status"] == "quarantined", done.stderr[-3000:]
    assert "text_integrity" in summary["failed_checks"]

    final = Path(summary["batch_dir"])
    assert final.parent.name == "quarantine"
    html = Path(summary["report"]["html"])
    assert html == final / "report" / "report.html" and html.is_file()
    page = html.read_text(encoding="utf-8")
    assert "Gate verdict: FAIL" in page and "<code>text_integrity</code>" in page
    assert "staging" not in json.dumps(summary["report"])

    manifest = json.loads((final / "manifest.json").read_text())
    assert manifest["gate"]["report"]["html"] == "report/report.html"  # relative to the batch folder
    assert all(not str(p).startswith("/") for p in manifest["gate"]["report"].values() if p)
    failed = next(c for c in manifest["gate"]["checks"] if c["name"] == "text_integrity")
    assert failed["samples"] and "\\u" in json.dumps(failed["samples"])  # the offending text, escaped

    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with in_process(prefect_server), get_client(sync_client=True) as client:
        key = artifact_key("gate", summary["batch_id"])
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert artifacts, f"no artifact {key}"
    latest = max(artifacts, key=lambda a: a.created)
    assert f"batch report: {html}" in latest.data and "/staging/" not in latest.data
