"""A raw HTTP/2 client (h2, driven by hand) for the gRPC server's tests: what
well-behaved clients never send, and frames crafted byte by byte."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions


class Raw:
    """An HTTP/2 client connection on h2, driven by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.events: list[Any] = []

    @classmethod
    async def open(cls, port: int) -> Raw:
        raw = cls(*await asyncio.open_connection("127.0.0.1", port))
        raw.h2.initiate_connection()
        raw.flush()
        return raw

    def flush(self) -> None:
        self.writer.write(self.h2.data_to_send())

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass

    def request(self, path: str, body: bytes | None, **headers: str) -> int:
        sid: int = self.h2.get_next_available_stream_id()
        fields = {":method": "POST", ":scheme": "http", ":path": path, ":authority": "t"}
        fields |= {"content-type": "application/grpc", "te": "trailers"}
        fields |= {k.replace("_", "-"): v for k, v in headers.items()}
        self.h2.send_headers(sid, list(fields.items()), end_stream=body is None)
        if body is not None:
            self.h2.send_data(sid, body, end_stream=True)
        self.flush()
        return sid

    async def answer(self, sid: int) -> dict[str, str]:
        """The headers and trailers of ``sid``, merged, once it ended."""
        fields: dict[str, str] = {}
        while True:
            for event in self.events:
                if getattr(event, "stream_id", None) == sid:
                    for name, value in getattr(event, "headers", None) or ():
                        fields[name.decode()] = value.decode()
                    if isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                        return fields
            await self.read()

    async def read(self) -> bool:
        """Read what came; False once the server closed the connection."""
        data = await asyncio.wait_for(self.reader.read(65536), 5)
        if not data:
            return False
        for event in self.h2.receive_data(data):
            if isinstance(event, h2.events.DataReceived):  # read: the window opens again
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            self.events.append(event)
        self.flush()
        return True

    async def closed(self) -> list[Any]:
        """Every event until the server closes the connection."""
        try:
            while await self.read():
                pass
        except (ConnectionError, h2.exceptions.ProtocolError):
            pass
        return self.events


def framed(*messages: bytes) -> bytes:
    return b"".join(struct.pack(">BI", 0, len(m)) + m for m in messages)
