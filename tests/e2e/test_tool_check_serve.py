"""``agent-node serve`` checks its workflows' tool calls against its MCP
servers as it starts (the real test server, ``tests/support/mcp_server.py``):
a server its ``mcp:`` does not configure refuses the start, exit 2, in one
line (``resume``/``worker --config`` too); an unknown tool or arguments the
tool's schema refuses are warnings, and a server that does not answer
holds nothing up."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from e2e.procs import CLI, Spawn, child_env, run_cli, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

MCP_SERVER = Path(__file__).resolve().parents[1] / "support" / "mcp_server.py"
SILENT = "import time; time.sleep(120)"  # starts, never answers initialize


def node_config(tmp_path: Path, nodes: str, *, silent: bool = False) -> Path:
    (tmp_path / "lookup.yaml").write_text(
        'workflow: {id: lookup, version: "1", start: first, state_schema: {a: integer}}\n'
        f"nodes:\n{nodes}"
    )
    servers = f"  - {{name: local, command: [{sys.executable}, '{MCP_SERVER}']}}\n"
    if silent:
        servers += f'  - {{name: silent, command: [{sys.executable}, "-c", "{SILENT}"]}}\n'
    path = tmp_path / "agent-node.yaml"
    path.write_text(
        "name: toolnode\nlisten: {host: 127.0.0.1, port: 0}\n"
        f"store: sqlite:///{tmp_path}/node.db\n"
        "skills:\n  - {id: lookup, workflow: lookup.yaml, default: true}\n"
        f"mcp:\n{servers}"
    )
    return path


UNKNOWN_SERVER = """\
  first: {type: tool, server: local, tool: add, arguments: {a: 1, b: 2}, next: search}
  search: {type: tool, server: web, tool: search, next: done}
  done: {type: end}
"""


def test_a_server_the_node_does_not_configure_refuses_the_start(tmp_path: Path) -> None:
    conf = node_config(tmp_path, UNKNOWN_SERVER)
    said = (
        f"error: skill 'lookup': workflow lookup@1 ({tmp_path / 'lookup.yaml'}), node 'search':"
        " MCP server 'web' is not configured on this node (its mcp: names local)"
    )
    for command in (["serve", "--insecure-dev"], ["resume"], ["worker"]):
        started = time.monotonic()
        ran = run_cli(tmp_path, *command, "--config", str(conf))
        assert ran.returncode == 2, (command, ran.stdout, ran.stderr)
        assert ran.stderr.strip() == said, (command, ran.stderr)
        assert "listening" not in ran.stdout
        assert time.monotonic() - started < 30


MISFITS = """\
  first: {type: tool, server: local, tool: add, arguments: {a: "{{ state.a }}", b: 2},
          next: typo}
  typo: {type: tool, server: local, tool: ad, arguments: {a: 1, b: 2}, next: wrong}
  wrong: {type: tool, server: local, tool: add, arguments: {a: 1, b: three}, next: quiet}
  quiet: {type: tool, server: silent, tool: add, next: done}
  done: {type: end}
"""


async def test_unknown_tools_and_refused_arguments_are_warnings_and_the_node_serves(
    spawn: Spawn, tmp_path: Path
) -> None:
    conf = node_config(tmp_path, MISFITS, silent=True)
    node = spawn(
        "node",
        [*CLI, "serve", "--insecure-dev", "--config", str(conf)],
        child_env(tmp_path / "effects.db", 0.0),
    )
    await wait_until(lambda: "listening on" in node.out(), "the node", timeout=30, alive=[node])
    silent = "MCP server 'silent' did not list its tools at start (no answer within 10 s)"
    # Ready before the silent server's check gave up on it: nothing waited for it.
    assert silent not in node.err(), node.describe()
    where = f"workflow lookup@1 ({tmp_path / 'lookup.yaml'})"
    typo = f"{where}, node 'typo': MCP server 'local' lists no tool 'ad'"
    wrong = (
        f"{where}, node 'wrong': its arguments do not fit the input schema of local/add:"
        " 'three' is not of type 'integer' (at b)"
    )
    await wait_until(lambda: wrong in node.err(), "the warnings", timeout=30, alive=[node])
    assert typo in node.err()
    await wait_until(lambda: silent in node.err(), "the silent server", timeout=30, alive=[node])
    assert "node 'first'" not in node.err()  # its templated argument is not checked
    assert "node 'quiet'" not in node.err()  # its server did not answer: said once
    assert node.proc.poll() is None
