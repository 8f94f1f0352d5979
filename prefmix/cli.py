"""The `prefmix` command.

Each room adds its subcommands through `<room>/commands.py: register(sub)`;
handlers import heavy libraries lazily so `prefmix --help` stays fast. A user
mistake (UserError) ends as one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Callable, NoReturn, Sequence

from prefmix.errors import RunAborted, UserError

ROOM_COMMANDS = (
    "prefmix.commands",
    "prefmix.generators.commands",
    "prefmix.annotations.commands",
    "prefmix.blending.commands",
    "prefmix.validators.commands",
    "prefmix.lineage.commands",
    "prefmix.flows.commands",
    "prefmix.flows.deploy_commands",  # after flows.commands: it adds flows under `run`
)


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line (exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="prefmix", description="Preference data for RLHF/DPO: generate, blend, gate, publish, trace.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    for module_name in ROOM_COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        handler: Callable[[argparse.Namespace], int | None] = args.handler
        code = handler(args)
        return int(code or 0)
    except UserError as exc:
        print(f"prefmix: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except RunAborted as exc:
        print(f"prefmix: stopped: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("prefmix: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def run() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    run()
