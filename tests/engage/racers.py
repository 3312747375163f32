"""Racing clients for the flash-sale concurrency tests (threads, each with its own sessions).

Run as a module to race from a subprocess (the kill test):
``python -m tests.engage.racers <url> <tool_id> <threads> <users>``.
"""

from __future__ import annotations

import random
import sys
import threading
import uuid
from dataclasses import dataclass, field

from yunying.engage import service as S
from yunying.engage.schemas import RedeemRequest, RedeemResult
from yunying.errors import YunyingError

FINAL = {"engage.sold_out", "engage.budget_exhausted"}


@dataclass
class Outcome:
    results: list[tuple[RedeemRequest, RedeemResult]] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def client(url: str, tool_id: str, n_users: int, seed: int, out: Outcome, shared_key: str | None = None,
           barrier: threading.Barrier | None = None) -> None:
    """Buy one unit at a time as random users until the sale is over."""
    rng = random.Random(seed)
    first = True
    finals = 0
    while finals < 1:
        key = shared_key if (first and shared_key) else f"{tool_id}:{uuid.uuid4().hex}"
        user = f"user-{rng.randrange(n_users)}" if not (first and shared_key) else f"pair-{shared_key}"
        req = RedeemRequest(key=key, tool_id=tool_id, user_id=user, quantity=1)
        if first and barrier is not None:
            barrier.wait()
        first = False
        try:
            res = S.redeem(url, req)
        except YunyingError as e:
            with out.lock:
                out.errors[e.key] = out.errors.get(e.key, 0) + 1
            if e.key in FINAL:
                finals += 1
            continue
        except Exception as e:  # reported by the test, never lost in a dead thread
            with out.lock:
                name = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                out.errors[name] = out.errors.get(name, 0) + 1
            continue
        with out.lock:
            out.results.append((req, res))


def race(url: str, tool_id: str, threads: int, n_users: int, pairs: int = 0) -> Outcome:
    """``threads`` concurrent clients; the first ``2 * pairs`` start with a shared key in pairs."""
    out = Outcome()
    barrier = threading.Barrier(2 * pairs) if pairs else None
    ts = []
    for i in range(threads):
        shared = f"{tool_id}:pair-{i // 2}" if i < 2 * pairs else None
        ts.append(threading.Thread(target=client, args=(url, tool_id, n_users, i, out, shared,
                                                        barrier if shared else None)))
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


if __name__ == "__main__":
    url_, tool_, threads_, users_ = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    race(url_, tool_, threads_, users_)
