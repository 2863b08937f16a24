"""The README's commands, in order, as a new user runs them on a fresh clone.

Every shell block of README.md up to its benchmarks, then those of
examples/delegation/README.md, is read from the files themselves and run
command by command in a copy of the repository's examples: ``agent-node
serve`` in the background until the next block (a user stops it before
starting another on the same port), every other command to its end, which
must succeed. What ``init`` prints as its next steps is run too. The only
changes: installing is skipped (this venv is linked in as ``.venv``), the
examples' fixed ports are swapped for free ones, ``ID`` is the task id the
last call created, and the model is a fake Ollama on loopback.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.fake_ollama import serving, text
from support.ports import free_port, free_ports

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
#: Programs of an install or a benchmark: not part of the walk.
SKIPPED = {"python3", "pip", ".venv/bin/pip", ".venv/bin/pytest", "pytest"}
SEPARATORS = {"&&", "&", ";"}


def shell_blocks(markdown: Path, *, stop: str | None = None) -> list[str]:
    """The ```bash blocks of ``markdown``, before the heading ``stop``."""
    words = markdown.read_text(encoding="utf-8")
    if stop is not None:
        words = words.split(stop, 1)[0]
    return re.findall(r"```bash\n(.*?)```", words, re.S)


def commands(block: str) -> Iterator[list[list[str]]]:
    """Each logical line of ``block`` (quotes may span lines, comments dropped),
    as its commands (split at ``&&``, ``&`` and ``;``)."""
    pending = ""
    for line in block.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        try:
            lexer = shlex.shlex(pending, posix=True, punctuation_chars="&;")
            lexer.whitespace_split = True
            tokens = list(lexer)
        except ValueError:  # a quote still open: the line goes on
            continue
        pending = ""
        line_commands: list[list[str]] = [[]]
        for token in tokens:
            if token in SEPARATORS:
                line_commands.append([])
            else:
                line_commands[-1].append(token)
        if any(line_commands):
            yield [command for command in line_commands if command]
    assert not pending, f"unterminated line in a README block: {pending!r}"


def init_hints(printed: str) -> list[list[str]]:
    """What ``init`` says to do next, but its ``serve`` (the README's own)."""
    hints = printed.split("next:\n", 1)[1]
    every = [command for line in commands(hints) for command in line]
    return [command for command in every if command[1:2] != ["serve"]]


@dataclass
class Walk:
    """A fresh clone in ``home`` and what the walk has started and learnt."""

    home: Path
    env: dict[str, str]
    ports: dict[str, str]
    servers: list[subprocess.Popen[str]] = field(default_factory=list)
    task_id: str | None = None
    ran: list[str] = field(default_factory=list)
    hints: list[list[str]] = field(default_factory=list)

    def swap(self, words: str) -> str:
        for old, new in self.ports.items():
            words = words.replace(old, new)
        return words

    def run_block(self, block: str) -> None:
        self.stop_servers()
        for line in commands(self.swap(block)):
            for command in line:
                self.run(command)
            hints, self.hints = self.hints, []
            for command in hints:  # once the line's server runs
                self.run(command)

    def run(self, command: list[str]) -> None:
        program = command[0]
        if program in SKIPPED:
            return
        command = [self.task_id if word == "ID" and self.task_id else word for word in command]
        self.ran.append(shlex.join(command))
        if command[1:2] == ["serve"]:
            self.serve(command)
            return
        # Ports the code chooses by default: this test's instead.
        if command[1:2] == ["demo"]:
            command += ["--port", self.ports["8501"]]
        if command[1:2] == ["init"]:
            command += ["--port", self.ports["8470"]]
        done = subprocess.run(
            command, cwd=self.home, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{shlex.join(command)}:\n{done.stdout}\n{done.stderr}"
        if program == "curl":
            self.read_answer(command, done.stdout)
        if command[1:2] == ["init"]:
            self.hints += init_hints(done.stdout)

    def serve(self, command: list[str]) -> None:
        server = subprocess.Popen(
            command, cwd=self.home, env=self.env, stdout=subprocess.PIPE, text=True
        )
        self.servers.append(server)
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "listening on" in line, f"{shlex.join(command)} did not start: {line!r}"

    def read_answer(self, command: list[str], out: str) -> None:
        answer = json.loads(out)
        assert "error" not in answer, f"{shlex.join(command)}: {answer}"
        task = (answer.get("result") or {}).get("task")
        if task is not None:
            self.task_id = task["id"]
            assert task["status"]["state"] in {
                "TASK_STATE_COMPLETED",
                "TASK_STATE_INPUT_REQUIRED",
            }, task

    def stop_servers(self) -> None:
        for server in self.servers:
            server.terminate()
        for server in self.servers:
            server.communicate(timeout=20)
            assert server.returncode == 0, f"{server.args} exited {server.returncode}"
        self.servers.clear()


@pytest.fixture
def walk(tmp_path: Path) -> Iterator[Walk]:
    home = tmp_path / "agent-node"
    home.mkdir()
    (home / ".venv").symlink_to(Path(sys.executable).parent.parent)
    ports = {"8470": str(free_port()), "8501": str(free_ports(3))}
    first = free_ports(2)
    ports |= {"8480": str(first), "8481": str(first + 1)}
    for folder in ("examples", "cards"):
        shutil.copytree(ROOT / folder, home / folder)
    (home / "certs").mkdir()
    shutil.copy(ROOT / "certs" / "README.md", home / "certs" / "README.md")
    walked = Walk(home, {}, ports)
    for text_file in home.rglob("*.y*ml"):
        text_file.write_text(walked.swap(text_file.read_text()))
    closed = free_port()
    walked.env = {
        **os.environ,
        "PATH": f"{home / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "OLLAMA_API_BASE": f"http://127.0.0.1:{closed}",
    }
    yield walked
    for server in walked.servers:
        server.kill()
        server.communicate(timeout=10)


def test_the_readme_and_the_delegation_example_in_order(walk: Walk) -> None:
    readme = shell_blocks(ROOT / "README.md", stop="## Performance")
    delegation = shell_blocks(ROOT / "examples" / "delegation" / "README.md")
    with serving(default=text("Hello from a model.")) as ollama:
        for block in readme:
            # The demo finds no Ollama (and says so); the agents `init` makes use this one.
            if "init my-agent" in block:
                walk.env["OLLAMA_API_BASE"] = ollama.url
            walk.run_block(block)
        for block in delegation:
            walk.run_block(block)
        walk.stop_servers()
    assert any(" init my-agent" in ran for ran in walk.ran)
    assert any("certs issue me --dir certs" in ran for ran in walk.ran)  # init's hint
    assert any("delegation/caller.yaml" in ran for ran in walk.ran)
    assert walk.ran[-1].split()[1:3] == ["events", walk.task_id]
    assert ollama.chats(), "the new agent did not ask its model"
