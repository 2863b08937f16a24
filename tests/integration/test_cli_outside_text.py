"""What the command line prints of text from outside — a client's message,
a failed step's error, the traceback that names it — shows its control
characters escaped and its rich markup literally (found by a hostile walk:
a client's text to the greeter's ``book`` skill put OSC 52, a clipboard
write, and OSC 0, the window title, into the operator's terminal through
``agent-node inspect``; a U+202E shows the rest of a line reversed,
"Trojan Source"). A real ``agent-node serve``, a real SQLite store,
the CLI as subprocesses whose stdout bytes are read."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support.nodes import serving

pytestmark = pytest.mark.slow

CLI = (sys.executable, "-m", "agent_node.cli.main")
#: OSC 52 (write the clipboard), OSC 0 (the window title), a C1 CSI, rich markup.
HOSTILE = "\x1b]52;c;aGk=\x07\x1b]0;owned\x07\x9b[red]x[/red]"
#: Bytes no output may hold: ESC, BEL, CR, C1 CSI and RIGHT-TO-LEFT OVERRIDE in UTF-8.
RAW = (b"\x1b", b"\x07", b"\r", b"\xc2\x9b", b"\xe2\x80\xae")

FLOW = """
from pydantic import BaseModel

from agent_node import Workflow

wf = Workflow("fails", version="1")


@wf.state
class State(BaseModel):
    text: str = ""


@wf.step
async def explode(state: State) -> dict:
    raise ValueError(state.text)
"""


def agent_node(cwd: Path, store: str, *args: str) -> bytes:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    command = [*CLI, *args, "--store", store]
    done = subprocess.run(command, cwd=cwd, capture_output=True, timeout=60, env=env)
    for byte in RAW:
        assert byte not in done.stdout + done.stderr, (args, done.stdout, done.stderr)
    return done.stdout


def test_inspect_and_executions_show_a_clients_text_escaped(tmp_path: Path) -> None:
    message = {
        "messageId": "m1",
        "role": "ROLE_USER",
        "parts": [{"text": f"Rome{HOSTILE}\rFAKE\u202etxt.exe"}],
        "metadata": {"skill": "book"},
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    with serving(tmp_path) as url:
        answer = httpx.post(f"{url}/a2a", json=body, headers={"A2A-Version": "1.0"}, timeout=30)
    task = answer.json()["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    store = f"sqlite:///{tmp_path}/greeter.db"

    shown = agent_node(tmp_path, store, "inspect", task["id"]).decode()
    asks = "asks: When do you want to go to Rome\\x1b]52;c;aGk=\\x07\\x1b]0;owned\\x07\\x9b[red]x"
    assert asks in shown, shown
    assert (
        "Rome\\u001b]52;c;aGk=\\u0007\\u001b]0;owned\\u0007\\u009b[red]x[/red]\\rFAKE\\u202etxt.exe"
        in shown
    )
    listed = agent_node(tmp_path, store, "executions").decode()
    assert task["id"] in listed, listed


def test_run_executions_and_inspect_show_a_failed_steps_error_escaped(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    store = f"sqlite:///{tmp_path}/s.db"
    given = json.dumps({"text": f"{HOSTILE}\nsecond\u202eline"})
    ran = agent_node(tmp_path, store, "run", "flow.py:wf", "--input", given).decode()
    error = "\\x1b]52;c;aGk=\\x07\\x1b]0;owned\\x07\\x9b[red]x[/red]"
    assert f"error: node 'explode' failed: ValueError: {error}\\nsecond\\u202eline" in ran, ran
    match = re.search(r"execution (\S+) failed", ran)
    assert match is not None, ran

    listed = agent_node(tmp_path, store, "executions").decode()
    assert "\\x1b]52;c;aGk=\\x07\\x1b]" in listed, listed  # cut short after the type
    shown = agent_node(tmp_path, store, "inspect", match.group(1)).decode()
    # The traceback keeps its lines; only the line feed is kept raw.
    assert f"ValueError: {error}\nsecond\\u202eline\n" in shown, shown
