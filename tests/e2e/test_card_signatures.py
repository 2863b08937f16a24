"""Our signed card, checked by the official verifiers, each in its own process.

``agent-node serve`` runs the greeter example over mutual TLS; each verifier
fetches the card and the JWK Set its signature's ``jku`` names (presenting
alice's certificate) and checks the signature as it checks any agent's:

* a2a-sdk 1.x: ``A2ACardResolver`` with ``create_signature_verifier``
  (``tests/e2e/card_signing/sdk_verify.py``, in the a2a-sdk signing venv);
* ``@a2a-js/sdk`` 1.x: ``verifyAgentCardSignature`` (``tests/e2e/js/verify_card.mjs``),
  on the card as fetched and as its card resolver returns it;
* the A2A TCK's CARD-SIGN check, rebuilt on its own libraries
  (``tests/e2e/card_signing/tck_verify.py``: the TCK cannot be installed
  here, and its 1.0-dev snapshot has no automated check).

The SDKs read only the 1.0 fields, so they verify the card with or without
the 0.3 fields beside them; the TCK keeps unknown members in its payload and
wants a pure 1.0 card (``card_v03_fields: false``, as for its other checks).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.foreign.js_peers import GENERATIONS, js_install
from e2e.venvs import SDK_SIGNING
from support.certs import make_certs
from support.nodes import serving_mtls

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300 if SDK_SIGNING.ready() else 600)]

HERE = Path(__file__).resolve().parent
GREETER = "spiffe://example.org/agent/greeter"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("pki") / "certs", "greeter", "alice")


@pytest.fixture(scope="module", params=[True, False], ids=["with-0.3-fields", "1.0-only"])
def node(
    request: pytest.FixtureRequest, certs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, bool]]:
    folder = tmp_path_factory.mktemp("node")
    v03 = bool(request.param)
    with serving_mtls(folder, certs, extra=f"card_v03_fields: {str(v03).lower()}\n") as url:
        yield url, v03


def run(argv: list[str]) -> dict[str, Any]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def python_script(name: str, url: str, certs: Path) -> list[str]:
    script = HERE / "card_signing" / name
    return [str(SDK_SIGNING.interpreter()), str(script), "--url", url, "--certs", str(certs)]


def test_a2a_sdk_verifies_our_card(node: tuple[str, bool], certs: Path) -> None:
    url, _ = node
    report = run([*python_script("sdk_verify.py", url, certs), "--name", "alice"])
    assert report["verified"], report
    assert report["jku"] == f"{url}/.well-known/jwks.json" and report["name"] == "Greeter"


def test_a2a_js_verifies_our_card(node: tuple[str, bool], certs: Path) -> None:
    url, v03 = node
    js_install("1")
    argv = GENERATIONS["1"].script("verify_card.mjs")
    report = run([*argv, "--url", url, "--certs", str(certs), "--name", "alice"])
    assert report["fetched"] == {"verified": True}, report
    assert report["jku"] == f"{url}/.well-known/jwks.json"
    # Through the SDK's card resolver too, but for a 1.0-only card: it hands
    # the verifier a parsed card that loses the security schemes
    # (verify_card.mjs says how), whoever signed it.
    assert report["resolved"]["verified"] is v03, report


def test_the_tcks_check_verifies_our_10_card(node: tuple[str, bool], certs: Path) -> None:
    url, v03 = node
    report = run([*python_script("tck_verify.py", url, certs), "--name", "alice"])
    if v03:  # the TCK signs unknown members too: the 0.3 fields are outside what we sign
        assert not report["verified"] and '"protocolVersion":"0.3.0"' in report["payload"]
        return
    assert report["verified"] and report["errors"] == [], report
