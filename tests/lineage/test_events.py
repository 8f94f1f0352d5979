"""OpenLineage events parse back into typed classes; no secret reaches a manifest, event or log."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest
from openlineage.client.event_v2 import RunEvent, RunState
from openlineage.client.facet_v2 import (
    data_quality_assertions_dataset,
    dataset_version_dataset,
    error_message_run,
    parent_run,
    schema_dataset,
    test_run,
)
from prefmix.lineage.events import (
    LineageEmitter,
    batch_dataset,
    input_datasets,
    read_events,
)
from prefmix.lineage.publish import publish

from prefmix.cli import main
from prefmix.config import Config, Teacher
from prefmix.records import SCHEMA
from tests.lineage.lineage_helpers import build_batch, gate_result


def nightly_like_run(store, config, records, batch_id: str = "b1") -> tuple[LineageEmitter, dict]:
    """A flow run with task runs shaped like the nightly flow: blend, gate, publish, and one failing task."""
    emitter = LineageEmitter(config, store)
    with emitter.run("prefmix.nightly") as flow:
        with emitter.run("prefmix.blend", parent=flow.ref) as task:
            manifest = build_batch(store, config, batch_id, [records["human1"]], [records["syn1"]], run_ids=["run-1"])
            task.inputs.extend(input_datasets(manifest))
            task.outputs.append(batch_dataset(store.staging(batch_id), manifest))
        gate = gate_result(True)
        with emitter.run("prefmix.gate", parent=flow.ref, inputs=[batch_dataset(store.staging(batch_id), manifest, gate=gate)], gate=gate):
            pass
        publish(store, manifest, emitter=emitter, parent=flow.ref)
        with pytest.raises(RuntimeError):
            with emitter.run("prefmix.notify", parent=flow.ref):
                raise RuntimeError("notification endpoint refused the call")
    return emitter, manifest


def test_every_event_parses_into_typed_classes(store, config, records):
    _, manifest = nightly_like_run(store, config, records)
    lines = store.events_path.read_text().splitlines()
    events = read_events(store.events_path)
    assert len(events) == len(lines) == 10  # 5 runs x (START + COMPLETE|FAIL)
    for raw, event in zip(lines, events):
        data = json.loads(raw)
        for key in ("eventTime", "producer", "schemaURL"):
            assert data[key]
        assert data["run"]["runId"] and data["job"]["namespace"] == "prefmix" and data["job"]["name"]
        assert isinstance(event, RunEvent)
        assert str(uuid.UUID(event.run.runId)) == event.run.runId
        assert event.eventTime == data["eventTime"] and event.job.name == data["job"]["name"]

    by_job: dict[str, list[RunEvent]] = {}
    for e in events:
        by_job.setdefault(e.job.name, []).append(e)
    assert [e.eventType for e in by_job["prefmix.nightly"]] == [RunState.START, RunState.COMPLETE]
    flow_id = by_job["prefmix.nightly"][0].run.runId
    for job in ("prefmix.blend", "prefmix.gate", "prefmix.publish", "prefmix.notify"):
        start, end = by_job[job]
        assert start.run.runId == end.run.runId and start.eventType == RunState.START
        parent = end.run.facets["parent"]
        assert isinstance(parent, parent_run.ParentRunFacet) and parent.run.runId == flow_id and parent.job.name == "prefmix.nightly"

    fail = by_job["prefmix.notify"][1]
    assert fail.eventType == RunState.FAIL
    assert isinstance(fail.run.facets["errorMessage"], error_message_run.ErrorMessageRunFacet)
    assert "notification endpoint refused" in fail.run.facets["errorMessage"].message

    gate_end = by_job["prefmix.gate"][1]
    batch_in = gate_end.inputs[0]
    assertions = batch_in.inputFacets["dataQualityAssertions"]
    assert isinstance(assertions, data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet)
    assert {(a.name, a.success, a.severity) for a in assertions.assertions} == {
        ("non_empty_text", True, "error"), ("unique_record_id", True, "error"), ("pii_share", False, "warn")
    }
    assert isinstance(gate_end.run.facets["test"], test_run.TestRunFacet)
    assert {t.name: t.status for t in gate_end.run.facets["test"].tests}["pii_share"] == "fail"

    published = by_job["prefmix.publish"][1].outputs[0]
    version = published.facets["version"]
    assert isinstance(version, dataset_version_dataset.DatasetVersionDatasetFacet)
    assert version.datasetVersion == f"sha256:{manifest.content_hash}"
    assert published.name == str(store.batch_dir("b1"))
    schema = published.facets["schema"]
    assert isinstance(schema, schema_dataset.SchemaDatasetFacet) and [f.name for f in schema.fields] == SCHEMA.names

    blend_end = by_job["prefmix.blend"][1]
    assert {i.name for i in blend_end.inputs} >= {str(records["human1"]), str(records["syn1"])}


def test_planted_secret_appears_nowhere(store, records, monkeypatch, caplog, capsys):
    secret = f"sk-planted-{uuid.uuid4().hex}"
    monkeypatch.setenv("PREFMIX_TEST_TEACHER_KEY", secret)
    config = Config(
        store=str(store.root),
        teachers=[Teacher(name="t", model="tiny-teacher", endpoints=[f"http://127.0.0.1:8011/v1?key={secret}"], api_key_env="PREFMIX_TEST_TEACHER_KEY")],
    )
    # The lineage server URL carries the secret as a password; nothing listens on port 9, so sending fails and is logged.
    config.lineage.openlineage.http_url = f"http://lineage:{secret}@127.0.0.1:9"
    caplog.set_level(logging.DEBUG)
    emitter = LineageEmitter(config, store)
    with emitter.run("prefmix.nightly") as flow:
        manifest = build_batch(store, config, "b1", [records["human1"]], [records["syn1"]])
        publish(store, manifest, emitter=emitter, parent=flow.ref)
        with pytest.raises(ValueError):
            with emitter.run("prefmix.generate", parent=flow.ref):
                raise ValueError(f"teacher rejected key {secret}")
    assert main(["lineage", "show", "b1", "--json", "--store", str(store.root)]) == 0
    assert main(["batches", "--store", str(store.root)]) == 0
    out = capsys.readouterr()

    written = [p for p in Path(store.root).rglob("*") if p.is_file()]
    assert store.events_path in written and store.batch_dir("b1") / "manifest.json" in written
    for path in written:
        assert secret.encode() not in path.read_bytes(), path
    assert secret not in caplog.text and secret not in out.out + out.err
    assert "OpenLineage event not sent" in caplog.text  # the failure was logged, without the URL's password
    manifest = json.loads((store.batch_dir("b1") / "manifest.json").read_text())
    assert manifest["config"]["teachers"][0]["api_key_env"] == "PREFMIX_TEST_TEACHER_KEY"  # the name is kept
    assert "***" in manifest["config"]["teachers"][0]["endpoints"][0]
    assert manifest["config"]["generation"]["sampling"]["max_tokens"] == 64  # not mistaken for a secret


def test_events_are_sent_to_an_http_lineage_server(store, config, records):
    """A real HTTP server stands in for Marquez: every event arrives at /api/v1/lineage and parses."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from prefmix.lineage.events import parse_event

    received: list[tuple[str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config.lineage.openlineage.http_url = f"http://127.0.0.1:{server.server_address[1]}"
        nightly_like_run(store, config, records)
    finally:
        server.shutdown()
        server.server_close()
    assert len(received) == 10 and {path for path, _ in received} == {"/api/v1/lineage"}
    assert [parse_event(body.decode()).run.runId for _, body in received] == [e.run.runId for e in read_events(store.events_path)]


def test_publish_without_a_flow_emitter_still_records_events(store, config, records):
    manifest = build_batch(store, config, "b1", [records["human1"]], [records["syn1"]])
    publish(store, manifest)
    events = read_events(store.events_path)
    assert [(e.job.name, e.eventType) for e in events] == [("prefmix.publish", RunState.START), ("prefmix.publish", RunState.COMPLETE)]
    assert events[1].outputs[0].facets["version"].datasetVersion == f"sha256:{manifest.content_hash}"
