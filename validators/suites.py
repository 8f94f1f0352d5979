"""The team's own Great Expectations suites (`gate.suites`), run by GX on the batch's rows.

A suite file is GX's own JSON (what `ExpectationSuite.to_json_dict()` writes, or a 0.x-style file with
`expectation_suite_name` / `expectation_type`). Each expectation becomes one gate check, named
`<suite>:<expectation type>[<column>]` (with `#2`, `#3` for repeats), validated in the same GX
validation as prefmix's checks (validators/suite.py). Its severity, first match wins:
`gate.suite_severity[<expectation id>]`, `gate.suite_severity[<check name>]`,
`gate.suite_severity[<suite name>]`, the expectation's `meta.gate_severity`, its GX `severity`
(`critical`; `warning` and `info` warn), else critical. `off` drops the expectation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefmix.config import Gate
from prefmix.errors import ConfigError

GX_SEVERITY = {"critical": "critical", "warning": "warning", "info": "warning"}


@dataclass(frozen=True)
class UserCheck:
    """One expectation of a user suite, as the gate runs it."""

    name: str
    suite: str
    severity: str  # critical | warning
    expectation: dict[str, Any]  # GX 1.x JSON: type, kwargs, meta, id, severity, description


def read_suite(path: str, where: str) -> tuple[str, list[dict[str, Any]]]:
    """(suite name, expectations in GX 1.x shape) from a suite file; a bad file is a one-line ConfigError."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{where}: {path}: suite file not found")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{where}: {path}: not a JSON file ({' '.join(str(exc).split())[:100]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("expectations"), list):
        raise ConfigError(f"{where}: {path}: not a Great Expectations suite (expected an object with 'expectations')")
    name = data.get("name") or data.get("expectation_suite_name") or file.stem
    expectations = []
    for index, raw in enumerate(data["expectations"]):
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: {path}: expectations[{index}] is not an object")
        kind = raw.get("type") or raw.get("expectation_type")
        if not isinstance(kind, str) or not isinstance(raw.get("kwargs", {}), dict):
            raise ConfigError(f"{where}: {path}: expectations[{index}] has no 'type' (or 'expectation_type') and 'kwargs'")
        expectation = {k: v for k, v in raw.items() if k not in ("expectation_type", "rendered_content")}
        expectation["type"] = kind
        expectation.setdefault("kwargs", {})
        expectation["meta"] = dict(raw.get("meta") or {})
        expectations.append(expectation)
    return str(name), expectations


def _severity(gate: Gate, suite: str, check: str, expectation: dict[str, Any]) -> str:
    mapping = gate.suite_severity
    for key in (expectation.get("id"), check, suite):
        if key and key in mapping:
            return mapping[key]
    declared = expectation["meta"].get("gate_severity")
    if declared in ("critical", "warning", "off"):
        return str(declared)
    return GX_SEVERITY.get(str(expectation.get("severity") or "critical").lower(), "critical")


def load(gate: Gate) -> list[UserCheck]:
    """Every expectation of every configured suite, with its gate name and severity (off ones left out)."""
    checks: list[UserCheck] = []
    seen: dict[str, int] = {}
    for index, path in enumerate(gate.suites):
        suite, expectations = read_suite(path, f"gate.suites[{index}]")
        for expectation in expectations:
            column = expectation["kwargs"].get("column")
            base = f"{suite}:{expectation['type']}" + (f"[{column}]" if isinstance(column, str) else "")
            seen[base] = seen.get(base, 0) + 1
            name = base if seen[base] == 1 else f"{base}#{seen[base]}"
            severity = _severity(gate, suite, name, expectation)
            if severity != "off":
                checks.append(UserCheck(name, suite, severity, expectation))
    return checks


def check(gate: Gate) -> None:
    """Pre-flight: every suite file reads, every expectation is one GX knows with valid arguments, and
    gate.suite_severity names only suites, checks or expectation ids that exist."""
    if not gate.suites:
        if gate.suite_severity:
            raise ConfigError(f"gate.suite_severity.{next(iter(gate.suite_severity))}: no gate.suites configured")
        return
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    known: set[str] = set()
    seen: dict[str, int] = {}
    for index, path in enumerate(gate.suites):
        suite, expectations = read_suite(path, f"gate.suites[{index}]")
        known.add(suite)
        for number, expectation in enumerate(expectations):
            column = expectation["kwargs"].get("column")
            base = f"{suite}:{expectation['type']}" + (f"[{column}]" if isinstance(column, str) else "")
            seen[base] = seen.get(base, 0) + 1
            known.add(base if seen[base] == 1 else f"{base}#{seen[base]}")
            if expectation.get("id"):
                known.add(str(expectation["id"]))
            try:
                ExpectationConfiguration(**_gx_fields(expectation)).to_domain_obj()
            except Exception as exc:  # GX raises its own error types (not found, pydantic validation)
                reason = " ".join(str(exc).split())[:160]
                raise ConfigError(f"gate.suites[{index}]: {path}: expectations[{number}] ({expectation['type']}): {reason}") from None
    unknown = sorted(set(gate.suite_severity) - known)
    if unknown:
        raise ConfigError(f"gate.suite_severity.{unknown[0]}: not a suite, check or expectation id of gate.suites")


def _gx_fields(expectation: dict[str, Any]) -> dict[str, Any]:
    """The keys ExpectationConfiguration takes."""
    wanted = ("type", "kwargs", "meta", "id", "severity", "description", "notes", "rendered_content")
    return {k: v for k, v in expectation.items() if k in wanted}
