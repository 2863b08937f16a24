"""``@a2a-js/sdk`` peers and clients, run as Node.js processes.

Two generations, each in a cached npm folder of its own
(:mod:`e2e.foreign.npm_cache`): ``"1"`` is ``@a2a-js/sdk`` 1.3.0 (A2A 1.0),
``"0.3"`` is 0.3.14 (A2A 0.3), each with Express (the SDK's server
integration) and undici (whose dispatcher gives the SDK's ``fetch`` a client
certificate). The scripts are in ``tests/e2e/js``: a peer server per
generation serving the scenario contract of :mod:`e2e.foreign`, and a
client driver per generation (:func:`js_client`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from e2e.foreign.npm_cache import CachedNpm

#: Exact versions: the newest 1.x and 0.3.x releases, and what their server needs.
EXPRESS = ("express", "5.3.0")
UNDICI = ("undici", "6.29.1")  # the major bundled with Node.js 20, whose fetch uses it
#: The 1.x SDK's gRPC transport's peer dependencies (grpc-js: Node's own HTTP/2).
GRPC = (("@grpc/grpc-js", "1.14.7"), ("@bufbuild/protobuf", "2.17.0"))


def _check(version: str, grpc: bool) -> str:
    """ES module code that fails unless the folder holds this SDK and its companions."""
    return (
        "import fs from 'node:fs';"
        "import '@a2a-js/sdk/server/express'; import '@a2a-js/sdk/client'; import 'undici';"
        + ("import '@a2a-js/sdk/client/grpc'; import '@grpc/grpc-js';" if grpc else "")
        + "const v = JSON.parse(fs.readFileSync('node_modules/@a2a-js/sdk/package.json')).version;"
        f"if (v !== '{version}') throw new Error('found @a2a-js/sdk ' + v);"
    )


def _generation(version: str, *, grpc: bool = False) -> CachedNpm:
    return CachedNpm(
        name=f"npm-a2a-js-{version}" + ("-grpc" if grpc else ""),
        dependencies=(("@a2a-js/sdk", version), EXPRESS, UNDICI, *(GRPC if grpc else ())),
        check=_check(version, grpc),
        purpose=f"@a2a-js/sdk {version}",
    )


GENERATIONS: dict[str, CachedNpm] = {
    "1": _generation("1.3.0", grpc=True),
    "0.3": _generation("0.3.14"),
}
#: The scripts of each generation: (peer server, client driver).
SCRIPTS: dict[str, tuple[str, str]] = {
    "1": ("peer_v1.mjs", "client_v1.mjs"),
    "0.3": ("peer_v03.mjs", "client_v03.mjs"),
}


def js_ready(generation: str) -> bool:
    """Whether that generation's npm folder is made already (its first run
    takes npm's time: a few seconds to a minute)."""
    return GENERATIONS[generation].ready()


def js_install(generation: str) -> Path:
    """Make that generation's npm folder now (skips the test when npm cannot)."""
    return GENERATIONS[generation].folder()


def js_peer(
    generation: str,
    *,
    port: int,
    certs: Path,
    name: str,
    log: Path | None,
    push: bool,
    streaming: bool,
    extra: Sequence[str] = (),
) -> tuple[list[str], dict[str, str]]:
    """The command (and extra environment) that runs the ``@a2a-js/sdk``
    ``generation`` ("1" or "0.3") peer server of the scenario contract
    (``log`` None: it logs nothing; ``extra``: more options, ``--require``)."""
    argv = GENERATIONS[generation].script(SCRIPTS[generation][0])
    argv += ["--port", str(port), "--certs", str(certs), "--name", name]
    argv += ["--log", str(log)] if log is not None else []
    argv += ["--push"] * push + ["--streaming"] * streaming
    return [*argv, *extra], {}


def js_client(
    generation: str,
    *,
    url: str,
    certs: Path,
    name: str,
    hook: str,
    binding: str = "JSONRPC",
    header: str | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The command (and extra environment) that runs the ``generation`` client
    driver against the node at ``url`` over ``binding`` (1.x: ``JSONRPC``,
    ``HTTP+JSON`` or ``GRPC``): it presents ``certs/NAME.pem``, trusts ``certs/ca.pem``,
    receives pushes on a webhook serving ``certs/HOOK.pem``, and prints one
    JSON report (``tests/e2e/js/client_common.mjs``). ``header`` (NAME=VALUE):
    sent on every request instead of a certificate."""
    argv = GENERATIONS[generation].script(SCRIPTS[generation][1])
    argv += ["--url", url, "--certs", str(certs), "--name", name, "--hook", hook]
    argv += ["--binding", binding]
    argv += ["--header", header] if header else []
    return argv, {}
