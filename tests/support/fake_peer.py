"""A small in-memory A2A 1.0 JSON-RPC agent behind ``httpx.MockTransport``.

For tests that force interleavings or odd answers at exact places (no
network): the wire itself is proven against real peers in ``tests/e2e``.
The first text of a message picks what it does: ``ask`` asks one question
(INPUT_REQUIRED, status message ``q1``) and completes with ``hello
<answer>``; ``login`` does the same asking for authorization
(AUTH_REQUIRED, status message ``a1``); ``hang`` works until canceled;
anything else completes at once.
``answer`` (a callable) may replace the whole HTTP answer to a request. A
send repeated with the same ``messageId`` finds the task the first made;
``ListTasks`` finds tasks by the ``contextId`` their message named.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["PEER_URL", "FakePeer", "now"]

PEER_URL = "http://peer.test"


def now() -> str:
    """An RFC 3339 timestamp with nanoseconds (every call a later one)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}Z"


@dataclass
class FakePeer:
    """The agent (see the module doc); what it was asked is recorded."""

    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Each message's first text, in order (sends and follow-ups).
    messages: list[str] = field(default_factory=list)
    #: Follow-up texts (our caller's answers relayed).
    answers: list[str] = field(default_factory=list)
    canceled: list[str] = field(default_factory=list)
    #: Replaces the HTTP answer to a JSON-RPC request when it returns one.
    answer: Callable[[dict[str, Any]], httpx.Response | None] | None = None
    #: Task ids by the messageId that created them: a repeated send finds its
    #: task, as on a peer that deduplicates (ours does, by Idempotency-Key).
    created: dict[str, str] = field(default_factory=dict)
    #: What its card declares: ``streaming`` (``SubscribeToTask`` answers
    #: come from ``answer``, the SSE being the test's to shape).
    streaming: bool = False

    def card(self) -> dict[str, Any]:
        return {
            "name": "p",
            "description": "a fake peer",
            "version": "1",
            "supportedInterfaces": [
                {"url": f"{PEER_URL}/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
            ],
            "capabilities": {"streaming": self.streaming, "pushNotifications": False},
            "defaultInputModes": ["text/plain"],
            "defaultOutputModes": ["text/plain"],
            "skills": [{"id": "ask", "name": "ask", "description": "asks", "tags": ["ask"]}],
        }

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=self.card())
        body = json.loads(request.content)
        if self.answer is not None and (replaced := self.answer(body)) is not None:
            return replaced
        method, params = body["method"], body["params"]
        if method == "GetTask":
            result: dict[str, Any] = self.tasks[params["id"]]
        elif method == "CancelTask":
            task = self.tasks[params["id"]]
            self.canceled.append(params["id"])
            task["status"] = {"state": "TASK_STATE_CANCELED", "timestamp": now()}
            result = task
        elif method == "SendMessage":
            result = {"task": self._message(params["message"])}
        elif method == "ListTasks":
            found = [t for t in self.tasks.values() if t["contextId"] == params.get("contextId")]
            result = {"tasks": found, "nextPageToken": "", "pageSize": 10, "totalSize": len(found)}
        else:
            error = {"code": -32601, "message": f"no method {method}"}
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "error": error})
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": result})

    def _message(self, message: dict[str, Any]) -> dict[str, Any]:
        text = str(message["parts"][0].get("text", ""))
        self.messages.append(text)
        if message.get("taskId"):
            task = self.tasks[message["taskId"]]
            self.answers.append(text)
            task["status"] = {"state": "TASK_STATE_COMPLETED", "timestamp": now()}
            task["artifacts"] = [{"artifactId": "a", "parts": [{"text": "hello " + text}]}]
            return task
        if message["messageId"] in self.created:
            return self.tasks[self.created[message["messageId"]]]
        task_id = f"t{len(self.tasks) + 1}"
        self.created[message["messageId"]] = task_id
        if text == "ask":
            question = {"messageId": "q1", "role": "ROLE_AGENT", "parts": [{"text": "Name?"}]}
            status = {"state": "TASK_STATE_INPUT_REQUIRED", "message": question}
        elif text == "login":
            question = {"messageId": "a1", "role": "ROLE_AGENT", "parts": [{"text": "Sign in"}]}
            status = {"state": "TASK_STATE_AUTH_REQUIRED", "message": question}
        elif text == "hang":
            status = {"state": "TASK_STATE_WORKING"}
        else:
            status = {"state": "TASK_STATE_COMPLETED"}
        status["timestamp"] = now()
        task = {"id": task_id, "contextId": message.get("contextId") or "c", "status": status}
        if status["state"] == "TASK_STATE_COMPLETED":
            task["artifacts"] = [{"artifactId": "a", "parts": [{"text": "done: " + text}]}]
        self.tasks[task_id] = task
        return task
