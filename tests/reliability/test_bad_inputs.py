"""The bad-input corpus (tests/data/bad/cases.yaml): every case ends with exit 2, one stderr line naming the
file, row or key, no traceback, and nothing written to the store; none of them reaches the teacher."""

from __future__ import annotations

import copy
import hashlib
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.reliability.helpers import env_for
from tests.support import REPO
from tests.support.cli import one_line, prefmix

BAD = REPO / "tests" / "data" / "bad"
CORPUS = yaml.safe_load((BAD / "cases.yaml").read_text())
CASES: list[dict[str, Any]] = CORPUS["cases"]
MAX_LINE = 2000  # a line that echoes a huge input value is not "one clear line"


def _fill(value: Any, slots: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, text in slots.items():
            value = value.replace("{" + key + "}", text)
        return value
    if isinstance(value, list):
        return [_fill(v, slots) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, slots) for k, v in value.items()}
    return value


def _merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in change.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def run_case(case: dict[str, Any], work: Path, env: dict[str, str]) -> dict[str, Any]:
    work.mkdir(parents=True)
    slots = {"bad": str(BAD), "store": str(work / "store"), "config": str(work / "config.yaml")}
    if "config_file" in case:
        slots["config"] = str(BAD / case["config_file"])
    else:
        (work / "config.yaml").write_text(yaml.safe_dump(_fill(_merge(CORPUS["base"], case.get("merge", {})), slots)))
    args = _fill(case.get("args", ["run", "nightly", "--config", "{config}", "--json"]), slots)
    done = prefmix(*args, env=env, cwd=work, timeout=600)
    return {"done": done, "store": Path(_fill(case.get("store", "{store}"), slots))}


@pytest.fixture(scope="module")
def outcomes(prefect_server, tmp_path_factory) -> dict[str, dict[str, Any]]:
    """Run every case once, four at a time (each is a separate CLI process)."""
    root = tmp_path_factory.mktemp("bad")
    env = env_for(prefect_server.url)
    before = _snapshot(BAD)
    with ThreadPoolExecutor(4) as pool:
        futures = {c["name"]: pool.submit(run_case, c, root / c["name"], env) for c in CASES}
        results = {name: f.result() for name, f in futures.items()}
    results["__corpus_unchanged__"] = {"ok": _snapshot(BAD) == before}
    return results


def test_corpus_has_at_least_25_cases_and_is_rebuildable():
    assert len(CASES) >= 25
    assert len({c["name"] for c in CASES}) == len(CASES)
    assert (BAD / "make_cases.py").is_file()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(outcomes, case):
    result = outcomes[case["name"]]
    done: subprocess.CompletedProcess[str] = result["done"]
    line = one_line(done.stderr)
    assert done.returncode == 2, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert line.startswith("prefmix: error: ")
    assert len(line) < MAX_LINE, f"error line is {len(line)} characters"
    for word in case["expect"]:
        assert word in line, f"{word!r} not in {line!r}"
    store: Path = result["store"]
    if store.is_file():  # the case where the store path is a file: it is untouched
        assert store.read_bytes() == b"not a folder\n"
    else:
        assert not store.exists(), f"{store} was created: {sorted(p.name for p in store.rglob('*'))}"


def test_the_corpus_itself_is_not_written_to(outcomes):
    assert outcomes["__corpus_unchanged__"]["ok"]
