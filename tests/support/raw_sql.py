"""SQL run with the driver directly, beside a store (setting up old schemas,
writing rows as an operator would, reading what the store wrote)."""

from __future__ import annotations

import sqlite3
from typing import Any

import asyncpg

__all__ = ["run_sql"]


async def run_sql(url: str, statements: list[str], query: str | None = None) -> Any:
    """Run ``statements`` on the store at ``url`` (SQLite or PostgreSQL),
    then ``query``; its rows as tuples (None without one)."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            for statement in statements:
                conn.execute(statement)
            return conn.execute(query).fetchall() if query else None
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
        return [tuple(r) for r in await conn.fetch(query)] if query else None
    finally:
        await conn.close()
