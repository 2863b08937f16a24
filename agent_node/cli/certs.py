"""``agent-node certs``: a development PKI for mutual TLS (see ``certs/README.md``)."""

from __future__ import annotations

from pathlib import Path

import click

from agent_node.errors import UsageError
from agent_node.security.pki import DEFAULT_TRUST_DOMAIN

from .common import handle_errors
from .invoked import command_name

__all__ = ["certs"]

_DIR = click.option(
    "--dir",
    "folder",
    default="certs",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the CA and the certificates live.",
)


@click.group()
def certs() -> None:
    """Make a development CA and node certificates for mutual TLS."""


@certs.command("init")
@_DIR
@click.option(
    "--trust-domain",
    default=DEFAULT_TRUST_DOMAIN,
    show_default=True,
    help="The SPIFFE trust domain node identities live in.",
)
@click.option("--force", is_flag=True, help="Replace an existing CA.")
@handle_errors
def init(folder: Path, trust_domain: str, force: bool) -> None:
    """Write a new development CA (ca.pem, ca-key.pem) into --dir.

    A CA of the same trust domain already there is kept (so the examples'
    commands can be run in any order); one of another domain is a mistake
    this explains.
    """
    from agent_node.security import pki

    held = None if force else pki.ca_trust_domain(folder)
    if held == trust_domain:
        click.echo(
            f"kept the CA for spiffe://{trust_domain} already in {folder}"
            " (--force replaces it, and the certificates it issued stop verifying)"
        )
    elif held is not None:
        raise UsageError(
            f"{folder} holds a CA for spiffe://{held}, not spiffe://{trust_domain}, and"
            " certificates of one trust domain are refused by the other's nodes. Give this"
            f" CA a folder of its own (--dir {folder / trust_domain}, then the same --dir"
            " for `certs issue` and --cert-dir for `serve`), or replace the old one with"
            f" --force and issue its certificates again (`certs issue NAME --force`)"
        )
    else:
        path = pki.init_ca(folder, trust_domain=trust_domain, force=force)
        click.echo(f"CA for spiffe://{trust_domain} written to {path} (key: {folder / pki.CA_KEY})")
    click.echo(f"next: {command_name()} certs issue NAME --dir {folder}")


@certs.command("issue")
@click.argument("name")
@_DIR
@click.option("--dns", "dns_names", multiple=True, help="Extra DNS name (repeatable).")
@click.option("--ip", "ip_addresses", multiple=True, help="Extra IP address (repeatable).")
@click.option(
    "--days",
    type=click.IntRange(1, 3650),
    default=365,
    show_default=True,
    help="How long the certificate is valid.",
)
@click.option("--force", is_flag=True, help="Replace an existing certificate of NAME.")
@handle_errors
def issue_command(
    name: str,
    folder: Path,
    dns_names: tuple[str, ...],
    ip_addresses: tuple[str, ...],
    days: int,
    force: bool,
) -> None:
    """Issue NAME.pem and NAME-key.pem, signed by the CA in --dir.

    The certificate serves and calls (serverAuth and clientAuth) as
    spiffe://<trust-domain>/agent/NAME, and is valid for localhost and
    127.0.0.1 plus any --dns and --ip given. A valid certificate of NAME
    from this CA is kept (--force issues a new one).
    """
    from agent_node.security.pki import existing, issue

    kept = None if force else existing(folder, name)
    if kept is not None:
        click.echo(f"{kept.identity}: kept the certificate {kept.cert} (--force issues a new one)")
        return
    written = issue(
        folder,
        name,
        days=days,
        dns_names=("localhost", *dns_names),
        ip_addresses=("127.0.0.1", *ip_addresses),
        force=force,
    )
    click.echo(f"{written.identity}: certificate {written.cert}, key {written.key} (0600)")


@certs.command("show")
@click.argument("paths", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@_DIR
@handle_errors
def show(paths: tuple[Path, ...], folder: Path) -> None:
    """Print subject, SANs and validity of certificates (default: every *.pem in --dir)."""
    from agent_node.security.pki import describe

    files = list(paths) or sorted(
        p for p in folder.glob("*.pem") if not p.name.endswith("-key.pem")
    )
    if not files:
        raise click.UsageError(f"no certificates in {folder}: run `{command_name()} certs init`")
    for file in files:
        for index, info in enumerate(describe(file)):
            role = "CA" if info.is_ca else "node"
            where = file if index == 0 else f"{file} (chain #{index + 1})"
            status = "EXPIRED" if info.expired else "valid"
            click.echo(f"{where}  [{role}]")
            click.echo(f"  subject:  {info.subject}")
            click.echo(f"  issuer:   {info.issuer}")
            if info.sans:
                click.echo(f"  SANs:     {', '.join(info.sans)}")
            click.echo(
                f"  valid:    {info.not_before:%Y-%m-%d %H:%M} to {info.not_after:%Y-%m-%d %H:%M}"
                f" UTC ({status})"
            )
            click.echo(f"  sha256:   {info.fingerprint}")
