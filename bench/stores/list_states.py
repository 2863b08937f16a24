"""What a list of executions costs when their states are large: 60
executions of a 1 MB state each, a page of 50 listed with their state and
without it (``list_executions(state=False)``: the operator API's list, the
UI's, the inbox and ``agent-node executions``, which show no state).

    .venv/bin/python bench/stores/list_states.py [--store postgresql://…/db]

SQLite in a scratch folder always; PostgreSQL too when ``--store`` names an
empty database. Prints the fastest of five pages each, in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

from pydantic import BaseModel

from agent_node import Runtime, Workflow

wf = Workflow("big")


@wf.state
class State(BaseModel):
    blob: str = ""
    n: int = 0


@wf.step
async def grow(state: State) -> dict[str, int]:
    return {"n": state.n + 1}


async def measure(url: str) -> dict[bool, float]:
    async with Runtime(url) as runtime:
        for _ in range(60):
            await runtime.run(wf.compile(), {"blob": "x" * 1_000_000})
        took: dict[bool, float] = {}
        for state in (True, False):
            times = []
            for _ in range(5):
                began = time.perf_counter()
                await runtime.store.list_executions(limit=50, state=state)
                times.append(time.perf_counter() - began)
            took[state] = min(times) * 1000
        return took


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", help="an empty PostgreSQL database, besides SQLite")
    args = parser.parse_args()
    urls = [f"sqlite:///{tempfile.mkdtemp(prefix='list-states-')}/s.db"]
    if args.store:
        urls.append(args.store)
    print(f"{'store':12}{'with state (ms)':>18}{'without (ms)':>16}")
    for url in urls:
        took = asyncio.run(measure(url))
        print(f"{url.split(':')[0]:12}{took[True]:>18.1f}{took[False]:>16.2f}")


if __name__ == "__main__":
    main()
