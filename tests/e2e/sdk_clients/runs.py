"""Run an a2a-sdk client driver five times against one node and read its reports.

The node is ``agent-node serve`` with the greeter example over mutual TLS
(certificates from ``make_certs``: the node is ``greeter``, the driver
presents ``alice``'s, its webhook serves ``hook``'s). Each round is a fresh
driver process; every test asserts on all five reports (no flake allowed).

The reports of both generations are read through :class:`Runs`, which also
knows both spellings of states (``TASK_STATE_COMPLETED``, ``completed``) and
of stream events (``{"statusUpdate": …}``, ``{"kind": "status-update", …}``).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from e2e.procs import rounds
from support.certs import make_certs
from support.nodes import serving_mtls

from agent_node.security.api_keys import add_key

ROUNDS = rounds()
DRIVERS = Path(__file__).resolve().parent
ALICE = "spiffe://example.org/agent/alice"
GREETER = "spiffe://example.org/agent/greeter"
BOOKED = "Booked Lisbon for early May."
QUESTION = "When do you want to go to Lisbon?"

#: A 1.0 stream event's key, as the 0.3 ``kind``.
_KINDS = {"task": "task", "statusUpdate": "status-update", "artifactUpdate": "artifact-update"}
#: States in the order a task may move through them.
_ORDER = {"submitted": 0, "working": 1, "input-required": 1, "auth-required": 1}


@dataclass(frozen=True)
class Runs:
    url: str
    reports: list[dict[str, Any]]
    #: The protocol version the driver was told to speak, if it was.
    dialect: str | None = None

    def each(self, key: str) -> Iterator[Any]:
        """Each round's report for ``key``; a step that raised fails the test here."""
        for number, report in enumerate(self.reports, 1):
            found = report[key]
            assert not (isinstance(found, dict) and "error" in found), (number, key, found)
            yield found

    def failures(self, key: str) -> Iterator[dict[str, Any]]:
        """Each round's error for ``key`` (a step expected to raise)."""
        for number, report in enumerate(self.reports, 1):
            found = report[key]
            assert isinstance(found, dict) and "error" in found, (number, key, found)
            yield found["error"]


def run(
    python: Path,
    driver: str,
    folder: Path,
    dialect: str | None = None,
    book_card: str = "public",
    auth: str | None = None,
    rounds: int = ROUNDS,
) -> Runs:
    """Serve the greeter from ``folder`` and run ``DRIVERS/driver`` with ``python``
    against it :data:`ROUNDS` times (told to speak ``dialect``, if given);
    ``book_card``: ``extended`` shows the book skill only in the extended card;
    ``auth`` (``bearer``, ``api-key``): the driver presents no certificate but
    a bearer JWT or an API key naming alice, which the node is configured to take.
    ``rounds``: how many driver runs (CI's time: the credentials' variants run
    once, the operations' repetition being the other variants' to prove)."""
    certs = make_certs(folder / "certs", "greeter", "alice", "hook")
    (folder / "node").mkdir()
    argv = [str(python), str(DRIVERS / driver), "--certs", str(certs)]
    argv += ["--name", "alice", "--hook", "hook"]
    argv += ["--dialect", dialect] if dialect else []
    extra = ""
    if auth is not None:
        extra, header = credentials_for_alice(folder / "node", auth)
        argv += ["--header", header]
    # The driver's venv has its own packages: none of ours may leak in.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    reports = []
    with serving_mtls(
        folder / "node", certs, extra, grpc=dialect == "grpc", book_card=book_card
    ) as url:
        for number in range(1, rounds + 1):
            done = subprocess.run(
                [*argv, "--url", url], capture_output=True, text=True, timeout=150, env=env
            )
            assert done.returncode == 0, f"round {number}: exit {done.returncode}\n{done.stderr}"
            reports.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return Runs(url, reports, dialect)


def credentials_for_alice(folder: Path, auth: str) -> tuple[str, str]:
    """The node's ``auth:`` (YAML) taking alice by ``auth``, and the header
    (``NAME=VALUE``) she presents."""
    if auth == "api-key":
        keys = folder / "api-keys.yaml"
        key = add_key(keys, "alice", ALICE)
        return f"auth: {{api_keys: {{file: '{keys}'}}}}\n", f"X-API-Key={key}"
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwks = folder / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1"}]}))
    now = time.time()
    claims = {"iss": "https://issuer.test", "aud": "greeter", "sub": ALICE, "exp": now + 3600}
    token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"})
    config = (
        "auth: {jwt: {issuer: 'https://issuer.test', audience: greeter,"
        f" jwks_file: '{jwks}', algorithms: [ES256]}}}}\n"
    )
    return config, f"Authorization=Bearer {token}"


def state(task: dict[str, Any]) -> str:
    """A task's (or status update's) state in 0.3 spelling, whichever generation."""
    raw = str(task["status"]["state"])
    return raw.removeprefix("TASK_STATE_").lower().replace("_", "-")


def event(found: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A stream event as (0.3 kind, object), whichever generation."""
    if "kind" in found:
        return str(found["kind"]), found
    ((key, body),) = found.items()
    return _KINDS[key], body


def texts(task: dict[str, Any]) -> list[str]:
    return [p["text"] for a in task.get("artifacts", []) for p in a["parts"] if "text" in p]


def data(task: dict[str, Any]) -> list[Any]:
    return [p["data"] for a in task.get("artifacts", []) for p in a["parts"] if "data" in p]


def check_stream(
    events: list[dict[str, Any]], *, first: set[str], last: str
) -> list[dict[str, Any]]:
    """A stream of one task: a task first (in one of the states ``first``), then
    updates of that task whose states never go back, the last a status update
    in state ``last``, the only one in it. Its artifact updates' artifacts.

    A brief WORKING may be seen late or not at all (the node renders the task
    when its store wakes it), so only the order is checked, not each step."""
    kinds = [event(e) for e in events]
    (kind, task) = kinds[0]
    assert kind == "task" and state(task) in first, kinds[0]
    assert all(body["taskId"] == task["id"] for _, body in kinds[1:]), kinds
    assert kinds[-1][0] == "status-update", kinds[-1]
    states = [state(body) for kind, body in kinds if kind != "artifact-update"]
    ranks = [_ORDER.get(s, 2) for s in states]
    assert ranks == sorted(ranks), states
    assert states[-1] == last and states.count(last) == 1, states
    return [body["artifact"] for kind, body in kinds if kind == "artifact-update"]


def check_pushes(pushes: list[dict[str, Any]], task_id: str, *, unwrap: bool) -> None:
    """Pushes a driver's webhook received for ``task_id``: to its path with the
    config's credentials and token, from the node's certificate, the task
    completed last. ``unwrap``: the bodies are 1.0 StreamResponses
    (``{"task": …}``), else 0.3 tasks."""
    assert pushes
    assert {p["path"] for p in pushes} == {"/py-hook"}
    assert {p["headers"]["authorization"] for p in pushes} == {"Bearer py-cred"}
    assert {p["headers"]["x-a2a-notification-token"] for p in pushes} == {"py-token"}
    assert all(f"URI:{GREETER}" in p["caller"] for p in pushes)
    bodies = [p["body"]["task"] if unwrap else p["body"] for p in pushes]
    assert {b["id"] for b in bodies} == {task_id}
    assert state(bodies[-1]) == "completed" and texts(bodies[-1]) == [BOOKED]
