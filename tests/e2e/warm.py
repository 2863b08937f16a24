"""Make every cached venv and npm folder the end-to-end tests use, at once.

    PYTHONPATH=tests .venv/bin/python -m e2e.warm

On a fresh machine the tests make each cache the first time it is needed,
one after the other (about four minutes of pip and npm). ``.ci/run`` starts
this in the background before lint and type checks, so that the caches are
made side by side while those run; a test that needs one still being made
waits for it (each is made under a file lock), and one this could not make
is tried again by its test, which skips with pip's or npm's reason.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from _pytest.outcomes import Skipped
from e2e.foreign.js_peers import GENERATIONS
from e2e.venvs import SDK_CLIENTS, SDK_SERVERS, SDK_SIGNING

#: At a time: pip and npm mostly wait on the index and the disk.
PARALLEL = 4


class Cache(Protocol):
    purpose: str

    def ready(self) -> bool: ...


def make(cache: Cache) -> str:
    started = time.monotonic()
    try:
        if hasattr(cache, "interpreter"):
            cache.interpreter()
        else:
            cache.folder()  # type: ignore[attr-defined]
    except Skipped as skipped:
        return f"{cache.purpose}: not made ({skipped.msg})"
    return f"{cache.purpose}: made in {time.monotonic() - started:.0f} s"


def main() -> int:
    caches: list[Cache] = [*SDK_SERVERS.values(), *SDK_CLIENTS.values(), SDK_SIGNING]
    caches += GENERATIONS.values()
    missing = [cache for cache in caches if not cache.ready()]
    with ThreadPoolExecutor(PARALLEL) as pool:
        for said in pool.map(make, missing):
            print(f"warm: {said}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
