"""A delegation's calls over A2A's gRPC binding (§10), for a peer whose card
offers neither JSON-RPC nor HTTP+JSON (:mod:`.endpoints` prefers those).

The operations a delegation makes are the ``lf.a2a.v1.A2AService`` methods
of the same names (``SendMessage``, ``GetTask``, ``ListTasks``, ``CancelTask``;
the stream ``SubscribeToTask``). Params and answers are the 1.0 JSON the HTTP bindings
speak, converted by the wire contract (:mod:`agent_node.a2a.protocol.grpc`),
so the delegator reads every binding alike; headers travel as metadata
(``a2a-version: 1.0``, the idempotency key, ``traceparent``).

Channels: one per target (``grpcs://host:port``: the node's certificate and
key, the server verified against the trust bundle and the target's host
name, as gRPC does; ``grpc://``: plain), opened on first use and kept
(HTTP/2 carries every call), closed by :meth:`GrpcPeers.aclose`.

Identity. grpcio shows a client nothing of the server's certificate, so the
identity a peer must prove (its configured ``identity``, else the one its
card was served with) is checked by a TLS handshake of our own to the same
address, with the same client context, right before each call; a server
presenting another is refused before the call is made, as over HTTP. The
HTTP bindings check the very connection that carries the request; here a
server swapped in between the check and the call (milliseconds, on the
same address) would go unseen — one more reason the HTTP bindings are
preferred when a peer offers them.

Errors. A status with a ``google.rpc.Status`` whose ``ErrorInfo`` names a
protocol error (``grpc-status-details-bin``, how our server and a2a-sdk's
answer) is a :class:`~.peer_errors.PeerError` carrying that error's JSON-RPC
code, judged by the one rule of every binding; otherwise the status decides
(``UNAVAILABLE``, ``DEADLINE_EXCEEDED``, ``RESOURCE_EXHAUSTED``, ``ABORTED``,
``INTERNAL``, ``UNKNOWN``: try again later; the first two, no answer: the
peer is down, as a refused connection or a timeout over HTTP). A unary
call has :data:`~.calls.CALL_DEADLINE`, as over HTTP. Importing this module
imports grpcio: the delegator does so only for a gRPC peer.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

from agent_node.a2a.peers.calls import CALL_DEADLINE, STREAM_SILENCE, checked_result
from agent_node.a2a.peers.client import IdentityMismatch
from agent_node.a2a.peers.credentials import NOTHING, Presented
from agent_node.a2a.peers.discovery import PeerCard
from agent_node.a2a.peers.peer_errors import (
    INTERNAL_ERROR,
    TRANSIENT_CODES,
    PeerError,
    code_of_reason,
    did,
    scrub,
    unreachable,
)
from agent_node.a2a.protocol.grpc.messages import (
    POOL,
    SERVICE,
    from_json,
    message_class,
    to_params,
)
from agent_node.security.tls import identity_of

__all__ = ["GrpcPeers"]

#: How long the identity handshake may take.
HANDSHAKE_TIMEOUT = 10.0
_DETAILS = "grpc-status-details-bin"
_TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)
#: Statuses of a call the peer did not answer (refused, reset, past its
#: deadline), unless it said so itself (an ErrorInfo).
_NO_ANSWER = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
#: Headers a delegation sends that mean something as metadata.
_METADATA = ("idempotency-key", "traceparent", "a2a-extensions")


class GrpcPeers:
    """Calls peers' gRPC interfaces. ``tls``: the node's certificate, key and
    trust files (None: a node without TLS, which calls ``grpc://`` targets
    only); ``context``: its client SSL context, for the identity handshake."""

    def __init__(
        self,
        tls: tuple[Path, Path, list[Path]] | None,
        context: ssl.SSLContext | None,
        *,
        identity_from_cn: bool = False,
    ) -> None:
        self._credentials: grpc.ChannelCredentials | None = None
        if tls is not None:
            cert, key, trust = tls
            self._credentials = grpc.ssl_channel_credentials(
                b"".join(path.read_bytes() for path in trust),
                key.read_bytes(),
                cert.read_bytes(),
            )
        self._context = context
        self._identity_from_cn = identity_from_cn
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def call(
        self,
        card: PeerCard,
        method: str,
        params: Mapping[str, Any],
        headers: Mapping[str, str],
        presented: Presented = NOTHING,
        *,
        deadline: float = CALL_DEADLINE,
    ) -> tuple[Any, str | None]:
        """``method`` with its 1.0 ``params``: its 1.0 result, and the
        identity that answered. ``presented``: credentials, sent as metadata;
        ``deadline``: the call's, as over HTTP (:data:`~.calls.CALL_DEADLINE`)."""
        channel, identity = await self._reach(card)
        request, reply = _types(method)
        stub = channel.unary_unary(
            f"/{SERVICE}/{method}",
            request_serializer=_serialize,
            response_deserializer=_parser(reply),
        )
        try:
            answer = await stub(
                from_json(request, dict(params)),
                metadata=_metadata(headers, presented),
                timeout=deadline,
            )
        except grpc.aio.AioRpcError as exc:
            raise _refusal(card, method, exc) from None
        return checked_result(card, method, to_params(answer)), identity

    async def subscribe(
        self,
        card: PeerCard,
        task_id: str,
        presented: Presented = NOTHING,
        *,
        silence: float = STREAM_SILENCE,
    ) -> AsyncIterator[tuple[Mapping[str, Any], str | None]]:
        """``SubscribeToTask``: each 1.0 ``StreamResponse`` the peer streams,
        with the identity that answered, until the stream ends. A stream
        that sends nothing for ``silence`` seconds is cancelled: a transient
        :class:`PeerError`, as the HTTP bindings' read timeout is (a peer or
        a network that stalls leaves a gRPC stream open for good: before, its
        task was followed so, holding one of the follow places)."""
        channel, identity = await self._reach(card)
        request, reply = _types("SubscribeToTask")
        stub = channel.unary_stream(
            f"/{SERVICE}/SubscribeToTask",
            request_serializer=_serialize,
            response_deserializer=_parser(reply),
        )
        stream = stub(from_json(request, {"id": task_id}), metadata=_metadata({}, presented))
        try:
            while True:
                try:
                    async with asyncio.timeout(silence):
                        event = await stream.read()
                except TimeoutError:
                    raise PeerError(
                        f"peer {card.name!r} sent nothing on its SubscribeToTask stream"
                        f" for {silence:g} s",
                        transient=True,
                    ) from None
                if not isinstance(event, Message):  # grpc.aio.EOF: the stream ended
                    return
                yield to_params(event), identity
        except grpc.aio.AioRpcError as exc:
            raise _refusal(card, "SubscribeToTask", exc) from None
        finally:
            stream.cancel()

    async def aclose(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()

    async def _reach(self, card: PeerCard) -> tuple[grpc.aio.Channel, str | None]:
        """The channel to ``card``'s target, once the server there proved
        the identity the peer must be (module doc)."""
        parts = urlsplit(card.endpoint)
        secure = parts.scheme == "grpcs"
        if parts.scheme not in ("grpc", "grpcs") or not parts.hostname or not parts.port:
            raise PeerError(f"peer {card.name!r}: no gRPC target to call", transient=False)
        if secure and (self._credentials is None or self._context is None):
            raise PeerError(
                f"peer {card.name!r} serves gRPC over TLS; this node has no certificate to"
                " call it with (tls: in its configuration)",
                transient=False,
            )
        identity = None
        if secure:
            identity = await self._identity(card, parts.hostname, parts.port)
        target = parts.netloc
        channel = self._channels.get(card.endpoint)
        if channel is None:
            if secure:
                assert self._credentials is not None
                channel = grpc.aio.secure_channel(target, self._credentials)
            else:
                channel = grpc.aio.insecure_channel(target)
            self._channels[card.endpoint] = channel
        return channel, identity

    async def _identity(self, card: PeerCard, host: str, port: int) -> str | None:
        """The identity of the server at ``host:port``, checked against the
        one the peer must be."""
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                _, writer = await asyncio.open_connection(
                    host, port, ssl=self._context, server_hostname=host
                )
        except (OSError, TimeoutError) as exc:
            raise _unreached(card, exc) from None
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        finally:
            writer.close()
        presented = identity_of(der, from_cn=self._identity_from_cn) if der else None
        if card.identity is not None and presented != card.identity:
            where = f"{host}:{port}"
            raise unreachable(
                card, IdentityMismatch(card.identity, presented, tls=True, where=where)
            )
        return presented


def _unreached(card: PeerCard, exc: BaseException) -> PeerError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        # The trust bundle does not vouch for it: configuration, not the network.
        return PeerError(
            f"peer {card.name!r} unreachable: its gRPC certificate is not trusted:"
            f" {scrub(exc.verify_message or str(exc))}",
            transient=False,
        )
    detail = scrub(str(exc)) or "no answer"
    return PeerError(
        f"peer {card.name!r} unreachable: {type(exc).__name__}: {detail}",
        transient=True,
        down=True,
    )


def _refusal(card: PeerCard, method: str, exc: grpc.aio.AioRpcError) -> PeerError:
    """The :class:`PeerError` of a gRPC status (module doc)."""
    code, message = None, exc.details() or exc.code().name
    details = dict(exc.trailing_metadata() or ()).get(_DETAILS)
    if isinstance(details, bytes):
        try:
            status = status_pb2.Status.FromString(details)
        except DecodeError:  # a trailer that is not a Status: the status code decides
            status = None
        for detail in status.details if status is not None else ():
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                code = code_of_reason(info.reason)
                break
    status_code = exc.code()
    if status_code in _NO_ANSWER and code is None:  # the peer is down, as over HTTP
        return PeerError(
            f"peer {card.name!r} unreachable: {scrub(message)}", transient=True, down=True
        )
    if code is None and status_code == grpc.StatusCode.INTERNAL:
        code = INTERNAL_ERROR
    transient = code in TRANSIENT_CODES if code is not None else status_code in _TRANSIENT
    return PeerError(
        f"peer {card.name!r} {did(code)} {method}: {scrub(message)}",
        transient=transient,
        code=code,
    )


def _metadata(headers: Mapping[str, str], presented: Presented) -> tuple[tuple[str, str], ...]:
    sent = [("a2a-version", "1.0")]
    lowered = {key.lower(): value for key, value in headers.items()}
    sent += [(key, lowered[key]) for key in _METADATA if key in lowered]
    # Credentials go as metadata; one a card wants in the query has no place here.
    sent += [(key.lower(), value) for key, value in presented.headers.items()]
    return tuple(sent)


def _types(method: str) -> tuple[str, str]:
    """The full names of ``method``'s request and reply messages."""
    found = POOL.FindServiceByName(SERVICE).methods_by_name[method]
    return found.input_type.full_name, found.output_type.full_name


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


def _parser(name: str) -> Any:
    return message_class(name).FromString
