"""``agent-node peers``: the configured peers' Agent Cards, and ``discover`` for any URL.

Both fetch exactly as a node does (:mod:`agent_node.a2a.peers.discovery`): over
the node's own mutual TLS (the file's ``tls:``, or ``--cert-dir`` and
``--identity`` as for ``serve``), checking who answered and any card
signature against the node's trust bundle.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from agent_node.config import NodeConfig, PeerConfig, load_config
from agent_node.errors import AgentNodeError

from .common import EXIT_FAILURE, handle_errors, run_async, tls_from_cert_dir

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from agent_node.a2a.peers.discovery import PeerCard, PeerUnavailable

__all__ = ["peers"]

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_CONFIG = "agent-node.yaml"
_BINDINGS = {"JSONRPC": "JSON-RPC", "HTTP+JSON": "HTTP+JSON", "GRPC": "gRPC"}


def _options(command: F) -> F:
    """The options ``peers`` and ``peers discover`` share."""
    options = [
        click.option(
            "--config",
            "config_path",
            default=None,
            type=click.Path(dir_okay=False),
            help=f"The node's configuration file [default: {DEFAULT_CONFIG}].",
        ),
        click.option(
            "--cert-dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Call with what `agent-node certs` wrote here (with --identity).",
        ),
        click.option(
            "--identity", default=None, help="The NAME given to `agent-node certs issue`."
        ),
        click.option(
            "--timeout", type=float, default=10.0, show_default=True, help="Seconds per request."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group(invoke_without_command=True)
@_options
@click.pass_context
@handle_errors
def peers(
    ctx: click.Context,
    config_path: str | None,
    cert_dir: Path | None,
    identity: str | None,
    timeout: float,
) -> None:
    """Fetch every configured peer's Agent Card and show what it offers.

    One row per peer the configuration lists under "peers": whether its
    card could be fetched (and why not), its name, the protocol version a
    node speaks to it, its skills, the identity its certificate named and
    who signed the card. Exits 1 when a peer is unreachable.
    """
    ctx.obj = {"config_path": config_path, "cert_dir": cert_dir, "identity": identity}
    if ctx.invoked_subcommand is not None:
        return
    config = _config(config_path or DEFAULT_CONFIG, cert_dir, identity, required=True)
    if not config.peers:
        click.echo(f"no peers configured in {config_path or DEFAULT_CONFIG}")
        return
    results = run_async(_all(config, timeout))
    _console().print(_table(config.peers, results))
    if any(not _is_card(result) for result in results):
        if any(peer.url.startswith("https://") for peer in config.peers):
            click.echo(_no_certificate(config, "https://").removeprefix("; "), err=True)
        raise click.exceptions.Exit(EXIT_FAILURE)


@peers.command()
@click.argument("url")
@_options
@click.option("--expect-identity", default=None, help="The identity its certificate must name.")
@click.option("--json", "as_json", is_flag=True, help="Print the card (as A2A 1.0 JSON).")
@click.pass_context
@handle_errors
def discover(
    ctx: click.Context,
    url: str,
    config_path: str | None,
    cert_dir: Path | None,
    identity: str | None,
    timeout: float,
    expect_identity: str | None,
    as_json: bool,
) -> None:
    """Fetch and check the Agent Card of the agent at URL (its base URL).

    Without --config it reads agent-node.yaml when there is one; without
    TLS settings it verifies HTTPS servers against the system's CAs.
    """
    parent = ctx.obj or {}
    config_path = config_path or parent.get("config_path")
    config = _config(
        config_path or DEFAULT_CONFIG,
        cert_dir or parent.get("cert_dir"),
        identity or parent.get("identity"),
        required=config_path is not None,
    )
    try:
        found = run_async(_discover(config, url, expect_identity, timeout))
    except AgentNodeError as exc:
        raise AgentNodeError(f"{exc}{_no_certificate(config, url)}") from None
    if as_json:
        from agent_node.printable import printable_json

        click.echo(printable_json(found.card, indent=2))
    else:
        _console().print(_summary(found, _requirements(config, url, found)))


def _requirements(config: NodeConfig, url: str, found: PeerCard) -> list[tuple[str, bool]]:
    """The card's requirements and whether we meet them: our certificate, and
    the ``auth:`` of the configured peer at ``url`` (if one is)."""
    from agent_node.a2a.peers.credentials import requirements
    from agent_node.a2a.peers.endpoints import origin_of, same_origin

    auth = next(
        (p.auth for p in config.peers if same_origin(origin_of(p.url), origin_of(url))), None
    )
    return requirements(found.card, auth, config.tls is not None)


def _no_certificate(config: NodeConfig, url: str) -> str:
    """What to add when an HTTPS peer was called without a certificate of ours."""
    if config.tls is not None or not url.startswith("https://"):
        return ""
    return (
        "; no client certificate was presented (agents require one): give --cert-dir DIR"
        " --identity NAME (what `agent-node certs` wrote), or --config with a tls: section"
    )


def _config(
    path: str, cert_dir: Path | None, identity: str | None, *, required: bool
) -> NodeConfig:
    """The node's configuration (an empty one when optional and absent), TLS overridden."""
    tls = tls_from_cert_dir(cert_dir, identity)
    exists = Path(path).is_file()
    config = load_config(path) if required or exists else NodeConfig(name="agent-node")
    return config.with_overrides(tls=tls)


async def _all(config: NodeConfig, timeout: float) -> list[PeerCard | PeerUnavailable]:
    from agent_node.a2a.peers.client import http_client
    from agent_node.a2a.peers.directory import Directory

    tls = config.client_ssl_context()
    async with http_client(
        tls, timeout=timeout, identity_from_cn=config.identity_from_cn
    ) as client:
        return await Directory(config.peers, client, trust=config.trust_paths()).all()


async def _discover(config: NodeConfig, url: str, expected: str | None, timeout: float) -> PeerCard:
    from agent_node.a2a.peers.client import http_client
    from agent_node.a2a.peers.discovery import fetch_card

    tls = config.client_ssl_context()
    async with http_client(
        tls, timeout=timeout, identity_from_cn=config.identity_from_cn
    ) as client:
        return await fetch_card(client, url, expected_identity=expected, trust=config.trust_paths())


def _is_card(result: PeerCard | PeerUnavailable) -> bool:
    from agent_node.a2a.peers.discovery import PeerCard

    return isinstance(result, PeerCard)


def _console() -> Console:
    from .render import make_console

    return make_console()


def _table(
    configured: Sequence[PeerConfig], results: Sequence[PeerCard | PeerUnavailable]
) -> RenderableType:
    from rich.table import Table
    from rich.text import Text

    from agent_node.a2a.peers.discovery import PeerCard

    from .render import plain

    table = Table()
    # Names, addresses and identities stay on one line; the rest wraps.
    for column in ("peer", "url", "reachable", "card", "speaks", "skills", "identity", "signed"):
        table.add_column(column, no_wrap=column in ("peer", "url", "speaks", "identity"))
    for peer, result in zip(configured, results, strict=True):
        where = [plain(peer.name), plain(peer.url)]
        if not isinstance(result, PeerCard):
            table.add_row(*where, plain(f"✗ {result.reason}", "red"))
            continue
        signed = result.signed_by or "no"
        cells = [
            str(result.card.get("name", "")),
            f"A2A {result.version}",
            ", ".join(result.skills()) or "none",
            result.identity or "(plain HTTP)",
            "✓ by that identity" if signed == result.identity else signed,
        ]
        table.add_row(*where, Text("✓", style="green"), *map(plain, cells))
    return table


def _summary(found: PeerCard, requirements: list[tuple[str, bool]]) -> RenderableType:
    """The card in rows; ``requirements``: its security requirements, each
    with whether what we would present meets it."""
    from rich.table import Table

    from .render import plain

    card = found.card
    rows = [
        ("card", f"{card.get('name')} {card.get('version', '')}".strip()),
        ("description", str(card.get("description", ""))),
        ("read from", found.card_url),
        ("endpoint", f"{found.endpoint} (A2A {found.version}, {_BINDINGS[found.binding]})"),
        ("identity", found.identity or "(plain HTTP: none)"),
        ("signed by", found.signed_by or "not signed (or by a bare key)"),
    ]
    for skill in card.get("skills", []):
        tags = ", ".join(skill.get("tags") or [])
        rows.append(
            ("skill", f"{skill.get('id')}: {skill.get('name')}" + (f" [{tags}]" if tags else ""))
        )
    for said, met in requirements or [("none declared", True)]:
        rows.append(("security", f"{'✓' if met else '✗'} {said}"))
    fresh = max(0, round(found.expires_at - time.time()))
    rows.append(("cache", f"etag {found.etag or 'none'}, fresh for {fresh} s"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(label, plain(value))
    return grid
