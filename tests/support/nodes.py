"""A real ``agent-node serve`` process running the shipped greeter example.

The interop tests talk to it as third-party clients would: its skills are
``greet`` (examples/hello, the default) and ``book`` (examples/greeter/book.py,
which asks for input); its card's words come from cards/greeter.yaml.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: What the greet skill answers for {"name": "Ada Lovelace"}.
ADA = {"greeting": "Hello, Ada Lovelace!", "verdict": "Ada Lovelace is a long name (11 letters)"}


def greeter_config(directory: Path) -> Path:
    """A node configuration for the greeter example, its store in ``directory``."""
    config = directory / "agent-node.yaml"
    config.write_text(
        "name: greeter\nlisten: {host: 127.0.0.1, port: 0}\n"
        f"store: sqlite:///{directory}/greeter.db\n"
        f"card: {ROOT / 'cards/greeter.yaml'}\nskills:\n"
        f"  - {{id: greet, workflow: '{ROOT / 'examples/hello/workflow.yaml'}', default: true}}\n"
        f"  - {{id: book, workflow: '{ROOT / 'examples/greeter/book.py'}:wf'}}\n"
        # The tests' webhook receivers listen on loopback.
        "push: {allow: [127.0.0.0/8]}\n"
    )
    return config


@contextmanager
def serving(directory: Path) -> Iterator[str]:
    """Serve the greeter example from ``directory``; yields its base URL."""
    command = [sys.executable, "-m", "agent_node.cli.main", "serve", "--config"]
    log = directory / "node.err"
    with log.open("w") as err:
        process = subprocess.Popen(
            [*command, str(greeter_config(directory))],
            cwd=directory,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "listening on" in first, first + log.read_text()
        yield first.split()[-1]
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)
