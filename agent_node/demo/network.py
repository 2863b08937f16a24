"""The demo's three agents: their files, and their processes.

:class:`Network` prepares a home directory (default ``.agent-node/demo``)::

    certs/            a dev CA made on first use; a certificate per agent, and
                      one for the demo's own client ("user", an operator)
    coordinator.yaml  each agent's configuration: the example's
    researcher.yaml   (examples/network/*.yaml) with this run's ports, stores,
    writer.yaml       certificates and model written in
    *.db              each agent's own SQLite store
    logs/*.log        each agent's output
    demo.json         the last question asked, and its task

and starts each agent as its own ``agent-node serve`` process. The
configurations it writes are complete: the same agents run by hand with
``agent-node serve --config <home>/coordinator.yaml``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agent_node.errors import UsageError
from agent_node.security import pki

__all__ = ["AGENTS", "USER", "Agent", "Network", "find_network"]

AGENTS = ("coordinator", "researcher", "writer")
#: The demo's own identity: it asks the question and watches through /ops.
USER = "user"
TRUST_DOMAIN = "example.org"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
#: Seconds a demo agent's running steps may finish when it stops (a node's
#: default is 10, which with its requests' 5 s would outlast STOP_TIMEOUT).
DEMO_STOP_GRACE = 3.0


def find_network(given: Path | None) -> Path:
    """The folder holding the network's example files (``examples/network``)."""
    candidates = [given] if given else [Path.cwd() / "examples" / "network"]
    if not given:
        candidates.append(Path(__file__).resolve().parents[2] / "examples" / "network")
    for folder in candidates:
        if folder is not None and (folder / "coordinator.yaml").is_file():
            return folder
    raise UsageError(
        "the demo's files (examples/network/) are not here: run it from a checkout of"
        " agent-node, or give --network DIR"
    )


@dataclass
class Agent:
    name: str
    port: int
    config: Path
    log: Path
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def store(self) -> str:
        return f"sqlite:///{self.config.parent / (self.name + '.db')}"


class Network:
    def __init__(
        self, home: Path, source: Path, *, model: str, port: int, api_base: str | None = None
    ) -> None:
        self.home = home.resolve()
        self.source = source.resolve()
        self.model = model
        self.api_base = api_base
        self.certs = self.home / "certs"
        self.agents = {
            name: Agent(
                name, port + i, self.home / f"{name}.yaml", self.home / "logs" / f"{name}.log"
            )
            for i, name in enumerate(AGENTS)
        }

    # -- files ---------------------------------------------------------------

    def prepare(self, *, fresh: bool) -> None:
        """Make the certificates (once) and write the configurations; ``fresh``
        first removes the stores and the last question."""
        self.home.mkdir(parents=True, exist_ok=True)
        if fresh:
            for leftover in [*self.home.glob("*.db*"), self.home / "demo.json"]:
                leftover.unlink(missing_ok=True)
        (self.home / "logs").mkdir(exist_ok=True)
        if not (self.certs / pki.CA_CERT).exists():
            pki.init_ca(self.certs, trust_domain=TRUST_DOMAIN)
        for name in (*AGENTS, USER):
            if not (self.certs / f"{name}.pem").exists():
                pki.issue(self.certs, name)
        for agent in self.agents.values():
            agent.config.write_text(self._config(agent), encoding="utf-8")

    def _config(self, agent: Agent) -> str:
        raw: dict[str, Any] = yaml.safe_load((self.source / f"{agent.name}.yaml").read_text())
        raw["listen"] = {"host": "127.0.0.1", "port": agent.port}
        # Its card names the origin its peers are configured with (peers call
        # only that origin).
        raw["public_url"] = agent.url
        raw["store"] = agent.store
        raw["card"] = str((self.source / raw["card"]).resolve())
        for skill in raw.get("skills", []):
            skill["workflow"] = str((self.source / skill["workflow"]).resolve())
        raw["tls"] = {
            "cert": str(self.certs / f"{agent.name}.pem"),
            "key": str(self.certs / f"{agent.name}-key.pem"),
            "trust": [str(self.certs / pki.CA_CERT)],
        }
        for peer in raw.get("peers", []):
            peer["url"] = self.agents[peer["name"]].url
        # Ctrl-C on the demo stops its agents within STOP_TIMEOUT: a model
        # call under way gets a short grace, then runs again at the next start.
        raw.setdefault("stop_grace_seconds", DEMO_STOP_GRACE)
        raw.setdefault("models", {})["default"] = self.model
        if self.api_base is not None:
            raw["models"]["api_base"] = self.api_base
        header = (
            f"# Written by `agent-node demo` from {self.source / agent.name}.yaml.\n"
            f"# Run it by hand: agent-node serve --config {agent.config}\n"
        )
        return header + yaml.safe_dump(raw, sort_keys=False)

    @property
    def last_run(self) -> dict[str, Any] | None:
        """What ``demo.json`` says of the last question (None: none asked yet)."""
        path = self.home / "demo.json"
        with contextlib.suppress(OSError, ValueError):
            found = json.loads(path.read_text())
            return found if isinstance(found, dict) else None
        return None

    def remember(self, question: str, task_id: str) -> None:
        (self.home / "demo.json").write_text(json.dumps({"question": question, "task": task_id}))

    def user_files(self) -> tuple[Path, Path, Path]:
        """The demo client's certificate, key and the CA."""
        c = self.certs
        return c / f"{USER}.pem", c / f"{USER}-key.pem", c / pki.CA_CERT

    # -- processes -------------------------------------------------------------

    def check_ports(self) -> None:
        for agent in self.agents.values():
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("127.0.0.1", agent.port))
                except OSError:
                    raise UsageError(
                        f"port {agent.port} ({agent.name}) is in use — another demo running?"
                        " Stop it, or give --port (the coordinator's; the others follow)"
                    ) from None

    def has_tasks(self) -> bool:
        """Whether the coordinator's store exists (it may hold tasks to resume)."""
        return (self.home / f"{AGENTS[0]}.db").exists()

    async def start(self, env: dict[str, str], *, peers_first: bool = False) -> None:
        """Start the three agents and wait until each listens; ``peers_first``:
        the coordinator only once the others listen (it has tasks to resume)."""
        coordinator, *peers = self.agents.values()
        if peers_first:
            await asyncio.gather(*(self._start(agent, env) for agent in peers))
            await self._start(coordinator, env)
        else:
            await asyncio.gather(*(self._start(agent, env) for agent in self.agents.values()))

    async def _start(self, agent: Agent, env: dict[str, str]) -> None:
        serve = [sys.executable, "-m", "agent_node.cli.main", "serve"]
        command = [*serve, "--config", str(agent.config), "--parent-pid", str(os.getpid())]
        with agent.log.open("ab") as log:
            log.write(f"--- agent-node demo starts {agent.name} ---\n".encode())
            log.flush()
            agent.process = await asyncio.create_subprocess_exec(
                *command,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env={**os.environ, **env},
                cwd=self.home,
                # Ctrl-C reaches the demo, which stops them in order; if the demo
                # is killed outright, each agent sees its parent gone and stops.
                start_new_session=True,
            )
        stdout = agent.process.stdout
        if stdout is None:
            raise UsageError(f"{agent.name}: no output pipe")
        try:
            async with asyncio.timeout(START_TIMEOUT):
                while b"listening on" not in (line := await stdout.readline()):
                    if not line:
                        break
        except TimeoutError:
            line = b""
        if b"listening on" not in line:
            tail = agent.log.read_text(errors="replace").strip().splitlines()[-8:]
            raise UsageError(f"{agent.name} did not start:\n" + "\n".join(tail))
        asyncio.get_running_loop().create_task(_drain(stdout))

    def casualties(self) -> str:
        """Which agents have exited, and where their logs are (for an error)."""
        gone = [
            f"{a.name} exited ({a.process.returncode}), its log: {a.log}"
            for a in self.agents.values()
            if a.process is not None and a.process.returncode is not None
        ]
        return "; ".join(gone) or f"all three are running; their logs: {self.home / 'logs'}"

    async def stop(self) -> None:
        """SIGTERM each agent, then SIGKILL what has not stopped in time."""
        running = [
            a.process for a in self.agents.values() if a.process and a.process.returncode is None
        ]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()


async def _drain(stream: asyncio.StreamReader) -> None:
    """Keep reading an agent's stdout, so its pipe never fills."""
    while await stream.readline():
        pass
