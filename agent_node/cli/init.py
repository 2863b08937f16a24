"""``agent-node init NAME``: a new agent, ready to serve over mutual TLS.

Writes ``NAME/agent-node.yaml`` (the node), ``NAME/card.yaml`` (its card's
words) and ``NAME/ask.yaml`` (its one skill: a model answers the message's
text), and gives it a certificate from the development CA in ``--cert-dir``
(made first when there is none). Nothing that exists is overwritten.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import click

from agent_node.errors import UsageError
from agent_node.security.pki import DEFAULT_TRUST_DOMAIN

from .common import handle_errors
from .invoked import command_name

__all__ = ["init"]

#: An agent's name: also a folder, a file name and the last part of its identity.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$")

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
    help="Where the NAME folder goes (any folder: NAME itself is a name, not a path).",
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
    default=DEFAULT_TRUST_DOMAIN,
    show_default=True,
    help="For a new CA: the SPIFFE trust domain of identities.",
)
@click.option(
    "--port", type=int, default=8470, show_default=True, help="The port the agent listens on."
)
@click.option(
    "--model",
    default="ollama_chat/llama3.2:1b",
    show_default=True,
    help="The agent's model (models.default): any litellm model; scripted/echo needs none.",
)
@handle_errors
def init(name: str, parent: Path, cert_dir: Path, trust_domain: str, port: int, model: str) -> None:
    """Scaffold a new agent NAME: configuration, card, workflow, certificate."""
    from agent_node.config import load_config
    from agent_node.security import pki
    from agent_node.workflow.loading import load_workflow

    _check_name(name)
    folder = parent / name
    if folder.exists() and any(folder.iterdir()):
        raise UsageError(f"{folder} exists and is not empty: pick another NAME or --dir")
    if not (cert_dir / pki.CA_CERT).exists():
        pki.init_ca(cert_dir, trust_domain=trust_domain)
        click.echo(f"made a development CA for spiffe://{trust_domain} in {cert_dir}")
    kept = pki.existing(cert_dir, name)
    identity = (kept or pki.issue(cert_dir, name)).identity
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
    from .checks import check_model
    from .doctor import print_checks

    # What serving it needs that is not here yet, as `doctor` says it.
    print_checks([check_model(config.models.default, config.models.api_base)], only_problems=True)
    program = command_name()
    url = config.url.replace("127.0.0.1", "localhost")
    click.echo(
        "next:\n"
        f"  {program} serve --config {folder / 'agent-node.yaml'}\n"
        f"  {program} certs issue me --dir {cert_dir}     # a certificate to call it with\n"
        f"  curl -s --cacert {cert_dir}/ca.pem --cert {cert_dir}/me.pem"
        f" --key {cert_dir}/me-key.pem {url}/a2a -H 'A2A-Version: 1.0'"
        ' -H \'Content-Type: application/json\' -d \'{"jsonrpc": "2.0", "id": 1,'
        ' "method": "SendMessage", "params": {"message": {"messageId": "m1",'
        ' "role": "ROLE_USER", "parts": [{"text": "Hello!"}]}}}\''
    )


def _check_name(name: str) -> None:
    """NAME names the agent (its folder, certificate and identity): a path
    would write outside the folder the user is in without their asking."""
    if not _NAME.match(name):
        where = Path(name)
        hint = (
            f": to make {where.name!r} in {where.parent}, run"
            f" `{command_name()} init {where.name} --dir {where.parent}`"
            if where.name and _NAME.match(where.name)
            else ""
        )
        raise UsageError(
            f"{name!r} is not an agent name (letters, digits, '.', '_' and '-', starting with a"
            f" letter or digit; not a path){hint}"
        )
