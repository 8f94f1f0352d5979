"""validators: the quality gate for staged preference batches.

metrics.py measures every check with Polars; suite.py asserts them in one Great
Expectations validation; policy.py maps checks to critical/warning; gate.py
(run_gate) decides the verdict and writes the report (report.py: summary PNG,
GX Data Docs, validation JSON); artifacts.py publishes Prefect artifacts;
commands.py adds `prefmix gate BATCH`. See docs/gate.md.
"""
