"""A pytest plugin that runs the A2A TCK over mutual TLS.

The TCK has no TLS option: its clients are plain ``httpx`` clients and an
insecure gRPC channel. Loaded into its run (``-- -p tck_mtls``, with this
folder on ``PYTHONPATH``), this plugin gives every ``httpx`` client the
node's CA and a client certificate, and makes the TCK's gRPC channels secure
ones with the same, so the conformance agent can be served as any node is
(client certificates required). It reads:

* ``TCK_MTLS_CERTS``: a folder made by ``agent-node certs init`` (``ca.pem``);
* ``TCK_MTLS_IDENTITY``: the name of a certificate issued there
  (``agent-node certs issue NAME``: ``NAME.pem`` and ``NAME-key.pem``).

Nothing else of the TCK changes; its webhook receiver stays plain HTTP on
loopback (the node pushes to it as to any caller's URL).
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import grpc
import httpx

_certs = Path(os.environ["TCK_MTLS_CERTS"])
_name = os.environ["TCK_MTLS_IDENTITY"]
_ca, _cert, _key = _certs / "ca.pem", _certs / f"{_name}.pem", _certs / f"{_name}-key.pem"


def _context() -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(_ca))
    context.load_cert_chain(str(_cert), str(_key))
    return context


def _with_certificate(init: Any) -> Any:
    def patched(self: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("verify", True) is True:
            kwargs["verify"] = _context()
        init(self, *args, **kwargs)

    return patched


def _secure_channel(target: str, options: Any = None, compression: Any = None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        _ca.read_bytes(), _key.read_bytes(), _cert.read_bytes()
    )
    return grpc.secure_channel(target, credentials, options, compression)


httpx.Client.__init__ = _with_certificate(httpx.Client.__init__)  # type: ignore[method-assign]
httpx.AsyncClient.__init__ = _with_certificate(httpx.AsyncClient.__init__)  # type: ignore[method-assign]
grpc.insecure_channel = _secure_channel
