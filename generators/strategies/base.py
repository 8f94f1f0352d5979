"""What every strategy shares: the per-run context, request helper, record and rejection builders."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable, Sequence

from prefmix.config import Config, Generation
from prefmix.records import record_id

from prefmix.generators.client import ChatClient, ChatResult, RequestFailed, Tokens
from prefmix.generators.constitution import Constitution
from prefmix.generators.durable import RequestCache
from prefmix.generators.expected_score import expected_score, score_window
from prefmix.hashing import sha256_json
from prefmix.generators.pairing import SCORE_RANGE, NoPair, Pick, distinct, parse_score, seeded_rng
from prefmix.generators.templates import Messages, TemplateSet

# Alternatives per position in a judge's logprobs: enough for every score token of a 1-10 scale (vLLM caps at 20).
TOP_LOGPROBS = 20

SCORE_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "enum": list(range(1, 11))},
        "rationale": {"type": "string", "maxLength": 40},
    },
    "required": ["score", "rationale"],
    "additionalProperties": False,
}
WINNER_SCHEMA = {
    "type": "object",
    "properties": {
        "winner": {"type": "string", "enum": ["A", "B", "tie"]},
        "rationale": {"type": "string", "maxLength": 40},
    },
    "required": ["winner", "rationale"],
    "additionalProperties": False,
}


@dataclass
class Tally(Tokens):
    """Requests and tokens spent on one prompt (a cached answer counts the tokens it cost when it was sent)."""

    requests_sent: int = 0
    requests_cached: int = 0
    judge_parse_errors: int = 0

    def add(self, result: ChatResult, cached: bool) -> None:
        if cached:
            self.requests_cached += 1
        else:
            self.requests_sent += 1
        self.count(result)


@dataclass
class Outcome:
    record: dict[str, Any] | None
    rejection: dict[str, Any] | None
    tally: Tally
    by_expected: bool = False  # a pair whose integer judge scores tied and whose expected scores decided


@dataclass(frozen=True)
class Candidates:
    """Distinct answers to one prompt, who wrote each and why each stopped ("stop", "length", ...)."""

    texts: list[str]
    teachers: list[str]
    finishes: list[str | None]

    def can_choose(self, keep_truncated: bool) -> list[bool]:
        """Which may become chosen: all with truncated: keep, else those not cut at max_tokens."""
        return [keep_truncated or f != "length" for f in self.finishes]

    def take(self, order: Sequence[int]) -> "Candidates":
        return Candidates([self.texts[i] for i in order], [self.teachers[i] for i in order],
                          [self.finishes[i] for i in order])


@dataclass(frozen=True)
class Reading:
    """A pointwise judge's reading of one response: the integer score and the expected score (None if absent)."""

    score: float | None
    expected: float | None = None


def vote(judge: str, order: str, winner: str | None, chosen_score: float | None = None,
         rejected_score: float | None = None) -> dict[str, Any]:
    """One entry of generation.judge_votes (prefmix.records.JUDGE_VOTE): `order` "ab" = chosen shown first;
    `winner` chosen | rejected | tie after the order is undone, None when unparseable."""
    return {"judge": judge, "order": order, "chosen_score": chosen_score, "rejected_score": rejected_score,
            "winner": winner}


@dataclass
class Context:
    """Everything a strategy needs for one run; built by generators.run."""

    config: Config
    run_id: str
    templates: TemplateSet
    constitution: Constitution | None
    clients: dict[str, ChatClient]
    cache: RequestCache | None
    vllm_version: str
    on_request: Callable[[], None] = lambda: None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def gen(self) -> Generation:
        return self.config.generation

    @property
    def judge_temperature(self) -> float:
        t = self.gen.judge_temperature
        return self.gen.sampling.temperature if t is None else t

    @property
    def keep_truncated(self) -> bool:
        return self.gen.truncated == "keep"

    @property
    def expected_margin(self) -> float | None:
        """The gap of expected scores that breaks an integer tie; None when ties are not broken."""
        return self.gen.expected_margin if self.gen.tie_break == "expected" else None

    @property
    def judges(self) -> list[str]:
        """Every judge, the primary (whose verdict decides) first."""
        return [t.name for t in self.config.judge_teachers()]

    def sampling_json(self) -> str:
        s = self.gen.sampling
        return json.dumps(
            {
                "temperature": s.temperature,
                "top_p": s.top_p,
                "max_tokens": s.max_tokens,
                "seed": s.seed,
                "n": self.gen.samples_per_prompt,
                "judge_temperature": self.judge_temperature,
                "judge_max_tokens": self.gen.judge_max_tokens,
            },
            sort_keys=True,
        )

    def answer_payload(self, messages: Messages, salt: str) -> dict[str, Any]:
        s = self.gen.sampling
        payload: dict[str, Any] = {
            "messages": messages, "temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens,
        }
        if s.seed is not None:  # a distinct, reproducible seed per request
            payload["seed"] = int(sha256_json([s.seed, salt])[:8], 16) & 0x7FFFFFFF
        return payload

    def judge_payload(self, messages: Messages, schema: dict[str, Any], name: str, logprobs: bool = False) -> dict[str, Any]:
        """A JSON-schema judge request; with `logprobs` the reply carries the score-token probabilities (vLLM
        renormalises them over the tokens the grammar allows, before temperature: see expected_score.py); `ask`
        keeps only their score window."""
        payload: dict[str, Any] = {
            "messages": messages,
            "temperature": self.judge_temperature,
            "max_tokens": self.gen.judge_max_tokens,
            "response_format": {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}},
        }
        if logprobs:
            payload |= {"logprobs": True, "top_logprobs": TOP_LOGPROBS}
        return payload

    async def ask(self, teacher: str, payload: dict[str, Any], salt: str, tally: Tally) -> ChatResult:
        """One request through the cache; failures raise RequestFailed."""
        client = self.clients[teacher]
        key = RequestCache.key(client.teacher.model, payload, salt) if self.cache is not None else ""
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            tally.add(hit, cached=True)
            return hit
        result = await client.chat(payload)
        if result.logprobs is not None:
            # Logprobs are asked for the expected score alone (judge_payload): keep the window it reads, so neither
            # this result nor its cache row holds the thousands of objects of a whole reply's alternatives.
            result = replace(result, logprobs=score_window(result.logprobs))
        if self.cache is not None:
            self.cache.put(key, result)
        tally.add(result, cached=False)
        self.on_request()
        return result

    async def ask_many(
        self, calls: Sequence[tuple[str, dict[str, Any], str]], tally: Tally
    ) -> list[ChatResult | RequestFailed]:
        """Concurrent requests; a failed one never takes its neighbours down."""

        async def one(teacher: str, payload: dict[str, Any], salt: str) -> ChatResult | RequestFailed:
            try:
                return await self.ask(teacher, payload, salt, tally)
            except RequestFailed as exc:
                return exc

        return list(await asyncio.gather(*(one(*c) for c in calls)))

    def model_of(self, teacher: str) -> str:
        return self.clients[teacher].teacher.model


def prompt_salt(row: dict[str, Any]) -> str:
    return f"{row['origin_sha256']}:{row['origin_row']}"


def rng_for(ctx: Context, row: dict[str, Any], purpose: str) -> random.Random:
    """Seeded by the run seed and the prompt's origin, so a resume makes the same picks."""
    return seeded_rng(ctx.config.seed, row["origin_sha256"], row["origin_row"], purpose)


def reject(ctx: Context, row: dict[str, Any], reason: str, detail: str, tally: Tally) -> Outcome:
    rejection = {
        "run_id": ctx.run_id, "prompt": row["prompt"], "domain": row["domain"],
        "origin_uri": row["origin_uri"], "origin_sha256": row["origin_sha256"], "origin_row": row["origin_row"],
        "strategy": ctx.gen.strategy, "reason": reason, "detail": detail[:500],
    }
    return Outcome(None, rejection, tally)


def over_length(ctx: Context, row: dict[str, Any]) -> Outcome | None:
    if len(row["prompt"]) > ctx.gen.max_prompt_chars:
        return reject(ctx, row, "over_length", f"prompt has {len(row['prompt'])} chars > generation.max_prompt_chars={ctx.gen.max_prompt_chars}", Tally())
    return None


def record(
    ctx: Context,
    row: dict[str, Any],
    pick: Pick,
    cands: Candidates,
    tally: Tally,
    *,
    judge: str | None,
    principle_id: str | None = None,
    expected: tuple[float | None, float | None] = (None, None),
    votes: list[dict[str, Any]] | None = None,
) -> Outcome:
    texts, teachers = cands.texts, cands.teachers
    chosen, rejected = texts[pick.chosen], texts[pick.rejected]
    generation = {
        "teacher": teachers[pick.chosen],
        "teacher_models": [ctx.model_of(teachers[pick.chosen]), ctx.model_of(teachers[pick.rejected])],
        "judge": judge,
        "strategy": ctx.gen.strategy,
        "sampling": ctx.sampling_json(),
        "template_id": ctx.templates.ref,
        "template_sha256": ctx.templates.sha256,
        "constitution_id": ctx.constitution.ref if ctx.constitution else None,
        "constitution_sha256": ctx.constitution.sha256 if ctx.constitution else None,
        "principle_id": principle_id,
        "run_id": ctx.run_id,
        "vllm_version": ctx.vllm_version,
        "prompt_tokens": tally.prompt_tokens,
        "completion_tokens": tally.completion_tokens,
        "finish_reasons": [cands.finishes[pick.chosen], cands.finishes[pick.rejected]],
        "chosen_expected": expected[0],
        "rejected_expected": expected[1],
        "judge_votes": votes,
        "fingerprint": ctx.extra.get("fingerprint"),
    }
    rec = {
        "record_id": record_id(row["prompt"], chosen, rejected),
        "prompt": row["prompt"], "chosen": chosen, "rejected": rejected, "domain": row["domain"],
        "source": "synthetic", "chosen_score": pick.chosen_score, "rejected_score": pick.rejected_score,
        "origin_uri": row["origin_uri"], "origin_sha256": row["origin_sha256"], "origin_row": row["origin_row"],
        "generation": generation,
    }
    return Outcome(rec, None, tally, by_expected=pick.by_expected)


def settle(ctx: Context, row: dict[str, Any], result: Pick | NoPair, cands: Candidates, tally: Tally, *,
           judge: str | None, principle_id: str | None = None, expected: tuple[float | None, float | None] = (None, None),
           votes: list[dict[str, Any]] | None = None) -> Outcome:
    if isinstance(result, NoPair):
        return reject(ctx, row, result.reason, result.detail, tally)
    return record(ctx, row, result, cands, tally, judge=judge, principle_id=principle_id, expected=expected, votes=votes)


def truncation(ctx: Context, row: dict[str, Any], pick: Pick | NoPair, cands: Candidates) -> Pick | NoPair:
    """The truncation rule on a decided pick: a chosen cut at max_tokens is no pair unless truncated: keep."""
    if isinstance(pick, Pick) and not cands.can_choose(ctx.keep_truncated)[pick.chosen]:
        return NoPair("truncated", f"the judge's choice stopped at max_tokens={ctx.gen.sampling.max_tokens}")
    return pick


def none_choosable(ctx: Context, row: dict[str, Any], cands: Candidates, tally: Tally) -> Outcome | None:
    """Before any judge call: when every candidate was cut at max_tokens none can be chosen (reason truncated)."""
    if any(cands.can_choose(ctx.keep_truncated)):
        return None
    return reject(ctx, row, "truncated", f"all {len(cands.texts)} answers stopped at max_tokens={ctx.gen.sampling.max_tokens}"
                  " (generation.truncated: reject)", tally)


def failure_reason(failures: Sequence[RequestFailed]) -> tuple[str, str]:
    """One rejection reason for a set of failed requests (over_length wins: retrying will not help)."""
    over = [f for f in failures if f.reason == "over_length"]
    first = (over or list(failures))[0]
    return first.reason, first.detail


async def candidates(ctx: Context, row: dict[str, Any], tally: Tally) -> Candidates | Outcome:
    """Answers from every generation teacher (samples_per_prompt each), distinct and non-empty, in a stable order.

    Returns the candidates when at least two distinct answers came back, else a rejection.
    """
    messages = ctx.templates.messages("answer", prompt=row["prompt"])
    calls = []
    for teacher in ctx.extra["teachers"]:
        for i in range(ctx.gen.samples_per_prompt):
            salt = f"{prompt_salt(row)}:answer:{teacher}:{i}"
            calls.append((teacher, ctx.answer_payload(messages, salt), salt))
    results = await ctx.ask_many(calls, tally)
    ok = [(c[0], r) for c, r in zip(calls, results) if isinstance(r, ChatResult)]
    failed = [r for r in results if isinstance(r, RequestFailed)]
    keep = distinct([r.content for _, r in ok])
    if len(keep) >= 2:
        return Candidates([ok[i][1].content for i in keep], [ok[i][0] for i in keep], [ok[i][1].finish_reason for i in keep])
    if len(ok) < 2 and failed:
        reason, detail = failure_reason(failed)
        return reject(ctx, row, reason, f"{len(failed)} of {len(calls)} answer requests failed: {detail}", tally)
    empties = sum(1 for _, r in ok if not r.content.strip())
    if empties:
        return reject(ctx, row, "empty_response", f"{empties} of {len(calls)} answers were empty", tally)
    return reject(ctx, row, "tie", f"all {len(ok)} answers have the same text", tally)


async def judgeable(ctx: Context, row: dict[str, Any], tally: Tally,
                    narrow: Callable[[Candidates], Candidates] | None = None) -> Candidates | Outcome:
    """What a judge gets to read: the teachers' candidates (narrowed by `narrow`), or the rejection that comes
    before any judge call (prompt over length, fewer than two distinct answers, every answer cut at max_tokens)."""
    if (too_long := over_length(ctx, row)) is not None:
        return too_long
    got = await candidates(ctx, row, tally)
    if isinstance(got, Outcome):
        return got
    if narrow is not None:
        got = narrow(got)
    cut = none_choosable(ctx, row, got, tally)
    return got if cut is None else cut


def reading(result: ChatResult | RequestFailed, tally: Tally) -> Reading:
    """A pointwise judge reply as (score, expected score); a parse error is counted on the tally."""
    if isinstance(result, RequestFailed):
        return Reading(None)
    score = parse_score(result.content)
    if score is None:
        tally.judge_parse_errors += 1
        return Reading(None)
    expected = expected_score(result.logprobs, *SCORE_RANGE) if result.logprobs else None
    return Reading(score, expected)


def verdicts(results: Sequence[ChatResult | RequestFailed], parse: Callable[[str], Any], tally: Tally) -> list[Any]:
    """Parsed judge outputs (None when unparseable); counts parse errors on the tally."""
    out = []
    for r in results:
        if isinstance(r, RequestFailed):
            out.append(None)
            continue
        value = parse(r.content)
        if value is None:
            tally.judge_parse_errors += 1
        out.append(value)
    return out


StrategyFn = Callable[[Context, dict[str, Any]], Awaitable[Outcome]]
