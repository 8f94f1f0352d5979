"""Start the vLLM servers a config asks for ("launch this model") for the length of a run."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from prefmix.config import Config
from prefmix.errors import ConfigError


def check_launch(config: Config) -> None:
    """Everything a launch needs that can be checked without starting it: a model folder (or one the tiny
    builder will write) and a teacher interpreter. Runs before a flow touches the store."""
    from prefmix.generators.vllm_server import find_teacher_python

    launching = [t for t in config.teachers if t.launch is not None and not t.endpoints]
    for teacher in launching:
        launch = teacher.launch
        assert launch is not None
        key = f"teachers.{teacher.name}.launch.model_dir"
        if not launch.model_dir:
            raise ConfigError(f"{key}: required key is missing (the model folder to serve)")
        if not launch.tiny and not (Path(launch.model_dir) / "config.json").is_file():
            what = "does not exist" if not Path(launch.model_dir).exists() else "has no config.json (not a model folder)"
            raise ConfigError(f"{key}: {launch.model_dir} {what}; build one with `prefmix teacher build-tiny DIR` "
                              "or point at a Hugging Face model folder")
    if launching:
        find_teacher_python(config.vllm_python)


@contextlib.contextmanager
def launched_teachers(config: Config, log_dir: Path) -> Iterator[dict[str, list[str]]]:
    """Yield teacher name -> endpoint URLs, with a server started for every teacher that has `launch`.

    Servers stop when the block ends, whether the run succeeded or not.
    """
    from prefmix.generators.vllm_server import VLLMServer, build_tiny_teacher

    endpoints: dict[str, list[str]] = {t.name: list(t.endpoints) for t in config.teachers}
    with contextlib.ExitStack() as stack:
        for teacher in config.teachers:
            launch = teacher.launch
            if launch is None or teacher.endpoints:
                continue
            if not launch.model_dir:
                raise ConfigError(f"teachers.{teacher.name}.launch.model_dir: required key is missing")
            model_dir = Path(launch.model_dir)
            if launch.tiny:
                build_tiny_teacher(model_dir, seed=launch.seed, python=config.vllm_python)
            log_dir.mkdir(parents=True, exist_ok=True)
            server = stack.enter_context(
                VLLMServer(model_dir, name=teacher.model, port=launch.port, log_path=log_dir / f"vllm-{teacher.name}.log",
                           python=config.vllm_python)
            )
            endpoints[teacher.name] = [server.base_url]
        yield endpoints
