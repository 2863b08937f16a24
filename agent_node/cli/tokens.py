"""``agent-node tokens``: a development JWT issuer for ``auth.jwt`` (see examples/auth)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import handle_errors

__all__ = ["tokens"]

_DIR = click.option(
    "--dir",
    "folder",
    default="tokens",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the issuer's key and JWK Set live.",
)


@click.group()
def tokens() -> None:
    """Issue development bearer JWTs that a node's auth.jwt accepts."""


@tokens.command("init")
@_DIR
@handle_errors
def init(folder: Path) -> None:
    """Write a signing key (owner-only) and its JWK Set into --dir (kept if there)."""
    from agent_node.security.dev_issuer import DEV_ISSUER, init

    jwks, made = init(folder)
    click.echo(f"{'wrote' if made else 'kept'} the development issuer in {folder}")
    click.echo(
        f"accept its tokens with: auth: {{jwt: {{issuer: {DEV_ISSUER}, audience: NAME,"
        f" jwks_file: {jwks}, algorithms: [ES256]}}}}"
    )


@tokens.command("issue")
@click.argument("subject")
@click.option("--audience", required=True, help="The agent the token is meant for (its aud).")
@click.option("--ttl", default=3600.0, show_default=True, help="Seconds the token is valid.")
@click.option(
    "--as-header", is_flag=True, help="Print an Authorization header line (curl -H @FILE)."
)
@_DIR
@handle_errors
def issue(subject: str, audience: str, ttl: float, as_header: bool, folder: Path) -> None:
    """Print a token naming SUBJECT (the caller's identity, by default) for --audience."""
    from agent_node.security.dev_issuer import issue

    token = issue(folder, subject, audience, ttl=ttl)
    click.echo(f"Authorization: Bearer {token}" if as_header else token)
