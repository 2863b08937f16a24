"""``agent-node serve`` with a memory probe: what rtt_bench.py --memprobe runs A as.

    MEMPROBE_OUT=probe.jsonl [MEMPROBE_TRACE=8] python bench/delegation/memprobe.py serve ...

The same CLI entry point as ``agent-node`` (``agent_node.cli.main:main``), in
this interpreter, plus a handler for SIGUSR1 that appends one JSON line to
``$MEMPROBE_OUT``:

* ``rss``: RSS as it is (``/proc/self/statm``), then ``rss_after_gc`` after
  ``gc.collect()``, then ``rss_after_trim`` after glibc's ``malloc_trim(0)``
  (the heap that is free but was not given back to the system);
* ``blocks``: ``sys.getallocatedblocks()`` (live pymalloc/obmalloc blocks);
* ``types``: live gc-tracked objects per type (the 40 most common), so two
  probes' difference shows what one more parked delegation keeps alive;
* with ``MEMPROBE_TRACE=N`` (tracemalloc with N frames, started before
  agent_node is imported, which costs memory and time itself): the traced
  total and peak, and the 25 biggest allocation sites by line.

The handler runs on the main thread between bytecodes, i.e. between two
steps of the event loop: nothing is in the middle of a step when it reads.
``malloc_trim`` changes every later reading, so compare probes with probes.
"""

from __future__ import annotations

import collections
import ctypes
import gc
import json
import os
import signal
import sys
import time
import tracemalloc
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def _probe(_signum: int, _frame: Any) -> None:
    started = time.perf_counter()
    report: dict[str, Any] = {"at": time.time(), "rss": _rss()}
    gc.collect()
    report["rss_after_gc"] = _rss()
    report["blocks"] = sys.getallocatedblocks()
    counts = collections.Counter(type(o).__name__ for o in gc.get_objects())
    report["gc_objects"] = sum(counts.values())
    report["types"] = dict(counts.most_common(40))
    if tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        report["traced_bytes"], report["traced_peak_bytes"] = current, peak
        stats = tracemalloc.take_snapshot().statistics("lineno")[:25]
        report["top_lines"] = [
            {"where": str(s.traceback[0]), "bytes": s.size, "count": s.count} for s in stats
        ]
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    report["rss_after_trim"] = _rss()
    report["probe_s"] = time.perf_counter() - started
    with open(os.environ["MEMPROBE_OUT"], "a") as out:
        out.write(json.dumps(report) + "\n")


def main() -> None:
    frames = int(os.environ.get("MEMPROBE_TRACE", "0") or 0)
    if frames:
        tracemalloc.start(frames)
    signal.signal(signal.SIGUSR1, _probe)
    from agent_node.cli.main import main as agent_node_main

    sys.argv[0] = "agent-node"
    agent_node_main()


if __name__ == "__main__":
    main()
