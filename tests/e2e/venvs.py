"""Virtual environments the end-to-end tests make once and keep in the user's cache.

Some peers cannot share the project's environment (a2a-sdk 0.3 and 1.x
cannot be installed side by side), so their tests run them with an
interpreter of their own: a :class:`CachedVenv` in
``~/.cache/agent-node-tests/<name>`` (``$XDG_CACHE_HOME`` when set), outside
the repository, made by pip the first time and reused afterwards.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "agent-node-tests"


@dataclass(frozen=True)
class CachedVenv:
    """A venv ``CACHE/name`` holding ``requirements``; ``check`` is Python code it
    must run without error to count as usable; ``purpose`` names it in messages
    ("the a2a-sdk 0.3 client")."""

    name: str
    requirements: tuple[str, ...]
    check: str
    purpose: str

    @property
    def path(self) -> Path:
        return CACHE / self.name

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def stamp(self) -> Path:
        """Written once pip has installed the requirements (the check still runs)."""
        return self.path / "agent-node-requirements.txt"

    def ready(self) -> bool:
        """Whether pip has installed these requirements already (for timeouts:
        the first run on a machine takes pip's time)."""
        return self.stamp.is_file() and self.stamp.read_text() == "\n".join(self.requirements)

    def interpreter(self) -> Path:
        """The venv's interpreter, made first if need be (under a lock, so that
        parallel sessions make it once); skips the test when pip cannot install
        the requirements."""
        CACHE.mkdir(parents=True, exist_ok=True)
        with (CACHE / f"{self.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            broken = self._broken() if self.ready() else "not made yet"
            if broken is not None:
                self._create()
                broken = self._broken()
            assert broken is None, f"the {self.purpose} venv at {self.path} is broken: {broken}"
        return self.python

    def _broken(self) -> str | None:
        """None when the venv runs the check; else why not."""
        if not self.python.exists():
            return f"{self.python} is missing"
        check = [self.python, "-c", self.check]
        done = subprocess.run(check, capture_output=True, text=True, timeout=60)
        return None if done.returncode == 0 else done.stderr

    def _create(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", self.path], check=True, timeout=120)
        pip = [self.python, "-m", "pip", "install", "--disable-pip-version-check"]
        installed = subprocess.run(
            [*pip, *self.requirements], capture_output=True, text=True, timeout=240
        )
        if installed.returncode != 0:
            shutil.rmtree(self.path, ignore_errors=True)
            output = (installed.stdout + installed.stderr).strip().splitlines()[-8:]
            pytest.skip(
                f"cannot install {self.purpose} with pip (no package index?): " + " | ".join(output)
            )
        self.stamp.write_text("\n".join(self.requirements))


def _sdk_server(version: str, grpc: bool = False) -> CachedVenv:
    """A venv holding exactly a2a-sdk ``version`` with its HTTP server extras
    (and ``grpc``'s) and uvicorn: the Python peer servers of :mod:`e2e.foreign`
    run in it."""
    extras = "http-server,grpc" if grpc else "http-server"
    return CachedVenv(
        name=f"a2a-sdk-{version}-{'grpc-' if grpc else ''}server-venv",
        requirements=(f"a2a-sdk[{extras}]=={version}", "httpx", "uvicorn"),
        check="import a2a.server.request_handlers, httpx, sse_starlette, starlette, uvicorn; "
        + ("import grpc; " if grpc else "")
        + "import importlib.metadata as m; v = m.version('a2a-sdk'); "
        f"assert v == {version!r}, v",
        purpose=f"the a2a-sdk {version} {'gRPC ' if grpc else ''}server",
    )


#: The a2a-sdk peer servers, one venv per generation: the newest 1.x and 0.3.x
#: releases (a2a-sdk 0.3 and 1.x cannot share an environment); "1-grpc" is
#: 1.x with grpcio (its own venv: adding grpcio to "1" would remake a venv
#: other tests are using).
SDK_SERVERS: dict[str, CachedVenv] = {
    "1": _sdk_server("1.3.0"),
    "1-grpc": _sdk_server("1.3.0", grpc=True),
    "0.3": _sdk_server("0.3.26"),
}


def _sdk_client(version: str, extra: str = "") -> CachedVenv:
    """A venv holding exactly a2a-sdk ``version`` (its client needs no extras but
    ``extra``: ``grpc`` for its gRPC transport) and httpx: the client drivers of
    ``tests/e2e/sdk_clients`` run in it."""
    package = f"a2a-sdk[{extra}]" if extra else "a2a-sdk"
    check = "import a2a.client, httpx" + (", grpc" if extra == "grpc" else "")
    return CachedVenv(
        name=f"a2a-sdk-{version}-{extra + '-' if extra else ''}client-venv",
        requirements=(f"{package}=={version}", "httpx"),
        check=f"{check}; import importlib.metadata as m; "
        f"v = m.version('a2a-sdk'); assert v == {version!r}, v",
        purpose=f"the a2a-sdk {version} {extra + ' ' if extra else ''}client",
    )


#: The a2a-sdk clients, one venv per generation: the newest 1.x and 0.3.x
#: releases; "1-grpc" is 1.x with grpcio (its own venv: adding grpcio to
#: "1" would remake a venv other tests are using).
SDK_CLIENTS: dict[str, CachedVenv] = {
    "1": _sdk_client("1.3.0"),
    "1-grpc": _sdk_client("1.3.0", "grpc"),
    "0.3": _sdk_client("0.3.26"),
}


#: a2a-sdk 1.x's card signer and verifier (PyJWT), and what the A2A TCK's
#: card-signature validator is built on (jwcrypto, rfc8785): the foreign
#: signers and verifiers of ``tests/e2e/card_signing``.
SDK_SIGNING = CachedVenv(
    name="a2a-sdk-1.3.0-signing-venv",
    requirements=("a2a-sdk[signing]==1.3.0", "httpx", "jwcrypto", "rfc8785"),
    check="import a2a.utils.signing, httpx, jwcrypto.jws, rfc8785; "
    "import importlib.metadata as m; v = m.version('a2a-sdk'); assert v == '1.3.0', v",
    purpose="the a2a-sdk 1.3.0 signer",
)
