"""`prefmix retract ... --rebuild`: publish a corrected version at once, without intake or generation.

The next version is the dataset's LATEST with the retractions in force applied to its pool, blended and gated
with the settings that LATEST was made with (its manifest's config), published by the one protocol.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from prefmix.config import parse
from prefmix.contract import GateFacts, Manifest
from prefmix.errors import UserError
from prefmix.lineage.batch import nightly_batch_id
from prefmix.lineage.changes import version_changes, write_changes
from prefmix.lineage.ledger import read_retractions
from prefmix.lineage.manifest import build_manifest, data_paths, read_manifest
from prefmix.lineage.publish import release, stage_dir
from prefmix.lineage.versions import base_of, plan_version
from prefmix.store import Store


def rebuild(store: Store, dataset: str, ledger_url: str | None = None, day: str | None = None) -> tuple[Manifest, Path]:
    """Build and publish (or quarantine) version N+1 of `dataset` from version N's pool less retractions."""
    from prefmix.blending.blend import blend
    from prefmix.validators.gate import run_gate

    base = base_of(store, dataset)
    if base is None or base.manifest.dataset is None:
        raise UserError(f"dataset {dataset!r}: no published version to rebuild from in {store.root}")
    info = base.manifest.dataset
    config = parse(base.manifest.config, f"{base.batch_dir / 'manifest.json'}: config")
    # Today, or the base's night if that is later (runs may be dated ahead): versions never go back in time.
    day = day or max(dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"), info.day)
    plan = plan_version(store, dataset, day, base, [], fingerprint=info.fingerprint, window_days=info.window_days,
                        rules=read_retractions(store), new_deliveries=set())
    batch_id = nightly_batch_id(config, plan.inputs, day) + "-r"
    found = store.find_batch(batch_id, staged=False)
    if found is not None:
        return read_manifest(found), found
    staged = stage_dir(store, batch_id)
    result = blend(config, plan.human_files, plan.synthetic_files, staged, batch_id)
    files = [p.relative_to(staged).as_posix() for p in data_paths(staged)]
    changes = write_changes(staged, version_changes(staged, files, base.batch_dir, [f.path for f in base.manifest.files], plan.reasons))
    stats = base.manifest.annotation_stats
    facts = GateFacts(human_agreement=stats.overall.alpha if stats else None,
                      judge_human=base.manifest.judge_human.agreement if base.manifest.judge_human else None)
    gate = run_gate(config, staged, facts)
    section = info.model_copy(update={
        "version": plan.version, "base_version": base.version, "day": day, "deliveries": [], "pool": plan.pool,
        "retractions": plan.retractions, "excluded": plan.excluded, "retracted_rows": plan.retracted_rows, "new_prompts": 0,
        "generated_prompts": 0, "requests": 0, "changes": changes,
    })
    manifest = build_manifest(batch_id=batch_id, config=config, batch_dir=staged, inputs=plan.inputs,
                              synthetic_runs=base.manifest.synthetic_runs, blend=result.summary, annotation_stats=stats,
                              judge_human=base.manifest.judge_human, gate=gate, flow_run_id=None, dataset=section)
    final = release(store, manifest, ledger_url=ledger_url)
    return read_manifest(final), final
