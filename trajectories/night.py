"""The agent stage of a nightly run, as data: agent runs in, trajectory and step pairs plus counted rejections out.

    runs = read_runs(paths)                                # tonight's new trajectory deliveries, validated (preflight)
    rolled, runs2 = rollouts(config, endpoints, out_file)  # the tool environment on the agent teacher (agent.environment)
    made = derive_night(config, [runs, runs2], rolled)     # AgentRows: canonical rows, rejections, AgentNight

Every run of the night goes through each derivation of `agent.derive` and ends in a row or in one counted
rejection of that derivation: for each, trajectories_in == trajectories_in_rows + trajectories_rejected. Runs of
all of the night's files are derived together, so attempts of one task delivered in two files still pair. Rows
made from tonight's rollouts carry generation lineage (teacher, strategy `tool_rollouts`, sampling, run id,
fingerprint); rows from delivered runs carry the trajectory lineage their files give.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import polars as pl

from prefmix.config import Config, Teacher
from prefmix.contract import AgentDerivation, AgentFile, AgentFileOrigin, AgentNight, Rollouts
from prefmix.hashing import short_hash
from prefmix.records import POLARS_SCHEMA, TRAJECTORY_POLARS_SCHEMA, empty
from prefmix.trajectories.derive import REJECTION_SCHEMA, derive

KINDS = {"trajectory": "trajectory_pair", "step": "step_pair"}
STRATEGY = "tool_rollouts"
REJECTIONS = {"mode": pl.String, **REJECTION_SCHEMA}


@dataclass(frozen=True)
class AgentRuns:
    """Runs of one night from one origin (validated trajectory records) and the files they came from."""

    frame: pl.DataFrame  # TRAJECTORY_POLARS_SCHEMA
    files: list[AgentFile]

    @staticmethod
    def none() -> "AgentRuns":
        return AgentRuns(pl.DataFrame(schema=TRAJECTORY_POLARS_SCHEMA), [])


@dataclass(frozen=True)
class AgentRows:
    rows: pl.DataFrame  # canonical preference rows (kinds trajectory_pair, step_pair), unique record ids
    rejections: pl.DataFrame  # REJECTIONS: one row per (derivation, run in no row of it)
    night: AgentNight


def read_runs(paths: Sequence[str | Path], origin: AgentFileOrigin = "landing_zone") -> AgentRuns:
    """Trajectory files read and validated as one delivery (one-line InputError naming file, run and step)."""
    from prefmix.trajectories.readers import read_trajectories

    if not paths:
        return AgentRuns.none()
    frame, files = read_trajectories(list(paths))
    return AgentRuns(frame, [AgentFile(**f.model_dump(), origin=origin) for f in files])


def check(config: Config) -> None:
    """Before a nightly: every agent kind that blend.kind_shares (or a domain's domain_kind_shares) gives a share is
    one the agent section makes, in a domain its rows have (agent.rules.domain). One-line ConfigError otherwise."""
    from prefmix.errors import ConfigError

    agent = config.agent
    made = {KINDS[m] for m in agent.derive} if agent.enabled else set()
    for domain in config.domains:
        key = f"blend.domain_kind_shares.{domain}" if domain in config.blend.domain_kind_shares else "blend.kind_shares"
        for source, shares in config.blend.kind_shares_for(domain).items():
            for kind, share in shares.items():
                if share <= 0 or kind not in KINDS.values():
                    continue
                if kind not in made:
                    raise ConfigError(f"{key}.{source}.{kind}: {share:g} of {domain} {source} rows, but no agent runs make "
                                      f"{kind} rows (agent.shards or agent.environment, with {_mode(kind)} in agent.derive)")
                if domain != agent.rules.domain:
                    raise ConfigError(f"{key}.{source}.{kind}: {share:g} of {domain} {source} rows, but agent rows are of "
                                      f"domain {agent.rules.domain!r} (agent.rules.domain); give {domain} no agent kinds "
                                      f"with blend.domain_kind_shares")


def _mode(kind: str) -> str:
    return next(mode for mode, k in KINDS.items() if k == kind)


# -- rollouts --------------------------------------------------------------------------------------------------


def fingerprint(config: Config, teacher: Teacher) -> str:
    """What the rollouts' runs depend on: the environment's settings (not its concurrency), the teacher's model
    and revision, how it is served (not where), and the versions of the tool environment and harness."""
    from prefmix.trajectories import rollout, tool_env

    env = config.agent.environment
    serving = teacher.launch.model_dump(mode="json", exclude={"model_dir", "port", "startup_timeout_s", "kv_cache_gb"}) if teacher.launch else None
    return short_hash({"environment": env.model_dump(mode="json", exclude={"concurrency"}), "model": teacher.model,
                       "revision": teacher.revision, "serving": serving, "tool_env": tool_env.VERSION,
                       "harness": rollout.HARNESS_VERSION}, 16)


def rollouts(config: Config, endpoints: dict[str, list[str]], out_file: Path,
             progress: Callable[[int, int], None] | None = None) -> tuple[Rollouts, AgentRuns]:
    """Run agent.environment on the agent teacher (its first endpoint) into `out_file` (ATIF JSON). A file an
    earlier try of the same night wrote there is read again instead (a rerun after a crash sends no requests)."""
    from prefmix.generators.client import resolve_api_key
    from prefmix.trajectories.rollout import run_rollouts

    teacher = config.agent_teacher()
    env = config.agent.environment
    assert teacher is not None and env is not None  # the config's cross-checks
    urls = endpoints.get(teacher.name) or []
    if not urls:
        from prefmix.errors import ConfigError

        raise ConfigError(f"agent.teacher: teacher {teacher.name!r} has no endpoint to run the rollouts on")
    settings = {"teacher": teacher.name, "model": teacher.model, "endpoint": urls[0],
                "environment": env.model_dump(mode="json"), "fingerprint": fingerprint(config, teacher)}
    out_file = Path(out_file)
    if out_file.is_file():
        runs = read_runs([out_file], origin="rollouts")
        resolved = int(runs.frame.select(pl.col("outcome").struct.field("resolved").fill_null(False).sum()).item())
        done = Rollouts(**settings, file=str(out_file), sha256=runs.files[0].sha256, attempts=runs.frame.height,
                        resolved=resolved, requests=0, elapsed_s=0.0, reused=True)
        return done, runs
    result = run_rollouts(env, urls[0], teacher.model, out_file, api_key=resolve_api_key(teacher), progress=progress)
    file = AgentFile(path=str(result.file), sha256=result.sha256, format="atif", trajectories=result.attempts, origin="rollouts")
    done = Rollouts(**settings, file=str(result.file), sha256=result.sha256, attempts=result.attempts,
                    resolved=result.resolved, requests=result.requests, elapsed_s=result.elapsed_s)
    return done, AgentRuns(result.trajectories, [file])


def settled(config: Config, earlier: AgentNight | None) -> tuple[bool, str | None]:
    """Whether tonight's rollouts would repeat runs already in the pool (same fingerprint), and why."""
    teacher = config.agent_teacher()
    if config.agent.environment is None or teacher is None:
        return True, None
    fp = fingerprint(config, teacher)
    if earlier is not None and fp in earlier.fingerprints:
        return True, f"settled: rollouts under fingerprint {fp} are in the pool already"
    return False, None


# -- derivation ------------------------------------------------------------------------------------------------


def _rollout_lineage(rows: pl.DataFrame, done: Rollouts, run_id: str) -> pl.DataFrame:
    """generation lineage on rows whose chosen run came from tonight's rollouts."""
    from prefmix.trajectories import tool_env

    sampling = json.dumps(done.environment, sort_keys=True, separators=(",", ":"))
    struct = POLARS_SCHEMA["generation"]
    assert isinstance(struct, pl.Struct)
    fields = {f.name: pl.lit(None, dtype=f.dtype) for f in struct.fields}
    fields.update({
        "teacher": pl.lit(done.teacher), "teacher_models": pl.lit([done.model], dtype=pl.List(pl.String)),
        # who decided chosen vs rejected: the environment's own check of the answer, not a judge model
        "judge": pl.lit(f"{tool_env.NAME} check v{tool_env.VERSION}"), "strategy": pl.lit(STRATEGY),
        "sampling": pl.lit(sampling), "run_id": pl.lit(run_id), "fingerprint": pl.lit(done.fingerprint),
    })
    generation = pl.struct([expr.alias(name) for name, expr in fields.items()])
    mine = pl.col("origin_sha256") == done.sha256
    return rows.with_columns(generation=pl.when(mine).then(generation).otherwise(pl.col("generation")))


def derive_night(config: Config, parts: Sequence[AgentRuns], done: Rollouts | None = None, run_id: str = "") -> AgentRows:
    """Every derivation of agent.derive over all of the night's runs; rows kept once per record id."""
    agent = config.agent
    frames = [p.frame for p in parts if p.frame.height]
    files = [f for p in parts for f in p.files]
    runs = pl.concat(frames, how="vertical") if frames else AgentRuns.none().frame
    duplicate = runs.filter(pl.col("trajectory_id").is_duplicated())
    if duplicate.height:  # a delivered file repeating a run of the rollouts (or of another night's file tonight)
        from prefmix.errors import InputError

        first = duplicate.row(0, named=True)
        raise InputError(f"{first['origin_uri']}: trajectory {first['trajectory_id']!r} is also in another file of tonight's agent runs")
    made, rejected, derivations = [], [], []
    for mode in agent.derive:
        result = derive(runs, mode, agent.rules)
        s = result.summary
        derivations.append(AgentDerivation(
            mode=mode, kind=KINDS[mode], trajectories_in=s.trajectories_in, rows_out=s.rows_out,  # type: ignore[arg-type]
            trajectories_in_rows=s.trajectories_in_rows, trajectories_rejected=s.trajectories_rejected,
            rejected_by_reason=s.rejected_by_reason, candidate_pairs=s.candidate_pairs,
            candidates_dropped_by_reason=s.candidates_dropped_by_reason, counts=s.counts,
        ))
        made.append(result.rows)
        rejected.append(result.rejections.select(pl.lit(mode).alias("mode"), *REJECTION_SCHEMA))
    rows = pl.concat(made, how="vertical") if made else empty()
    unique = rows.unique("record_id", keep="first", maintain_order=True)
    if done is not None and unique.height:
        unique = _rollout_lineage(unique, done, run_id)
    by = lambda column: {str(k): int(n) for k, n in unique.group_by(column).len().sort(column).iter_rows()}  # noqa: E731
    night = AgentNight(
        files=files, trajectories_in=runs.height, derivations=derivations, rows_by_kind=by("kind"), rows_by_source=by("source"),
        duplicate_rows=rows.height - unique.height, rollouts=done,
    )
    rejections = pl.concat(rejected, how="vertical") if rejected else pl.DataFrame(schema=REJECTIONS)
    return AgentRows(unique, rejections, night)


def write_rejections(rejections: pl.DataFrame, path: Path) -> str:
    """The night's counted rejections as Parquet (atomic); returns the path."""
    from prefmix.store import write_parquet

    return str(write_parquet(rejections.to_arrow(), path))
