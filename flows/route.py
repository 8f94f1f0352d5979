"""The route flow: which of the synthetic pairs go to people, and their answers back.

`action="queue"`: plan the next queue under the budget and send it (Label Studio, files, or a dry run).
`action="pull"`: take the answers back into the landing zone the nightly reads, and learn from them.

Wiring only: planning, sending, receiving and learning are prefmix.routing.run's; this flow reads the one
thing routing may not (the nightly's measured judge-vs-human agreement, from the latest published manifest),
and leaves a markdown artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import ValidationError

from prefmix.config import Config, RouteBudget, load
from prefmix.contract import JudgeHumanAgreement
from prefmix.errors import ConfigError
from prefmix.routing.models import PullSummary, RouteSummary
from prefmix.slug import slug
from prefmix.store import Store

__all__ = ["PullSummary", "RouteSummary", "configure", "route"]

Action = Literal["queue", "pull"]


def configure(config_path: str, overrides: list[str] | None = None, budget: int | None = None,
              budget_share: float | None = None, budget_money: float | None = None) -> Config:
    """Config file + overrides + a budget from the command line (replaces routing.budget); mistakes are found here."""
    config = load(config_path, overrides or [])
    given = {k: v for k, v in (("tasks", budget), ("share", budget_share), ("money", budget_money)) if v is not None}
    if len(given) > 1:
        raise ConfigError("--budget, --budget-share and --budget-money: give one")
    if given:
        try:
            config.routing.budget = RouteBudget(**given)
        except ValidationError as exc:
            raise ConfigError(f"--budget: {exc.errors()[0]['msg']}") from None
    return config


def measured(store: Store) -> JudgeHumanAgreement | None:
    """The nightly's judge-vs-human agreement from the latest published batch (None before the first)."""
    from prefmix.lineage.manifest import read_manifest_data

    latest = store.latest()
    if latest is None or not (store.batch_dir(latest) / "manifest.json").is_file():
        return None
    data = read_manifest_data(store.batch_dir(latest)).get("judge_human")
    return JudgeHumanAgreement.model_validate(data) if data else None


def label_studio_url(config: Config, to: str | None, url: str | None) -> str | None:
    if to is None:
        return None
    if to != "label-studio":
        raise ConfigError(f"--to {to!r}: expected label-studio")
    chosen = url or config.routing.label_studio.url
    if not chosen:
        raise ConfigError("--to label-studio: no URL; give one (--to label-studio URL) or set routing.label_studio.url")
    return chosen


def preflight(config: Config, action: Action, to: str | None = None, url: str | None = None, out: str | None = None,
              export: str | None = None, queue_id: str | None = None) -> None:
    """Every mistake in the config, the inputs, the target and the token, found before Prefect starts (nothing written)."""
    from prefmix.routing.run import check_out, draw, fetch
    from prefmix.routing.tool import token

    store = Store.at(config.store_root())
    if action == "queue":
        target = label_studio_url(config, to, url)
        check_out(Path(out).resolve() if out else None)
        drawn = draw(config, store, measured(store))
        if target is not None and drawn.planned.queue.items:
            token(config.routing.label_studio)
    elif export is not None:
        fetch(config, store, queue_id=queue_id, export=Path(export))


def queue_now(config: Config, to: str | None = None, url: str | None = None, out: str | None = None) -> RouteSummary:
    from prefmix.routing.run import draw, send

    store = Store.at(config.store_root())
    target = label_studio_url(config, to, url)
    drawn = draw(config, store, measured(store))
    return send(config, store, drawn, label_studio_url=target, out=Path(out).resolve() if out else None)


def pull_now(config: Config, queue_id: str | None = None, export: str | None = None, url: str | None = None,
             partial: bool = False) -> PullSummary:
    from prefmix.routing.run import deliver, fetch

    store = Store.at(config.store_root())
    fetched = fetch(config, store, queue_id=queue_id, export=Path(export) if export else None, url=url)
    return deliver(config, store, fetched, measured(store), partial=partial)


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    return f"route-{flow_run.parameters.get('action') or 'queue'}"


@flow(name="route", flow_run_name=_flow_run_name, log_prints=True, validate_parameters=True)
def route(config_path: str, overrides: list[str] | None = None, action: Action = "queue", budget: int | None = None,
          budget_share: float | None = None, budget_money: float | None = None, to: str | None = None,
          url: str | None = None, out: str | None = None, queue_id: str | None = None, export: str | None = None,
          partial: bool = False) -> RouteSummary | PullSummary:
    """Queue the pairs where the judge is doubtful (action=queue), or pull the answers back (action=pull)."""
    logger = get_run_logger()
    config = configure(config_path, overrides, budget, budget_share, budget_money)
    if action == "pull":
        pulled = pull_now(config, queue_id, export, url, partial)
        logger.info("route pull: %s tasks (%s labels) delivered to %s", pulled.delivered_tasks, pulled.delivered_labels,
                    pulled.returned_dir)
        create_markdown_artifact(Path(pulled.report).read_text(encoding="utf-8"), key="route-pull",
                                 description="routing: returned labels, judge errors found, anchoring")
        return pulled
    summary = queue_now(config, to, url, out)
    logger.info("route queue %s: %s tasks (%s gold), %s", summary.queue_id, summary.tasks, summary.gold,
                "dry run" if summary.dry_run else "sent")
    create_markdown_artifact(queue_markdown(summary), key=slug(f"route-{summary.queue_id}"),
                             description=f"routing queue {summary.queue_id}")
    return summary


def queue_markdown(summary: RouteSummary) -> str:
    where = ("dry run (nothing sent)" if summary.dry_run else
             f"Label Studio project {summary.pushed.project_id} at {summary.pushed.url}" if summary.pushed else f"files in `{summary.files}`")
    lines = [
        f"# Routing queue `{summary.queue_id}`", "",
        f"- {where}",
        f"- candidates {summary.candidates} (already routed {summary.already_routed}, to checks {sum(summary.to_check.values())})",
        f"- tasks **{summary.tasks}**: {summary.routed} routed, {summary.gold} gold, {summary.hidden} without the judge's suggestion; "
        f"k = {summary.annotators} -> {summary.labels} labels, cost {summary.cost:g} ({summary.vendor})",
        f"- expected judge errors found: {summary.expected_errors:.1f} ({summary.expected_errors / summary.labels if summary.labels else 0:.3f} per label)",
        f"- model fitted on {summary.model.fitted_on} returned labels", "",
        "| domain | tasks | gold | labels | cost |", "|---|---:|---:|---:|---:|",
        *[f"| {d} | {p.tasks} | {p.gold} | {p.labels} | {p.cost:g} |" for d, p in sorted(summary.per_domain.items())], "",
        "| reason | tasks |", "|---|---:|", *[f"| {r} | {n} |" for r, n in sorted(summary.reasons.items())],
    ]
    return "\n".join(lines)
