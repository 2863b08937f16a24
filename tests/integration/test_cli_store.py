"""A wrong ``--store`` is a clear error: commands that only read never create
a store, and an execution that is not found is reported with its store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agent_node.cli.main import cli

GREET_YAML = """
workflow:
  id: greet
  version: "1"
  state_schema: {name: string, greeting: string}
  start: greet
nodes:
  greet: {type: python, function: "steps:greet", next: done}
  done: {type: end}
"""

STEPS = """
async def greet(state):
    return {"greeting": "Hello, " + state.name}
"""

#: Every command that only reads or changes what a store already holds.
READERS = [
    ("executions",),
    ("inspect", "e1"),
    ("events", "e1"),
    ("signal", "e1", "approved"),
    ("cancel", "e1"),
    ("resume",),
]


def invoke(*args: str) -> Result:
    # A wide page: a table's ids and names are not cut, whatever runs the test.
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


def one_error_line(result: Result, code: int = 2) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with a workflow that has run once, in ``.agent-node/greeter.db``."""
    (tmp_path / "steps.py").write_text(STEPS)
    (tmp_path / "greet.yaml").write_text(GREET_YAML)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    store = "sqlite:///.agent-node/greeter.db"
    ran = invoke("run", "greet.yaml", "--input", '{"name": "Ada"}', "--execution-id", "e1",
                 "--store", store)  # fmt: skip
    assert ran.exit_code == 0, ran.stderr
    return tmp_path


@pytest.mark.parametrize("command", READERS, ids=[c[0] for c in READERS])
def test_a_typo_in_the_store_is_an_error_that_suggests_the_right_one(
    project: Path, command: tuple[str, ...]
) -> None:
    typo = project / ".agent-node" / "greter.db"
    error = one_error_line(invoke(*command, "--store", "sqlite:///.agent-node/greter.db"))
    assert f"no store at {typo}" in error
    assert "did you mean sqlite:///.agent-node/greeter.db?" in error
    assert not typo.exists()
    assert sorted(p.name for p in typo.parent.iterdir() if p.suffix == ".db") == ["greeter.db"]


@pytest.mark.parametrize("command", READERS, ids=[c[0] for c in READERS])
def test_a_store_under_a_missing_directory_is_not_created(
    project: Path, command: tuple[str, ...]
) -> None:
    error = one_error_line(invoke(*command, "--store", "sqlite:///nowhere/agent-node.db"))
    assert f"no store at {project / 'nowhere' / 'agent-node.db'}: its directory does not exist" in (
        error
    )
    assert not (project / "nowhere").exists()


def test_the_default_store_is_not_created_by_a_reader(project: Path) -> None:
    error = one_error_line(invoke("executions"))
    default = project / ".agent-node" / "agent-node.db"
    assert f"no store at {default}" in error
    assert not default.exists()


def test_an_unknown_execution_names_the_store_it_was_looked_for_in(project: Path) -> None:
    store = "sqlite:///.agent-node/greeter.db"
    for command in (("inspect", "nope"), ("events", "nope"), ("signal", "nope", "x"),
                    ("cancel", "nope")):  # fmt: skip
        error = one_error_line(invoke(*command, "--store", store))
        assert f"no execution with id 'nope' in {store}" in error


def test_a_command_that_creates_a_store_says_where(project: Path) -> None:
    store = "sqlite:///data/new.db"
    first = invoke("run", "greet.yaml", "--input", '{"name": "B"}', "--store", store)
    assert first.exit_code == 0, first.stderr
    assert f"created a new store at {project / 'data' / 'new.db'}" in first.stderr
    again = invoke("run", "greet.yaml", "--input", '{"name": "C"}', "--store", store)
    assert again.exit_code == 0, again.stderr
    assert "created a new store" not in again.stderr
    listed = invoke("executions", "--store", store)
    assert listed.exit_code == 0, listed.stderr
    assert listed.stdout.count("greet@1") == 2


def test_a_postgres_database_without_a_store_is_not_given_one(pg_url: str) -> None:
    error = one_error_line(invoke("executions", "--store", pg_url))
    assert f"no store in {pg_url}: it has no agent-node tables" in error
    assert asyncio.run(_tables(pg_url)) == []


async def _tables(url: str) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return [r["tablename"] for r in rows]
    finally:
        await conn.close()
