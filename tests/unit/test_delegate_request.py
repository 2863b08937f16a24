"""A delegation row's request reads back whatever release wrote it."""

from __future__ import annotations

import json

from agent_node.nodes.delegate import Delegation


def test_a_request_with_keys_of_a_newer_release_reads_without_them() -> None:
    """``context`` came without a schema bump, and an older release's
    ``cls(**json)`` raised TypeError on every row holding it: a reader
    leaves out the keys it does not know."""
    request = Delegation("writer", None, None, "hi", None, "e1/ask/1", context="ctx-1")
    newer = json.loads(request.to_json()) | {"priority": 3, "route": {"via": "b"}}
    assert Delegation.from_json(json.dumps(newer)) == request


def test_a_request_of_an_older_release_reads_with_the_defaults() -> None:
    older = {"peer": "writer", "skill": None, "tag": None, "text": "hi", "data": None}
    read = Delegation.from_json(json.dumps(older | {"idempotency_key": "e1/ask/1"}))
    assert read.context is None and read.push is True and read.traceparent is None
