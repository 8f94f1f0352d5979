"""validators: the quality gate for staged preference batches.

metrics.py reads the batch and measures the row checks, content.py the content checks and overlap.py the
prompt-overlap checks (near-duplicates with minhash.py over ngrams.py's shingles, eval-set contamination),
all with Polars/numpy; suites.py loads the team's GX suites; suite.py asserts everything in one Great
Expectations validation; policy.py maps checks to critical/warning; gate.py (run_gate) decides the verdict
and writes the report (html.py: the self-contained report.html, report.py: summary PNG, GX Data Docs,
validation JSON); preflight.py checks the gate config before a run; artifacts.py publishes Prefect
artifacts; commands.py adds `prefmix gate BATCH`. See docs/gate.md.
"""
