"""CLI handlers: `prefmix demo`, `prefmix run nightly|generate|blend` (here, through flows.runner) and
`prefmix trigger FLOW` (on a Prefect server, picked up by a worker)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from prefmix.argtypes import count
from prefmix.context import DEMO_CONFIG
from prefmix.errors import UserError

# flow name -> deployment name, as in prefect.yaml
DEPLOYMENTS = {"generate": "generate/generate", "blend": "blend/blend", "nightly": "nightly/nightly", "route": "route/route",
               "trajectories": "trajectories/trajectories"}
PARAM_ALIASES = {"config": "config_path"}


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML config file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key (repeatable), value parsed as YAML")
    parser.add_argument("--json", action="store_true", help="print the run summary as JSON (no progress display)")


# demo ----------------------------------------------------------------------------
def demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", help="store folder (default: PREFMIX_STORE, else the demo config's demo-store/)")
    # Sized for the small real teacher on 2 cores: 40 prompts take about 4 minutes of generation, and 20 items per
    # shard give as many human rows as the ratio (0.7 human) can match with the pairs those prompts make.
    parser.add_argument("--prompts", type=count, default=40, help="sample prompts to write (default 40)")
    parser.add_argument("--items", type=count, default=20, help="human items per sample shard (default 20)")
    parser.add_argument("--json", action="store_true", help="print the run summary as JSON")


def demo(args: argparse.Namespace) -> int:
    config_path = prepare_demo(DEMO_CONFIG, args.store, args.prompts, args.items)
    return _nightly(str(config_path), [], None, None, args.json, False)


def prepare_demo(template: Path, store_arg: str | None, prompts: int, items: int) -> Path:
    """Sample prompts and vendor shards in the store's inputs/, and the demo config that names them."""
    import yaml

    from prefmix.annotations.samples import write_sample_shards
    from prefmix.config import load
    from prefmix.samples import write_prompts
    from prefmix.store import Store, atomic_write_text

    config = load(template)
    store = Store.at(store_arg or config.store_root())
    inputs = store.inputs
    write_prompts(inputs / "prompts" / "prompts.parquet", prompts, seed=config.seed, domains=config.domains)
    shards = write_sample_shards(inputs / "human", seed=config.seed, n_items=items)
    data: dict[str, Any] = yaml.safe_load(template.read_text())
    data["store"] = str(store.root)
    data["prompts"] = [{"glob": str(inputs / "prompts" / "*.parquet")}]  # a landing zone: drop more prompt files there
    data["human"]["shards"] = [shard.model_dump(mode="json", exclude_defaults=False) for shard in shards]
    for teacher in data.get("teachers", []):
        launch = teacher.get("launch")
        if launch and launch.get("model_dir") and not Path(launch["model_dir"]).is_absolute():
            launch["model_dir"] = str((template.parent / launch["model_dir"]).resolve())
    config_path = inputs / "demo-config.yaml"
    atomic_write_text(config_path, yaml.safe_dump(data, sort_keys=False))
    return config_path


# run nightly -----------------------------------------------------------------------
def nightly_arguments(parser: argparse.ArgumentParser) -> None:
    _config_arguments(parser)
    parser.add_argument("--limit", type=count, help="generate for at most N prompts")
    parser.add_argument("--date", dest="run_date", help="run date YYYY-MM-DD (default: today, UTC)")
    parser.add_argument("--regenerate", action="store_true",
                        help="generate every prompt of the dataset again, even those with pairs under the current fingerprint")


def run_nightly(args: argparse.Namespace) -> int:
    return _nightly(args.config, args.overrides, args.run_date, args.limit, args.json, args.regenerate)


def _nightly(config_path: str, overrides: list[str], run_date: str | None, limit: int | None, as_json: bool,
             regenerate: bool) -> int:
    from prefmix.contract import NightlySummary
    from prefmix.flows import runner

    runner.quiet_prefect()  # before anything imports Prefect, so its console handlers pick it up
    from prefmix.flows.nightly import configure, nightly, preflight

    preflight(configure(config_path, overrides, limit), regenerate)  # bad config or input fails here, before Prefect starts

    params = {"config_path": config_path, "overrides": overrides, "run_date": run_date, "limit": limit, "regenerate": regenerate}
    summary = runner.run(nightly, params, NightlySummary, show_progress=not as_json)
    if as_json:  # one line, last: what scripts read
        print(json.dumps(summary.model_dump(mode="json"), default=str, separators=(",", ":")))
    else:
        print_nightly(summary)
    return 0 if summary.status in ("published", "overridden") else 1


# run generate ----------------------------------------------------------------------
def generate_arguments(parser: argparse.ArgumentParser) -> None:
    _config_arguments(parser)
    parser.add_argument("--limit", type=count, help="generate for at most N prompts")
    parser.add_argument("--run-id", help="run id (default: derived from the generation config; the same config resumes)")
    parser.add_argument("--teacher", help="generate with this teacher only")
    parser.add_argument("--task-runner", choices=["thread", "ray"], default="thread",
                        help="where chunks run: threads here, or a Ray cluster (default thread)")
    parser.add_argument("--ray-address", help="Ray cluster address, e.g. 10.0.0.5:6379 (default: start a local one)")
    parser.add_argument("--no-progress", action="store_true", help="no progress display")


def run_generate(args: argparse.Namespace) -> int:
    from prefmix.flows import runner

    runner.quiet_prefect()
    from prefmix.flows.generate import GenerateSummary, configure, generate, preflight

    preflight(configure(args.config, args.overrides, args.limit, args.teacher, args.run_id))  # before Prefect starts

    params = {"config_path": args.config, "limit": args.limit, "run_id": args.run_id, "teacher": args.teacher,
              "overrides": args.overrides, "task_runner": args.task_runner, "ray_address": args.ray_address}
    summary = runner.run(generate, params, GenerateSummary, show_progress=not (args.json or args.no_progress))
    if args.json:
        print(json.dumps(summary.model_dump(mode="json"), indent=2, default=str))
    else:
        s = summary.summary
        rejected = ", ".join(f"{k} {v}" for k, v in s.rejections.items()) or "none"
        print(f"run {summary.run_id}: {s.prompts_in} prompts -> {s.records} pairs, rejected {rejected}; requests sent "
              f"{s.requests_sent}, from cache {s.requests_cached}; chunks {summary.chunks} (skipped {summary.chunks_cached}); "
              f"teacher tokens per pair {s.tokens_per_pair if s.tokens_per_pair is not None else '-'}")
        print(f"records: {summary.run_dir}/chunks")
    return 0


# run blend -------------------------------------------------------------------------
def blend_arguments(parser: argparse.ArgumentParser) -> None:
    _config_arguments(parser)
    parser.add_argument("--batch-id", help="batch id (default: derived from config and inputs)")
    parser.add_argument("--run", dest="runs", action="append", metavar="RUN_ID",
                        help="generation run to take synthetic records from (repeatable; default: every finished run)")


def run_blend(args: argparse.Namespace) -> int:
    from prefmix.flows import runner

    runner.quiet_prefect()
    from prefmix.flows.blend import AdhocBlendSummary, blend, configure

    configure(args.config, args.overrides, None)

    params = {"config_path": args.config, "overrides": args.overrides, "batch_id": args.batch_id, "runs": args.runs}
    summary = runner.run(blend, params, AdhocBlendSummary, show_progress=not args.json)
    if args.json:
        print(json.dumps(summary.model_dump(mode="json"), indent=2, default=str))
    else:
        print(f"batch {summary.batch_id}: {summary.rows} rows staged at {summary.staged}")
    return 0


# trigger ---------------------------------------------------------------------------
def trigger_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("flow", choices=sorted(DEPLOYMENTS), help="which deployment")
    parser.add_argument("--param", "-p", dest="params", action="append", default=[], metavar="KEY=VALUE",
                        help="flow parameter, value parsed as YAML (repeatable), e.g. --param limit=50")
    parser.add_argument("--deployment", help="FLOW/DEPLOYMENT name (default: the one from prefect.yaml)")
    parser.add_argument("--json", action="store_true", help="print the flow run as JSON")


def parse_params(items: list[str]) -> dict[str, Any]:
    """`key=value` pairs; values are YAML (50 -> int, {a: 1} -> dict, text -> str)."""
    from prefmix.yamlio import parse_yaml

    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"--param: expected key=value, got {item!r}")
        params[PARAM_ALIASES.get(key, key)] = parse_yaml(raw, f"--param {key}")
    return params


def start_deployment(flow: str, params: dict[str, Any], deployment: str | None = None) -> Any:
    """Create a flow run of a deployment and return at once (the worker runs it); returns the FlowRun."""
    from prefmix.flows.runner import quiet_prefect

    quiet_prefect()
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


def trigger(args: argparse.Namespace) -> int:
    run = start_deployment(args.flow, parse_params(args.params), args.deployment)
    if args.json:
        print(json.dumps({"id": str(run.id), "name": run.name, "state": run.state_name,
                          "deployment": args.deployment or DEPLOYMENTS[args.flow]}))
    else:
        print(f"flow run {run.name} ({run.id}) {run.state_name}")
    return 0


# printing --------------------------------------------------------------------------
def print_nightly(summary: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    colour = {"published": "green", "quarantined": "red", "overridden": "yellow"}.get(summary.status, "white")
    version = f"{summary.dataset} v{summary.version}  " if summary.dataset and summary.version else ""
    console.print(f"\n[bold]{version}batch[/] {summary.batch_id}  [bold {colour}]{summary.status}[/]  gate verdict: "
                  f"[bold]{summary.verdict}[/]  rows: {summary.rows}")
    if summary.dataset:
        console.print(f"deliveries: {summary.new_deliveries} new, {summary.skipped_deliveries} skipped (copies); prompts: "
                      f"{summary.new_prompts} new, {summary.generated_prompts} generated with {summary.requests} requests; "
                      f"retracted rows left out: {summary.retracted_rows}")
    if summary.failed_checks:
        console.print(f"[red]failed checks:[/] {', '.join(summary.failed_checks)}")
    achieved: dict[str, dict[str, int]] = summary.achieved
    if achieved:
        table = Table(title="rows per domain and source")
        sources = sorted({s for per in achieved.values() for s in per})
        table.add_column("domain")
        for source in sources:
            table.add_column(source, justify="right")
        table.add_column("total", justify="right")
        totals = {s: 0 for s in sources}
        for domain, per in sorted(achieved.items()):
            table.add_row(domain, *(str(per.get(s, 0)) for s in sources), str(sum(per.values())))
            for s in sources:
                totals[s] += per.get(s, 0)
        table.add_row("[bold]all", *(f"[bold]{totals[s]}" for s in sources), f"[bold]{sum(totals.values())}")
        console.print(table)
    for run in summary.synthetic:
        rejected = ", ".join(f"{k} {v}" for k, v in run.rejections.items()) or "none"
        console.print(f"synthetic: {run.prompts_in} prompts -> {run.records} pairs; rejected: {rejected}")
        if run.tokens_per_pair is not None:
            integer = f"{run.tokens_per_pair_integer:.0f}" if run.tokens_per_pair_integer is not None else "no pair"
            console.print(f"teacher tokens per pair: {run.tokens_per_pair:.0f} ({run.expected_tie_breaks} integer ties broken "
                          f"by expected scores; integer scores alone: {integer})")
    if summary.annotation:
        console.print("human agreement: " + ", ".join(f"{k} {_fmt(v)}" for k, v in summary.annotation.items()))
    if summary.judge_human:
        console.print(f"judge-human agreement: {_fmt(summary.judge_human.agreement)} on {summary.judge_human.judged} pairs")
    console.print(f"data:     {summary.batch_dir}/data")
    console.print(f"manifest: {summary.manifest}")
    for name, path in summary.report.items():
        if path:
            console.print(f"{name + ':':<9} {path}")
    console.print(f"store:    {summary.store}")


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)

