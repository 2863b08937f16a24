"""``Store.take_back_push_config`` on every store: a push config stored for a
request whose message was then refused goes (or the one it replaced comes
back), unless another request wrote that config since."""

from __future__ import annotations

from agent_node.store import Store
from agent_node.store.records import PushConfigRecord


def push_config(config_id: str, url: str, *, created: float) -> PushConfigRecord:
    config = f'{{"taskId":"t1","id":"{config_id}","url":"{url}"}}'
    return PushConfigRecord("t1", config_id, config, "1.0", "caller-a", created)


async def test_a_new_config_taken_back_is_gone(store: Store) -> None:
    await store.put_push_config(push_config("kept", "https://hook.test/a", created=1.0))
    put = push_config("held", "https://hook.test/b", created=2.0)
    assert await store.put_push_config(put, limit=10) is True
    assert await store.take_back_push_config(put, None) is True
    assert [c.id for c in await store.push_configs("t1")] == ["kept"]
    assert await store.take_back_push_config(put, None) is False  # once


async def test_a_replacement_taken_back_puts_the_old_config_back(store: Store) -> None:
    old = push_config("t1", "https://hook.test/old", created=1.0)
    old.pushed_seq, old.attempts = 4, 2
    await store.put_push_config(old)
    put = push_config("t1", "https://hook.test/new", created=2.0)
    await store.put_push_config(put, limit=10)
    assert await store.take_back_push_config(put, old) is True
    assert await store.push_configs("t1") == [old]


async def test_a_config_written_again_since_is_not_taken_back(store: Store) -> None:
    put = push_config("t1", "https://hook.test/mine", created=2.0)
    await store.put_push_config(put, limit=10)
    theirs = push_config("t1", "https://hook.test/theirs", created=3.0)
    await store.put_push_config(theirs, limit=10)  # another request, the same id
    assert await store.take_back_push_config(put, None) is False
    assert await store.push_configs("t1") == [theirs]
    # Deleted meanwhile: nothing to take back, nothing put back.
    await store.delete_push_config("t1", "t1")
    assert await store.take_back_push_config(theirs, put) is False
    assert await store.push_configs("t1") == []
