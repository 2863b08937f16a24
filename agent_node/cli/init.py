"""``agent-node init NAME``: a new agent, ready to serve over mutual TLS.

Writes ``NAME/agent-node.yaml`` (the node), ``NAME/card.yaml`` (its card's
words) and ``NAME/ask.yaml`` (its one skill: a model answers the message's
text), and gives it a certificate from the development CA in ``--cert-dir``
(made first when there is none). Nothing that exists is overwritten.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from agent_node.errors import UsageError

from .common import handle_errors

__all__ = ["init"]

_CONFIG = """\
# The {name} agent. Serve it:  agent-node serve --config {config}
# Every key is explained in the agent-node README ("Mutual TLS, identities and policy").
name: {name}
listen: {{host: 127.0.0.1, port: {port}}}
store: sqlite:///.agent-node/{name}.db      # relative to where you run it
card: card.yaml
skills:
  - {{id: ask, workflow: ask.yaml, default: true}}
tls:
  cert: {certs}/{name}.pem
  key: {certs}/{name}-key.pem
  trust: [{certs}/ca.pem]
policy:
  callers: ["*"]                         # any identity of the CA above may ask
  operators: []                          # identities allowed to use /ops
models:
  default: {model}   # any litellm model; scripted/… answers offline
# peers:                                 # agents this one may delegate to
#   - {{name: writer, url: "https://127.0.0.1:8503", identity: "spiffe://…/agent/writer"}}
"""

_CARD = """\
# How {name}'s Agent Card describes it (served at /.well-known/agent-card.json).
name: {title}
description: Answers questions in a few sentences.
version: 0.1.0
skills:
  ask:
    name: Ask {title}
    description: Send a question as text; the answer comes back as text.
    tags: [questions]
    examples: ["What is the A2A protocol?"]
"""

_WORKFLOW = """\
# {name}'s skill "ask": a model answers the message's text. Add nodes here:
# tool (MCP), http, branch, eval, delegate (another agent) — see the README.
workflow:
  id: ask
  version: "1"
  description: Answers a question.
  start: answer
  state_schema:
    type: object
    properties:
      text: {{type: string}}                 # the message's text
      reply: {{type: string, default: ""}}   # the answer's text
    required: [text]
nodes:
  answer:
    type: model
    system: "You are {title}. Answer in at most three sentences."
    prompt: "{{{{ state.text }}}}"
    output: reply
    next: done
  done: {{type: end, output: [reply]}}
"""


@click.command()
@click.argument("name")
@click.option(
    "--dir",
    "parent",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where the NAME folder goes.",
)
@click.option(
    "--cert-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("certs"),
    show_default=True,
    help="The development CA (made here when missing) and certificates.",
)
@click.option(
    "--trust-domain",
    default="agent-node.local",
    show_default=True,
    help="For a new CA: the SPIFFE trust domain of identities.",
)
@click.option("--port", type=int, default=8470, show_default=True)
@click.option("--model", default="ollama_chat/llama3.2:1b", show_default=True)
@handle_errors
def init(name: str, parent: Path, cert_dir: Path, trust_domain: str, port: int, model: str) -> None:
    """Scaffold a new agent NAME: configuration, card, workflow, certificate."""
    from agent_node.config import load_config
    from agent_node.sdk import load_workflow
    from agent_node.security import pki

    folder = parent / name
    if folder.exists() and any(folder.iterdir()):
        raise UsageError(f"{folder} exists and is not empty: pick another NAME or --dir")
    if not (cert_dir / pki.CA_CERT).exists():
        pki.init_ca(cert_dir, trust_domain=trust_domain)
        click.echo(f"made a development CA for spiffe://{trust_domain} in {cert_dir}")
    cert = cert_dir / f"{name}.pem"
    identity = pki.issue(cert_dir, name).identity if not cert.exists() else _identity(cert)
    folder.mkdir(parents=True, exist_ok=True)
    certs = Path(os.path.relpath(cert_dir.resolve(), folder.resolve())).as_posix()
    title = name.replace("-", " ").replace("_", " ").title()
    files = {
        "agent-node.yaml": _CONFIG.format(
            name=name, port=port, certs=certs, model=model, config=folder / "agent-node.yaml"
        ),
        "card.yaml": _CARD.format(name=name, title=title),
        "ask.yaml": _WORKFLOW.format(name=name, title=title),
    }
    for file, text in files.items():
        (folder / file).write_text(text, encoding="utf-8")
    load_workflow(str(folder / "ask.yaml"))  # what was written loads
    config = load_config(folder / "agent-node.yaml")
    click.echo(f"created {folder}/: {', '.join(files)}")
    click.echo(f"identity {identity} (certificate {cert_dir / (name + '.pem')})")
    click.echo(
        "next:\n"
        f"  agent-node serve --config {folder / 'agent-node.yaml'}\n"
        f"  agent-node certs issue me --dir {cert_dir}     # a certificate to call it with\n"
        f"  curl --cacert {cert_dir}/ca.pem --cert {cert_dir}/me.pem --key {cert_dir}/me-key.pem"
        f" {config.url.replace('127.0.0.1', 'localhost')}/a2a -H 'A2A-Version: 1.0'"
        ' -H \'Content-Type: application/json\' -d \'{"jsonrpc": "2.0", "id": 1,'
        ' "method": "SendMessage", "params": {"message": {"messageId": "m1",'
        ' "role": "ROLE_USER", "parts": [{"text": "Hello!"}]}}}\''
    )


def _identity(cert: Path) -> str:
    from agent_node.security.pki import describe

    [leaf, *_] = describe(cert)
    uri = next((san for san in leaf.sans if san.startswith("URI:")), f"CN {leaf.subject}")
    return uri.removeprefix("URI:")
