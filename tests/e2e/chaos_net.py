"""The chaos network: A → B → C as real ``agent-node serve`` processes over
mutual TLS, each of which can be SIGKILLed and started again as it was.

A (one process, or several replicas of one node on one PostgreSQL database)
delegates each task to B, B to C; C answers with a transform of the name
after a durable one-second timer, so tasks are in flight at any moment. Each
hop wraps the answer it got, so a task's output proves the whole chain ran
on *its* input: ``a[b[c:<name reversed>]]``.

Replicas of A sit behind a small TCP front (:class:`Front`, TLS passes
through it untouched), which is A's ``public_url``: B pushes there and
reaches whichever replica is up, as it would behind a load balancer.
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from e2e.procs import CLI, Child, child_env
from support.certs import make_certs
from support.front import Front
from support.ports import free_port

__all__ = ["ChaosNet", "Front", "expected_output"]

D = "spiffe://example.org/agent"

STEPS = '''\
"""Steps of the chaos workflows: deterministic, so any re-run agrees."""

import asyncio


async def c_work(state):
    await asyncio.sleep(0.1)  # a kill can land inside a step
    return {"echo": "c:" + state.name[::-1]}


async def b_wrap(state):
    return {"echo": "b[" + state.reply + "]"}


async def a_wrap(state):
    return {"echo": "a[" + state.reply + "]"}
'''

SCHEMA = """\
  state_schema:
    type: object
    properties:
      name: {type: string}
      reply: {type: string, default: ""}
      answer: {type: object}
      echo: {type: string, default: ""}
    required: [name]
"""

C_FLOW = f"""\
workflow:
  id: chaos-c
  version: "1"
  start: work
{SCHEMA}nodes:
  work: {{type: python, function: "chaos_steps:c_work", next: pause}}
  pause: {{type: wait, duration: 1s, next: done}}
  done: {{type: end, output: [echo]}}
"""

RELAY_FLOW = """\
workflow:
  id: chaos-{me}
  version: "1"
  start: ask
{schema}nodes:
  ask:
    type: delegate
    peer: {peer}
    skill: {skill}
    data: [name]
    output: answer
    fields: {{reply: data.echo}}
    poll: 1
    next: wrap
  wrap: {{type: python, function: "chaos_steps:{me}_wrap", next: done}}
  done: {{type: end, output: [echo]}}
"""


def expected_output(name: str) -> str:
    """What A answers for ``name`` when every hop did its part once."""
    return f"a[b[c:{name[::-1]}]]"


@dataclass
class Node:
    """One process slot: a node (or a replica) with its port and config."""

    name: str
    identity: str
    config: Path
    port: int
    child: Child | None = None
    generation: int = 0
    kills: int = 0
    #: Exits we did not cause (a crash of the node itself), with their logs.
    crashes: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


class ChaosNet:
    """The processes of one chaos run, in ``root``."""

    def __init__(self, root: Path, a_store: str, replicas: int) -> None:
        self.root = root
        self.certs = make_certs(root / "certs", "a", "b", "c", "client")
        (root / "chaos_steps.py").write_text(STEPS)
        self.stores = {
            "a": a_store,
            "b": f"sqlite:///{root}/b.db",
            "c": f"sqlite:///{root}/c.db",
        }
        self.env = child_env(root / "effects.db", 0.0)
        self.front: Front | None = None
        ports = {name: free_port() for name in ("b", "c")}
        a_names = ["a"] if replicas == 1 else [f"a{i}" for i in range(1, replicas + 1)]
        a_ports = [free_port() for _ in a_names]
        public = ""
        if replicas > 1:
            self.front = Front([("127.0.0.1", port) for port in a_ports])
            public = f"public_url: https://127.0.0.1:{self.front.port}\n"
        self.nodes: dict[str, Node] = {}
        c_flow = self._write("c-flow.yaml", C_FLOW)
        self._add("c", "c", ports["c"], {"echo": c_flow}, [])
        b_flow = self._write("b-flow.yaml", _relay("b", "c", "echo"))
        self._add("b", "b", ports["b"], {"relay": b_flow}, [("c", ports["c"])])
        a_flow = self._write("a-flow.yaml", _relay("a", "b", "relay"))
        for name, port in zip(a_names, a_ports, strict=True):
            self._add(name, "a", port, {"chain": a_flow}, [("b", ports["b"])], public)

    @property
    def a_urls(self) -> list[str]:
        return [node.url for node in self.nodes.values() if node.identity == "a"]

    def _write(self, file: str, text: str) -> Path:
        path = self.root / file
        path.write_text(text)
        return path

    def _add(
        self,
        name: str,
        identity: str,
        port: int,
        skills: dict[str, Path],
        peers: list[tuple[str, int]],
        extra: str = "",
    ) -> None:
        lines = [
            f"name: {identity}",
            f"listen: {{host: 127.0.0.1, port: {port}}}",
            f"store: {self.stores[identity]}",
            "push: {allow: [127.0.0.0/8]}",
            "skills:",
            *[f"  - {{id: {skill}, workflow: '{flow}'}}" for skill, flow in skills.items()],
        ]
        if peers:
            lines.append("peers:")
            lines += [
                f"  - {{name: {p}, url: 'https://127.0.0.1:{pp}', identity: '{D}/{p}'}}"
                for p, pp in peers
            ]
        config = self._write(f"{name}.yaml", "\n".join(lines) + "\n" + extra)
        self.nodes[name] = Node(name, identity, config, port)

    # -- processes ------------------------------------------------------------------

    def launch(self, name: str) -> Child:
        """Start ``name``'s next generation (its log: ``<name>.<generation>.out``)."""
        node = self.nodes[name]
        node.generation += 1
        args = [*CLI, "serve", "--config", str(node.config), "--cert-dir", str(self.certs)]
        node.child = Child(
            f"{name}.{node.generation}", [*args, "--identity", node.identity], self.env, self.root
        )
        return node.child

    def listening(self, name: str) -> bool:
        child = self.nodes[name].child
        return child is not None and "listening on" in child.out()

    async def start_all(self, timeout: float = 120) -> None:
        if self.front is not None:
            await self.front.start()
        for name in reversed(list(self.nodes)):  # c first: nothing waits on a peer
            self.launch(name)
        deadline = time.monotonic() + timeout
        while not all(self.listening(name) for name in self.nodes):
            for name, node in self.nodes.items():
                if node.child is not None and node.child.proc.poll() is not None:
                    raise RuntimeError(f"{name} did not start: {node.child.describe()}")
            if time.monotonic() > deadline:
                raise TimeoutError("the nodes did not all start")
            await asyncio.sleep(0.1)

    async def kill_and_restart(self, name: str) -> None:
        """SIGKILL ``name`` (whatever it is doing, starting included) and start it again."""
        node = self.nodes[name]
        child, node.child = node.child, None  # not a crash: see restart_crashed
        if child is not None and child.proc.poll() is None:
            child.send(signal.SIGKILL)
            node.kills += 1
            await _reaped(child)
        elif child is not None:  # it had died on its own
            node.crashes.append(child.describe()[-4000:])
        self.launch(name)

    def restart_crashed(self) -> list[str]:
        """Start again the nodes that exited without being killed; their names."""
        crashed = []
        for name, node in self.nodes.items():
            child = node.child
            if child is not None and child.proc.poll() is not None:
                node.crashes.append(child.describe()[-4000:])
                crashed.append(name)
                self.launch(name)
        return crashed

    async def stop_all(self) -> None:
        for node in self.nodes.values():
            if node.child is not None:
                node.child.reap()
        if self.front is not None:
            await self.front.close()


def _relay(me: str, peer: str, skill: str) -> str:
    return RELAY_FLOW.format(me=me, peer=peer, skill=skill, schema=SCHEMA)


async def _reaped(child: Child) -> None:
    while child.proc.poll() is None:
        await asyncio.sleep(0.01)
