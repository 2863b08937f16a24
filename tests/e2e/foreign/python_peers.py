"""a2a-sdk (Python) peers, run as processes in venvs of their own.

Two generations, each in a cached venv (:data:`e2e.venvs.SDK_SERVERS`):
``"1"`` is a2a-sdk 1.3.0 (A2A 1.0), ``"0.3"`` is 0.3.26 (A2A 0.3), the
newest releases of each, with the SDK's HTTP server extras and uvicorn.
The servers are ``tests/e2e/sdk_peer_server.py`` and
``sdk03_peer_server.py``: they serve the scenario contract of
:mod:`e2e.foreign` (``peer_scenarios.py``) for messages with text, and the
judge of ``test_delegate_interop.py`` for messages with data only.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from e2e.venvs import SDK_SERVERS

E2E = Path(__file__).resolve().parents[1]
#: The server script of each generation (they import their neighbours from E2E).
SCRIPTS = {"1": E2E / "sdk_peer_server.py", "0.3": E2E / "sdk03_peer_server.py"}


def python_ready(generation: str) -> bool:
    """Whether that generation's venv is made already (its first run takes
    pip's time: half a minute or so)."""
    return SDK_SERVERS[generation].ready()


def python_peer(
    generation: str,
    *,
    port: int,
    certs: Path,
    name: str,
    log: Path | None,
    push: bool,
    streaming: bool,
    rest: bool = False,
    grpc_port: int | None = None,
    extra: Sequence[str] = (),
) -> tuple[list[str], dict[str, str]]:
    """The command (and extra environment) that runs the a2a-sdk ``generation``
    ("1" or "0.3") peer server of the scenario contract; its venv is made
    first if need be (the test skips when pip cannot). ``rest`` (1.x): it
    serves the HTTP+JSON binding only, its card naming no JSON-RPC interface;
    ``grpc_port`` (1.x): it serves gRPC only, there (a venv with grpcio);
    ``extra``: more of the server's options (``--require``, …)."""
    venv = SDK_SERVERS[f"{generation}-grpc" if grpc_port else generation]
    python = venv.interpreter()
    # -E: the tests' PYTHONPATH is not for this venv; -u: output as it comes.
    argv = [str(python), "-E", "-u", str(SCRIPTS[generation])]
    argv += ["--port", str(port), "--certs", str(certs), "--name", name]
    argv += ["--log", str(log)] if log is not None else []
    argv += ["--push"] * push + ["--streaming"] * streaming + ["--rest"] * rest
    argv += ["--grpc-port", str(grpc_port)] if grpc_port else []
    return [*argv, *extra], {}


#: :func:`python_peer` serving HTTP+JSON only: our delegations must speak REST to it.
python_rest_peer = functools.partial(python_peer, rest=True)
