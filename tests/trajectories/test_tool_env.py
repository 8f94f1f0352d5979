"""The demo tool environment (no server): the calculator refuses what is not arithmetic, lookups, the
answer check, seeded tasks and the tool schemas."""

from __future__ import annotations

import json

import pytest

from prefmix.trajectories import tool_env
from prefmix.trajectories.tool_env import CalculatorError, Task, calculate, make_tasks, run_tool


@pytest.mark.parametrize(
    ("expression", "value"),
    [("17 * 23", 391), ("68170000 / 1000000", 68.17), ("round(68170000 / 1000000)", 68), ("-(2 + 3) ** 2", -25),
     ("7 // 2 + 7 % 2", 4), ("abs(-4) + max(1, 9, 3) - min(2, 5)", 11), ("2^10", 1024), ("6 × 7", 42), ("round(2.675, 2)", 2.67)],
)
def test_calculator_evaluates_arithmetic(expression: str, value: float) -> None:
    assert calculate(expression) == pytest.approx(value)


@pytest.mark.parametrize(
    "expression",
    ["__import__('os').system('true')", "open('/etc/passwd')", "x + 1", "(1).__class__", "[1, 2]", "'a' * 3", "True + 1",
     "1 if 1 else 2", "lambda: 1", "round(1, ndigits=2)", "pow(2, 3)", "9 ** 9 ** 9", "10 ** 30", "1 / 0", "1e308 * 10",
     "1 +", "", "2 " * 150, "round(1.5, 1.5)", "abs(1, 2)"],
)
def test_calculator_refuses_what_is_not_bounded_arithmetic(expression: str) -> None:
    with pytest.raises(CalculatorError):
        calculate(expression)
    assert run_tool("calculator", {"expression": expression}).startswith("error: ")


def test_tools_answer_and_report_errors_as_observations() -> None:
    assert run_tool("lookup", {"table": "countries", "key": "france", "column": "population"}) == "68170000"
    assert run_tool("lookup", {"table": "elements", "key": " Iron ", "column": "symbol"}) == "Fe"
    assert run_tool("calculator", {"expression": "68170000 / 1000000"}) == "68.17"
    assert run_tool("calculator", {"expression": "3880.0"}) == "3880"
    assert run_tool("lookup", {"table": "countries", "key": "Iron", "column": "capital"}) == "error: no row 'Iron' in countries"
    assert run_tool("lookup", {"table": "planets", "key": "Mars", "column": "moons"}).startswith("error: no table 'planets'")
    assert run_tool("lookup", {"table": "elements", "key": "Gold", "column": "capital"}).startswith("error: no column 'capital'")
    assert run_tool("search", {"q": "x"}) == "error: no tool 'search'"


def test_check_normalizes_numbers_and_text() -> None:
    number = Task("t", "g", "arithmetic", "What is 97 * 40?", "3880", "number")
    assert number.check("3880") and number.check("The answer is 3,880.") and number.check("97*40 = 3880.0")
    assert not number.check("3881") and not number.check("3880 or 12") and not number.check("") and not number.check(None)
    capital = next(t for t in make_tasks(8) if t.kind == "capital")
    assert capital.check(capital.answer.upper()) and capital.check(f"The capital is {capital.answer}.")
    assert not capital.check(f"{capital.answer} or {capital.rivals[0]}")  # naming a rival value is not an answer
    assert not capital.check(capital.answer[:-1])  # whole words only
    brasilia = Task("t", "g", "capital", "?", "Brasilia", "text")
    assert brasilia.check("Brasília")  # accents are not part of the comparison


def test_tasks_are_seeded_distinct_and_answerable_with_the_tools() -> None:
    assert make_tasks(12, seed=3) == make_tasks(12, seed=3)
    assert make_tasks(12, seed=3) != make_tasks(12, seed=4)
    assert make_tasks(12, seed=3)[:5] == make_tasks(5, seed=3)  # growing the list keeps the first tasks
    tasks = make_tasks(24, seed=0)
    assert len({t.task_id for t in tasks}) == 24
    assert {t.kind for t in tasks[:6]} == set(tool_env.KINDS)
    for task in tasks:
        assert task.check(task.answer), task  # the key passes its own check
        if task.kind == "population_millions":
            country = task.question.split(" of ")[1].split(" divided")[0]
            population = run_tool("lookup", {"table": "countries", "key": country, "column": "population"})
            assert run_tool("calculator", {"expression": f"round({population} / 1000000)"}) == task.answer
        if task.kind == "atomic_sum":
            e1, e2 = task.question.removesuffix("?").split(" of ")[-1].split(" and ")
            numbers = [run_tool("lookup", {"table": "elements", "key": e, "column": "atomic_number"}) for e in (e1, e2)]
            assert run_tool("calculator", {"expression": " + ".join(numbers)}) == task.answer
    # the same question has the same id under any seed (runs of one task pair across rollout files)
    by_question = {t.question: t.task_id for t in make_tasks(24, seed=0)}
    assert all(by_question.get(t.question, t.task_id) == t.task_id for t in make_tasks(24, seed=1))


def test_tool_schemas_are_openai_functions() -> None:
    schemas = json.loads(json.dumps(tool_env.TOOL_SCHEMAS))
    assert [s["function"]["name"] for s in schemas] == ["calculator", "lookup"]
    assert all(s["type"] == "function" and s["function"]["parameters"]["type"] == "object" for s in schemas)
    assert schemas[1]["function"]["parameters"]["properties"]["table"]["enum"] == ["countries", "elements"]


def test_reward_is_one_when_resolved_else_half_the_share_of_facts_found() -> None:
    capital = Task("t1", "countries:France", "capital", "What is the capital of France?", "Paris", "text",
                   rivals=("Berlin",), evidence=("Paris",))
    assert capital.reward("Paris", []) == 1.0  # resolved, whatever the tools returned
    assert capital.reward("Berlin", ["Paris"]) == 0.5  # found the fact, answered wrongly
    assert capital.reward(None, ["Paris"]) == 0.5  # found it, never answered
    assert capital.reward("Berlin", ["Berlin", "error: no row 'Pariss' in countries"]) == 0.0
    [atomic_sum] = [t for t in make_tasks(12, seed=3) if t.kind == "atomic_sum"][:1]
    first, second = atomic_sum.evidence
    assert atomic_sum.reward("0", [first]) == 0.25 and atomic_sum.reward("0", [first, second]) == 0.5
    numbers = {t.kind: t for t in make_tasks(12, seed=3)}
    population = numbers["population_millions"]
    (count,) = population.evidence  # the lookup's result, as run_tool prints it
    key = population.task_group.split(":", 1)[1]
    assert run_tool("lookup", {"table": "countries", "key": key, "column": "population"}) == count
