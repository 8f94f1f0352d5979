"""lineage: batch manifests, the publication protocol, the ledger, OpenLineage events, audit queries.

manifest.py  build_manifest / write_manifest (immutable except the status history)
publish.py   stage_dir -> publish | quarantine, override, recover (crash-safe)
ledger.py    SQLAlchemy index: records stored once, versions as spans (trace, impact, diff), deliveries, reindex
deliveries.py  intake: which landing-zone files are new deliveries of a dataset
night.py     one night as data: intake, pending prompts, pool files, the next version, its manifest section
pool.py      the dataset's pool of accepted records (content-addressed files) and retraction filters
versions.py  the base version, which pool files the next version uses and why rows are left out; listing
changes.py   lineage/changes.parquet: what a version added and removed, with reasons
retract.py   retractions (files + ledger); rebuild.py: a corrected version at once
events.py    LineageEmitter: OpenLineage START/COMPLETE/FAIL with dataset facets
card.py      README.md dataset card with Hugging Face front matter
audit.py     show, trace, impact, diff, verify, reproduce, list of batches
commands.py  `prefmix batches`, `prefmix publish --override`, `prefmix lineage ...`
"""
