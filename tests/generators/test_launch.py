"""Serving defaults of launched teachers, what a manifest names for a built teacher, and `teacher build-small`
(no server: the build is checked on the folder `make setup` built, .prefmix/small-teacher)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefmix.config import Launch, parse
from prefmix.errors import ConfigError
from prefmix.generators import launch as launch_mod
from prefmix.generators.launch import check_launch, native_bf16, served_model, serving
from prefmix.generators.plan import generation_fingerprint, load_generation_assets
from prefmix.generators.small_teacher import MARKER, MODEL_ID, content_sha256, read_marker
from tests.support import REPO

SMALL_DIR = REPO / ".prefmix" / "small-teacher"
needs_small_build = pytest.mark.skipif(read_marker(SMALL_DIR) is None, reason="no small-teacher build (make setup)")


def test_native_bf16_reads_the_cpu_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert native_bf16("processor: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512vl\n")
    assert native_bf16("flags : avx2 amx_bf16 amx_tile\n")
    assert not native_bf16("flags : fpu sse2 avx2 fma\n")
    assert not native_bf16("")


@pytest.mark.parametrize("bf16, dtype", [(True, "bfloat16"), (False, "float32")])
def test_small_teacher_serving_defaults(monkeypatch: pytest.MonkeyPatch, bf16: bool, dtype: str) -> None:
    monkeypatch.setattr(launch_mod, "native_bf16", lambda: bf16)
    how = serving(Launch(model_dir="m", small=True))
    assert (how.builder, how.dtype, how.kv_cache_gb, how.optimization_level) == ("small", dtype, 3.0, 0)
    assert how.extra_args() == ["--optimization-level", "0"] and how.env() == {"VLLM_CPU_KVCACHE_SPACE": "3"}
    # every default is a launch key, and a key set wins
    custom = serving(Launch(model_dir="m", small=True, dtype="float16", kv_cache_gb=1.5, optimization_level=2))
    assert (custom.dtype, custom.kv_cache_gb, custom.optimization_level) == ("float16", 1.5, 2)
    assert custom.env() == {"VLLM_CPU_KVCACHE_SPACE": "1.5"}


def test_tiny_and_plain_folders_keep_vllm_defaults() -> None:
    tiny = serving(Launch(model_dir="m", tiny=True, seed=3))
    assert (tiny.builder, tiny.seed, tiny.dtype, tiny.kv_cache_gb, tiny.optimization_level) == ("tiny", 3, "bfloat16", None, None)
    assert tiny.extra_args() == [] and tiny.env() == {}
    plain = serving(Launch(model_dir="m"))
    assert plain.builder is None and plain.dtype == "bfloat16"
    # what changes the server's numbers is identity; the KV cache size is not
    assert serving(Launch(model_dir="m", small=True, kv_cache_gb=1)).identity() == serving(Launch(model_dir="m", small=True)).identity()


def test_tiny_and_small_are_exclusive() -> None:
    with pytest.raises(ValueError, match="exclusive"):
        Launch(model_dir="m", tiny=True, small=True)


def _config(tmp_path: Path, **launch: object) -> object:
    return parse({"store": str(tmp_path / "store"), "prompts": [{"path": str(tmp_path / "p.parquet")}],
                  "teachers": [{"name": "s", "model": "smollm2-135m", "launch": {"model_dir": str(tmp_path / "m"), **launch}}]})


def test_fingerprint_follows_what_the_server_computes_with(tmp_path: Path) -> None:
    def fingerprint(**launch: object) -> str:
        config = _config(tmp_path, small=True, **launch)
        return generation_fingerprint(config, *load_generation_assets(config))

    assert fingerprint(dtype="float32") != fingerprint(dtype="bfloat16")
    assert fingerprint(optimization_level=0) != fingerprint(optimization_level=3)
    assert fingerprint(kv_cache_gb=1) == fingerprint(kv_cache_gb=3)


def test_check_launch_lets_a_builder_write_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("prefmix.generators.vllm_server.find_teacher_python", lambda python=None: "python")
    check_launch(_config(tmp_path, small=True))  # the folder does not exist yet: build-small will write it
    with pytest.raises(ConfigError, match="build-small"):
        check_launch(_config(tmp_path))


def test_served_model_names_a_built_folder_by_the_sha256_of_its_files(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    assert served_model(Launch(model_dir=str(folder), small=True)) == {"path": str(folder), "weights": MODEL_ID}
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / MARKER).write_text(json.dumps({"format_version": 1, "model": "SmolLM2-135M-Instruct"}))
    named = served_model(Launch(model_dir=str(folder), small=True))
    assert named == {"path": str(folder), "sha256": content_sha256(folder), "weights": MODEL_ID}
    (folder / MARKER).write_text(json.dumps({"format_version": 1, "model": "other", "built": "later"}))
    assert served_model(Launch(model_dir=str(folder), small=True))["sha256"] == named["sha256"]  # the marker is not content
    assert served_model(Launch(model_dir=str(folder))) == {}  # a folder given as is: named by revision, not hashed
    assert served_model(None) == {}


@needs_small_build
def test_build_small_reuses_the_built_folder_and_keeps_its_bytes(capsys: pytest.CaptureFixture[str]) -> None:
    from prefmix.cli import main

    before = content_sha256(SMALL_DIR)
    assert read_marker(SMALL_DIR)["content_sha256"] == before  # type: ignore[index]
    assert main(["teacher", "build-small", str(SMALL_DIR)]) == 0
    assert capsys.readouterr().out.strip() == str(SMALL_DIR.resolve())
    assert content_sha256(SMALL_DIR) == before
    config = json.loads((SMALL_DIR / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config.get("head_dim", 64)) == (576, 30, 64)
    assert "quantization_config" not in config


def test_build_small_from_a_missing_gguf_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from prefmix.cli import main

    assert main(["teacher", "build-small", str(tmp_path / "out"), "--gguf", str(tmp_path / "none.gguf")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "small teacher" in err[0]
    assert not (tmp_path / "out").exists()
