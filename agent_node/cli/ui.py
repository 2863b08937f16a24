"""``agent-node ui``: serve the web UI of a network of nodes on 127.0.0.1."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .common import handle_errors, run_async, tls_from_cert_dir

if TYPE_CHECKING:
    from agent_node.ui.targets import Network

__all__ = ["ui"]

DEFAULT_PORT = 8480


@click.command()
@click.option(
    "--config",
    "configs",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A node's configuration: the node and the peers it names are shown (repeatable).",
)
@click.option(
    "--peer",
    "peers",
    multiple=True,
    metavar="[NAME=]URL",
    help="Another node to show, by its base URL (repeatable).",
)
@click.option(
    "--cert-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Call the nodes with the certificate `agent-node certs` wrote here (with --identity).",
)
@click.option("--identity", default=None, help="The NAME given to `agent-node certs issue`.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="The port on 127.0.0.1 to serve on; 0 picks a free one.",
)
@click.option(
    "--token",
    default=None,
    metavar="TEXT",
    help="What every request must carry (the printed address sets it in a cookie;"
    " tools send 'Authorization: Bearer TEXT'). Default: a new random one each start.",
)
@handle_errors
def ui(
    configs: tuple[Path, ...],
    peers: tuple[str, ...],
    cert_dir: Path | None,
    identity: str | None,
    port: int,
    token: str | None,
) -> None:
    """Serve a web UI of the nodes: executions, delegations, inbox.

    It listens on 127.0.0.1 only and prints its URL, which carries a token
    no other process of the machine knows (each request needs it: the URL
    puts it in a cookie; --token sets it for tools). Toward each node it is
    an operator: it calls their operator API and A2A endpoint with one
    client certificate (--cert-dir DIR --identity NAME, else the tls: of the
    first --config), which must be in each node's policy.operators. The page
    itself holds no secret and needs no certificate. Ctrl-C or SIGTERM stops
    it cleanly, exit status 0.
    """
    from agent_node.ui.targets import build_network

    network = build_network(list(configs), list(peers), tls_from_cert_dir(cert_dir, identity))
    if token is not None and not re.fullmatch(r"[A-Za-z0-9_-]{16,256}", token):
        raise click.BadParameter(
            "use 16 to 256 ASCII letters, digits, '-' and '_'", param_hint="--token"
        )
    run_async(_serve(network, port, token or secrets.token_urlsafe(24)))
    click.echo("agent-node ui stopped")


async def _serve(network: Network, port: int, token: str) -> None:
    import uvicorn

    from agent_node.stopping import stop_on_signals
    from agent_node.transport import listening_socket
    from agent_node.ui.calls import Calls
    from agent_node.ui.server import create_app

    sock = listening_socket("127.0.0.1", port, " (the UI)")
    calls = Calls(network)
    app = create_app(calls, token)
    app.port = sock.getsockname()[1]
    # Open streams (a page following the nodes) must not hold a stop.
    # uvicorn's own lines go to the command's log (:mod:`agent_node.telemetry.stderr_log`).
    config = uvicorn.Config(
        app, log_level="warning", log_config=None, lifespan="off", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    names = ", ".join(f"{t.key} ({t.url})" for t in network.targets.values())
    try:
        # Before the address is out: a stop asked as soon as it is read counts.
        with stop_on_signals(server):
            click.echo(f"agent-node ui: http://127.0.0.1:{app.port}/?token={token}")
            click.echo(f"nodes: {names}", err=True)
            await server.serve(sockets=[sock])
    finally:
        await calls.aclose()
        sock.close()
