"""A judge's expected score from the token probabilities vLLM returns (G-Eval style).

Pure Python, no vLLM import: the input is the `choices[0].logprobs.content` list
of an OpenAI-compatible chat completion requested with `logprobs: true,
top_logprobs: K` (K = 20, vLLM's default cap), each entry
`{"token", "logprob", "top_logprobs": [{"token", "logprob"}, ...]}`.

What vLLM 0.32 returns (measured on the CPU build with SmolLM2-135M and the
guidance backend; see /work/notes/small-teacher.md): with JSON-schema structured
output the grammar bitmask is applied to the logits *before* the log-softmax, so
the returned logprobs are already renormalised over the tokens the grammar
allows; forced tokens (`{"`, `score`, `":`) come back with logprob 0.0, and
disallowed tokens fill the top list with the sentinel -9999.0 (p = 0).  They
are the model's raw distribution (before temperature, top-p and penalties), so
the expected score does not depend on the judge's sampling temperature.

The score digit: the text of the tokens is concatenated, the value of the
`"score"` key is located in it, and the entry whose token covers the value's
first character is the score position.  Each alternative there whose text,
after any part that precedes the value in that token (e.g. `":` or a space),
starts with digits is a candidate score.

Multi-digit scores (10 on a 1-10 scale): tokenizers that split digits (Llama 2,
SmolLM2, Mistral) emit "10" as "1" then "0".  An alternative that ends inside a
number (its digits run to the end of the token) could still grow into a larger
score.  If it is the token actually generated, the next entry's alternatives
split its mass: those that start with a digit continue the number (e.g. "0" ->
10), those that do not end it (-> 1); the split is normalised over the
continuations seen.  If it is not the generated token its continuation was
never computed, so its mass counts as the number it spells (1, not 10): the
expected score is then low when the model puts mass on 10 without choosing
"1" (`score_details` reports that share as `unresolved`).  Measured with
SmolLM2 on a 1-10 scale: "1" holds 60-90% of the first-digit mass and "0"
after it 7-38%, so a judge that samples "8" scores about 1 point lower than
the same judge had it sampled "1".  Hence: ask a greedy judge (temperature 0;
the logprobs are the same at any temperature), whose sampled digit is the
most likely one, or use a scale whose scores are single tokens (1-9, 1-5),
which makes the figure exact for any tokenizer.  Tokenizers that keep numbers
whole ("10" as one token: Llama 3, GPT-4o) need no special case.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

# The logprob vLLM reports for a token the grammar forbids (float -inf, clamped for JSON).
FORBIDDEN_LOGPROB = -9999.0

_KEY_VALUE = r'"{key}"\s*:\s*'
_DIGITS = re.compile(r"\d+")


def _is_mapping(value: Any) -> bool:
    # Parsed JSON is plain dicts: test for dict first, since an isinstance check against the Mapping ABC costs
    # several times more and runs once per token of every judge reply.
    return type(value) is dict or isinstance(value, Mapping)


def _entries(logprobs_content: Any) -> list[Mapping[str, Any]]:
    if _is_mapping(logprobs_content):  # a whole `choice["logprobs"]` object
        logprobs_content = logprobs_content.get("content")
    if type(logprobs_content) is not list and (
        not isinstance(logprobs_content, Sequence) or isinstance(logprobs_content, (str, bytes))
    ):
        return []
    return [e for e in logprobs_content if _is_mapping(e) and isinstance(e.get("token"), str)]


def _prob(logprob: Any) -> float:
    if not isinstance(logprob, (int, float)) or math.isnan(logprob) or logprob <= FORBIDDEN_LOGPROB:
        return 0.0
    return math.exp(min(float(logprob), 0.0))


def _alternatives(entry: Mapping[str, Any]) -> dict[str, float]:
    """token text -> probability at one position: the top list plus the sampled token itself."""
    out: dict[str, float] = {}
    for alt in entry.get("top_logprobs") or []:
        if _is_mapping(alt) and isinstance(alt.get("token"), str):
            out.setdefault(alt["token"], _prob(alt.get("logprob")))
    out.setdefault(entry["token"], _prob(entry.get("logprob")))
    return out


def score_position(logprobs_content: Any, key: str = "score") -> tuple[int, str] | None:
    """(index of the entry where the value of `key` starts, the part of that token before the value)."""
    return _position(_entries(logprobs_content), key)


def _position(entries: list[Mapping[str, Any]], key: str) -> tuple[int, str] | None:
    text = "".join([e["token"] for e in entries])
    match = re.search(_KEY_VALUE.format(key=re.escape(key)), text)
    if match is None:
        return None
    value_at = match.end()
    start = 0
    for i, e in enumerate(entries):
        end = start + len(e["token"])
        if start <= value_at < end:
            return i, text[start:value_at]
        start = end
    return None


def score_window(logprobs_content: Any, key: str = "score") -> list[dict[str, Any]]:
    """The part of a judge's logprobs that the expected score reads, in the same layout: every entry's token and
    logprob (the key is found in the tokens' text), alternatives only at the score position and the one after it.

    score_details(score_window(x), ...) equals score_details(x, ...) for every range.  A reply's logprobs carry
    up to 20 alternatives (each with its UTF-8 bytes) at every token of the rationale: thousands of Python
    objects per reply that nothing reads.  Keeping only this window makes a reply small to hold and to cache.
    """
    entries = _entries(logprobs_content)
    found = _position(entries, key)
    kept = range(found[0], found[0] + 2) if found is not None else range(0)
    out: list[dict[str, Any]] = []
    for i, e in enumerate(entries):
        entry = {"token": e["token"], "logprob": e.get("logprob")}
        if i in kept:
            entry["top_logprobs"] = [
                {"token": a["token"], "logprob": a.get("logprob")}
                for a in e.get("top_logprobs") or [] if _is_mapping(a) and isinstance(a.get("token"), str)
            ]
        out.append(entry)
    return out


def score_distribution(logprobs_content: Any, lo: int, hi: int, key: str = "score") -> dict[int, float]:
    """Unnormalised probability of each integer score in [lo, hi] that the logprobs show."""
    return _distribution(logprobs_content, lo, hi, key)[0]


def _distribution(logprobs_content: Any, lo: int, hi: int, key: str) -> tuple[dict[int, float], float]:
    """(score -> probability, mass of open-ended alternatives whose continuation was not observed)."""
    entries = _entries(logprobs_content)
    found = _position(entries, key)
    if found is None:
        return {}, 0.0
    i, before = found
    dist: dict[int, float] = {}
    unresolved = 0.0
    nxt = _alternatives(entries[i + 1]) if i + 1 < len(entries) else {}
    for token, p in _alternatives(entries[i]).items():
        if p <= 0.0 or not token.startswith(before):
            continue
        rest = token[len(before):]
        m = _DIGITS.match(rest)
        if m is None:
            continue
        digits = m.group()
        open_ended = m.end() == len(rest)  # the number may continue in the next token
        if open_ended and token == entries[i]["token"] and nxt:
            for value, share in _continuations(digits, nxt, lo, hi).items():
                dist[value] = dist.get(value, 0.0) + p * share
            continue
        value = int(digits)
        if lo <= value <= hi:
            dist[value] = dist.get(value, 0.0) + p
            if open_ended and int(digits + "0") <= hi:
                unresolved += p  # could have been a longer score; counted as `value`
    return dist, unresolved


def _continuations(digits: str, nxt: Mapping[str, float], lo: int, hi: int) -> dict[int, float]:
    """How the generated number `digits` ends, from the next position's alternatives (shares sum to 1)."""
    weights: dict[int, float] = {}
    for token, p in nxt.items():
        if p <= 0.0:
            continue
        m = _DIGITS.match(token)
        value = int(digits + m.group()) if m else int(digits)
        if lo <= value <= hi:
            weights[value] = weights.get(value, 0.0) + p
    total = sum(weights.values())
    if total <= 0.0:
        value = int(digits)
        return {value: 1.0} if lo <= value <= hi else {}
    return {v: w / total for v, w in weights.items()}


def expected_score(logprobs_content: Any, lo: int, hi: int, key: str = "score") -> float | None:
    """sum(p(k) * k) / sum(p(k)) over the scores k in [lo, hi] present at the score position.

    None when there are no logprobs, the key is not in the output, or no score
    token in range has any probability.
    """
    details = score_details(logprobs_content, lo, hi, key)
    return None if details is None else details["expected"]


def score_details(logprobs_content: Any, lo: int, hi: int, key: str = "score") -> dict[str, Any] | None:
    """expected score, the probability mass it rests on, and how much of it is unresolved.

    - `mass`: total probability of in-range score tokens at the score position (1.0 under a
      JSON-schema grammar, which renormalises; less without one, or when the top list is short);
    - `unresolved`: mass of alternatives that could have grown into a longer score (a "1" that
      might have been "10") but whose continuation was not computed because another token was
      sampled; it is counted as the shorter score.  0.0 whenever the judge sampled the most
      likely leading digit, which a greedy judge (temperature 0) always does.
    - `distribution`: score -> normalised probability.
    None when there is no score position or no probability on a score in [lo, hi].
    """
    dist, unresolved = _distribution(logprobs_content, lo, hi, key)
    total = sum(dist.values())
    if total <= 0.0:
        return None
    return {
        "expected": sum(k * p for k, p in dist.items()) / total,
        "mass": total,
        "unresolved": unresolved / total,
        "distribution": {k: p / total for k, p in sorted(dist.items())},
    }
