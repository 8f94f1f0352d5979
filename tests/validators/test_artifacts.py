"""Gate artifacts in a real Prefect flow run (on the session's Prefect server), read back through the Prefect
client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import polars as pl
import pytest

from prefmix.config import Config
from prefmix.validators.artifacts import artifact_key
from prefmix.validators.gate import gate_artifacts, run_gate
from tests.support.prefect_server import PrefectServer, in_process
from tests.validators.batches import clean_frame, write_batch


@pytest.fixture
def on_prefect_server(prefect_server: PrefectServer) -> Iterator[None]:
    """Flows and clients in this process talk to the session's Prefect server."""
    with in_process(prefect_server):
        yield


def _artifacts(key: str) -> list:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


def test_artifact_keys_are_lowercase_digits_and_dashes() -> None:
    assert artifact_key("gate", "B2026_11_26.run#3") == "gate-b2026-11-26-run-3"
    assert artifact_key("gate-failed", "--x--") == "gate-failed-x"


@pytest.mark.server
def test_gate_artifacts_inside_a_flow_run(on_prefect_server: None, tmp_path: Path) -> None:
    from prefect import flow

    frame = clean_frame()
    values = frame["rejected"].to_list()
    values[3] = frame["chosen"][3]
    batch_dir = write_batch(tmp_path, frame.with_columns(pl.Series("rejected", values)), batch_id="B_Night.01")
    config = Config()
    config.gate.data_docs = False

    @flow(name="gate-artifacts-test")
    def gate_flow() -> str:
        result = run_gate(config, batch_dir)
        gate_artifacts(result, batch_dir.name)
        from prefect.context import get_run_context

        return str(get_run_context().flow_run.id)

    flow_run_id = gate_flow()
    # The session's server may hold artifacts of earlier runs under the same key: read this run's.
    summary = [a for a in _artifacts("gate-b-night-01") if str(a.flow_run_id) == flow_run_id]
    assert len(summary) == 1 and summary[0].type == "markdown"
    assert "Gate FAIL" in summary[0].data and "chosen_differs" in summary[0].data
    assert f"batch report: {batch_dir / 'report' / 'report.html'}" in summary[0].data
    table = [a for a in _artifacts("gate-failed-b-night-01") if str(a.flow_run_id) == flow_run_id]
    assert len(table) == 1 and table[0].type == "table"
    rows = json.loads(table[0].data) if isinstance(table[0].data, str) else table[0].data
    assert [row["check"] for row in rows] == ["chosen_differs"]
    assert rows[0]["severity"] == "critical"


@pytest.mark.server
def test_gate_artifacts_is_a_noop_outside_a_run(on_prefect_server: None, tmp_path: Path) -> None:
    config = Config()
    config.gate.data_docs = False
    result = run_gate(config, write_batch(tmp_path, batch_id="outside"))
    gate_artifacts(result, "outside")
    assert _artifacts("gate-outside") == [] and _artifacts("gate-failed-outside") == []
