"""Walking a README's shell blocks as a new user does, command by command.

The blocks are read from the files themselves and run in a copy of the
repository's examples and cards: ``agent-node serve`` in the background
until the next block (a user stops it before starting another on the same
port), every other command to its end, which must succeed; a ``for NAME in
…; do …; done`` line runs its body once per word, and ``> FILE`` writes
what a command prints to FILE. What a command prints as
its next steps (``init``, the approval example: a ``next:`` line, then one
command a line) is run too, but a ``serve`` (the README's own). The only
changes: installing is skipped (this venv is linked in as ``.venv`` and is
on ``PATH``, as if activated), the examples' fixed ports are swapped for
free ones, ``ID`` is the task id the last call created, and the model is
whatever the test puts in ``env``.
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
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.ports import free_port, free_ports

__all__ = ["ROOT", "Walk", "commands", "shell_blocks", "walking"]

ROOT = Path(__file__).resolve().parents[2]
#: Programs of an install, a venv's activation or a benchmark: not part of the
#: walk; nor a sleep for servers to start, which the walk waits for itself.
SKIPPED = {"python3", "pip", ".venv/bin/pip", ".venv/bin/pytest", "pytest", ".", "sleep"}
#: Scripts of another project's checkout (the A2A TCK's): not in this repository.
ELSEWHERE = {"run_tck.py"}
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


def next_steps(printed: str) -> list[list[str]]:
    """The commands printed after ``next:``, but a ``serve`` (the README's own)."""
    if "next:\n" not in printed:
        return []
    hints = printed.split("next:\n", 1)[1]
    every = [command for line in commands(hints) for command in line]
    return [command for command in every if command[1:2] != ["serve"]]


def unrolled(line: list[list[str]]) -> list[list[str]]:
    """``for NAME in A B; do CMD $NAME; done`` as ``CMD A``, ``CMD B``; other lines as they are."""
    if line[0][0] != "for":
        return line
    (_, name, _in, *words), (_do, *body), _done = line
    assert (_in, _do, _done) == ("in", "do", ["done"]), line
    return [[word if arg == f"${name}" else arg for arg in body] for word in words]


@dataclass
class Walk:
    """A fresh copy of the examples in ``home`` and what the walk has started and learnt."""

    home: Path
    env: dict[str, str]
    ports: dict[str, str]
    servers: list[subprocess.Popen[str]] = field(default_factory=list)
    task_id: str | None = None
    ran: list[str] = field(default_factory=list)
    hints: list[list[str]] = field(default_factory=list)
    printed: dict[str, str] = field(default_factory=dict)
    #: What a task a call returns may be in; the last one is kept in ``task``.
    states: frozenset[str] = frozenset({"TASK_STATE_COMPLETED", "TASK_STATE_INPUT_REQUIRED"})
    task: dict[str, Any] | None = None

    def swap(self, words: str) -> str:
        """The examples' fixed ports replaced by this walk's, in one pass."""
        known = "|".join(map(re.escape, self.ports))
        return re.sub(rf"\b({known})\b", lambda match: self.ports[match.group(1)], words)

    def run_block(self, block: str) -> None:
        self.stop_servers()
        for line in commands(self.swap(block)):
            for command in unrolled(line):
                self.run(command)
            hints, self.hints = self.hints, []
            for command in hints:  # once the line's server runs
                self.run(command)

    def run(self, command: list[str]) -> None:
        program = command[0]
        if program in SKIPPED or ELSEWHERE & set(command):
            return
        if self.task_id:  # ID as a word, or as a JSON string ("taskId":"ID")
            command = [
                self.task_id if word == "ID" else word.replace('"ID"', f'"{self.task_id}"')
                for word in command
            ]
        self.ran.append(shlex.join(command))
        if command[1:2] == ["serve"]:
            self.serve(command)
            return
        # Ports the code chooses by default: this test's instead.
        if command[1:2] == ["demo"]:
            command += ["--port", self.ports["8501"]]
        if command[1:2] == ["init"]:
            command += ["--port", self.ports["8470"]]
        into = None
        if ">" in command:  # `… > FILE`: what it prints goes to FILE
            at = command.index(">")
            command, into = command[:at], self.home / command[at + 1]
        done = subprocess.run(
            command, cwd=self.home, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{shlex.join(command)}:\n{done.stdout}\n{done.stderr}"
        self.printed[shlex.join(command)] = done.stdout
        if into is not None:
            into.write_text(done.stdout)
        if program == "curl":
            self.read_answer(command, done.stdout)
        self.hints += next_steps(done.stdout)

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
            self.task_id, self.task = task["id"], task
            assert task["status"]["state"] in self.states, task

    def stop_servers(self) -> None:
        for server in self.servers:
            server.terminate()
        for server in self.servers:
            server.communicate(timeout=20)
            assert server.returncode == 0, f"{server.args!r} exited {server.returncode}"
        self.servers.clear()


@contextmanager
def walking(tmp_path: Path) -> Iterator[Walk]:
    """A walk in a fresh copy of the examples under ``tmp_path``; its servers
    are killed on the way out, whatever happened."""
    home = tmp_path / "agent-node"
    home.mkdir()
    (home / ".venv").symlink_to(Path(sys.executable).parent.parent)
    network = free_ports(3)  # the demo's, and examples/network's, three agents
    first = free_ports(2)
    grpc = free_ports(2)  # the conformance agent's gRPC ports, plain and over mTLS
    ports = {
        "8470": str(free_port()),
        "8471": str(free_port()),
        "8501": str(network),
        "8502": str(network + 1),
        "8503": str(network + 2),
        "8483": str(first),
        "8481": str(first + 1),
        "8472": str(grpc),
        "8482": str(grpc + 1),
    }
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
    try:
        yield walked
    finally:
        for server in walked.servers:
            server.kill()
            server.communicate(timeout=10)
