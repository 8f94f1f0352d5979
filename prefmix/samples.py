"""Seeded sample prompts for the demo and tests: realistic questions across domains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from prefmix.store import write_parquet

_TOPICS: dict[str, dict[str, list[str]]] = {
    "general": {
        "ask": [
            "How do I {verb} {object} without {problem}?",
            "What is the best way to {verb} {object} when {context}?",
            "Explain in simple terms why {object} matters for {audience}.",
            "Give me three tips to {verb} {object} if {context}.",
        ],
        "verb": ["organize", "plan", "improve", "clean", "learn", "repair", "start"],
        "object": ["a weekly schedule", "a small garden", "a home office", "a reading habit", "a bicycle chain",
                   "a family budget", "a community event", "a language course"],
        "problem": ["wasting time", "spending too much", "getting overwhelmed", "losing motivation"],
        "context": ["I only have weekends", "I live in a small apartment", "I am a beginner", "I work night shifts"],
        "audience": ["students", "retirees", "new parents", "remote workers"],
    },
    "finance": {
        "ask": [
            "Should I {verb} {object} if {context}?",
            "How does {object} affect {audience} when {context}?",
            "What are the risks of {object} for {audience}?",
            "Compare {object} with a savings account for someone who {context}.",
        ],
        "verb": ["refinance", "invest in", "pay off", "diversify", "rebalance"],
        "object": ["an index fund", "a variable-rate mortgage", "a Roth IRA", "municipal bonds", "a credit card balance",
                   "an emergency fund", "dividend stocks", "a 529 plan"],
        "problem": ["inflation", "rising interest rates", "currency risk", "high fees"],
        "context": ["interest rates are rising", "I plan to retire in ten years", "my income is irregular",
                    "I have student loans", "the market just dropped 15 percent"],
        "audience": ["first-time investors", "small business owners", "retirees", "freelancers"],
    },
    "medicine": {
        "ask": [
            "What are common symptoms of {object} in {audience}?",
            "How is {object} usually treated when {context}?",
            "When should {audience} see a doctor about {object}?",
            "What lifestyle changes help with {object} if {context}?",
        ],
        "verb": ["manage", "treat", "prevent", "monitor"],
        "object": ["type 2 diabetes", "seasonal allergies", "high blood pressure", "iron deficiency anemia",
                   "migraine", "asthma", "vitamin D deficiency", "mild dehydration"],
        "problem": ["side effects", "drug interactions", "missed doses"],
        "context": ["the patient is pregnant", "symptoms last more than two weeks", "the patient also takes statins",
                    "it started after a viral infection"],
        "audience": ["children", "older adults", "athletes", "pregnant women"],
    },
    "law": {
        "ask": [
            "What should {audience} know about {object} when {context}?",
            "Can a landlord {verb} {object} if {context}?",
            "How does {object} work for {audience}?",
            "What documents are needed for {object} when {context}?",
        ],
        "verb": ["withhold", "terminate", "change", "enforce"],
        "object": ["a security deposit", "a non-compete clause", "a residential lease", "a small claims case",
                   "a power of attorney", "a trademark registration", "a prenuptial agreement", "an employment contract"],
        "problem": ["missing deadlines", "unclear terms", "conflicting state laws"],
        "context": ["the contract was signed in another state", "there is no written agreement",
                    "the tenant gave thirty days notice", "the employee works remotely"],
        "audience": ["tenants", "freelancers", "small business owners", "first-time employers"],
    },
}


def sample_prompts(n: int, seed: int = 0, domains: list[str] | None = None) -> pl.DataFrame:
    """n distinct prompts spread over the domains (columns: prompt, domain)."""
    rng = np.random.default_rng(seed)
    domains = domains or list(_TOPICS)
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    attempts = 0
    while len(rows) < n and attempts < n * 50:
        attempts += 1
        domain = domains[len(rows) % len(domains)]
        parts = _TOPICS.get(domain, _TOPICS["general"])
        template = parts["ask"][rng.integers(len(parts["ask"]))]
        fill = {key: values[rng.integers(len(values))] for key, values in parts.items() if key != "ask"}
        text = template.format(**fill)
        if text not in seen:
            seen.add(text)
            rows.append((text, domain))
    return pl.DataFrame(rows, schema={"prompt": pl.String, "domain": pl.String}, orient="row")


def write_prompts(path: str | Path, n: int, seed: int = 0, domains: list[str] | None = None) -> Path:
    frame = sample_prompts(n, seed, domains)
    table = frame.to_arrow().cast(pa.schema([("prompt", pa.string()), ("domain", pa.string())]))
    return write_parquet(table, path)
