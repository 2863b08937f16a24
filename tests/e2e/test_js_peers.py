"""The ``@a2a-js/sdk`` peer servers serve the scenario contract of :mod:`e2e.foreign`.

Each generation's server (1.x speaking A2A 1.0, 0.3.x speaking 0.3) runs as
a real Node.js process over mutual TLS and is driven with plain JSON-RPC
from httpx through every scenario of :data:`e2e.foreign.scenarios.SCENARIOS`:
completed at once, slow (returned WORKING, then completed), one and two
questions answered by follow-ups, streamed chunks over SSE, a hanging task
canceled, a failure; and the SDK's own push sender delivering to our
mutual-TLS webhook with the token we set and the peer's certificate. The log
the matrix reads is checked on the way; so is the 1.x server's quirk of
re-publishing the task at the start of each turn.
"""

from __future__ import annotations

import pytest
from e2e.foreign.js_peers import js_peer, js_ready
from e2e.foreign.scenarios import SCENARIOS, Peer, fixtures, pushes_of_an_answered_question

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120 if js_ready("1") and js_ready("0.3") else 400),
]

peer, served = fixtures(js_peer, "a2a-js")


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_scenario(served: Peer, scenario: str) -> None:
    await SCENARIOS[scenario](served)


#: How each generation's pushes begin, for ``ask`` answered once: the 1.x SDK
#: starts the answer's turn by re-publishing the task, still INPUT_REQUIRED
#: (the quirk the matrix must cope with); 0.3 starts it WORKING.
TURN_STARTS = {
    "1": [
        ("task", "working"),
        ("statusUpdate", "input-required"),
        ("task", "input-required"),
        ("statusUpdate", "working"),
    ],
    "0.3": [("task", "working"), ("task", "input-required"), ("task", "working")],
}


async def test_how_each_sdk_starts_the_answers_turn(served: Peer) -> None:
    d = served.dialect
    pushes = await pushes_of_an_answered_question(served)
    kinds = [
        (next(iter(p.body)) if d.v1 else p.body["kind"], d.pushed_state(p.body)) for p in pushes
    ]
    expected = TURN_STARTS[d.version]
    assert kinds[: len(expected)] == expected
