"""The trajectories flow: derive trajectory pairs, step pairs, step labels or KTO rows from agent runs, ad hoc.

Wiring only: reading, validating and deriving are prefmix.trajectories.job's. Files default to the config's
agent landing zones (agent.shards, as the files in them now) and rules to agent.rules; rows go to
store/derived/trajectories/, named by the mode and the files' sha256, so the same files give the same path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from prefmix.config import Config, load
from prefmix.errors import ConfigError
from prefmix.slug import slug
from prefmix.store import Store
from prefmix.trajectories.job import DerivedFiles

__all__ = ["DerivedFiles", "configure", "trajectories"]

Mode = Literal["trajectory", "step", "labels", "kto"]


def configure(config_path: str, overrides: list[str] | None, files: list[str] | None) -> tuple[Config, list[str]]:
    """The config and the trajectory files to read: `files`, else every file of agent.shards now."""
    from prefmix.intake import concrete

    config = concrete(load(config_path, overrides or []))
    paths = list(files or [str(z.path) for z in config.agent.shards])
    if not paths:
        raise ConfigError(f"{config_path}: no trajectory files; pass files or list landing zones under agent.shards")
    return config, paths


@task(name="derive-trajectories", cache_policy=NO_CACHE)
def derive_task(paths: list[str], mode: Mode, config: Config, reviews: str | None, vendor: str, out: str | None,
                out_dir: Path) -> DerivedFiles:
    from prefmix.trajectories.job import derive_files

    return derive_files(paths, mode, config.agent.rules, reviews=reviews, vendor=vendor,
                        out=Path(out) if out else None, out_dir=out_dir)


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    return f"trajectories-{params.get('mode', 'trajectory')}-{len(params.get('files') or []) or 'zones'}"


@flow(name="trajectories", flow_run_name=_flow_run_name, log_prints=True, validate_parameters=True)
def trajectories(config_path: str, mode: Mode = "trajectory", files: list[str] | None = None,
                 overrides: list[str] | None = None, reviews: str | None = None, vendor: str = "unknown",
                 out: str | None = None) -> DerivedFiles:
    """Agent runs -> preference rows (trajectory or step pairs), PRM step labels or KTO rows, with counted rejections."""
    logger = get_run_logger()
    config, paths = configure(config_path, overrides, files)
    store = Store.at(config.store_root())
    done = derive_task(paths, mode, config, reviews, vendor, out, store.root / "derived" / "trajectories")
    s = done.summary
    logger.info("%s: %s trajectories -> %s rows, %s rejected; rows at %s", mode, s.trajectories_in, s.rows_out,
                s.trajectories_rejected, done.out)
    _summary_artifact(mode, done)
    return done


def _summary_artifact(mode: str, done: DerivedFiles) -> None:
    s = done.summary
    lines: list[Any] = [
        f"# Trajectories: `{mode}`", "",
        "| | |", "|---|---|",
        f"| files | {len(done.files)} |",
        f"| trajectories in | {s.trajectories_in} |",
        f"| rows out | {s.rows_out} |",
        f"| trajectories in rows / rejected | {s.trajectories_in_rows} / {s.trajectories_rejected} |",
        f"| reconciled | {'yes' if s.reconciled else '**no**'} |",
        f"| rows at | `{done.out}` |",
    ]
    lines += [f"| rejected: {reason} | {n} |" for reason, n in s.rejected_by_reason.items()]
    create_markdown_artifact("\n".join(lines), key=slug(f"trajectories-{mode}"), description=f"trajectories {mode}")
