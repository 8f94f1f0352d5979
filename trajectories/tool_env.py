"""The demo's tool environment: a safe calculator, a lookup over small tables (tool_tables.json), seeded tasks.

Everything here is deterministic and offline, so a task's `resolved` comes from a real check of the
agent's answer against values the environment itself holds (the tables are demo data with rounded
figures, not an encyclopedia: the answer key is the table, whatever the world says).

    tasks = make_tasks(8, seed=0)            # the same list for the same (n, seed), on any machine
    run_tool("lookup", {"table": "countries", "key": "France", "column": "population"})  -> "68170000"
    run_tool("calculator", {"expression": "68170000 / 1000000"})                          -> "68.17"
    tasks[0].check("The capital is Paris.")  -> True / False

Task kinds, from one tool call to four steps, so that a weak (135M) model resolves the easy ones
and fails some of the rest: capital, symbol, atomic_number (one lookup), arithmetic (one
calculation), population_millions (a lookup, then a calculation), atomic_sum (two lookups, a sum).
"""

from __future__ import annotations

import ast
import json
import math
import operator
import random
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from prefmix.hashing import short_hash

NAME = "prefmix-demo-tools"
VERSION = "2"  # bump when tables (tool_tables.json), tasks, the check or the reward change: runs of different versions never pair

# table -> row name -> column -> value: demo data with rounded figures, kept as data next to this module
TABLES: dict[str, dict[str, dict[str, str | int]]] = json.loads(Path(__file__).with_name("tool_tables.json").read_text(encoding="utf-8"))
COLUMNS: dict[str, tuple[str, ...]] = {name: tuple(next(iter(rows.values()))) for name, rows in TABLES.items()}
KEYS: tuple[str, ...] = tuple(key for rows in TABLES.values() for key in rows)
ALL_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys(c for cols in COLUMNS.values() for c in cols))
SNAPSHOT = short_hash([VERSION, TABLES], 12)  # env.base_commit_or_snapshot: what the answers were checked against

TOOL_SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "Evaluate an arithmetic expression: numbers, + - * / // % **, parentheses, round(), abs(), min(), max().",
            "parameters": {
                "type": "object",
                "properties": {"expression": {"type": "string", "description": "e.g. 68170000 / 1000000"}},
                "required": ["expression"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Read one cell of a table: countries (capital, population) or elements (symbol, atomic_number).",
            "parameters": {
                "type": "object",
                "properties": {
                    "table": {"type": "string", "enum": list(TABLES)},
                    "key": {"type": "string", "description": "a row name, e.g. France or Iron"},
                    "column": {"type": "string", "enum": list(ALL_COLUMNS)},
                },
                "required": ["table", "key", "column"],
                "additionalProperties": False,
            },
        },
    },
]


# -- calculator ------------------------------------------------------------------------------------


class CalculatorError(ValueError):
    """An expression the calculator refuses (not arithmetic, too long, too large, division by zero)."""


MAX_EXPRESSION_CHARS = 200
MAX_MAGNITUDE = 1e18  # results beyond this are refused: keeps ** from building huge integers
MAX_EXPONENT = 64
_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int]] = {"round": (round, 1, 2), "abs": (abs, 1, 1), "min": (min, 2, 8), "max": (max, 2, 8)}
# What people (and small models) type for operators Python spells differently.
_SPELLINGS = {"×": "*", "÷": "/", "^": "**", "−": "-"}


def calculate(expression: str) -> int | float:
    """Value of an arithmetic expression, evaluated over its syntax tree (never eval): numbers, + - * / // %
    ** (exponent at most 64), unary +/-, parentheses and round/abs/min/max. Anything else raises CalculatorError."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    text = expression
    for spelled, python in _SPELLINGS.items():
        text = text.replace(spelled, python)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise CalculatorError(f"not an arithmetic expression: {expression!r}") from None
    return _checked(_eval(tree.body))


def _checked(value: int | float) -> int | float:
    if (isinstance(value, float) and not math.isfinite(value)) or abs(value) > MAX_MAGNITUDE:
        raise CalculatorError("number too large")
    return value


def _eval(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):  # bool and complex are not numbers here
        return _checked(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise CalculatorError(f"exponent larger than {MAX_EXPONENT}")
        try:
            return _checked(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError:
            raise CalculatorError("division by zero") from None
        except OverflowError:
            raise CalculatorError("number too large") from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS and not node.keywords:
        fn, least, most = _FUNCTIONS[node.func.id]
        if not least <= len(node.args) <= most:
            raise CalculatorError(f"{node.func.id}() takes {least}..{most} arguments")
        args = [_eval(a) for a in node.args]
        if fn is round and len(args) == 2 and (not isinstance(args[1], int) or abs(args[1]) > 12):
            raise CalculatorError("round() digits must be a whole number up to 12")
        return _checked(fn(*args))
    raise CalculatorError(f"not allowed in arithmetic: {type(node).__name__}")


def format_number(value: int | float) -> str:
    """A result as the agent sees it: whole numbers without a decimal point, others to 10 significant digits."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value) if isinstance(value, int) else f"{value:.10g}"


# -- lookup and dispatch ---------------------------------------------------------------------------


class ToolError(ValueError):
    """A call the environment cannot answer; its message is the observation the agent sees."""


def lookup(table: str, key: str, column: str) -> str:
    """One cell of a demo table (TABLES); names match case-insensitively (surrounding spaces ignored)."""
    rows = TABLES.get(str(table).strip().lower())
    if rows is None:
        raise ToolError(f"no table {table!r}; tables: {', '.join(TABLES)}")
    by_name = {name.lower(): name for name in rows}
    name = by_name.get(str(key).strip().lower())
    if name is None:
        raise ToolError(f"no row {key!r} in {table}")
    value = rows[name].get(str(column).strip().lower())
    if value is None:
        raise ToolError(f"no column {column!r} in {table}; columns: {', '.join(COLUMNS[table.strip().lower()])}")
    return str(value)


def run_tool(name: str, arguments: dict[str, Any]) -> str:
    """The observation text of one call: the result, or `error: ...` (a bad call is the agent's mistake to
    see and recover from, not an exception for the harness)."""
    try:
        if name == "calculator":
            return format_number(calculate(str(arguments.get("expression", ""))))
        if name == "lookup":
            return lookup(str(arguments.get("table", "")), str(arguments.get("key", "")), str(arguments.get("column", "")))
        raise ToolError(f"no tool {name!r}")
    except (CalculatorError, ToolError) as exc:
        return f"error: {exc}"


# -- tasks and the check ---------------------------------------------------------------------------

AnswerKind = Literal["number", "text"]
KINDS = ("capital", "arithmetic", "atomic_number", "population_millions", "symbol", "atomic_sum")
_NUMBER = re.compile(r"-?\d+(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?")


def _words(text: str) -> str:
    """Casefolded, accents and punctuation gone, single spaces: what text answers are compared under."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text).split())


def last_number(text: str) -> float | None:
    """The last number written in `text` (thousands separators allowed), None when there is none."""
    found = _NUMBER.findall(text)
    return float(found[-1].replace(",", "")) if found else None


@dataclass(frozen=True)
class Task:
    task_id: str
    task_group: str  # tasks about the same table row share a group, hence a split (their answers overlap)
    kind: str
    question: str
    answer: str
    answer_kind: AnswerKind
    rivals: tuple[str, ...] = ()  # text tasks: the other values of the answer's column; naming one fails
    evidence: tuple[str, ...] = ()  # the tool results (as run_tool prints them) that hold the facts the answer needs

    def check(self, answer_text: str | None) -> bool:
        """Numbers: the last number in the answer equals the expected one (relative 1e-6). Text: the expected
        value appears as whole words and no rival value does (so "Paris or Berlin" is not a right answer)."""
        if not answer_text:
            return False
        if self.answer_kind == "number":
            got, want = last_number(answer_text), float(self.answer)
            return got is not None and abs(got - want) <= 1e-6 * max(1.0, abs(want))
        said = f" {_words(answer_text)} "
        return f" {_words(self.answer)} " in said and not any(f" {_words(r)} " in said for r in self.rivals)

    def reward(self, answer_text: str | None, tool_results: Sequence[str]) -> float:
        """1 when resolved; else half the share of the needed facts that the run's tools returned, so a run that
        found the facts and answered wrongly ranks above one that never looked (and below any resolved run)."""
        if self.check(answer_text):
            return 1.0
        if not self.evidence:
            return 0.0
        found = sum(any(r.strip() == e for r in tool_results) for e in self.evidence)
        return round(0.5 * found / len(self.evidence), 6)


def _task(kind: str, question: str, answer: int | float | str, group: str, params: list[Any],
          evidence: Sequence[int | float | str] = ()) -> Task:
    number = not isinstance(answer, str)
    text = format_number(answer) if not isinstance(answer, str) else answer
    rivals: tuple[str, ...] = ()
    if not number:
        table, column = {"capital": ("countries", "capital"), "symbol": ("elements", "symbol")}[kind]
        rivals = tuple(str(row[column]) for row in TABLES[table].values() if str(row[column]) != text)
    return Task(
        task_id=f"tools-{short_hash([VERSION, kind, params], 10)}", task_group=group, kind=kind, question=question,
        answer=text, answer_kind="number" if number else "text", rivals=rivals,
        evidence=tuple(format_number(e) if not isinstance(e, str) else e for e in (evidence or [answer])),
    )


def _draw(kind: str, rng: random.Random) -> Task:
    countries, elements = TABLES["countries"], TABLES["elements"]
    if kind == "capital":
        c = rng.choice(sorted(countries))
        return _task(kind, f"What is the capital of {c}?", str(countries[c]["capital"]), f"countries:{c}", [c])
    if kind == "symbol":
        e = rng.choice(sorted(elements))
        return _task(kind, f"What is the chemical symbol of {e}?", str(elements[e]["symbol"]), f"elements:{e}", [e])
    if kind == "atomic_number":
        e = rng.choice(sorted(elements))
        return _task(kind, f"What is the atomic number of {e}?", int(elements[e]["atomic_number"]), f"elements:{e}", [e])
    if kind == "arithmetic":
        a, b, op = rng.randint(12, 99), rng.randint(3, 49), rng.choice("+-*")
        value = {"+": a + b, "-": a - b, "*": a * b}[op]
        return _task(kind, f"What is {a} {op} {b}?", value, f"arithmetic:{a}{op}{b}", [a, op, b])
    if kind == "population_millions":
        c = rng.choice(sorted(countries))
        value = round(int(countries[c]["population"]) / 1_000_000)
        question = f"What is the population of {c} divided by 1000000, rounded to the nearest whole number?"
        return _task(kind, question, value, f"countries:{c}", [c], [int(countries[c]["population"])])
    if kind == "atomic_sum":
        e1, e2 = rng.sample(sorted(elements), 2)
        value = int(elements[e1]["atomic_number"]) + int(elements[e2]["atomic_number"])
        return _task(kind, f"What is the sum of the atomic numbers of {e1} and {e2}?", value, f"elements:{min(e1, e2)}",
                     sorted([e1, e2]), [int(elements[e1]["atomic_number"]), int(elements[e2]["atomic_number"])])
    raise ValueError(f"unknown task kind {kind!r}")


def make_tasks(n: int, seed: int = 0) -> list[Task]:
    """n distinct tasks, kinds in turn (KINDS order, so every kind appears once n >= 6), parameters drawn from a
    seeded generator: the same (n, seed) always gives the same tasks."""
    rng = random.Random(f"{NAME}:{VERSION}:{seed}")
    tasks: list[Task] = []
    seen: set[str] = set()
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        for _ in range(100):  # redraw a repeat; small tables run out only when n is far beyond the demo's size
            task = _draw(kind, rng)
            if task.task_id not in seen:
                break
        else:
            raise ValueError(f"cannot draw {n} distinct tasks from the demo tables (kind {kind} ran out)")
        seen.add(task.task_id)
        tasks.append(task)
    return tasks
