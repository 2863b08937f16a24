"""A peer's streamed text, relayed to whoever watches the execution that delegated to it.

A delegate node parks while its peer works; when that peer streams (a model
writing its answer, or text it relays from its own peers), the caller of
our task should see it as it is written: A → B → C shows C's tokens to A's
subscriber. While an execution of ours is watched here (a listener on the
store's live channel, :mod:`agent_node.store.live`) every delegation of it
whose peer streams is followed (``SubscribeToTask``), and each
``artifactUpdate`` of text the peer sends becomes a chunk of ours:

* its stream is ``<our visit's stream>/<the peer's artifact id>``, so each
  artifact the peer writes stays one artifact here, and one hop's ids show
  the chain (``A-visit/B-visit/C-visit``);
* its name is the peer artifact's (the node that writes it, far down);
* ``append`` and ``lastChunk`` are the peer's; when the peer's stream ends,
  every artifact of it still open is closed with an empty last chunk;
* a whole artifact (``lastChunk`` without ``append``: a peer's committed
  result, as our own streams send theirs) is not relayed: it is the result
  the delegation gets, not text being written.

Relayed chunks stay in this process (``share=False``): every process that
watches the execution follows the peer itself, so no chunk arrives twice.
A follow stops when the peer's task is over or nobody here watches any
longer. A peer that neither streams nor is reachable is simply not relayed:
its result still reaches the delegation by push or poll, as always.

A delegation the watchdog already follows over SSE (a peer that streams but
does not push) is not followed twice: the watchdog hands its events here
(:meth:`ChunkRelay.relay`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Mapping
from typing import Any

from agent_node.a2a.peers.delegator import PeerDelegator
from agent_node.a2a.peers.peer_errors import PeerError
from agent_node.nodes.delegation import TERMINAL_STATES
from agent_node.runtime import Runtime
from agent_node.store.live import Chunk, stream_id
from agent_node.store.records import DelegationRecord

__all__ = ["ChunkRelay"]

log = logging.getLogger(__name__)

#: Row states whose peer task is there to follow.
_FOLLOWED = ("sent", "asked", "answered")
#: Characters of one peer artifact relayed at most: the live channel keeps a
#: stream's text for late joiners, and a peer must not grow that without end.
MAX_RELAYED = 4_000_000


class ChunkRelay:
    """Follows the streaming peers of watched executions (see the module doc)."""

    def __init__(self, runtime: Runtime, delegator: PeerDelegator, *, max_follow: int = 100):
        self.runtime = runtime
        self.delegator = delegator
        self.max_follow = max_follow
        #: Our follows, by delegation key.
        self._following: dict[str, asyncio.Task[None]] = {}
        self._rows: dict[str, DelegationRecord] = {}
        #: Each relayed delegation's artifacts still open, by delegation key.
        self._open: dict[str, dict[str, str]] = {}  # key → stream → name
        #: Characters relayed of each open stream, and the streams cut at the cap.
        self._sizes: dict[str, int] = {}
        self._cut: set[str] = set()
        self._jobs: set[asyncio.Task[None]] = set()
        self._unwatch: Any = None

    def start(self) -> None:
        if self._unwatch is None:
            self._unwatch = self.runtime.store.live.on_watch(self._watch_changed)

    async def close(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        pending = [*self._jobs, *self._following.values()]
        for job in pending:
            job.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    @property
    def following(self) -> int:
        return len(self._following)

    def follow(self, row: DelegationRecord) -> None:
        """Relay ``row``'s peer text when its execution is watched here and its
        peer task is known (the watchdog calls this once a send is accepted)."""
        if (
            row.key in self._following
            or not row.remote_task_id
            or row.state not in _FOLLOWED
            or not self.runtime.store.live.watched(row.execution_id)
            or len(self._following) >= self.max_follow
        ):
            return
        self._rows[row.key] = row
        task = asyncio.create_task(self._follow(row), name=f"relay {row.key}")
        self._following[row.key] = task

    def accepted(self, row: DelegationRecord) -> None:
        """The peer took ``row``'s task: relay its text if the execution is
        watched here (nothing is read when it is not)."""
        if self.runtime.store.live.watched(row.execution_id):
            self._spawn(self._reread(row))

    async def _reread(self, row: DelegationRecord) -> None:
        current = await self.runtime.store.delegation(row.execution_id, row.node, row.visit)
        if current is not None:
            self.follow(current)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        job = asyncio.get_running_loop().create_task(work)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    def relay(self, row: DelegationRecord, event: Mapping[str, Any]) -> None:
        """One event of ``row``'s peer stream that someone else follows (the
        watchdog): its text goes out here unless we follow the task ourselves."""
        if row.key not in self._following:
            self._chunk(row, event)

    def ended(self, row: DelegationRecord) -> None:
        """Someone else's follow of ``row`` ended: close what it left open."""
        if row.key not in self._following:
            self._close(row)

    # Watching

    def _watch_changed(self, execution_id: str, watched: bool) -> None:
        if watched:
            self._spawn(self._take_up(execution_id))
            return
        for key, row in list(self._rows.items()):
            if row.execution_id == execution_id and (task := self._following.get(key)):
                task.cancel()

    async def _take_up(self, execution_id: str) -> None:
        """An execution is watched now: relay each of its delegations."""
        try:
            rows = await self.runtime.store.delegations(execution_id)
        except Exception as exc:
            log.warning("cannot read the delegations of %s to relay: %s", execution_id, exc)
            return
        for row in rows:
            self.follow(row)

    # Following

    async def _follow(self, row: DelegationRecord) -> None:
        try:
            if not await self._streams(row.peer):
                return
            async for event in self.delegator.follow(row):
                self._chunk(row, event)
                if _over(event) or not self.runtime.store.live.watched(row.execution_id):
                    break
        except PeerError as exc:
            log.info("delegation %s: not relaying peer %r: %s", row.key, row.peer, exc)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("delegation %s: relaying its peer's text failed", row.key)
        finally:
            self._following.pop(row.key, None)
            self._rows.pop(row.key, None)
            self._close(row)

    async def _streams(self, peer: str) -> bool:
        if not self.delegator.directory.knows(peer):
            return False
        with contextlib.suppress(Exception):
            card = await self.delegator.directory.card(peer)
            return bool((card.card.get("capabilities") or {}).get("streaming"))
        return False

    def _chunk(self, row: DelegationRecord, event: Mapping[str, Any]) -> None:
        update = event.get("artifactUpdate")
        live = self.runtime.store.live
        if not isinstance(update, Mapping) or not live.watched(row.execution_id):
            return
        artifact = update.get("artifact")
        if not isinstance(artifact, Mapping) or not artifact.get("artifactId"):
            return
        texts = [
            part["text"]
            for part in artifact.get("parts") or ()
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        ]
        last = bool(update.get("lastChunk"))
        if not texts or (last and not update.get("append")):
            return  # a whole artifact: the peer's result, not text being written
        peer_id = str(artifact["artifactId"])
        stream = f"{stream_id(row.execution_id, row.node, row.visit)}/{peer_id}"
        name = str(artifact.get("name") or row.node)
        if update.get("append") and stream in self._cut:
            return  # cut at the cap: the rest comes with the peer's result
        self._cut.discard(stream)
        opened = self._open.setdefault(row.key, {})
        append = bool(update.get("append")) and stream in opened
        text = "".join(texts)
        size = self._sizes.get(stream, 0) + len(text) if append else len(text)
        if size > MAX_RELAYED:  # enough: the rest comes with the peer's result
            log.warning(
                "delegation %s: the peer's artifact %s is cut at %d characters",
                row.key,
                peer_id,
                MAX_RELAYED,
            )
            self._cut.add(stream)
            text, last = "", True
        if last:
            opened.pop(stream, None)
            self._sizes.pop(stream, None)
        else:
            opened[stream] = name
            self._sizes[stream] = size
        live.publish(Chunk(row.execution_id, stream, name, text, append, last), share=False)

    def _close(self, row: DelegationRecord) -> None:
        """Close the artifacts the peer left open (its stream ended)."""
        live = self.runtime.store.live
        for stream, name in self._open.pop(row.key, {}).items():
            self._sizes.pop(stream, None)
            live.publish(Chunk(row.execution_id, stream, name, "", True, True), share=False)
        prefix = stream_id(row.execution_id, row.node, row.visit) + "/"
        self._cut = {stream for stream in self._cut if not stream.startswith(prefix)}


def _over(event: Mapping[str, Any]) -> bool:
    """Whether ``event`` shows the peer's task over."""
    task = event.get("task")
    status = task.get("status") if isinstance(task, Mapping) else None
    update = event.get("statusUpdate")
    if isinstance(update, Mapping):
        status = update.get("status")
    return isinstance(status, Mapping) and status.get("state") in TERMINAL_STATES
