"""OpenLineage events (openlineage-python v2 classes) for every flow and task run.

`LineageEmitter.run(...)` emits START, then COMPLETE or FAIL (with an
errorMessage facet). Datasets carry a version facet (content hash or file
sha256), a schema facet (the canonical record schema for batches) and, on the
gate's input, the data-quality assertions. Events are appended as JSON lines
to store.events_path (one write per line, fsynced) and POSTed to
config.lineage.openlineage.http_url when set (a lineage server being down
never fails a run). Every line is scrubbed of secret values before it leaves.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import traceback
import typing
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Iterator

import attr
import pyarrow as pa
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    data_quality_assertions_dataset,
    dataset_version_dataset,
    datasource_dataset,
    error_message_run,
    job_type_job,
    parent_run,
    schema_dataset,
    test_run,
)
from openlineage.client.generated.base import DatasetFacet, InputDatasetFacet, JobFacet, OutputDatasetFacet, RunFacet
from openlineage.client.serde import Serde
from openlineage.client.uuid import generate_new_uuid

from prefmix.config import Config
from prefmix.contract import GateCheck, GateResult, Manifest
from prefmix.lineage.redact import scrub_text, secret_values
from prefmix.records import SCHEMA
from prefmix.store import Store

log = logging.getLogger(__name__)

PRODUCER = "https://github.com/prefmix/prefmix"
HTTP_TIMEOUT_S = 5.0

# facet key -> class, used to parse events back into typed objects
FACETS: dict[str, type] = {
    "version": dataset_version_dataset.DatasetVersionDatasetFacet,
    "schema": schema_dataset.SchemaDatasetFacet,
    "dataSource": datasource_dataset.DatasourceDatasetFacet,
    "dataQualityAssertions": data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet,
    "parent": parent_run.ParentRunFacet,
    "errorMessage": error_message_run.ErrorMessageRunFacet,
    "test": test_run.TestRunFacet,
    "jobType": job_type_job.JobTypeJobFacet,
}


@dataclass(frozen=True)
class RunRef:
    """A run other runs can name as their parent."""

    run_id: str
    job_name: str
    namespace: str
    root_run_id: str | None = None
    root_job_name: str | None = None


@dataclass
class Data:
    """A dataset as an input or output: namespace/name, dataset facets, and input-only facets."""

    namespace: str
    name: str
    facets: dict[str, Any] = field(default_factory=dict)
    input_facets: dict[str, Any] = field(default_factory=dict)

    def as_input(self) -> InputDataset:
        return InputDataset(namespace=self.namespace, name=self.name, facets=dict(self.facets), inputFacets=dict(self.input_facets))

    def as_output(self) -> OutputDataset:
        return OutputDataset(namespace=self.namespace, name=self.name, facets=dict(self.facets))


@dataclass
class RunHandle:
    """Yielded by `LineageEmitter.run`: add datasets or facets discovered while the run works."""

    ref: RunRef
    inputs: list[Data]
    outputs: list[Data]
    run_facets: dict[str, Any] = field(default_factory=dict)


# datasets --------------------------------------------------------------------
def schema_facet(schema: pa.Schema = SCHEMA) -> schema_dataset.SchemaDatasetFacet:
    def fields(arrow_type: pa.DataType) -> list[schema_dataset.SchemaDatasetFacetFields] | None:
        if pa.types.is_struct(arrow_type):
            return [convert(arrow_type.field(i)) for i in range(arrow_type.num_fields)]
        if pa.types.is_list(arrow_type):
            return fields(arrow_type.value_type)
        return None

    def convert(f: pa.Field) -> schema_dataset.SchemaDatasetFacetFields:
        kind = "struct" if pa.types.is_struct(f.type) else "list" if pa.types.is_list(f.type) else str(f.type)
        return schema_dataset.SchemaDatasetFacetFields(name=f.name, type=kind, fields=fields(f.type))

    return schema_dataset.SchemaDatasetFacet(fields=[convert(f) for f in schema])


def file_dataset(path: str | Path, sha256: str | None = None) -> Data:
    """A file or directory input/output (OpenLineage naming: namespace 'file', name = absolute path)."""
    text = str(path)
    if "://" in text:
        scheme, _, rest = text.partition("://")
        bucket, _, key = rest.partition("/")
        namespace, name = f"{scheme}://{bucket}", key
    else:
        namespace, name = "file", str(Path(text).expanduser().resolve())
    facets: dict[str, Any] = {}
    if sha256:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=f"sha256:{sha256}")
    return Data(namespace, name, facets)


def batch_dataset(batch_dir: Path, manifest: Manifest, *, gate: GateResult | None = None) -> Data:
    """A batch under its published name (store/batches/<id>), whatever stage it is in now."""
    root = Path(batch_dir).resolve().parent.parent
    name = str(root / "batches" / manifest.batch_id)
    data = Data(
        "file",
        name,
        {
            "version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=f"sha256:{manifest.content_hash}"),
            "schema": schema_facet(),
            "dataSource": datasource_dataset.DatasourceDatasetFacet(name="prefmix-store", uri=f"file://{root}"),
        },
    )
    if gate:
        data.input_facets["dataQualityAssertions"] = assertions_facet(gate)
    return data


def input_datasets(manifest: Manifest) -> list[Data]:
    """The manifest's input files (human shards, prompt sets, records) as datasets."""
    return [file_dataset(i.path, i.sha256) for i in manifest.inputs if i.path]


def _text(value: Any) -> str | None:
    return None if value is None else value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _severity(check: GateCheck) -> str:
    return "error" if check.severity == "critical" else "warn"


def assertions_facet(gate: GateResult) -> data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet:
    return data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
        assertions=[
            data_quality_assertions_dataset.Assertion(
                assertion=c.name,
                success=c.success,
                severity=_severity(c),
                name=c.name,
                description=c.message,
                expected=_text(c.expected),
                actual=_text(c.observed),
            )
            for c in gate.checks
        ]
    )


def test_facet(gate: GateResult) -> test_run.TestRunFacet:
    return test_run.TestRunFacet(
        tests=[
            test_run.TestExecution(
                name=c.name,
                status="pass" if c.success else "fail",
                severity=_severity(c),
                type="prefmix-gate-check",
                description=c.message,
                expected=_text(c.expected),
                actual=_text(c.observed),
            )
            for c in gate.checks
        ]
    )


# emitting --------------------------------------------------------------------
def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


class LineageEmitter:
    def __init__(self, config: Config, store: Store) -> None:
        settings = config.lineage.openlineage
        self.namespace = settings.namespace
        self.path: Path | None = store.events_path if settings.file else None
        self.http_url = settings.http_url
        self._secrets = secret_values(config)

    @contextlib.contextmanager
    def run(
        self,
        job_name: str,
        parent: RunRef | None = None,
        inputs: list[Data] | tuple[Data, ...] = (),
        outputs: list[Data] | tuple[Data, ...] = (),
        *,
        gate: GateResult | None = None,
        run_id: str | None = None,
    ) -> Iterator[RunHandle]:
        """START now; COMPLETE when the block ends, FAIL (and re-raise) if it raises."""
        run_id = run_id or str(generate_new_uuid())
        ref = RunRef(
            run_id,
            job_name,
            self.namespace,
            root_run_id=(parent.root_run_id or parent.run_id) if parent else run_id,
            root_job_name=(parent.root_job_name or parent.job_name) if parent else job_name,
        )
        handle = RunHandle(ref, list(inputs), list(outputs))
        if gate:
            handle.run_facets["test"] = test_facet(gate)
        self._emit(RunState.START, handle, parent)
        try:
            yield handle
        except BaseException as exc:
            handle.run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=f"{type(exc).__name__}: {exc}",
                programmingLanguage="python",
                stackTrace="".join(traceback.format_exception(exc)),
            )
            self._emit(RunState.FAIL, handle, parent)
            raise
        self._emit(RunState.COMPLETE, handle, parent)

    def _emit(self, state: RunState, handle: RunHandle, parent: RunRef | None) -> None:
        facets: dict[str, Any] = dict(handle.run_facets) if state != RunState.START else {}
        if parent is not None:
            facets["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=parent.run_id),
                job=parent_run.Job(namespace=parent.namespace, name=parent.job_name),
                root=parent_run.Root(
                    run=parent_run.RootRun(runId=handle.ref.root_run_id or parent.run_id),
                    job=parent_run.RootJob(namespace=parent.namespace, name=handle.ref.root_job_name or parent.job_name),
                ),
            )
        job_facets = {
            "jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="PREFMIX", jobType="TASK" if parent else "FLOW")
        }
        event = RunEvent(
            eventType=state,
            eventTime=_now(),
            producer=PRODUCER,
            run=Run(runId=handle.ref.run_id, facets=facets),
            job=Job(namespace=self.namespace, name=handle.ref.job_name, facets=job_facets),
            inputs=[d.as_input() for d in handle.inputs],
            outputs=[d.as_output() for d in handle.outputs],
        )
        self.emit(event)

    def emit(self, event: RunEvent) -> None:
        line = scrub_text(Serde.to_json(event), self._secrets)
        if self.path is not None:
            append_line(self.path, line)
        if self.http_url:
            self._post(line)

    def _post(self, line: str) -> None:
        import httpx

        url = self.http_url or ""
        if httpx.URL(url).path in ("", "/"):
            url = url.rstrip("/") + "/api/v1/lineage"
        try:
            httpx.post(url, content=line, headers={"Content-Type": "application/json"}, timeout=HTTP_TIMEOUT_S).raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("OpenLineage event not sent to %s: %s", httpx.URL(url).copy_with(userinfo=b""), type(exc).__name__)


def append_line(path: Path, line: str) -> None:
    """Append one JSON line with a single write (O_APPEND) and fsync: concurrent writers never interleave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line.replace("\n", " ") + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


# reading back ----------------------------------------------------------------
_BASES = {
    "facets": DatasetFacet,
    "inputFacets": InputDatasetFacet,
    "outputFacets": OutputDatasetFacet,
}


def _structure(cls: type, data: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    extra = dict(data)
    for f in attr.fields(cls):
        if f.name not in data:
            continue
        extra.pop(f.name)
        if not f.init:
            continue  # e.g. a facet's _schemaURL, which the class sets itself
        value = data[f.name]
        kind = hints.get(f.name, Any)
        if f.name in ("facets", "inputFacets", "outputFacets") and isinstance(value, dict):
            value = {k: _facet(k, v, _facet_base(cls, f.name)) for k, v in value.items()}
        else:
            value = _value(kind, value)
        kwargs[f.alias if getattr(f, "alias", None) else f.name.lstrip("_")] = value
    obj = cls(**kwargs)
    return obj.with_additional_properties(**extra) if extra and hasattr(obj, "with_additional_properties") else obj


def _facet_base(cls: type, name: str) -> type:
    if name == "facets":
        if issubclass(cls, (Run, parent_run.Run, parent_run.RootRun)):
            return RunFacet
        if issubclass(cls, (Job, parent_run.Job, parent_run.RootJob)):
            return JobFacet
    return _BASES[name]


def _facet(key: str, value: dict[str, Any], base: type) -> Any:
    cls = FACETS.get(key)
    if cls is None or not issubclass(cls, base):
        cls = base
    return _structure(cls, value)


def _value(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(kind)
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return _value(args[0], value) if len(args) == 1 else value
    if origin is list:
        return [_value(args[0], v) for v in value]
    if origin is dict:
        return {k: _value(args[1], v) for k, v in value.items()}
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(value)
    if isinstance(kind, type) and attr.has(kind) and isinstance(value, dict):
        return _structure(kind, value)
    return value


def parse_event(line: str | dict[str, Any]) -> RunEvent:
    """One event (JSON text or dict) back into openlineage-python's typed RunEvent."""
    data = json.loads(line) if isinstance(line, str) else line
    return _structure(RunEvent, data)


def read_events(path: Path) -> list[RunEvent]:
    with open(path, encoding="utf-8") as handle:
        return [parse_event(line) for line in handle if line.strip()]
