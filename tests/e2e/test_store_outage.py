"""A node whose PostgreSQL goes away for a while: callers are told the store
cannot be reached now (JSON-RPC -32033, REST and the operator API 503 with
``Retry-After``), not that the node failed; the log says so in a line, not a
traceback a request; its engine and its notifications outlive the outage;
and the node serves again once the database is back. The database is
reached through a TCP front the test closes (a real outage to the node:
its connections cut, new ones refused)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from support.front import Front
from support.nodes import ADA, greeter_config, serving_config

V10 = {"A2A-Version": "1.0"}


def send(key: str) -> dict[str, object]:
    message = {"messageId": key, "role": "ROLE_USER", "parts": [{"data": {"name": "Ada Lovelace"}}]}
    return {"jsonrpc": "2.0", "id": key, "method": "SendMessage", "params": {"message": message}}


@asynccontextmanager
async def behind_a_front(
    tmp_path: Path, pg_url: str, skill: str = ""
) -> AsyncIterator[tuple[httpx.AsyncClient, Front]]:
    """The greeter node (with ``skill``: a line of ``skills:`` more) on
    ``pg_url`` reached through a TCP front the test closes and opens; a
    client of the node."""
    database = pg_url.rsplit("/", 1)
    front = Front([("127.0.0.1", int(database[0].rsplit(":", 1)[1]))])
    await front.start()
    config = greeter_config(tmp_path)
    through = f"{database[0].rsplit(':', 1)[0]}:{front.port}/{database[1]}"
    text = config.read_text().replace(f"sqlite:///{tmp_path}/greeter.db", through)
    config.write_text(text.replace("skills:\n", f"skills:\n{skill}"))
    # The node starts and stops in a thread: the front copies its bytes on this loop.
    served = serving_config(tmp_path, config, ["--insecure-dev"])
    url = await asyncio.to_thread(served.__enter__)
    try:
        async with httpx.AsyncClient(base_url=url, headers=V10, timeout=30) as http:
            yield http, front
    finally:
        await asyncio.to_thread(served.__exit__, None, None, None)
        await front.close()


async def test_a_store_outage_is_told_as_one_and_passes(tmp_path: Path, pg_url: str) -> None:
    async with behind_a_front(tmp_path, pg_url) as (http, front):
        done = (await http.post("/a2a", json=send("before"))).json()["result"]["task"]
        assert done["artifacts"][0]["parts"][0]["data"] == ADA
        await front.close()  # the database goes away
        for key in ("down-1", "down-2"):
            told = await http.post("/a2a", json=send(key))
            assert told.status_code == 200
            error = told.json()["error"]
            assert error["code"] == -32033, error
            assert "cannot be reached" in error["message"]
        message = send("down-rest")["params"]
        rest = await http.post("/a2a/message:send", json=message)
        assert rest.status_code == 503 and rest.headers["retry-after"] == "1"
        assert rest.json()["error"]["status"] == "UNAVAILABLE"
        # The operator API (the UI's source) says so in its JSON, too.
        for path in ("/ops/node", "/ops/executions"):
            ops = await http.get(path)
            assert ops.status_code == 503 and ops.headers["retry-after"] == "1", ops.text
            assert ops.json()["error"]["status"] == "UNAVAILABLE", ops.text
        await front.start()  # it is back
        assert (await http.get("/ops/node")).status_code == 200
        again = (await http.post("/a2a", json=send("after"))).json()
        assert again["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    log = (tmp_path / "node.err").read_text()
    # Five requests told so, one line (an operator's drill logged 2,164 in 30 s).
    assert log.count("the store cannot be reached") == 1, log
    assert "Traceback" not in log, log


# Its 4 s of quiet is where the collector tends to run in a CI worker, and it
# then warned of a plain TCP socket left unclosed by an earlier test of the
# same process (2 CI runs of 4; not found in 8 local runs of the suspects).
# The node under test is another process: that warning is not about it.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_work_goes_on_after_an_outage(tmp_path: Path, pg_url: str) -> None:
    """The engine's loops outlive an outage (found by an operator's walk: the
    claim loop ended at its first failed read of the store, and the node took
    no more work, forever, with /readyz still 200)."""
    async with behind_a_front(tmp_path, pg_url) as (http, front):
        await front.close()
        await asyncio.sleep(4)  # every loop of the node meets the outage, more than once
        await front.start()
        await wait_until_ok(http)
        ids = []
        for key in ("later-1", "later-2"):
            body = send(key)
            body["params"]["configuration"] = {"returnImmediately": True}
            ids.append((await http.post("/a2a", json=body)).json()["result"]["task"]["id"])
        for task_id in ids:
            assert await settled(http, task_id) == "TASK_STATE_COMPLETED", task_id
    log = (tmp_path / "node.err").read_text()
    assert "works again" in log, log


async def wait_until_ok(http: httpx.AsyncClient) -> None:
    for _ in range(100):
        if (await http.get("/readyz")).status_code == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the node did not become ready again")


async def settled(http: httpx.AsyncClient, task_id: str) -> str:
    """The task's state once completed, or as it is after 10 s."""
    get = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": task_id}}
    state = ""
    for _ in range(100):
        state = (await http.post("/a2a", json=get)).json()["result"]["status"]["state"]
        if state == "TASK_STATE_COMPLETED":
            break
        await asyncio.sleep(0.1)
    return state


SLOW = """\
workflow: {id: slow, version: "1", start: pause, state_schema: {type: object}}
nodes:
  pause: {type: wait, duration: 2s, next: done}
  done: {type: end}
"""


async def test_a_blocking_send_the_outage_cuts_names_its_task(tmp_path: Path, pg_url: str) -> None:
    """The task was made before the database went away: the caller is told
    which, not only to ask again (which, without an Idempotency-Key, makes a
    second task; found by an operator's drill)."""
    (tmp_path / "slow.yaml").write_text(SLOW)
    skill = f"  - {{id: slow, workflow: '{tmp_path / 'slow.yaml'}'}}\n"
    async with behind_a_front(tmp_path, pg_url, skill) as (http, front):
        body = send("slow-1")
        body["params"]["metadata"] = {"skill": "slow"}
        waiting = asyncio.create_task(http.post("/a2a", json=body))
        await asyncio.sleep(0.5)  # made, and waiting for its timer
        await front.close()
        told = (await waiting).json()
        await front.start()
    error = told["error"]
    assert error["code"] == -32033 and "was accepted" in error["message"], error
    assert error["data"][0]["metadata"]["taskId"], error
