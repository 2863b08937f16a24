"""A TCP front: each connection goes to the next backend that accepts it
(round robin), bytes copied both ways, so TLS is end to end through it. It
stands for a load balancer before replicas, or for another origin that
reaches the same server."""

from __future__ import annotations

import asyncio
import contextlib

from support.ports import free_port

__all__ = ["Front"]


class Front:
    """A TCP front for replicas: each connection goes to the next replica that
    accepts it (round robin), bytes copied both ways; TLS is end to end."""

    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.backends = backends
        self.port = free_port()
        self._next = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        #: Both ends of every connection it carries, closed with it.
        self._writers: set[asyncio.StreamWriter] = set()
        self._open = False

    async def start(self) -> None:
        self._open = True
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def close(self) -> None:
        """Stop accepting and cut every connection (a real outage to both sides)."""
        self._open = False
        if self._server is not None:
            self._server.close()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        upstream = await self._connect() if self._open else None
        if upstream is not None and not self._open:  # closed while it connected
            upstream[1].close()
            upstream = None
        if upstream is None:
            writer.close()
            self._writers.discard(writer)
            return
        up_reader, up_writer = upstream
        self._writers.add(up_writer)
        pipes = [
            asyncio.create_task(_pipe(reader, up_writer)),
            asyncio.create_task(_pipe(up_reader, writer)),
        ]
        self._pipes.update(pipes)
        try:
            await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            self._pipes.difference_update(pipes)
            self._writers.difference_update((writer, up_writer))

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in range(len(self.backends)):
            host, port = self.backends[self._next % len(self.backends)]
            self._next += 1
            with contextlib.suppress(OSError):
                return await asyncio.open_connection(host, port)
        return None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()
