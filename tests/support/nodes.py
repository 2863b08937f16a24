"""A real ``agent-node serve`` process running the shipped greeter example.

The interop tests talk to it as third-party clients would: its skills are
``greet`` (examples/hello, the default) and ``book`` (examples/greeter/book.py,
which asks for input); its card's words come from cards/greeter.yaml.
:func:`serving` runs it over plain HTTP (``--insecure-dev``);
:func:`serving_mtls` over mutual TLS with certificates from ``agent-node certs``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
#: What the greet skill answers for {"name": "Ada Lovelace"}.
ADA = {"greeting": "Hello, Ada Lovelace!", "verdict": "Ada Lovelace is a long name (11 letters)"}


def greeter_config(directory: Path, extra: str = "", *, book_card: str = "public") -> Path:
    """A node configuration for the greeter example, its store in ``directory``;
    ``extra`` is appended (YAML: ``policy:``, ``limits:``, ...); ``book_card``:
    the card that shows ``book`` (``extended``: only the extended card)."""
    config = directory / "agent-node.yaml"
    config.write_text(
        "name: greeter\nlisten: {host: 127.0.0.1, port: 0}\n"
        f"store: sqlite:///{directory}/greeter.db\n"
        f"card: {ROOT / 'cards/greeter.yaml'}\nskills:\n"
        f"  - {{id: greet, workflow: '{ROOT / 'examples/hello/workflow.yaml'}', default: true}}\n"
        f"  - {{id: book, workflow: '{ROOT / 'examples/greeter/book.py'}:wf', card: {book_card}}}\n"
        # The tests' webhook receivers listen on loopback.
        "push: {allow: [127.0.0.0/8]}\n" + extra
    )
    return config


@contextmanager
def serving(directory: Path) -> Iterator[str]:
    """Serve the greeter example from ``directory`` over plain HTTP; yields its base URL."""
    with _served(directory, greeter_config(directory), ["--insecure-dev"]) as url:
        yield url


@contextmanager
def serving_mtls(
    directory: Path,
    certs: Path,
    extra: str = "",
    identity: str = "greeter",
    grpc: bool = False,
    book_card: str = "public",
) -> Iterator[str]:
    """Serve the greeter example over mutual TLS as ``identity`` (its certificate
    in ``certs``, as ``agent-node certs issue`` wrote it), and its gRPC binding
    on a free port too when ``grpc`` (the card says where); yields its base URL.
    The node's stderr goes to ``directory/node.err``."""
    tls = ["--cert-dir", str(certs), "--identity", identity]
    tls += ["--grpc-port", "0"] if grpc else []
    with _served(directory, greeter_config(directory, extra, book_card=book_card), tls) as url:
        assert url.startswith("https://"), url
        yield url


def serving_config(directory: Path, config: Path, flags: list[str]) -> Any:
    """Serve ``config`` (a greeter configuration, edited) from ``directory``
    with ``flags``; a context manager yielding its base URL."""
    return _served(directory, config, flags)


@contextmanager
def _served(directory: Path, config: Path, flags: list[str]) -> Iterator[str]:
    command = [sys.executable, "-m", "agent_node.cli.main", "serve", "--config", str(config)]
    log = directory / "node.err"
    with log.open("w") as err:
        process = subprocess.Popen(
            [*command, *flags], cwd=directory, stdout=subprocess.PIPE, stderr=err, text=True
        )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "agent node 'greeter' listening on" in first, first + log.read_text()
        yield first.split()[-1]
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)
