"""Start the vLLM servers a config asks for ("launch this model") for the length of a run."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from prefmix.config import Config


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
                raise ValueError(f"teachers.{teacher.name}.launch.model_dir is required")
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
