"""Start the vLLM servers a config asks for ("launch this model") for the length of a run.

Serving defaults per teacher kind, measured on 2-core boxes (docs/teachers.md):

- small real teacher (`launch.small`): bfloat16 where the CPU computes it natively (AVX-512-BF16 or AMX: 249 vs
  153 output tokens/s in float32 on a 2-core EPYC), float32 where it does not (an AVX2 box ran bf16 matmuls 6.6x
  slower); a 3 GiB KV cache (float32 holds half the tokens per GiB), and `--optimization-level 0` (no
  torch.compile): start-up ~50-80 s instead of 250-510 s for an engine ~15-25% slower, a trade a run of a few
  minutes always wins;
- tiny random teacher and any other folder: bfloat16, 1 GiB, vLLM's own optimization level.
Every default is a `launch.*` key.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from prefmix.config import Config, Launch
from prefmix.errors import ConfigError


@dataclass(frozen=True)
class Serving:
    """How one launched teacher is served, defaults resolved."""

    builder: str | None  # "tiny" | "small" | None (a folder given as is)
    seed: int | None  # the tiny teacher's weights seed
    dtype: str
    kv_cache_gb: float | None  # None: VLLM_CPU_KVCACHE_SPACE from the environment, else 1 (vllm_server.VLLM_CPU_ENV)
    optimization_level: int | None  # None: vLLM's default

    def identity(self) -> dict[str, Any]:
        """What changes the numbers the server computes (and so enters the generation fingerprint): not the KV
        cache size or the port."""
        return {"builder": self.builder, "seed": self.seed, "dtype": self.dtype, "optimization_level": self.optimization_level}

    def extra_args(self) -> list[str]:
        return [] if self.optimization_level is None else ["--optimization-level", str(self.optimization_level)]

    def env(self) -> dict[str, str]:
        return {} if self.kv_cache_gb is None else {"VLLM_CPU_KVCACHE_SPACE": f"{self.kv_cache_gb:g}"}


def native_bf16(cpuinfo: str | None = None) -> bool:
    """True when this machine computes bf16 natively: a CPU with AVX-512-BF16 or AMX-BF16 (from /proc/cpuinfo),
    or an NVIDIA GPU (where vLLM's GPU build runs). False when it cannot tell."""
    import shutil

    if cpuinfo is None:
        if shutil.which("nvidia-smi"):
            return True
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
    flags = {f for line in cpuinfo.splitlines() if line.startswith("flags") for f in line.split(":", 1)[-1].split()}
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def serving(launch: Launch) -> Serving:
    small = launch.small
    return Serving(
        builder="tiny" if launch.tiny else "small" if small else None,
        seed=launch.seed if launch.tiny else None,
        dtype=launch.dtype or ("float32" if small and not native_bf16() else "bfloat16"),
        kv_cache_gb=launch.kv_cache_gb or (3.0 if small else None),
        optimization_level=launch.optimization_level if launch.optimization_level is not None else (0 if small else None),
    )


def check_launch(config: Config) -> None:
    """Everything a launch needs that can be checked without starting it: a model folder (or one a builder will
    write) and a teacher interpreter. Runs before a flow touches the store."""
    from prefmix.generators.vllm_server import find_teacher_python

    launching = [t for t in config.teachers if t.launch is not None and not t.endpoints]
    for teacher in launching:
        launch = teacher.launch
        assert launch is not None
        key = f"teachers.{teacher.name}.launch.model_dir"
        if not launch.model_dir:
            raise ConfigError(f"{key}: required key is missing (the model folder to serve)")
        if not (launch.tiny or launch.small) and not (Path(launch.model_dir) / "config.json").is_file():
            what = "does not exist" if not Path(launch.model_dir).exists() else "has no config.json (not a model folder)"
            raise ConfigError(f"{key}: {launch.model_dir} {what}; build one with `prefmix teacher build-tiny DIR` or "
                              "`prefmix teacher build-small DIR`, or point at a Hugging Face model folder")
    if launching:
        find_teacher_python(config.vllm_python)


def build(launch: Launch, python: str | None) -> Path:
    """The folder to serve, built first by the tiny or small builder when the launch asks for one (a no-op when
    it is built already)."""
    from prefmix.generators.small_teacher import build_small_teacher
    from prefmix.generators.vllm_server import build_tiny_teacher

    assert launch.model_dir
    model_dir = Path(launch.model_dir)
    if launch.tiny:
        return build_tiny_teacher(model_dir, seed=launch.seed, python=python)
    if launch.small:
        return build_small_teacher(model_dir, python=python)
    return model_dir


def served_model(launch: Launch | None) -> dict[str, str]:
    """What a manifest names for a launched teacher that a builder made: the folder, the sha256 of its model
    files (small_teacher.content_sha256: sorted "path  sha256" lines) and the weights' name. Other folders are
    not hashed (a 70B checkpoint would take minutes per manifest); name them by `revision`."""
    from prefmix.generators import small_teacher

    if launch is None or not launch.model_dir or not (launch.small or launch.tiny):
        return {}
    folder = Path(launch.model_dir)
    if launch.small:
        marker = small_teacher.read_marker(folder) or {}
        weights = str(marker.get("model") or small_teacher.MODEL_ID)
    else:
        weights = f"tiny random Llama (seed {launch.seed})"
    if not (folder / "config.json").is_file():
        return {"path": str(folder), "weights": weights}
    return {"path": str(folder), "sha256": small_teacher.content_sha256(folder), "weights": weights}


@contextlib.contextmanager
def launched_teachers(config: Config, log_dir: Path) -> Iterator[dict[str, list[str]]]:
    """Yield teacher name -> endpoint URLs, with a server started for every teacher that has `launch`.

    Servers stop when the block ends, whether the run succeeded or not.
    """
    from prefmix.generators.vllm_server import VLLMServer

    endpoints: dict[str, list[str]] = {t.name: list(t.endpoints) for t in config.teachers}
    with contextlib.ExitStack() as stack:
        for teacher in config.teachers:
            launch = teacher.launch
            if launch is None or teacher.endpoints:
                continue
            if not launch.model_dir:
                raise ConfigError(f"teachers.{teacher.name}.launch.model_dir: required key is missing")
            model_dir = build(launch, config.vllm_python)
            how = serving(launch)
            log_dir.mkdir(parents=True, exist_ok=True)
            server = stack.enter_context(
                VLLMServer(model_dir, name=teacher.model, port=launch.port, log_path=log_dir / f"vllm-{teacher.name}.log",
                           python=config.vllm_python, dtype=how.dtype, extra_args=how.extra_args(), env=how.env(),
                           startup_timeout=launch.startup_timeout_s)
            )
            endpoints[teacher.name] = [server.base_url]
        yield endpoints
