"""The severity policy: which failed checks block publication and which only warn."""

from __future__ import annotations

from typing import Sequence

from prefmix.config import Gate
from prefmix.contract import GateCheck, Verdict
from prefmix.errors import ConfigError

# Blocking by default: anything that makes rows wrong or untrainable, breaks a
# promise the config makes (ratios, domains) or leaks eval/PII. Warning by
# default: quality signals a person should look at but that do not corrupt data.
DEFAULT_SEVERITY: dict[str, str] = {
    "row_count": "critical",
    "schema": "critical",
    "non_empty_text": "critical",
    "chosen_differs": "critical",
    "unique_record_id": "critical",
    "text_length": "warning",
    "score_range": "critical",
    "synthetic_margin": "warning",
    "source_share": "critical",
    "domain_source_share": "warning",
    "domains_present": "critical",
    "split_disjoint": "critical",
    "human_agreement": "warning",
    "judge_human": "warning",
    "pii_share": "critical",
    # Content: text that is not text (control characters, U+FFFD) and eval prompts in training data corrupt a
    # model; an answer cut at max_tokens taught as "better" breaks the promise of generation.truncated.
    "text_integrity": "critical",
    "truncated_share": "critical",
    "repetition": "warning",
    "echo": "warning",
    "refusal_share": "warning",
    "length_bias": "warning",
    "near_duplicates": "warning",
    "contamination": "critical",
    # Agent rows (validators/agent.py): an unlinked tool result or tool output in a completion trains the model on
    # text it never wrote; a task in both splits or a benchmark task leaks eval data; a prompt that is not a prefix
    # under the chat template shifts the completion's tokens.
    "tool_linking": "critical",
    "task_group_split": "critical",
    "chat_template_prefix": "critical",
    "benchmark_overlap": "critical",
}
CHECKS = tuple(DEFAULT_SEVERITY)


def severities(gate: Gate) -> dict[str, str]:
    """The default policy with config.gate.severity applied; unknown check names are a config error."""
    unknown = sorted(set(gate.severity) - set(CHECKS))
    if unknown:
        raise ConfigError(f"gate.severity.{unknown[0]}: unknown check, expected one of {', '.join(CHECKS)}")
    return DEFAULT_SEVERITY | dict(gate.severity)


def decide(checks: Sequence[GateCheck]) -> tuple[Verdict, list[str], list[str]]:
    """The blocking rule, the only place it is written: a failed critical check fails the batch (it is
    quarantined), a failed warning check marks it 'warn' (published, flagged); returns (verdict, critical, warning)."""
    failed_critical = [c.name for c in checks if not c.success and c.severity == "critical"]
    failed_warning = [c.name for c in checks if not c.success and c.severity == "warning"]
    verdict: Verdict = "fail" if failed_critical else "warn" if failed_warning else "pass"
    return verdict, failed_critical, failed_warning
