"""What the command line says of itself: every option explained, help text
without markup, the README's word on ``--store`` true, and hints that name
the command as the user typed it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
from click.testing import CliRunner

from agent_node.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "agent-node"


def commands() -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(cli)

    def walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
        yield path, command
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                yield from walk(sub, f"{path} {name}".strip())

    yield from walk(cli, "")


def test_every_option_says_what_it_does() -> None:
    unexplained = [
        f"{path} {option.opts[0]}"
        for path, command in commands()
        for option in command.params
        if isinstance(option, click.Option) and not option.hidden and not option.help
    ]
    assert unexplained == []


def test_help_shows_no_markup() -> None:
    for path, _ in commands():
        shown = CliRunner().invoke(cli, [*path.split(), "--help"])
        assert shown.exit_code == 0, shown.output
        assert "``" not in shown.output, f"agent-node {path} --help:\n{shown.output}"


def test_the_readme_says_which_commands_take_a_store() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    said = re.search(r"commands that run or read executions(.*?)take `--store URL`", readme, re.S)
    assert said is not None
    named = set(re.findall(r"`([a-z]+)`", said.group(1)))
    taking = {
        path
        for path, command in commands()
        if path and any("--store" in p.opts for p in command.params)
    }
    assert taking == named | {"serve", "doctor"}  # which the README names apart
    none = re.search(
        r"`demo`, `init`, `certs`, `keys`, `tokens`, `peers` and `tools`\s+keep no executions",
        readme,
    )
    keeping_none = {"demo", "init", "certs", "keys", "tokens", "peers", "tools"}
    assert none is not None and not taking & keeping_none


def hint(tmp_path: Path, path: str) -> str:
    done = subprocess.run(
        [str(SCRIPT), "certs", "init", "--dir", str(tmp_path / "certs")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": path},
        check=True,
    )
    [line] = [line for line in done.stdout.splitlines() if line.startswith("next:")]
    return line


def test_hints_name_the_command_as_it_was_typed(tmp_path: Path) -> None:
    # Not on PATH (the quickstart's .venv/bin/agent-node): the path typed.
    issue = f"certs issue NAME --dir {tmp_path}/certs"
    assert hint(tmp_path, "/usr/bin:/bin") == f"next: {SCRIPT} {issue}"
    # On PATH: its name.
    on_path = f"{SCRIPT.parent}{os.pathsep}/usr/bin:/bin"
    assert hint(tmp_path, on_path) == f"next: agent-node {issue}"


def test_the_readme_summary_of_demo_names_all_its_options() -> None:
    # The demo's own messages send users to its flags (--port when 8501 is
    # taken, --offline without a model): the summary shows them all.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    summary = readme.split("## Command line", 1)[1].split("```", 2)[1]
    said = re.search(r"^agent-node demo (.*?)#", summary, re.S | re.M)
    assert said is not None
    demo = dict(commands())["demo"]
    flags = [
        flag
        for param in demo.params
        if isinstance(param, click.Option) and not param.hidden
        for flag in param.opts + param.secondary_opts
        if flag.startswith("--") and flag != "--help"
    ]
    assert len(flags) >= 12, flags
    assert [flag for flag in flags if flag not in re.findall(r"--[a-z-]+", said.group(1))] == []


def test_the_readme_installs_extras_as_its_quickstart_installs() -> None:
    # From the clone, into its .venv: `agent-node[x]` would fetch another copy.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "agent-node[" not in readme
    installs = re.findall(r"([\w./]*)pip install -e '?\.(\[\w+\])?", readme)
    assert {extra for _, extra in installs} >= {"", "[test]", "[grpc]", "[otel]"}
    assert {venv for venv, _ in installs} == {".venv/bin/"}
