"""What a setup needs, checked one thing at a time (``agent-node doctor``).

Each check returns a :class:`Check`: its name, whether it passed, and one
line — what was found when it passed, what to do when it did not. A check
never changes anything: it creates no store, certificate or file, and binds
a port only to release it at once. ``init`` and ``demo`` run the checks
that matter to them when something is missing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent_node.config import NodeConfig

from .invoked import command_name

__all__ = [
    "Check",
    "check_certificates",
    "check_model",
    "check_port",
    "check_python",
    "check_store",
]

#: Seconds a model backend gets to answer.
PROBE_TIMEOUT = 3.0
#: A certificate expiring sooner than this is worth a warning.
EXPIRY_WARNING = dt.timedelta(days=14)
MIN_PYTHON = (3, 11)


@dataclass(frozen=True)
class Check:
    name: str
    status: Literal["ok", "warn", "fail"]
    #: What was found (ok), or what to do (warn, fail).
    line: str


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] >= MIN_PYTHON:
        return Check("python", "ok", f"Python {version}")
    wanted = ".".join(map(str, MIN_PYTHON))
    return Check("python", "fail", f"Python {version}: install Python {wanted} or newer")


def check_store(url: str) -> Check:
    """Whether the store at ``url`` opens (and, for SQLite, can be written)."""
    from agent_node.errors import AgentNodeError
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
        if path is not None and _writable(_nearest(path.parent)):
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


def check_certificates(config: NodeConfig) -> Check:
    """The node's certificate and key: present, valid now, issued by its trust
    bundle, and of the trust domain its peers and policy name."""
    from agent_node.security import certcheck

    if config.tls is None:
        return Check(
            "certificates",
            "warn",
            "no tls: section: the node serves plain HTTP only"
            " with --insecure-dev (see `certs init` / `init` for a dev CA)",
        )
    tls = config.tls
    found = certcheck.inspect(
        config.path(tls.cert), config.path(tls.key), config.trust_paths(), _domains(config)
    )
    fix = f"`{command_name()} certs issue NAME --force` issues a new one"
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


def check_model(model: str, api_base: str | None = None) -> Check:
    """Whether the model's backend answers: Ollama (and has the model), or an
    OpenAI-compatible ``api_base``; ``scripted/…`` needs none."""
    import httpx

    from agent_node.integrations.llm import DEFAULT_OLLAMA
    from agent_node.integrations.scripted import PREFIX

    if model.startswith(PREFIX):
        return Check("model", "ok", f"{model}: the offline scripted model, no backend needed")
    offline = "or answer without a model: --model scripted/echo (models.default: scripted/echo)"
    if model.startswith(("ollama_chat/", "ollama/")):
        base = (api_base or os.environ.get("OLLAMA_API_BASE") or DEFAULT_OLLAMA).rstrip("/")
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
                f"{model}: no Ollama answers at {base} ({why}): start it (`ollama serve`), set"
                f" models.api_base or $OLLAMA_API_BASE to where it runs, {offline}",
            )
        if name not in names and f"{name}:latest" not in names:
            pull = f"`ollama pull {name}`"
            return Check("model", "fail", f"{model}: Ollama at {base} does not have it: {pull}")
        return Check("model", "ok", f"{model} at Ollama {base}")
    if api_base is None:
        return Check("model", "warn", f"{model}: not checked (no models.api_base to ask)")
    try:
        with httpx.Client(timeout=PROBE_TIMEOUT, trust_env=False) as http:
            http.get(f"{api_base.rstrip('/')}/models")
    except httpx.HTTPError as exc:
        return Check("model", "fail", f"{model}: nothing answers at {api_base} ({exc}), {offline}")
    return Check("model", "ok", f"{model} at {api_base}")


def check_port(host: str, port: int) -> Check:
    """Whether ``host:port`` is free to listen on."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return Check(
                "port",
                "fail",
                f"{host}:{port} is taken ({exc.strerror or exc}): stop what listens there"
                " (the agent itself?) or pick another with --port",
            )
    return Check("port", "ok", f"{host}:{port} is free")
