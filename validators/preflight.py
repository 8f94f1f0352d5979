"""Gate configuration checks that need files (suites, eval sets) or an engine (regexes): run before the
store is touched, so a mistake is one ConfigError line naming the key, not a failed nightly."""

from __future__ import annotations

from prefmix.config import Config
from prefmix.validators import agent, content, overlap, policy, suites


def check(config: Config) -> None:
    """Raise ConfigError for the first gate setting that cannot work."""
    gate = config.gate
    policy.severities(gate)  # unknown check names
    content.check_patterns(gate)
    overlap.check_eval_sets(gate)
    suites.check(gate)
    agent.check_files(config)  # benchmark task files
