"""CLI handlers: `prefmix teacher build-tiny|serve` (generation itself is `prefmix run generate`)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any


def build_tiny_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR")
    parser.add_argument("--seed", type=int, default=0)


def build_tiny(args: argparse.Namespace) -> int:
    from prefmix.errors import UserError
    from prefmix.generators.vllm_server import TinyTeacherBuildError, build_tiny_teacher

    try:
        print(build_tiny_teacher(Path(args.dir), seed=args.seed))
    except TinyTeacherBuildError as exc:
        raise UserError(str(exc)) from None
    return 0


def serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR")
    parser.add_argument("--port", type=int, default=0, help="0 = a free port")
    parser.add_argument("--name", default=None, help="served model name (default: the directory name)")
    parser.add_argument("--log", default=None, help="server log file (default: a temp file)")
    parser.add_argument("--timeout", type=float, default=300.0, help="start-up timeout in seconds")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def serve(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C/SIGTERM; print the base URL once ready."""
    from prefmix.generators.vllm_server import VLLMServer

    # SIGTERM (and SIGINT, which background jobs inherit as ignored) must also tear down
    # the vLLM process group, which the context manager below does.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    server = VLLMServer(Path(args.model), name=args.name, port=args.port, log_path=Path(args.log) if args.log else None,
                        startup_timeout=args.timeout)
    try:
        with server:
            print(server.base_url, flush=True)
            code = server.wait()
    except KeyboardInterrupt:
        return 0
    error = server.failure(f"vLLM exited with status {code}")
    print(f"prefmix: failed: {error}", file=sys.stderr)
    return error.exit_code
