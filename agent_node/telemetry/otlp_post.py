"""One keep-alive HTTP/1.1 connection that POSTs spans to a collector.

The batch processor's thread posts a few hundred spans at a time, in the
node's process, between its own work. Through ``http.client`` a post cost
~290 µs of CPU there (~80 µs alone: its code is met cold), more than
encoding the spans it carries — the request put together a header at a
time, the answer's headers parsed by the email package. Here a request is a
head made once, its length and the body; an answer is read for what the
exporter needs — its status, how its body is framed (``Content-Length``,
``chunked``, or to the close) and whether the connection stays open — and
its body is read past, not parsed (an OTLP answer only reports partial
success). ``bench/README.md``, session 22: an export of 512 spans ~370 →
~200 µs of the thread's CPU.

Anything the answer breaks (no status line, headers over
:data:`MAX_HEAD`, a bad length) is :class:`BadAnswer`, an ``OSError``: the
connection is closed and the exporter tries again as after a broken one.
"""

from __future__ import annotations

import socket
import ssl

__all__ = ["MAX_HEAD", "BadAnswer", "PostConnection"]

#: The longest head an answer may have (status line and headers), bytes.
MAX_HEAD = 64 * 1024
_READ = 64 * 1024


class BadAnswer(OSError):
    """The collector's answer is not HTTP/1.x as it should be."""


class _Closed(ConnectionError):
    """The connection closed before the answer began."""


class PostConnection:
    """POSTs to ``path`` on ``host``:``port`` (over TLS with ``tls``), one
    request at a time on one connection, kept open while the server keeps it."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        headers: dict[str, str],
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._address = (host, port)
        self._tls = tls
        default = 443 if tls is not None else 80
        authority = f"[{host}]" if ":" in host else host
        lines = [
            f"POST {path} HTTP/1.1",
            f"Host: {authority}" + ("" if port == default else f":{port}"),
        ]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if any(c in line for line in lines for c in "\r\n\0"):
            raise ValueError(f"a header of the OTLP exporter holds a line break: {headers}")
        #: Everything before the body's length.
        self._head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")
        self._sock: socket.socket | None = None

    def post(self, body: bytes, timeout: float) -> int:
        """POST ``body`` and read the answer: its status code. A connection
        kept from before that the server had closed meanwhile is replaced
        once; any other failure closes it and raises (``OSError``)."""
        if self._sock is not None:
            try:
                return self._exchange(self._sock, body, timeout)
            except _Closed:  # closed while it idled: the request never arrived
                self.close()
            except BaseException:
                self.close()
                raise
        try:
            return self._exchange(self._connect(timeout), body, timeout)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _connect(self, timeout: float) -> socket.socket:
        sock = socket.create_connection(self._address, timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # the head and the body
        if self._tls is not None:
            try:
                sock = self._tls.wrap_socket(sock, server_hostname=self._address[0])
            except BaseException:
                sock.close()
                raise
        self._sock = sock
        return sock

    def _exchange(self, sock: socket.socket, body: bytes, timeout: float) -> int:
        sock.settimeout(timeout)
        try:
            sock.sendall(b"%s%d\r\n\r\n" % (self._head, len(body)))
            sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _Closed(str(exc)) from exc
        status, close = _Answer(sock).read()
        if close:
            self.close()
        return status


class _Answer:
    """The answer on ``sock``, read as far as the exporter needs it."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self._began = False

    def read(self) -> tuple[int, bool]:
        """The status code, and whether the server closes the connection."""
        while True:
            head = self._head()
            version, _, rest = head[0].partition(b" ")
            code = rest[:3]
            if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
                raise BadAnswer(f"not an HTTP/1.x answer: {head[0][:80]!r}")
            status = int(code)
            if status >= 200:
                break
            # 1xx: an interim answer (no body); the final one follows.
        fields: dict[bytes, bytes] = {}
        for line in head[1:]:
            name, colon, value = line.partition(b":")
            if colon:
                fields[name.strip().lower()] = value.strip().lower()
        connection = fields.get(b"connection", b"")
        close = b"close" in connection or (
            version == b"HTTP/1.0" and b"keep-alive" not in connection
        )
        if status in (204, 304):
            return status, close
        if b"chunked" in fields.get(b"transfer-encoding", b""):
            self._chunks()
        elif (length := fields.get(b"content-length")) is not None:
            if not length.isdigit() or len(length) > 18:
                raise BadAnswer(f"a bad Content-Length: {length[:40]!r}")
            self._skip(int(length))
        else:  # delimited by the close
            while self._more():
                self._buffer.clear()
            close = True
        return status, close

    def _more(self) -> bool:
        try:
            got = self._sock.recv(_READ)
        except ConnectionResetError as exc:
            if self._began:
                raise
            raise _Closed(str(exc)) from exc
        if got:
            self._began = True
            self._buffer += got
        return bool(got)

    def _line(self) -> bytes:
        while (at := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD:
                raise BadAnswer("a line of the answer is too long")
            if not self._more():
                raise BadAnswer("the answer ended early")
        line = bytes(self._buffer[:at])
        del self._buffer[: at + 2]
        return line

    def _head(self) -> list[bytes]:
        while (at := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD:
                raise BadAnswer(f"the answer's head is over {MAX_HEAD} bytes")
            if not self._more():
                if self._began:
                    raise BadAnswer("the answer ended in its head")
                raise _Closed("closed before an answer")
        head = bytes(self._buffer[:at]).split(b"\r\n")
        del self._buffer[: at + 4]
        return head

    def _skip(self, count: int) -> None:
        """Read past ``count`` bytes (kept no longer than they are read)."""
        while count > len(self._buffer):
            count -= len(self._buffer)
            self._buffer.clear()
            if not self._more():
                raise BadAnswer("the answer's body ended early")
        del self._buffer[:count]

    def _chunks(self) -> None:
        while True:
            size = self._line().split(b";", 1)[0].strip()
            try:
                count = int(size, 16)
            except ValueError:
                raise BadAnswer(f"a bad chunk size: {size[:40]!r}") from None
            if count == 0:
                while self._line():  # trailers, to the empty line
                    pass
                return
            self._skip(count + 2)
