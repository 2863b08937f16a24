"""Store URLs: each form picks its store; each mistake is a clear ConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_node.errors import ConfigError
from agent_node.store import store_from_url
from agent_node.store.memory import MemoryStore
from agent_node.store.postgres import PostgresStore
from agent_node.store.sqlite import SqliteStore


def test_each_url_form_picks_its_store() -> None:
    assert isinstance(store_from_url("memory://"), MemoryStore)
    relative = store_from_url("sqlite:///data/x.db?synchronous=full&cache_kib=1024")
    assert isinstance(relative, SqliteStore)
    assert relative.path == Path("data/x.db")
    assert (relative.synchronous, relative.cache_kib) == ("FULL", 1024)
    absolute = store_from_url("sqlite:////tmp/y.db")
    assert isinstance(absolute, SqliteStore) and absolute.path == Path("/tmp/y.db")
    assert absolute.cache_kib == 256
    pg = store_from_url("postgresql+asyncpg://u@127.0.0.1:5432/db")
    assert isinstance(pg, PostgresStore)
    base, _, query = pg.dsn.partition("?")
    assert base == "postgresql://u@127.0.0.1:5432/db"
    assert query.startswith("application_name=agent-node")  # the upgrade's guard finds us so


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://x", "unsupported store URL 'mysql://x'"),
        ("no-scheme.db", "unsupported store URL"),
        ("sqlite://host/x.db", "bad SQLite URL"),
        ("sqlite:///", "no file path"),
        ("sqlite:///x.db?journal=off", "unknown SQLite URL option(s) ['journal']"),
        ("sqlite:///x.db?cache_kib=lots", "cache_kib must be a whole number"),
        ("sqlite:///x.db?cache_kib=8", "at least 64"),
    ],
)
def test_bad_urls_are_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        store_from_url(url)
    assert message in str(caught.value)


def test_bad_synchronous_setting() -> None:
    with pytest.raises(ConfigError, match="synchronous must be off, normal, full or extra"):
        store_from_url("sqlite:///x.db?synchronous=sometimes")
