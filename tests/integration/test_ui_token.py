"""``agent-node ui`` admits only who has its token (found by a hostile-client
walk: any local process's ``curl`` cancelled a task through the UI, an
operator of every node). The printed address carries the token; opening it
sets a cookie and drops the token from the address; tools send it as a
bearer token; anything else gets 401 and reaches no node."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

CLI = [sys.executable, "-m", "agent_node.cli.main"]


@pytest.fixture
def printed(tmp_path: Path) -> Iterator[str]:
    """The address a UI prints (toward a peer that is never called)."""
    child = subprocess.Popen(
        [*CLI, "ui", "--port", "0", "--peer", "quiet=http://127.0.0.1:9"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        found = re.fullmatch(r"agent-node ui: (http://127\.0\.0\.1:\d+/\?token=[\w-]{24,})\n", line)
        assert found, line
        yield found.group(1)
    finally:
        child.terminate()
        child.communicate(timeout=20)


def test_nothing_answers_without_the_token(printed: str) -> None:
    parts = urlsplit(printed)
    base = f"{parts.scheme}://{parts.netloc}"
    token = parts.query.removeprefix("token=")
    port = parts.port
    with httpx.Client(base_url=base, timeout=10) as anyone:
        for method, where in [
            ("GET", "/"),
            ("GET", "/api/nodes"),
            ("GET", "/api/executions"),
            ("POST", "/api/nodes/quiet/executions/x/cancel"),
        ]:
            refused = anyone.request(method, where, json={} if method == "POST" else None)
            assert refused.status_code == 401, (where, refused.text)
            assert "carries the UI's token" in refused.json()["error"]["message"]
        for wrong in ("none", token[:-1], token + "x", token.upper()):
            cookie = {"cookie": f"agent_node_ui_{port}={wrong}"}
            assert anyone.get("/api/nodes", headers=cookie).status_code == 401
            bearer = {"authorization": f"Bearer {wrong}"}
            assert anyone.get("/api/nodes", headers=bearer).status_code == 401
        assert anyone.get(f"/?token={token}x").status_code == 401


def test_the_printed_address_sets_a_cookie_and_drops_the_token(printed: str) -> None:
    parts = urlsplit(printed)
    base = f"{parts.scheme}://{parts.netloc}"
    with httpx.Client(base_url=base, timeout=10) as browser:
        opened = browser.get(f"/?{parts.query}&view=x")
        assert opened.status_code == 303
        assert opened.headers["location"] == "/?view=x"
        cookie = opened.headers["set-cookie"]
        assert cookie.startswith(f"agent_node_ui_{parts.port}=")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        page = browser.get("/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert browser.get("/api/nodes").status_code == 200


def test_a_tool_sends_the_token_as_a_bearer(printed: str) -> None:
    parts = urlsplit(printed)
    token = parts.query.removeprefix("token=")
    with httpx.Client(base_url=f"{parts.scheme}://{parts.netloc}", timeout=10) as tool:
        answer = tool.get("/api/nodes", headers={"authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert [n["key"] for n in answer.json()["nodes"]] == ["quiet"]


def test_a_token_too_weak_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [*CLI, "ui", "--port", "0", "--token", "short", "--peer", "q=http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 2, done
    assert "--token" in done.stderr and "16 to 256" in done.stderr
