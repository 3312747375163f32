"""One step of a benchmark in a fresh spawned process, with that process's own figures.

Spawned (not forked), so each step starts without the parent's generated data, and its
peak memory is its own: ``VmHWM`` starts afresh at exec, while ``ru_maxrss`` keeps the
parent's high-water mark across fork + exec.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
import traceback
from collections.abc import Callable
from typing import Any


def peak_rss_mib() -> float:
    """This process's peak RSS in MiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(fn: Callable[..., Any], args: tuple[Any, ...], out: Any) -> None:
    try:
        t0 = time.perf_counter()
        res = fn(*args)
        out.put(("ok", res, time.perf_counter() - t0, peak_rss_mib()))
    except BaseException as e:  # report, so the parent never waits forever
        out.put(("error", f"{fn.__name__}: {e!r}\n{traceback.format_exc()}"))


def spawned(fn: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    """(``fn(*args)``, seconds it took in the child, the child's peak RSS in MiB)."""
    ctx = mp.get_context("spawn")
    q: Any = ctx.Queue()
    p = ctx.Process(target=_child, args=(fn, args, q))
    p.start()
    res = q.get()
    p.join()
    if res[0] == "error":
        raise RuntimeError(res[1])
    return res[1], res[2], res[3]
