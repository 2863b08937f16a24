"""The a2a-sdk peer servers serve the scenario contract of :mod:`e2e.foreign`.

Each generation's server (a2a-sdk 1.3.0 speaking A2A 1.0, 0.3.26 speaking
0.3), in a cached venv of its own, runs as a real process over mutual TLS
and is driven with plain JSON-RPC from httpx through every scenario of
:data:`e2e.foreign.scenarios.SCENARIOS`: completed at once, slow, one and
two questions answered by follow-ups, streamed chunks over SSE, a hanging
task canceled, a failure, and the SDK's own push sender delivering to our
mutual-TLS webhook with our token and the peer's certificate.
"""

from __future__ import annotations

import pytest
from e2e.foreign.python_peers import python_peer, python_ready
from e2e.foreign.scenarios import SCENARIOS, Peer, fixtures

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120 if python_ready("1") and python_ready("0.3") else 400),
]

peer, served = fixtures(python_peer, "a2a-sdk")


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_scenario(served: Peer, scenario: str) -> None:
    await SCENARIOS[scenario](served)
