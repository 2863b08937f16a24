"""The scenario contract of :mod:`e2e.foreign`, as the a2a-sdk peers serve it.

``sdk_peer_server.py`` (a2a-sdk 1.x) and ``sdk03_peer_server.py`` (0.3.x)
run in virtual environments of their own, so, like ``peer_common.py``, this
module is imported from their folder and uses the standard library only.
The scenarios are written once against an :class:`Outlet`; both SDKs'
``TaskUpdater`` publish them (:class:`UpdaterOutlet`), told apart by a
:class:`Dialect` each server gives: the Python twin of
``tests/e2e/js/common.mjs``.

Cancellation: both SDKs call the executor's ``cancel`` and cancel the
asyncio task running ``execute``; :meth:`Scenarios.cancel` also marks the
task stopped, so a turn that wakes regardless publishes nothing more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from peer_common import Log

#: The skill's description on the peers' cards.
SCENARIOS = "complete, slow <ms>, ask, ask2, stream, hang, fail (tests/e2e/foreign)"
QUESTIONS = ("What is your name?", "What is your quest?")
#: How many answers each asking scenario takes.
TURNS = {"ask": 1, "ask2": 2}
#: The stream scenario's chunks: (text, append, last chunk).
CHUNKS = (("chunk-1 ", False, False), ("chunk-2 ", True, False), ("chunk-3", True, True))
#: The states that end a turn (0.3's ``final`` status updates).
FINAL = frozenset({"input-required", "completed", "failed", "canceled"})


class Outlet(Protocol):
    """What a turn publishes, in its SDK's own events."""

    async def begin(self, created: bool) -> None:
        """The turn's first event: the new task (WORKING), else a WORKING status."""

    async def status(self, state: str, text: str | None = None) -> None:
        """A status update (``state`` in 0.3 spelling: ``input-required``…), with
        an agent message saying ``text`` when given."""

    async def artifact(self, artifact_id: str, text: str, *, append: bool, last: bool) -> None:
        """An artifact update of one text part; the artifact's name is its id."""


@dataclass(frozen=True)
class Turn:
    """One message an executor was handed, and the request that carried it."""

    task_id: str
    message_id: str
    text: str
    state: Mapping[str, Any]  # the SDK's call-context state: "method", "headers"

    def logged(self) -> dict[str, Any]:
        """The contract's ``request`` log entry."""
        headers = self.state.get("headers") or {}
        return {
            "event": "request",
            "method": self.state.get("method"),
            "task_id": self.task_id,
            "message_id": self.message_id,
            "idempotency_key": headers.get("idempotency-key"),
            "text": self.text,
        }


@dataclass
class _Task:
    text: str
    answers: list[str] = field(default_factory=list)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def word(self) -> str:
        return (self.text.split() or [""])[0]


class Scenarios:
    """The contract's scenarios, one turn at a time (see :mod:`e2e.foreign`)."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.tasks: dict[str, _Task] = {}

    async def turn(self, turn: Turn, out: Outlet) -> None:
        """Serve one execution: a new task, its first word picking the scenario,
        or a follow-up message on one."""
        self.log.write(**turn.logged())
        task = self.tasks.get(turn.task_id)
        if task is None:
            task = self.tasks[turn.task_id] = _Task(turn.text)
            self.log.write(event="task_created", task_id=turn.task_id, message_id=turn.message_id)
            await out.begin(created=True)
            await self._started(task, out)
        else:
            await out.begin(created=False)
            await self._answered(task, turn.text, out)

    async def cancel(self, task_id: str, out: Outlet) -> None:
        """End the task CANCELED; a turn still running publishes nothing more."""
        task = self.tasks.get(task_id)
        if task is not None:
            task.stopped.set()
        await out.status("canceled", "canceled on request")

    async def _started(self, task: _Task, out: Outlet) -> None:
        word = task.word
        if word in TURNS:
            await out.status("input-required", QUESTIONS[0])
        elif word == "fail":
            await out.status("failed", "failed on purpose")
        elif word == "hang":
            await task.stopped.wait()
        elif word == "stream":
            await self._streamed(task, out)
        else:  # complete, slow <ms>, or anything else: completed with the result
            if word == "slow" and await _interrupted(task, _slowness(task.text)):
                return
            await out.artifact("result", f"done: {task.text}", append=False, last=True)
            await out.status("completed")

    async def _answered(self, task: _Task, text: str, out: Outlet) -> None:
        turns = TURNS.get(task.word, 0)
        if len(task.answers) >= turns:
            await out.status("completed")
            return
        task.answers.append(text)
        if len(task.answers) < turns:
            await out.status("input-required", QUESTIONS[len(task.answers)])
            return
        await out.artifact("result", "hello " + " / ".join(task.answers), append=False, last=True)
        await out.status("completed")

    async def _streamed(self, task: _Task, out: Outlet) -> None:
        for text, append, last in CHUNKS:
            if await _interrupted(task, 0.1):
                return
            await out.artifact("stream", text, append=append, last=last)
        await out.status("completed")


def _slowness(text: str) -> float:
    """``slow <ms>``'s wait in seconds (a second when no number follows)."""
    words = text.split()
    return float(words[1]) / 1000 if len(words) > 1 else 1.0


async def _interrupted(task: _Task, seconds: float) -> bool:
    """Sleep ``seconds``; whether the task was canceled meanwhile."""
    try:
        await asyncio.wait_for(task.stopped.wait(), seconds)
    except TimeoutError:
        return False
    return True


@dataclass(frozen=True)
class Dialect:
    """What an SDK generation spells its own way."""

    updater: Callable[[Any, str, str], Any]  # TaskUpdater(queue, task id, context id)
    state: Callable[[str], Any]  # "input-required" … -> its TaskState
    text_part: Callable[[str], Any]  # a Part of one text
    texts: Callable[[Any], list[str]]  # a message's text parts
    new_task: Callable[[Any], Any]  # the WORKING Task a request context begins
    final: bool  # whether status updates carry 0.3's ``final``


class UpdaterOutlet:
    """An :class:`Outlet` publishing through the SDK's ``TaskUpdater``."""

    def __init__(self, dialect: Dialect, queue: Any, context: Any) -> None:
        if context.task_id is None or context.context_id is None:
            raise ValueError("a request without a task")
        self.dialect, self.queue, self.context = dialect, queue, context
        # a follow-up without a contextId gets a fresh one from the SDK: the task's counts
        task = context.current_task
        context_id = task.context_id if task is not None else context.context_id
        self.updater = dialect.updater(queue, context.task_id, context_id)

    async def begin(self, created: bool) -> None:
        if created:
            await self.queue.enqueue_event(self.dialect.new_task(self.context))
        else:
            await self.updater.start_work()

    async def status(self, state: str, text: str | None = None) -> None:
        part = self.dialect.text_part
        said = None if text is None else self.updater.new_agent_message([part(text)])
        final = {"final": state in FINAL} if self.dialect.final else {}
        await self.updater.update_status(self.dialect.state(state), said, **final)

    async def artifact(self, artifact_id: str, text: str, *, append: bool, last: bool) -> None:
        parts = [self.dialect.text_part(text)]
        await self.updater.add_artifact(
            parts, artifact_id, artifact_id, append=append, last_chunk=last
        )


class ServesScenarios:
    """Mixed in before the SDK's ``AgentExecutor``: a message with a text part
    plays a scenario; one without goes to ``otherwise`` (the judge)."""

    def __init__(
        self, log: Log, dialect: Dialect, otherwise: Callable[[Any, Any], Awaitable[None]]
    ) -> None:
        self.scenarios = Scenarios(log)
        self.dialect = dialect
        self.otherwise = otherwise

    async def execute(self, context: Any, event_queue: Any) -> None:
        message = context.message
        texts = self.dialect.texts(message) if message is not None else []
        if not texts:
            await self.otherwise(context, event_queue)
            return
        call = context.call_context
        state = call.state if call is not None else {}
        turn = Turn(context.task_id, message.message_id, texts[0], state)
        await self.scenarios.turn(turn, UpdaterOutlet(self.dialect, event_queue, context))

    async def cancel(self, context: Any, event_queue: Any) -> None:
        outlet = UpdaterOutlet(self.dialect, event_queue, context)
        await self.scenarios.cancel(context.task_id, outlet)


class LogsCancels:
    """Mixed in before the SDK's request handler: each task it cancels is
    logged (the contract's ``canceled`` entry) once the SDK has canceled it."""

    def __init__(self, log: Log, **handler: Any) -> None:
        self.log = log
        super().__init__(**handler)

    async def on_cancel_task(self, params: Any, context: Any = None) -> Any:
        task = await super().on_cancel_task(params, context)  # type: ignore[misc]
        if task is not None:
            self.log.write(event="canceled", task_id=task.id)
        return task
