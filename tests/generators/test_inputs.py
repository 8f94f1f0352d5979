"""Bad input ends as one clear InputError/ConfigError naming file, row or key; nothing is written."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml

from prefmix.config import load
from prefmix.errors import ConfigError, InputError, UserError
from prefmix.hashing import sha256_json
from prefmix.store import Store

from prefmix.generators.constitution import load_constitution
from prefmix.generators.durable import RequestCache, check_run_id
from prefmix.generators.client import ChatResult
from prefmix.generators.prompts import load_prompts
from prefmix.generators.run import generate, plan_chunks
from prefmix.generators.templates import load_templates
from tests.generators.helpers import write_config
from tests.support import REPO

URL = "http://127.0.0.1:9/v1"  # never contacted by these tests


def test_prompts_load_with_origin(tmp_path: Path) -> None:
    cfg = load(write_config(tmp_path, URL, 10))
    prompts = load_prompts(cfg)
    assert prompts.columns == ["prompt", "domain", "origin_uri", "origin_sha256", "origin_row"]
    assert prompts["origin_row"].to_list() == list(range(10))
    assert prompts["origin_uri"].unique().to_list() == [str(tmp_path / "prompts.parquet")]
    assert prompts.schema["origin_row"] == pl.Int64


def test_prompt_column_mapping(tmp_path: Path) -> None:
    pl.DataFrame({"q": ["hi", "yo"], "area": ["law", "general"]}).write_parquet(tmp_path / "p.parquet")
    cfg = load(write_config(tmp_path, URL))
    cfg.prompts[0].path = str(tmp_path / "p.parquet")
    cfg.prompts[0].columns = {"prompt": "q", "domain": "area"}
    assert load_prompts(cfg)["prompt"].to_list() == ["hi", "yo"]


@pytest.mark.parametrize(
    "frame, message",
    [
        (pl.DataFrame({"prompt": ["a", None], "domain": ["law", "law"]}), r"row 1: column 'prompt' is empty"),
        (pl.DataFrame({"prompt": ["a", "  "], "domain": ["law", "law"]}), r"row 1: column 'prompt' is empty"),
        (pl.DataFrame({"prompt": ["a", "b"], "domain": ["law", "poetry"]}), r"row 1: column 'domain' is 'poetry'; expected one of"),
        (pl.DataFrame({"text": ["a"], "domain": ["law"]}), r"missing column 'prompt'"),
        (pl.DataFrame({"prompt": [1, 2], "domain": ["law", "law"]}), r"column 'prompt' should hold strings"),
        (pl.DataFrame({"prompt": [], "domain": []}, schema={"prompt": pl.String, "domain": pl.String}), r"no prompt rows"),
    ],
)
def test_bad_prompt_files(tmp_path: Path, frame: pl.DataFrame, message: str) -> None:
    cfg = load(write_config(tmp_path, URL))
    frame.write_parquet(tmp_path / "prompts.parquet")
    with pytest.raises(InputError, match=message) as info:
        load_prompts(cfg)
    assert str(tmp_path / "prompts.parquet") in str(info.value)


def test_missing_and_non_parquet_prompt_files(tmp_path: Path) -> None:
    cfg = load(write_config(tmp_path, URL))
    (tmp_path / "prompts.parquet").write_text("not parquet")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        load_prompts(cfg)
    (tmp_path / "prompts.parquet").unlink()
    with pytest.raises(InputError, match="prompt file not found"):
        load_prompts(cfg)


def test_bad_input_writes_nothing(tmp_path: Path) -> None:
    cfg = load(write_config(tmp_path, URL))
    pl.DataFrame({"prompt": ["a", None], "domain": ["law", "law"]}).write_parquet(tmp_path / "prompts.parquet")
    with pytest.raises(InputError):
        generate(cfg, Store.at(cfg.store), "r1")
    assert not (tmp_path / "store").exists()


def test_templates_are_versioned_and_hashed(tmp_path: Path) -> None:
    t = load_templates()
    assert t.ref == "default@1" and len(t.sha256) == 64
    text = (REPO / "generators" / "templates" / "default.yaml").read_text()
    edited = tmp_path / "mine.yaml"
    edited.write_text(text.replace("strict grader", "lenient grader"))
    assert load_templates(str(edited)).sha256 != t.sha256
    msgs = t.messages("judge_pairwise", prompt="P?", response_a="one", response_b="two")
    assert msgs[-1]["role"] == "user" and "P?" in msgs[-1]["content"] and "one" in msgs[-1]["content"]
    with pytest.raises(ConfigError, match="not found"):
        load_templates("nope")


def test_constitution(tmp_path: Path) -> None:
    c = load_constitution()
    assert c.ref == "prefmix-default@1" and len(c.principles) >= 3 and len({p.id for p in c.principles}) == len(c.principles)
    empty = tmp_path / "empty.yaml"
    empty.write_text("id: mine\nversion: 1\nprinciples: []\n")
    with pytest.raises(InputError, match=f"{empty}: constitution has no principles"):
        load_constitution(empty)
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: mine\nprinciples:\n  - id: x\n    critique: c\n")
    with pytest.raises(InputError, match=r"principles\[0\]"):
        load_constitution(bad)


def test_run_ids_and_fingerprint(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--run-id"):
        check_run_id("../escape")
    path = write_config(tmp_path, URL, 20)
    store = Store.at(tmp_path / "store")
    chunks = plan_chunks(load(path), store, "r1")
    assert [(c.start, c.stop) for c in chunks] == [(0, 8), (8, 16), (16, 20)]
    assert plan_chunks(load(path), store, "r1") == chunks  # same config: same plan, no error
    # operational settings may change on resume; generation settings may not
    moved = load(path, ["generation.retry.max_attempts=9", "generation.error_budget.window=7"])
    moved.teachers[0].endpoints = ["http://elsewhere:8000/v1"]
    assert plan_chunks(moved, store, "r1") == chunks
    with pytest.raises(UserError, match=r"different generation config \(changed: generation.samples_per_prompt\)"):
        plan_chunks(load(path, ["generation.samples_per_prompt=3"]), store, "r1")
    with pytest.raises(UserError, match="changed: limit"):
        plan_chunks(load(path), store, "r1", limit=5)


def test_missing_endpoint_is_a_config_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, URL)
    data = yaml.safe_load(path.read_text())
    data["teachers"][0].update(endpoints=[], launch={"model_dir": str(tmp_path)})
    path.write_text(yaml.safe_dump(data))
    cfg = load(path)
    with pytest.raises(ConfigError, match="teachers.tiny: no endpoints"):
        generate(cfg, Store.at(cfg.store), "r1")


def test_api_key_env_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load(write_config(tmp_path, URL))
    cfg.teachers[0].api_key_env = "PREFMIX_TEST_NO_SUCH_KEY"
    monkeypatch.delenv("PREFMIX_TEST_NO_SUCH_KEY", raising=False)
    with pytest.raises(ConfigError, match="PREFMIX_TEST_NO_SUCH_KEY is not set"):
        generate(cfg, Store.at(cfg.store), "r1")


def test_request_cache_roundtrip(tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "c.sqlite")
    key = RequestCache.key("m", {"messages": [{"role": "user", "content": "x"}]}, "salt")
    assert key != RequestCache.key("m", {"messages": [{"role": "user", "content": "x"}]}, "salt2")
    # the same key as the canonical-JSON recipe it replaced, so a run started before resumes from its cache
    payload = {"messages": [{"role": "user", "content": "Wie geht's? \u00fc\n"}], "temperature": 0.7, "top_p": 0.9,
               "max_tokens": 192, "seed": 123, "logprobs": True, "response_format": {"type": "json_schema"}}
    assert RequestCache.key("m", payload, "s") == sha256_json({"model": "m", "payload": payload, "salt": "s"})
    assert cache.get(key) is None
    cache.put(key, ChatResult("hello", "stop", 3, 1))
    cache.close()
    assert RequestCache(tmp_path / "c.sqlite").get(key) == ChatResult("hello", "stop", 3, 1)
