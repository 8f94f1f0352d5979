"""CLI: `prefmix run generate|blend` (in this process) and `prefmix trigger generate|blend|nightly` (via a server)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from prefmix.errors import UserError

# flow name -> deployment name, as in prefect.yaml
DEPLOYMENTS = {"generate": "generate/generate", "blend": "blend/blend", "nightly": "nightly/nightly"}
PARAM_ALIASES = {"config": "config_path"}


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.choices.get("run") or sub.add_parser("run", help="run a flow on a config")
    run_sub = _subparsers(run) or run.add_subparsers(dest="flow", required=True, metavar="FLOW",
                                                     parser_class=type(run))

    gen = run_sub.add_parser("generate", help="one generation run (ad hoc), chunks as cached Prefect tasks")
    gen.add_argument("--config", required=True, help="YAML config file")
    gen.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key (repeatable)")
    gen.add_argument("--limit", type=int, help="generate for at most N prompts")
    gen.add_argument("--run-id", help="run id (default: derived from the generation config; same config resumes)")
    gen.add_argument("--teacher", help="generate with this teacher only")
    gen.add_argument("--task-runner", choices=["thread", "ray"], default="thread",
                     help="where chunks run: threads here, or a Ray cluster (default thread)")
    gen.add_argument("--ray-address", help="Ray cluster address, e.g. 10.0.0.5:6379 (default: start a local one)")
    gen.add_argument("--json", action="store_true", help="print the run summary as JSON")
    gen.set_defaults(handler=_run_generate)

    bl = run_sub.add_parser("blend", help="blend human shards with finished generation runs into staging")
    bl.add_argument("--config", required=True, help="YAML config file")
    bl.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config key (repeatable), e.g. --set 'blend.ratios={human: 0.5, synthetic: 0.5}'")
    bl.add_argument("--batch-id", help="batch id (default: derived from config and inputs)")
    bl.add_argument("--run", dest="runs", action="append", metavar="RUN_ID",
                    help="generation run to take synthetic records from (repeatable; default: every finished run)")
    bl.add_argument("--json", action="store_true", help="print the summary as JSON")
    bl.set_defaults(handler=_run_blend)

    trig = sub.add_parser("trigger", help="start a deployed flow on the Prefect server (needs PREFECT_API_URL)")
    trig.add_argument("flow", choices=sorted(DEPLOYMENTS), help="which deployment")
    trig.add_argument("--param", "-p", dest="params", action="append", default=[], metavar="KEY=VALUE",
                      help="flow parameter, value parsed as YAML (repeatable), e.g. --param limit=50")
    trig.add_argument("--deployment", help="FLOW/DEPLOYMENT name (default: the one from prefect.yaml)")
    trig.add_argument("--json", action="store_true", help="print the flow run as JSON")
    trig.set_defaults(handler=_trigger)


def _state_result(state: Any) -> dict[str, Any]:
    if not state.is_completed():
        state.result()  # raises the flow's own error (UserError -> one line)
        raise UserError(f"flow run ended {state.name}: {state.message}")
    return state.result()


def _run_generate(args: argparse.Namespace) -> int:
    from prefmix.flows.commands import _quiet_prefect_console

    _quiet_prefect_console()  # before Prefect is imported, so its console handlers pick it up
    from prefmix.flows.generate import configure, generate

    configure(args.config, args.overrides, args.limit, args.teacher)  # a bad config fails before a flow run starts
    state = generate(config_path=args.config, limit=args.limit, run_id=args.run_id, teacher=args.teacher,
                     overrides=args.overrides, task_runner=args.task_runner, ray_address=args.ray_address,
                     return_state=True)
    summary = _state_result(state)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        s = summary["summary"]
        rejected = s.get("rejections") or {}
        print(f"run {summary['run_id']}: {s.get('prompts_in')} prompts -> {s.get('records')} pairs, rejected "
              f"{', '.join(f'{k} {v}' for k, v in rejected.items()) or 'none'}; requests sent {s.get('requests_sent')},"
              f" from cache {s.get('requests_cached')}; chunks {summary['chunks']} (skipped {summary['chunks_cached']})")
        print(f"records: {summary['run_dir']}/chunks")
    return 0


def _run_blend(args: argparse.Namespace) -> int:
    from prefmix.flows.commands import _quiet_prefect_console

    _quiet_prefect_console()
    from prefmix.flows.blend import blend, configure

    configure(args.config, args.overrides, None)
    state = blend(config_path=args.config, overrides=args.overrides, batch_id=args.batch_id, runs=args.runs,
                  return_state=True)
    summary = _state_result(state)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(f"batch {summary['batch_id']}: {summary['rows']} rows staged at {summary['staged']}")
    return 0


def parse_params(items: list[str]) -> dict[str, Any]:
    """`key=value` pairs; values are YAML (50 -> int, {a: 1} -> dict, text -> str)."""
    import yaml

    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"--param: expected key=value, got {item!r}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise UserError(f"--param {key}: value {raw!r} is not valid YAML") from None
        params[PARAM_ALIASES.get(key, key)] = value
    return params


def trigger(flow: str, params: dict[str, Any], deployment: str | None = None) -> Any:
    """Create a flow run of a deployment and return at once (the worker runs it); returns the FlowRun."""
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise UserError("PREFECT_API_URL is not set; start a server (`make server`) and "
                        "export PREFECT_API_URL=http://127.0.0.1:4200/api")
    name = deployment or DEPLOYMENTS[flow]
    try:
        with get_client(sync_client=True) as client:
            found = client.read_deployment_by_name(name)
    except ObjectNotFound:
        raise UserError(f"deployment {name!r} not found on {url}; create it with `make deploy`") from None
    except (httpx.HTTPError, OSError) as exc:
        raise UserError(f"cannot reach the Prefect API at {url}: {exc}") from None
    known = set((found.parameter_openapi_schema or {}).get("properties", {}))
    unknown = sorted(set(params) - known) if known else []
    if unknown:
        raise UserError(f"--param {unknown[0]}: deployment {name!r} has no such parameter (has: {', '.join(sorted(known))})")
    return run_deployment(name, parameters=params, timeout=0, as_subflow=False)


def _trigger(args: argparse.Namespace) -> int:
    run = trigger(args.flow, parse_params(args.params), args.deployment)
    if args.json:
        print(json.dumps({"id": str(run.id), "name": run.name, "state": run.state_name,
                          "deployment": args.deployment or DEPLOYMENTS[args.flow]}))
    else:
        print(f"flow run {run.name} ({run.id}) {run.state_name}")
    return 0
