"""How pydantic's validation errors read to users: the field path and what is
wrong, never pydantic's URLs; a misspelt field is an unknown field, with the
close match."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent_node.cli.main import cli
from agent_node.errors import StateValidationError
from agent_node.problems import MAX_PROBLEMS, describe_validation, field_path, problems


class Retry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(default=3, ge=1)


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    retry: Retry | None = None
    after: list[Retry] = []
    by_key: dict[str, Retry] = {}


class Pair(BaseModel):
    low: int
    high: int

    @model_validator(mode="after")
    def _ordered(self) -> Pair:
        if self.low > self.high:
            raise ValueError("low must not exceed high")
        return self


def error_of(model: type[BaseModel], data: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return caught.value


@pytest.mark.parametrize(
    ("loc", "path"),
    [((), ""), (("name",), "name"), (("cases", 0, "when"), "cases[0].when"), ((0, "a"), "[0].a")],
)
def test_field_paths_read_as_written(loc: tuple[int | str, ...], path: str) -> None:
    assert field_path(loc) == path


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"name": "a", "retires": 3}, "retires: unknown field 'retires' (did you mean 'retry'?)"),
        (
            {"name": "a", "retry": {"max_atempts": 2}},
            "retry.max_atempts: unknown field 'max_atempts' (did you mean 'max_attempts'?)",
        ),
        (
            {"name": "a", "after": [{}, {"max_attempt": 2}]},
            "after[1].max_attempt: unknown field 'max_attempt' (did you mean 'max_attempts'?)",
        ),
        (
            {"name": "a", "by_key": {"k": {"max_attempt": 2}}},
            "by_key.k.max_attempt: unknown field 'max_attempt' (did you mean 'max_attempts'?)",
        ),
        ({"name": "a", "colour": "red"}, "colour: unknown field 'colour'"),
        ({"name": "a", "retry": {"max_attempts": 0}}, "retry.max_attempts: Input should be"),
    ],
)
def test_each_problem_names_its_field_and_the_close_match(data: object, expected: str) -> None:
    exc = error_of(Step, data)
    said = describe_validation(exc, Step)
    assert said.startswith(expected), said
    assert "errors.pydantic.dev" not in said and "Extra inputs" not in said


def test_without_the_model_a_required_field_the_value_lacks_is_the_close_match() -> None:
    exc = error_of(Step, {"nam": "a"})
    assert (
        describe_validation(exc)
        == "name: Field required; nam: unknown field 'nam' (did you mean 'name'?)"
    )


def test_a_validator_says_its_own_words() -> None:
    found = problems(error_of(Pair, {"low": 2, "high": 1}))
    assert [(p.loc, p.field, p.message) for p in found] == [((), "", "low must not exceed high")]
    assert str(found[0]) == "low must not exceed high"


def test_many_problems_are_counted_after_the_first_ten() -> None:
    count = MAX_PROBLEMS + 3
    exc = error_of(Step, {"name": "a", **{f"typo{i}": 1 for i in range(count)}})
    said = describe_validation(exc, Step)
    assert said.count("unknown field") == MAX_PROBLEMS and said.endswith("; and 3 more")


def test_the_engine_says_what_does_not_fit_a_state_without_pydantic_s_text() -> None:
    """An input, a step's result, a stored state and a signal's payload that
    do not fit the state: the field and what is wrong, no URL, no input."""
    from agent_node import Workflow
    from agent_node.engine.plans import InvalidSignal, validated_patch
    from agent_node.engine.state import validated_input

    wf = Workflow("pay")

    @wf.state
    class Bill(BaseModel):
        model_config = ConfigDict(extra="forbid")
        amount: int = 0

    @wf.step
    async def noop(state: Bill) -> None:
        return None

    compiled = wf.compile()
    with pytest.raises(StateValidationError) as caught:
        validated_input(compiled, {"amount": "lots", "amont": 3})
    said = str(caught.value)
    assert said == (
        "the input does not fit pay@1's state: amount: Input should be a valid integer,"
        " unable to parse string as an integer; amont: unknown field 'amont'"
        " (did you mean 'amount'?)"
    ), said
    with pytest.raises(InvalidSignal) as signaled:
        validated_patch(compiled, '{"amount": 1}', {"amount": "x"})
    assert "errors.pydantic.dev" not in str(signaled.value)
    assert str(signaled.value).endswith(
        "amount: Input should be a valid integer, unable to parse string as an integer"
    )


def test_serve_with_no_configuration_here_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: agent-node.yaml: cannot read it: No such file")
    assert "pass --config FILE" in result.stderr
    assert "agent-node init NAME" in result.stderr


EXPENSE = """
from pydantic import BaseModel

from agent_node import Workflow

wf = Workflow("expense", version="1")


@wf.state
class Expense(BaseModel):
    amount: float = 0


@wf.step(next=None)
async def submit(e: Expense) -> None:
    return None
"""


def test_run_of_a_python_file_alone_names_its_workflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "expense.py").write_text(EXPENSE)
    result = CliRunner().invoke(cli, ["run", "expense.py", "--store", "memory://"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: 'expense.py' is a file: give the workflow in it too, as in expense.py:wf\n"
    )


def test_a_budget_mistake_names_its_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "expense.py").write_text(EXPENSE)
    args = ["run", "expense.py:wf", "--budget", "tokens=x", "--store", "memory://"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --budget 'tokens=x': tokens: Input should be a valid integer,"
        " unable to parse string as an integer\n"
    )
