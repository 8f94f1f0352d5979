"""lineage: batch manifests, the publication protocol, the ledger, OpenLineage events, audit queries.

manifest.py  build_manifest / write_manifest (immutable except the status history)
publish.py   stage_dir -> publish | quarantine, override, recover (crash-safe)
ledger.py    SQLAlchemy index of manifests and record ids (trace, impact), reindex
events.py    LineageEmitter: OpenLineage START/COMPLETE/FAIL with dataset facets
card.py      README.md dataset card with Hugging Face front matter
audit.py     show, trace, impact, diff, verify, reproduce, list of batches
commands.py  `prefmix batches`, `prefmix publish --override`, `prefmix lineage ...`
"""
