"""What a setup needs, checked one thing at a time (``agent-node doctor``).

Each check returns a :class:`Check`: its name, whether it passed, and one
line — what was found when it passed, what to do when it did not. A check
never changes anything: it creates no store, certificate or file, and binds
a port only to release it at once. ``init`` and ``demo`` run the checks
that matter to them when something is missing.

What to do must be doable from where the user is: each command that runs a
check tells it how that command does what the advice needs (``demo`` has
``--offline`` and ``--ollama``, a configuration has ``models.default`` and
``models.api_base``), and advice that needs another command names it
(``agent-node serve --port``), never a bare flag the command lacks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from agent_node.config import NodeConfig
from agent_node.errors import AgentNodeError, UsageError

from .invoked import command_name, shown_path

if TYPE_CHECKING:
    from agent_node.nodes.model_spec import ModelNode
    from agent_node.workflow.compiled import CompiledWorkflow

__all__ = [
    "IN_CONFIGURATION",
    "Check",
    "ModelAdvice",
    "check_certificates",
    "check_model",
    "check_models",
    "check_port",
    "check_python",
    "check_store",
]

#: Seconds a model backend gets to answer.
PROBE_TIMEOUT = 3.0
#: A certificate expiring sooner than this is worth a warning.
EXPIRY_WARNING = dt.timedelta(days=14)
MIN_PYTHON = (3, 11)
#: How a node that names no model calls one (see :func:`_models_in_use`).
_DEFAULT = "models.default"


@dataclass(frozen=True)
class Check:
    name: str
    #: skip: nothing of this setup needs what the check looks at.
    status: Literal["ok", "skip", "warn", "fail"]
    #: What was found (ok), why nothing was checked (skip), or what to do (warn, fail).
    line: str


@dataclass(frozen=True)
class ModelAdvice:
    """How the command the user ran is told where Ollama is, or to answer
    without a model: :func:`check_model`'s advice names these."""

    #: Pointing it at Ollama, e.g. ``set models.api_base … to where it runs``.
    ollama_at: str
    #: Answering without a model, e.g. ``models.default: scripted/echo``.
    without: str


#: For a node's configuration (what ``init`` writes, what ``doctor`` reads).
IN_CONFIGURATION = ModelAdvice(
    ollama_at="set models.api_base or $OLLAMA_API_BASE to where it runs",
    without="models.default: scripted/echo in the configuration",
)


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] >= MIN_PYTHON:
        return Check("python", "ok", f"Python {version}")
    wanted = ".".join(map(str, MIN_PYTHON))
    return Check("python", "fail", f"Python {version}: install Python {wanted} or newer")


def check_store(url: str) -> Check:
    """Whether the store at ``url`` opens (and, for SQLite, can be written)."""
    from agent_node.store import store_from_url
    from agent_node.store.files import MissingStore

    async def opens() -> None:
        store = store_from_url(url, create=False)
        try:
            await store.open()
        finally:
            await store.close()

    path = _sqlite_path(url)
    try:
        asyncio.run(opens())
    except MissingStore as exc:
        if path is None:  # a database that answered, without our tables yet
            return Check("store", "ok", f"{url}: no tables yet; the first run or serve makes them")
        if _writable(_nearest(path.parent)):
            return Check("store", "ok", f"{url}: none yet; the first run or serve creates it")
        return Check("store", "fail", f"{exc}")
    except (AgentNodeError, OSError) as exc:
        return Check("store", "fail", f"{url}: {exc}")
    if path is not None and not (_writable(path) and _writable(path.parent)):
        return Check("store", "fail", f"{url}: not writable here: check the file's permissions")
    return Check("store", "ok", url)


def _sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    return Path(url.removeprefix("sqlite:///").split("?", 1)[0]).absolute()


def _nearest(path: Path) -> Path:
    """``path``, or its closest ancestor that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _writable(path: Path) -> bool:
    return path.exists() and os.access(path, os.W_OK)


def check_certificates(config: NodeConfig, serve: str) -> Check:
    """The node's certificate and key: present, valid now, issued by its trust
    bundle, and of the trust domain its peers and policy name. ``serve``:
    the command that serves this configuration (what the advice extends)."""
    from agent_node.security import certcheck

    if config.tls is None:
        program = command_name()
        return Check(
            "certificates",
            "warn",
            f"no tls: section: for mutual TLS, `{serve} --cert-dir DIR --identity NAME`"
            f" (made by `{program} certs init` and `{program} certs issue NAME`);"
            f" for plain HTTP on loopback, `{serve} --insecure-dev`",
        )
    tls = config.tls
    cert = config.path(tls.cert)
    found = certcheck.inspect(cert, config.path(tls.key), config.trust_paths(), _domains(config))
    # `certs issue` writes NAME.pem beside the CA it signs with: the name and
    # folder of the certificate the configuration names.
    fix = (
        f"`{command_name()} certs issue {cert.stem} --dir {shown_path(cert.parent)} --force`"
        " issues a new one"
    )
    if found.problem is not None:
        return Check("certificates", "fail", f"{found.problem}; {fix}")
    left = found.not_after - dt.datetime.now(dt.UTC)
    said = f"{found.identity or 'no URI SAN'}, valid until {found.not_after:%Y-%m-%d}"
    if left < EXPIRY_WARNING:
        return Check("certificates", "warn", f"{said} ({left.days} days left): {fix}")
    return Check("certificates", "ok", said)


def _domains(config: NodeConfig) -> set[str]:
    """The trust domains the configuration names: its peers' and policy's identities."""
    names = [p.identity for p in config.peers if p.identity]
    policy = config.policy
    names += [*policy.callers, *policy.operators]
    names += [name for allowed in policy.skills.values() for name in allowed]
    domains = {n.split("/")[2] for n in names if n.startswith("spiffe://") and n.count("/") >= 2}
    return {domain for domain in domains if "*" not in domain}


def check_models(config: NodeConfig, file: str) -> list[Check]:
    """One check per model the node's workflows call — their model nodes and
    llm_judge scorers, ``models.default`` for those naming none — or a skip
    when none calls one: a node without models needs no model backend."""
    try:
        used = _models_in_use(config)
    except AgentNodeError as exc:
        return [Check("model", "fail", f"{exc}: which models it calls is unknown")]
    if not used:
        return [Check("model", "skip", "no workflow of this node calls a model")]
    return [
        check_model(model, config.models.api_base, _advice(config, file, ways))
        for model, ways in used.items()
    ]


def _models_in_use(config: NodeConfig) -> dict[str, list[str]]:
    """Each model the skills' workflows call, and how: the nodes that name it
    ("skill/node"), and ``models.default`` when nodes name no model."""
    from agent_node.workflow.loading import load_workflow

    used: dict[str, list[str]] = {}
    default = config.models.default
    for skill in config.skills:
        try:
            workflow = load_workflow(config.workflow_ref(skill))
        except UsageError as exc:
            raise UsageError(f"skill {skill.id!r}: {exc}") from None
        for where, node in _model_nodes(workflow):
            how = f"{skill.id}/{where}" if node.model is not None else _DEFAULT
            for model in node.chain(default):
                ways = used.setdefault(model, [])
                if how not in ways:
                    ways.append(how)
    return used


def _model_nodes(workflow: CompiledWorkflow) -> list[tuple[str, ModelNode]]:
    """The workflow's model nodes, and its eval nodes' judges (asked as model
    nodes), each with where it is written."""
    from agent_node.nodes.eval import EvalNode
    from agent_node.nodes.eval_scorers import LlmJudge
    from agent_node.nodes.model_spec import ModelNode

    found: list[tuple[str, ModelNode]] = []
    for node in workflow.ir.nodes.values():
        if isinstance(node, ModelNode):
            found.append((node.id, node))
        elif isinstance(node, EvalNode):
            judges = [i for i, scorer in enumerate(node.scorers) if isinstance(scorer, LlmJudge)]
            found += [(f"{node.id}'s llm_judge", node.judge(i)) for i in judges]
    return found


def _advice(config: NodeConfig, file: str, ways: list[str]) -> ModelAdvice:
    """Where a model comes from decides what replaces it: the nodes that name
    it, and ``models.default`` (where the file sets none, $AGENT_NODE_MODEL)."""
    nodes = [way for way in ways if way != _DEFAULT]
    said = [f"model: scripted/echo on {', '.join(nodes)} (skill/node)"] if nodes else []
    if _DEFAULT in ways:
        said.append(f"models.default: scripted/echo in {file}")
        if "default" not in config.models.model_fields_set:
            said[-1] += " (or AGENT_NODE_MODEL=scripted/echo)"
    return ModelAdvice(IN_CONFIGURATION.ollama_at, " and ".join(said))


def check_model(
    model: str, api_base: str | None = None, advice: ModelAdvice = IN_CONFIGURATION
) -> Check:
    """Whether the model's backend answers: Ollama (and has the model), or an
    OpenAI-compatible ``api_base``; ``scripted/…`` needs none. ``advice``:
    how the command that asks does what a failure needs."""
    from agent_node.integrations.scripted import PREFIX

    if model.startswith(PREFIX):
        return Check("model", "ok", f"{model}: the offline scripted model, no backend needed")
    if model.startswith(("ollama_chat/", "ollama/")):
        return _check_ollama(model, api_base, advice)
    if api_base is None:
        return Check("model", "warn", f"{model}: not checked (no models.api_base to ask)")
    import httpx

    try:
        with httpx.Client(timeout=PROBE_TIMEOUT, trust_env=False) as http:
            http.get(f"{api_base.rstrip('/')}/models")
    except httpx.HTTPError as exc:
        return Check(
            "model",
            "fail",
            f"{model}: nothing answers at {api_base} ({exc}): start the server there,"
            f" or answer without a model: {advice.without}",
        )
    return Check("model", "ok", f"{model} at {api_base}")


def _check_ollama(model: str, api_base: str | None, advice: ModelAdvice) -> Check:
    import httpx

    from agent_node.integrations.ollama_base import ollama_base

    base = ollama_base(api_base)
    name = model.split("/", 1)[1]
    try:
        with httpx.Client(timeout=PROBE_TIMEOUT, trust_env=False) as http:
            answer = http.get(f"{base}/api/tags")
            answer.raise_for_status()
            names = {m.get("name") for m in answer.json().get("models", [])}
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        why = str(exc) or type(exc).__name__
        return Check(
            "model",
            "fail",
            f"{model}: no Ollama answers at {base} ({why}): start it (`ollama serve`),"
            f" {advice.ollama_at}, or answer without a model: {advice.without}",
        )
    if name not in names and f"{name}:latest" not in names:
        pull = f"`ollama pull {name}`"
        return Check("model", "fail", f"{model}: Ollama at {base} does not have it: {pull}")
    return Check("model", "ok", f"{model} at Ollama {base}")


def check_port(host: str, port: int, *, elsewhere: str) -> Check:
    """Whether ``host:port`` is free to listen on; ``elsewhere``: how to
    listen on another port instead (a command, a setting)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return Check(
                "port",
                "fail",
                f"{host}:{port} is taken ({exc.strerror or exc}): stop what listens there"
                f" (the agent itself?) or listen on another: {elsewhere}",
            )
    return Check("port", "ok", f"{host}:{port} is free")
