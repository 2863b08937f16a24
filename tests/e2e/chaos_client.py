"""The chaos run's client: it keeps N tasks in flight against node A.

Each task is sent with ``returnImmediately`` and an ``Idempotency-Key`` (so
a send repeated after a lost answer finds the task the first one made), then
polled with ``GetTask`` until it is terminal. Every call goes to a replica
of A picked at random, and is simply tried again — on another replica, if
there are several — when A is down, restarting or answers an error: a
client of a node that is being killed must retry, and its retries must not
make a second task.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from support.tls import caller_context

__all__ = ["Load", "TaskRun"]

V10 = {"A2A-Version": "1.0"}
TERMINAL = {"TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_CANCELED"}
TERMINAL |= {"TASK_STATE_REJECTED"}
POLL = 0.5
RETRY = 0.3


@dataclass
class TaskRun:
    """One task as its client saw it."""

    index: int
    name: str
    started: float
    task_id: str | None = None
    #: When the client saw it terminal (``time.monotonic()``).
    done: float | None = None
    state: str | None = None
    output: str | None = None
    #: Calls that failed and were tried again, and the last such failure.
    retries: int = 0
    error: str | None = None
    seen_missing: int = 0


class Load:
    """``in_flight`` clients, each sending a new task once its last one ended."""

    def __init__(self, urls: list[str], certs: Path, in_flight: int, seed: int) -> None:
        self.urls = urls
        self.certs = certs
        self.in_flight = in_flight
        self.tag = f"chaos{seed}"
        self.random = random.Random(seed + 1)
        self.runs: list[TaskRun] = []
        self.stop = asyncio.Event()
        self.started = time.monotonic()

    def in_progress(self) -> list[TaskRun]:
        return [run for run in self.runs if run.done is None]

    async def run(self) -> None:
        """Keep tasks in flight until :attr:`stop` is set, then see the last ones end."""
        limits = httpx.Limits(max_connections=4 * self.in_flight)
        context = caller_context(self.certs, "client")
        async with httpx.AsyncClient(verify=context, timeout=15, limits=limits) as http:
            await asyncio.gather(*(self._client(http) for _ in range(self.in_flight)))

    async def _client(self, http: httpx.AsyncClient) -> None:
        while not self.stop.is_set():
            index = len(self.runs)
            run = TaskRun(index, f"{self.tag}-{index:05d}", time.monotonic())
            self.runs.append(run)
            await self._drive(http, run)

    async def _drive(self, http: httpx.AsyncClient, run: TaskRun) -> None:
        message = {
            "messageId": f"{run.name}-m",
            "role": "ROLE_USER",
            "parts": [{"data": {"name": run.name}}],
            "metadata": {"skill": "chain"},
        }
        params = {"message": message, "configuration": {"returnImmediately": True}}
        sent = await self._call(http, run, "SendMessage", params, {"Idempotency-Key": run.name})
        run.task_id = str(sent["task"]["id"])
        task = sent["task"]
        while task["status"]["state"] not in TERMINAL:
            await asyncio.sleep(POLL)
            task = await self._call(http, run, "GetTask", {"id": run.task_id})
        run.done = time.monotonic()
        run.state = task["status"]["state"]
        run.output = _output(task)
        if run.state != "TASK_STATE_COMPLETED":
            run.error = str(task["status"].get("message") or "")

    async def _call(
        self,
        http: httpx.AsyncClient,
        run: TaskRun,
        method: str,
        params: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The result of ``method``, tried until some replica of A answers one."""
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        while True:
            url = self.random.choice(self.urls)
            try:
                answer = await http.post(
                    f"{url}/a2a", json=body, headers={**V10, **(headers or {})}
                )
                payload = answer.json()
            except (httpx.HTTPError, ValueError) as exc:
                run.retries += 1
                run.error = f"{method}: {type(exc).__name__}: {exc}"
            else:
                if "result" in payload:
                    result: dict[str, Any] = payload["result"]
                    return result
                run.retries += 1
                run.error = f"{method}: HTTP {answer.status_code}: {payload.get('error')}"
                if method == "GetTask" and "not found" in str(payload.get("error")).lower():
                    run.seen_missing += 1  # A said it had never heard of the task
            await asyncio.sleep(RETRY)


def _output(task: dict[str, Any]) -> str | None:
    try:
        value = task["artifacts"][0]["parts"][0]["data"]["echo"]
    except (KeyError, IndexError, TypeError):
        return None
    return value if isinstance(value, str) else None
