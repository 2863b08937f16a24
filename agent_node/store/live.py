"""The live channel: the text a node is writing, to whoever watches its execution.

Chunks are not events. The durable log gets a node's result once, when the
node commits; while it runs (a model streaming its answer), what it writes
goes out here, best effort, in order, to the listeners of its execution —
an A2A stream of the task shows them as ``artifactUpdate`` chunks — and is
gone. A node visit that runs again (after a crash, or another attempt)
starts its text over.

Each :class:`Chunk` belongs to one *stream*, the text of one node visit
(:func:`stream_id`): the first chunk of a stream opens it (``append``
false), the next ones add to it, and the last says so (``last``).

The channel is in-process (memory and SQLite stores, whose executions run
in the process that serves them); PostgreSQL's also reaches the other
replicas of its database (:mod:`.pg_live`). Writing costs a dict lookup and a list
append a piece when nobody listens; a listener that subscribes while a
stream is being written first gets its text so far (one opening chunk).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Chunk", "Live", "LiveListener", "LiveWriter", "WatchListener", "stream_id"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of the text one node visit is writing."""

    execution_id: str
    #: The stream (one per node visit: :func:`stream_id`).
    stream: str
    #: The node writing it.
    node: str
    text: str
    #: False for the first chunk of a stream (or of a visit that started over).
    append: bool
    #: True for the stream's last chunk.
    last: bool


LiveListener = Callable[[Chunk], None]
#: Told ``(execution_id, True)`` when an execution gains its first listener
#: here, ``(execution_id, False)`` when it loses its last.
WatchListener = Callable[[str, bool], None]


def stream_id(execution_id: str, node: str, visit: int) -> str:
    """The stream of one node visit: the same for every attempt of it."""
    return f"{execution_id}-{node}-{visit}"


class Live:
    """The listeners of each execution's chunks, and the text of the streams
    being written now, in this process."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[LiveListener]] = {}
        #: execution → stream → (node, its pieces so far), while it is written.
        self._open: dict[str, dict[str, tuple[str, list[str]]]] = {}
        self._watchers: list[WatchListener] = []

    def on_watch(self, listener: WatchListener) -> Callable[[], None]:
        """Tell ``listener`` when an execution starts and stops being watched
        here (a delegation relays its peer's text only then); returns the
        unsubscribe."""
        self._watchers.append(listener)
        return lambda: self._watchers.remove(listener) if listener in self._watchers else None

    def watched(self, execution_id: str) -> bool:
        """Whether anyone here listens to ``execution_id``'s chunks."""
        return execution_id in self._listeners

    def subscribe(self, execution_id: str, listener: LiveListener) -> Callable[[], None]:
        """Call ``listener`` with every chunk of ``execution_id``, starting
        with the text so far of each stream being written (one opening
        chunk each); returns the unsubscribe."""
        first = execution_id not in self._listeners
        self._listeners.setdefault(execution_id, []).append(listener)
        if first:
            self._tell(execution_id, True)
        for stream, (node, pieces) in list(self._open.get(execution_id, {}).items()):
            listener(Chunk(execution_id, stream, node, "".join(pieces), False, False))

        def unsubscribe() -> None:
            listeners = self._listeners.get(execution_id)
            if listeners is not None and listener in listeners:
                listeners.remove(listener)
                if not listeners:
                    del self._listeners[execution_id]
                    self._tell(execution_id, False)

        return unsubscribe

    def _tell(self, execution_id: str, watched: bool) -> None:
        for watcher in list(self._watchers):
            try:
                watcher(execution_id, watched)
            except Exception:
                log.exception("a watch listener failed on %s", execution_id)

    def writing(self, execution_id: str) -> int:
        """How many streams of ``execution_id`` are being written now."""
        return len(self._open.get(execution_id, ()))

    def publish(self, chunk: Chunk, *, share: bool = True) -> None:
        """Send ``chunk`` to its execution's listeners; ``share`` false keeps
        it in this process (a relayed peer's text: every process that watches
        relays its own)."""
        streams = self._open.setdefault(chunk.execution_id, {})
        if chunk.last:
            streams.pop(chunk.stream, None)
        elif chunk.append and chunk.stream in streams:
            streams[chunk.stream][1].append(chunk.text)
        else:
            streams[chunk.stream] = (chunk.node, [chunk.text])
        if not streams:
            del self._open[chunk.execution_id]
        for listener in list(self._listeners.get(chunk.execution_id, ())):
            try:
                listener(chunk)
            except Exception:  # one listener's fault is not the writer's
                log.exception("a live listener of %s failed", chunk.execution_id)


class LiveWriter:
    """What one attempt of one node visit writes on the live channel: its
    text, piece by piece, then :meth:`end`."""

    def __init__(self, live: Live, execution_id: str, node: str, visit: int) -> None:
        self._live = live
        self.execution_id = execution_id
        self.node = node
        self.stream = stream_id(execution_id, node, visit)
        self._open = False

    def write(self, text: str) -> None:
        if not text:
            return
        self._send(text, last=False)
        self._open = True

    def restart(self) -> None:
        """Start the text over: the next piece opens the stream anew."""
        self._open = False

    def end(self) -> None:
        """Close the stream (when it was opened)."""
        if self._open:
            self._send("", last=True)
            self._open = False

    def _send(self, text: str, *, last: bool) -> None:
        chunk = Chunk(self.execution_id, self.stream, self.node, text, self._open, last)
        self._live.publish(chunk)
