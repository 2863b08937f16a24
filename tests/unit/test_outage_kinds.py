"""What counts as the store out of reach (store/outage.py): a caller told so
asks again; anything else is a failure of what was asked."""

from __future__ import annotations

import asyncpg
import pytest

from agent_node.errors import StoreError
from agent_node.store.outage import is_outage

errors = asyncpg.exceptions


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        ConnectionResetError(),
        TimeoutError(),
        errors.CannotConnectNowError("the database system is starting up"),
        errors.AdminShutdownError("terminating connection due to administrator command"),
        errors.TooManyConnectionsError("sorry, too many clients already"),
        errors.InterfaceError("cannot call Connection.fetch(): connection is closed"),
        # A connection the outage cut mid-statement, taken up again (seen in an
        # operator's drill as -32603 for one blocking send in twelve).
        errors.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
    ],
)
def test_outages(exc: BaseException) -> None:
    assert is_outage(exc)
    wrapped = StoreError("commit failed")
    wrapped.__cause__ = exc
    assert is_outage(wrapped)


@pytest.mark.parametrize(
    "exc",
    [
        errors.UniqueViolationError("duplicate key"),
        errors.InterfaceError("the pool is closing"),
        errors.InternalClientError("something else went wrong"),
        ValueError("bad input"),
    ],
)
def test_not_outages(exc: BaseException) -> None:
    assert not is_outage(exc)
