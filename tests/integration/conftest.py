"""Fixtures of the integration tests: an open store of each kind, a fake
Ollama and a litellm client on it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from support import fake_openai
from support.fake_ollama import FakeOllama, serving
from support.fake_openai import FakeOpenAI

from agent_node import Runtime
from agent_node.config import ModelSettings
from agent_node.integrations.llm import LlmClient
from agent_node.store import Store, store_from_url
from agent_node.store.sqlite import SqliteStore

#: The model the ``client`` fixture asks when a node names none.
FAKE_MODEL = "ollama_chat/llama3.2:1b"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An open store of each kind (``store_url``: memory, SQLite, PostgreSQL)."""
    s = store_from_url(store_url)
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def traced(tmp_path: Path) -> AsyncIterator[tuple[Runtime, list[str]]]:
    """A runtime on SQLite (``tmp_path``/store.db) whose writer's statements
    are recorded."""
    statements: list[str] = []
    async with Runtime(f"sqlite:///{tmp_path / 'store.db'}") as rt:
        assert isinstance(rt.store, SqliteStore)
        conn = rt.store._writer._conn
        assert conn is not None
        conn.set_trace_callback(statements.append)
        try:
            yield rt, statements
        finally:
            conn.set_trace_callback(None)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOllama]:
    """One fake Ollama per test module."""
    with serving() as server:
        yield server


@pytest.fixture
def ollama(fake: FakeOllama) -> Iterator[FakeOllama]:
    """The module's fake, emptied; ``$OLLAMA_API_BASE`` as it was, afterwards."""
    before = os.environ.get("OLLAMA_API_BASE")
    fake.reset()
    yield fake
    if before is None:
        os.environ.pop("OLLAMA_API_BASE", None)
    else:
        os.environ["OLLAMA_API_BASE"] = before


@pytest.fixture
async def client(ollama: FakeOllama) -> AsyncIterator[LlmClient]:
    """A litellm client whose default model is the fake's."""
    settings = ModelSettings(default=FAKE_MODEL, api_base=ollama.url, timeout=10)
    async with LlmClient(settings) as made:
        yield made


@pytest.fixture(scope="module")
def openai_server() -> Iterator[FakeOpenAI]:
    """One fake OpenAI-compatible server per test module."""
    with fake_openai.serving() as server:
        yield server


@pytest.fixture
def openai(openai_server: FakeOpenAI, request: pytest.FixtureRequest) -> Iterator[FakeOpenAI]:
    """The module's fake OpenAI-compatible server, emptied, answering the
    module's ``ANSWER`` (when it has one)."""
    openai_server.reset()
    openai_server.answer = getattr(request.module, "ANSWER", openai_server.answer)
    yield openai_server
    openai_server.reset()
