"""CLI: `prefmix generate` and `prefmix teacher build-tiny|serve`."""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    gen = sub.add_parser("generate", help="generate synthetic preference pairs with the configured teachers")
    gen.add_argument("--config", required=True, metavar="FILE", help="prefmix YAML config")
    gen.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N prompts")
    gen.add_argument("--run-id", default=None, metavar="R", help="resume run R (default: a new run id)")
    gen.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key, e.g. generation.strategy=pairwise (repeatable)")
    gen.add_argument("--json", action="store_true", help="print the run (files, summary, lineage) as JSON")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    gen.set_defaults(handler=_generate)

    teacher = sub.add_parser("teacher", help="build or serve a local teacher model")
    tsub = teacher.add_subparsers(dest="teacher_command", required=True, metavar="ACTION")
    build = tsub.add_parser("build-tiny", help="build the tiny offline teacher (random weights) into DIR")
    build.add_argument("dir", metavar="DIR")
    build.add_argument("--seed", type=int, default=0)
    build.set_defaults(handler=_build_tiny)
    serve = tsub.add_parser("serve", help="serve a local model directory with vLLM until Ctrl-C")
    serve.add_argument("--model", required=True, metavar="DIR")
    serve.add_argument("--port", type=int, default=0, help="0 = a free port")
    serve.add_argument("--name", default=None, help="served model name (default: the directory name)")
    serve.add_argument("--log", default=None, help="server log file (default: a temp file)")
    serve.add_argument("--timeout", type=float, default=300.0, help="start-up timeout in seconds")
    serve.set_defaults(handler=_serve)


def new_run_id() -> str:
    return f"gen-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


class _Bar:
    """Rich progress bar fed by generate()'s on_progress callback."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            BarColumn(bar_width=20), MofNCompleteColumn(), TextColumn("prompts"),
            TextColumn("{task.fields[requests]} req ({task.fields[cached]} cached)"),
            TextColumn("{task.fields[tps]:.0f} tok/s"), TextColumn("{task.fields[rejected]} rejected"),
            TimeElapsedColumn(), console=Console(stderr=True), transient=False,
        )
        self.started = False
        self.task = self.progress.add_task("generate", total=None, requests=0, cached=0, in_flight=0, tps=0.0, rejected=0)

    def __call__(self, info: dict[str, Any]) -> None:
        if not self.started:  # only once work begins, so an early config error prints alone
            self.started = True
            self.progress.start()
        self.progress.update(
            self.task, total=info["prompts_total"], completed=info["prompts_done"], requests=info["requests_sent"],
            cached=info["requests_cached"], in_flight=info["in_flight"], tps=info["tokens_per_s"],
            rejected=info["rejected"],
        )

    def stop(self) -> None:
        if self.started:
            self.progress.stop()


def _print_summary(run: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    s = run.summary
    table = Table(title=f"generation run {run.run_id}", show_header=False)
    rows = [
        ("prompts in", s["prompts_in"]), ("records", s["records"]),
        ("rejections", sum(s["rejections"].values())),
        *((f"  {reason}", n) for reason, n in s["rejections"].items()),
        ("requests sent / cached", f"{s['requests_sent']} / {s['requests_cached']}"),
        ("tokens prompt / completion", f"{s['prompt_tokens']} / {s['completion_tokens']}"),
        ("elapsed", f"{s['elapsed_s']:.1f} s"), ("output", run.run_dir),
    ]
    for key, value in rows:
        table.add_row(key, str(value))
    Console().print(table)


def _generate(args: argparse.Namespace) -> int:
    from prefmix.config import load
    from prefmix.store import Store

    from prefmix.generators.durable import check_run_id
    from prefmix.generators.launch import launched_teachers
    from prefmix.generators.run import generate

    config = load(args.config, args.overrides)
    run_id = check_run_id(args.run_id or new_run_id())
    store = Store.at(config.store_root())
    if not args.json:
        print(f"run id: {run_id} (resume with --run-id {run_id})", flush=True)
    with launched_teachers(config, store.run_dir(run_id) / "logs") as endpoints:
        bar = None if args.no_progress or args.json else _Bar()
        try:
            run = generate(config, store, run_id, limit=args.limit, teachers=endpoints, on_progress=bar)
        finally:
            if bar is not None:
                bar.stop()
    if args.json:
        print(json.dumps(run.model_dump(mode="json"), indent=2, sort_keys=True))
    else:
        _print_summary(run)
    return 0


def _build_tiny(args: argparse.Namespace) -> int:
    from prefmix.errors import UserError

    from prefmix.generators.vllm_server import TeacherEnvError, TinyTeacherBuildError, build_tiny_teacher

    try:
        print(build_tiny_teacher(Path(args.dir), seed=args.seed))
    except (TeacherEnvError, TinyTeacherBuildError) as exc:
        raise UserError(str(exc)) from None
    return 0


def _serve(args: argparse.Namespace) -> int:
    from prefmix.errors import InputError

    from prefmix.generators.vllm_server import serve

    model = Path(args.model)
    if not (model / "config.json").is_file():
        raise InputError(f"{model}: not a model directory (no config.json); build one with `prefmix teacher build-tiny DIR`")
    namespace = argparse.Namespace(model=model, name=args.name, port=args.port, log=Path(args.log) if args.log else None,
                                   python=None, timeout=args.timeout)
    return serve(namespace)
