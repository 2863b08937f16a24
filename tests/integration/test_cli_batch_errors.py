"""``agent-node batch``: a line that does not fit the state is reported in
the JSONL results by its fields, as users read them — no pydantic URLs."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from agent_node.cli.main import cli

WORKFLOW = """
workflow:
  id: greet
  version: "1"
  state_schema:
    type: object
    properties: {name: {type: string}, greeting: {type: string}}
    required: [name]
  start: done
nodes:
  done: {type: end}
"""


def test_lines_that_do_not_fit_the_state_name_the_field_and_the_close_match(
    tmp_path: Path,
) -> None:
    (tmp_path / "greet.yaml").write_text(WORKFLOW)
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text('{"name": "Ada"}\n{"name": 3}\n{"nam": "Ada"}\n')
    args = ["batch", str(tmp_path / "greet.yaml"), str(inputs), "--store", "memory://"]

    result = CliRunner().invoke(cli, args, catch_exceptions=False)

    assert result.exit_code == 1
    errors = {row["line"]: row["error"] for row in map(json.loads, result.stdout.splitlines())}
    assert errors == {
        1: None,
        2: "the input does not fit greet@1's state: name: Input should be a valid string",
        3: "the input does not fit greet@1's state: name: Field required;"
        " nam: unknown field 'nam' (did you mean 'name'?)",
    }
