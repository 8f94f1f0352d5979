"""The one plain-text rendering of conversational rows, and the text normalization steps are compared under.

A preference row from a trajectory carries messages (context, chosen_messages,
rejected_messages); its `prompt`, `chosen` and `rejected` columns hold
`render()` of those lists, so record ids, dedup and text checks all see the
same text. A message renders as `<role>` on its own line, then its content,
then one `<call NAME>ARGUMENTS` line per tool call; messages are joined by a
newline, so render(a + b) == render(a) + "\n" + render(b) for non-empty a, b.
Call ids are not rendered: they are transport, not content (two runs that
made the same call under different ids render the same).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from prefmix.records import POLARS_SCHEMA

MESSAGES_DTYPE: pl.DataType = POLARS_SCHEMA["context"]  # List(MESSAGE), as the preference schema holds it
MESSAGE_DTYPE: pl.DataType = MESSAGES_DTYPE.inner  # type: ignore[attr-defined]
SEPARATOR = "\n"
# A step's source as a chat role.
ROLES = {"system": "system", "user": "user", "agent": "assistant"}


def normalized_series(text: pl.Series) -> pl.Series:
    """NFC, trimmed, whitespace collapsed: the vectorised twin of prefmix.records.normalize_text (which also
    counts the ASCII separators \\x1c-\\x1f as whitespace). The costly passes run only on the rows that need
    them: NFC on non-ASCII text, the collapse on text with a whitespace run or a tab/newline (a cheap test)."""
    text = text.fill_null("")
    odd = text.str.contains(r"[^\x00-\x7F]")
    if odd.any():
        where = odd.arg_true()
        text = text.scatter(where, text.gather(where).str.normalize("NFC"))
    text = text.str.strip_chars()
    runs = text.str.contains(r"\s\s|[^\S ]")
    if runs.any():
        where = runs.arg_true()
        text = text.scatter(where, text.gather(where).str.replace_all(r"\s+", " "))
    return text


def calls_text(calls: pl.Expr) -> pl.Expr:
    """The `<call NAME>ARGUMENTS` lines of a list of tool calls ("" when there are none)."""
    call = pl.element()
    line = pl.concat_str([pl.lit("\n<call "), call.struct.field("name").fill_null(""), pl.lit(">"), call.struct.field("arguments").fill_null("")])
    return calls.list.eval(line).list.join("").fill_null("")


def message_text(message: pl.Expr) -> pl.Expr:
    role = message.struct.field("role").fill_null("")
    content = message.struct.field("content").fill_null("")
    return pl.concat_str([pl.lit("<"), role, pl.lit(">\n"), content, calls_text(message.struct.field("tool_calls"))])


def render(messages: pl.Expr) -> pl.Expr:
    """Plain text of a List(MESSAGE) expression."""
    return messages.list.eval(message_text(pl.element())).list.join(SEPARATOR).fill_null("")


def render_messages(messages: list[dict[str, Any]]) -> str:
    """render() for one message list given as Python dicts (the same expression, on a one-row frame)."""
    frame = pl.DataFrame({"m": [messages]}, schema={"m": MESSAGES_DTYPE})
    return str(frame.select(render(pl.col("m"))).item())
