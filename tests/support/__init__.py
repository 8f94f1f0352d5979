"""What every test folder shares, in one place (imported as `tests.support.<module>`):

- `processes`: `free_port`, and starting/stopping a child process group (`start`, `stop`, `tail`).
- `prefect_server`: the one session-scoped real `prefect server` (fixture `prefect_server`) and the ways to talk
  to it (`prefect_client`, `in_process`, `wait_for_flow_run`).
- `vllm`: the session-scoped real vLLM server with the tiny teacher (fixtures `tiny_model_dir`, `vllm_teacher`).
- `cli`: the `prefmix` CLI in a subprocess (`prefmix`, `PREFMIX`) and readers of its output (`last_json`, `one_line`).
- `records`: the canonical-record factory, built on `prefmix.records` so it cannot drift from the real schema.
- `nightly`: a small nightly setup (sample prompts, vendor shards, a config) in a temp folder.

The fixtures are registered for every folder by `tests/conftest.py`.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
