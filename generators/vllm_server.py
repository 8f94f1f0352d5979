"""Start and stop a vLLM OpenAI-compatible server in the separate teacher venv.

Runs under the APP interpreter: torch/vLLM are only ever imported by the child
process, which uses the teacher interpreter (see `find_teacher_python`).
Serve one by hand with `prefmix teacher serve --model DIR`.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Any, Mapping, Sequence

# tiny_teacher imports only the stdlib at module level, so this stays torch-free.
from prefmix.errors import ConfigError, InfraError, UserError
from prefmix.generators.tiny_teacher import is_build as _is_tiny_build

REPO_ROOT = Path(__file__).resolve().parent.parent
TINY_SCRIPT = Path(__file__).resolve().with_name("tiny_teacher.py")

# Environment the CPU backend needs to start reliably on a small box.
VLLM_CPU_ENV: dict[str, str] = {
    # KV cache size in GiB; the default (4) is far more than a tiny model needs.
    "VLLM_CPU_KVCACHE_SPACE": "1",
    # No usage-stats thread phoning home (there is no network anyway).
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    # Never try to reach the Hugging Face hub: models are local directories.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    # Keep idle HTTP connections longer than clients' pools do (httpx: 5 s); with
    # equal timeouts a reused connection can be closed mid-request (ReadError).
    "VLLM_HTTP_TIMEOUT_KEEP_ALIVE": "75",
}

# vLLM 0.32 CPU bug: a request with `seed` whose prefill gets chunked kills the
# engine ("CPU Generator does not use offset").  Without chunked prefill a
# prompt is never split, so seeded requests are safe at any concurrency.
SAFE_SCHEDULER_ARGS: tuple[str, ...] = ("--no-enable-chunked-prefill",)

# xgrammar (vLLM's "auto" choice) lets raw control characters into JSON strings,
# so strict json.loads rejects most random-weight outputs; llguidance emits
# strictly valid JSON and honours maxLength.  No whitespace keeps judges short.
DEFAULT_STRUCTURED_OUTPUTS: dict[str, Any] = {"backend": "guidance", "disable_any_whitespace": True}


class TeacherEnvError(UserError):
    """The teacher (vLLM) interpreter cannot be found."""


class TinyTeacherBuildError(RuntimeError):
    """tiny_teacher.py failed."""


class VLLMServerError(InfraError):
    """The vLLM server died, did not become ready in time, or could not bind its port."""


class NotAModelDir(ConfigError):
    """The folder given as a model has no config.json."""


def find_teacher_python(configured: str | None = None) -> str:
    """Config value, else $PREFMIX_VLLM_PYTHON, else <repo>/.venv-teacher/bin/python."""
    for candidate, origin in (
        (configured, "configured teacher python"),
        (os.environ.get("PREFMIX_VLLM_PYTHON"), "PREFMIX_VLLM_PYTHON"),
    ):
        if candidate:
            if not Path(candidate).exists():
                raise TeacherEnvError(f"{origin} {candidate!r} does not exist; run `make setup` or fix it")
            return candidate
    default = REPO_ROOT / ".venv-teacher" / "bin" / "python"
    if default.exists():
        return str(default)
    raise TeacherEnvError(
        f"no vLLM teacher interpreter ({default} missing); run `make setup` or set PREFMIX_VLLM_PYTHON"
    )


def build_tiny_teacher(out_dir: Path, seed: int = 0, python: str | None = None) -> Path:
    """Build (or reuse) the tiny random Llama in out_dir using the teacher python."""
    out_dir = Path(out_dir).resolve()
    if _is_tiny_build(out_dir, seed):
        return out_dir
    cmd = [find_teacher_python(python), str(TINY_SCRIPT), str(out_dir), "--seed", str(seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        raise TinyTeacherBuildError(f"building tiny teacher in {out_dir} failed: {last}")
    return Path(proc.stdout.strip().splitlines()[-1])


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the OS for an unused TCP port (tiny race window until vLLM binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """True if nothing is bound to host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT leftovers
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


# Direct connections only: a proxy from the environment must not see localhost calls.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get_json(url: str, timeout: float = 5.0) -> Any:
    with _OPENER.open(url, timeout=timeout) as resp:
        return json.loads(resp.read().decode("utf-8"))


def tail(path: Path, n: int = 30) -> str:
    """Last n lines of a text file ('' if unreadable)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(deque(fh, maxlen=n))
    except OSError:
        return ""


class VLLMServer:
    """Context manager running `vllm.entrypoints.openai.api_server` for one model."""

    def __init__(
        self,
        model_dir: Path | str,
        name: str | None = None,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        log_path: Path | str | None = None,
        python: str | None = None,
        startup_timeout: float = 600.0,
        stop_grace: float = 15.0,
        max_model_len: int = 1024,
        dtype: str = "bfloat16",
        structured_outputs: Mapping[str, Any] | None = DEFAULT_STRUCTURED_OUTPUTS,
        chunked_prefill: bool = False,
        access_log: bool = False,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.model_dir = Path(model_dir).resolve()
        self.model_name = name or self.model_dir.name
        self.host = host
        self.port = port or 0
        self.log_path = Path(log_path) if log_path else None
        self.python = python
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self.max_model_len = max_model_len
        self.dtype = dtype
        self.structured_outputs = dict(structured_outputs) if structured_outputs else None
        self.chunked_prefill = chunked_prefill
        self.access_log = access_log
        self.extra_args = list(extra_args)
        self.extra_env = dict(env or {})
        self.vllm_version: str | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- public properties -------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle -----------------------------------------------------------
    def command(self) -> list[str]:
        """The argv used to launch the server."""
        cmd = [
            find_teacher_python(self.python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir),
            "--served-model-name", self.model_name,
            "--dtype", self.dtype,
            "--max-model-len", str(self.max_model_len),
            "--host", self.host,
            "--port", str(self.port),
        ]
        if not self.chunked_prefill:
            cmd += SAFE_SCHEDULER_ARGS
        if self.structured_outputs:
            cmd += ["--structured-outputs-config", json.dumps(self.structured_outputs, sort_keys=True)]
        if not self.access_log:
            cmd.append("--disable-uvicorn-access-log")  # one line per request swamps the log
        return cmd + self.extra_args

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        for key, value in VLLM_CPU_ENV.items():
            env.setdefault(key, value)  # caller's environment wins
        env.update(self.extra_env)
        # The app venv's PYTHONPATH/VIRTUAL_ENV must not leak into the teacher venv.
        env.pop("PYTHONPATH", None)
        env.pop("VIRTUAL_ENV", None)
        return env

    def start(self) -> "VLLMServer":
        """Launch the server and block until it answers GET /v1/models."""
        if self.running:
            return self
        if not (self.model_dir / "config.json").exists():
            raise NotAModelDir(f"{self.model_dir}: no config.json, not a model directory; build one with "
                               "`prefmix teacher build-tiny DIR` or point at a Hugging Face model folder")
        if not self.port:
            self.port = free_port(self.host)
        elif not port_is_free(self.host, self.port):
            # Otherwise the readiness probe could be answered by whatever already listens there.
            raise VLLMServerError(f"port {self.port} on {self.host} is already in use")
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix=f"vllm-{self.port}-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:
            # Own session => own process group, so stop() reaches the API server
            # *and* its engine-core workers with one killpg.
            self._proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self._child_env(), cwd=str(self.model_dir.parent), start_new_session=True,
            )
        atexit.register(self.stop)
        try:
            self._wait_ready()
        except BaseException:  # includes Ctrl-C during the long start-up
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        self.vllm_version = self._ask_version()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                raise self.failure(f"vLLM exited with status {code} during start-up")
            try:
                models = _get_json(f"{self.base_url}/models", timeout=2.0)
                if any(m.get("id") == self.model_name for m in models.get("data", [])):
                    return
            except (OSError, ValueError):
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise self.failure(f"vLLM not ready after {self.startup_timeout:.0f}s")
            time.sleep(1.0)

    def _ask_version(self) -> str | None:
        try:
            return str(_get_json(f"{self.root_url}/version")["version"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def failure(self, what: str) -> VLLMServerError:
        """One line (`what`, the last error line of the log, where the log is); the log's tail as detail."""
        log = tail(self.log_path, 40) if self.log_path else ""
        cause = _last_error_line(log)
        head = f"{what}: {cause}" if cause else what
        return VLLMServerError(f"{head} (log {self.log_path})", detail=log)

    def stop(self) -> None:
        """SIGTERM the whole process group, SIGKILL it after the grace period."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        atexit.unregister(self.stop)
        pgid = proc.pid  # session leader => pgid == pid
        _killpg(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=self.stop_grace)
        except subprocess.TimeoutExpired:
            pass
        # Also reap stragglers (engine-core workers) that outlived the leader.
        _killpg(pgid, signal.SIGKILL)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def wait(self) -> int:
        """Block until the server process exits; return its status."""
        assert self._proc is not None, "server not started"
        return self._proc.wait()

    def __enter__(self) -> "VLLMServer":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _last_error_line(log: str) -> str:
    """The last log line that names an error, to lead the exception message."""
    for line in reversed(log.splitlines()):
        if "Error" in line or "error:" in line:
            return line.strip()[:300]
    return ""


def _killpg(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # group already gone
