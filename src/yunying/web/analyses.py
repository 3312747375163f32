"""The analyses the web app serves, found from the runners that exist.

Each analysis is a runner ``run_xxx(wh, q: XxxQuery) -> XxxResult`` in ``yunying.analytics``
(or ``yunying.metrics``). The web app takes the query and result types from the runner's
type hints, so the API body and answer are exactly the CLI's models; an analysis whose
module is not installed yet is simply absent from the routes.
"""

from __future__ import annotations

import importlib
import math
import threading
import time
import typing
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.warehouse.engine import Warehouse, is_lock_error

# name → (module, runner function)
CANDIDATES: dict[str, tuple[str, str]] = {
    "trends": ("yunying.analytics.trends", "run_trends"),
    "funnel": ("yunying.analytics.funnels", "run_funnel"),
    "retention": ("yunying.analytics.retention", "run_retention"),
    "lifecycle": ("yunying.analytics.lifecycle", "run_lifecycle"),
    "stickiness": ("yunying.analytics.stickiness", "run_stickiness"),
    "rfm": ("yunying.analytics.rfm", "run_rfm"),
    "clv": ("yunying.analytics.clv", "run_clv"),
}


@dataclass(frozen=True)
class Analysis:
    name: str
    query: type[BaseModel]
    result: type[BaseModel]
    runner: Callable[[Warehouse, Any], BaseModel]


def discover() -> dict[str, Analysis]:
    found: dict[str, Analysis] = {}
    for name, (module, fn) in CANDIDATES.items():
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        runner = getattr(mod, fn, None)
        if runner is None:
            continue
        try:
            hints = typing.get_type_hints(runner)
        except Exception:  # a colleague's module mid-edit: skip rather than break the app
            continue
        params = [h for k, h in hints.items() if k != "return"]
        query = params[1] if len(params) >= 2 else None
        result = hints.get("return")
        if not (_is_model(query) and _is_model(result)):
            continue
        found[name] = Analysis(name, typing.cast(type[BaseModel], query), typing.cast(type[BaseModel], result), runner)
    return found


# The HTTP edge bounds the work one request can ask for: ten years of days is more than
# any operations question needs, and a runner asked for millennia would tie up the server.
MAX_RANGE_DAYS = 3660


def check_limits(q: BaseModel, max_cells: int | None = None) -> None:
    """Refuse date ranges longer than MAX_RANGE_DAYS (naming the field), and queries whose
    cost (periods × groups × steps, see ``query_cost``) is above ``max_cells``."""
    for name in type(q).model_fields:
        value = getattr(q, name, None)
        days = getattr(value, "days", None)
        if isinstance(days, int) and hasattr(value, "to") and days > MAX_RANGE_DAYS:
            raise YunyingError("web.range_too_long", field=name, days=days, max=MAX_RANGE_DAYS)
    if max_cells is not None:
        periods, groups, steps = query_cost(q)
        cells = periods * groups * steps
        if cells > max_cells:
            raise YunyingError(
                "web.query_too_big", cells=f"{cells:,}", periods=f"{periods:,}", groups=groups, steps=steps,
                max=f"{max_cells:,}",
            )


_PERIOD_DAYS = {"hour": 1 / 24, "day": 1, "week": 7, "month": 28}


def _periods(days: int, grain: str | None) -> int:
    if grain is None:
        return 1
    return max(1, math.ceil(days / _PERIOD_DAYS[grain]) + (0 if grain in ("hour", "day") else 1))


def query_cost(q: BaseModel) -> tuple[int, int, int]:
    """(periods, groups, steps) a query asks for: the size of its answer, before running it.

    Periods are the date range in the query's grain (trends, lifecycle), interval (funnel)
    or cohort period (retention, whose every cohort has ``periods + 1`` returns); groups are
    the breakdown's values plus "(other)"; steps are a funnel's steps, a retention's return
    periods, a lifecycle's four stages or a stickiness's days per period.
    """
    dates = getattr(q, "dates", None)
    days = int(getattr(dates, "days", 1) or 1)
    breakdown = getattr(q, "breakdown", None)
    groups = int(breakdown.limit) + 1 if breakdown is not None else 1
    name = type(q).__name__
    steps = 1
    if name == "FunnelQuery":
        grain = getattr(q, "interval", None)
        steps = len(getattr(q, "steps", [])) or 1
    elif name == "RetentionQuery":
        grain = getattr(q, "period", "day")
        steps = int(getattr(q, "periods", 1)) + 1
    elif name == "StickinessQuery":
        grain = getattr(q, "period", "week")
        steps = 7 if grain == "week" else 31
    elif name == "LifecycleQuery":
        grain = getattr(q, "grain", "week")
        steps = 4
    else:
        grain = getattr(q, "grain", None) if dates is not None else None
    return _periods(days, grain if grain in _PERIOD_DAYS else None), groups, steps


def _is_model(x: object) -> bool:
    return isinstance(x, type) and issubclass(x, BaseModel)


class ReadWriteLock:
    """Many readers or one writer, within the server process.

    DuckDB lets a process hold its file read-only or read-write, not both at once, so the
    capture flush (a writer) waits for the analyses (readers) that run, and they wait for
    it. A writer that ``block_readers`` stops new readers while it waits, so a steady
    stream of analyses cannot postpone the flush for ever.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self, wait: float, block_readers: bool = False) -> Iterator[None]:
        deadline = time.monotonic() + wait
        with self._cond:
            if block_readers:
                self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise YunyingError("web.warehouse_busy")
                    self._cond.wait(left)
                self._writer = True
            finally:
                if block_readers:
                    self._writers_waiting -= 1
                    self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class WarehouseGate:
    """Open the warehouse per request, read-only, and close it after; requests run at once.

    Each request gets its own read-only DuckDB connection in the threadpool, so a slow
    query does not hold up the others, and the CLI (also read-only for reads) opens the
    file beside the server. The query is cancelled (DuckDB's interrupt) after
    ``web.query_timeout`` seconds, and an answer larger than ``web.max_response_bytes`` is
    refused. Results are cached by query and the warehouse's data version, so a warm page
    costs one stat. Writers (the capture flush) take ``exclusive()``.
    """

    def __init__(self, settings: Settings, cache_size: int = 256) -> None:
        self.settings = settings
        self.rw = ReadWriteLock()
        self._lock = threading.Lock()  # the cache only
        self._cache: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
        self._size = cache_size

    def exclusive(self, wait: float | None = None, block_readers: bool = True) -> Any:
        """Hold the warehouse alone (for a write), waiting at most ``wait`` seconds."""
        if wait is None:
            wait = self.settings.web.query_timeout + 5
        return self.rw.exclusive(wait, block_readers)

    def version(self) -> str | None:
        """The data version without opening the warehouse (a stat), or None when unknown.

        Every DuckDB write changes the database file or its write-ahead log; the Spark
        lake's writes bump its ``_version`` marker. A warm page then skips the connection.
        """
        s = self.settings
        if s.warehouse.engine == "duckdb":
            parts = []
            for p in (s.warehouse_path, s.warehouse_path.with_name(s.warehouse_path.name + ".wal")):
                try:
                    st = p.stat()
                    parts.append(f"{st.st_mtime_ns}:{st.st_size}")
                except FileNotFoundError:
                    parts.append("-")
            return "duckdb-stat:" + "/".join(parts)
        if s.warehouse.engine == "spark":
            marker = s.lake_path / "_version"
            return "spark:" + (marker.read_text() if marker.exists() else "0")
        return None

    def run(self, key: tuple[str, str] | None, fn: Callable[[Warehouse], Any]) -> Any:
        v = self.version() if key is not None else None
        if key is not None and v is not None:
            with self._lock:
                hit = self._cache.get((*key, v))
                if hit is not None:
                    self._cache.move_to_end((*key, v))
                    return hit
        with self.rw.shared():
            value, full = self._run(key, fn, v)
        if full is not None:
            with self._lock:
                self._cache[full] = value
                if len(self._cache) > self._size:
                    self._cache.popitem(last=False)
        return value

    def _run(
        self, key: tuple[str, str] | None, fn: Callable[[Warehouse], Any], version: str | None
    ) -> tuple[Any, tuple[str, str, str] | None]:
        web = self.settings.web
        with busy_as_503():
            wh = Warehouse(self.settings, read_only=True, lock_wait=web.lock_wait)
            try:
                full = None
                if key is not None:
                    full = (*key, version or wh.data_version())
                    with self._lock:
                        if full in self._cache:
                            return self._cache[full], None
                value = _with_timeout(wh, fn, web.query_timeout)
                if isinstance(value, BaseModel):
                    size = len(value.model_dump_json())
                    if size > web.max_response_bytes:
                        raise YunyingError("web.result_too_large", size=f"{size:,}", max=f"{web.max_response_bytes:,}")
                return value, full
            finally:
                wh.close()


@contextmanager
def busy_as_503() -> Iterator[None]:
    """The warehouse file held by another process (an import, the CLI) is the server's
    503 ``web.warehouse_busy``, never an engine's raw error."""
    try:
        yield
    except YunyingError as e:
        if e.key == "warehouse.busy":
            raise YunyingError("web.warehouse_busy") from e
        raise
    except Exception as e:
        if is_lock_error(e):
            raise YunyingError("web.warehouse_busy") from e
        raise


def _with_timeout(wh: Warehouse, fn: Callable[[Warehouse], Any], seconds: float) -> Any:
    """Run ``fn``; after ``seconds`` interrupt its queries (again and again, since a runner
    may start another one) until it returns, then report the timeout."""
    done = threading.Event()
    expired = threading.Event()

    def watchdog() -> None:
        if done.wait(seconds):
            return
        expired.set()
        while not done.is_set():
            try:
                wh.interrupt()
            except Exception:  # the connection is closing: nothing left to cancel
                return
            done.wait(0.05)

    timer = threading.Thread(target=watchdog, daemon=True, name="yunying-query-timeout")
    timer.start()
    try:
        value = fn(wh)
    except Exception as e:
        if expired.is_set():
            raise YunyingError("web.query_timeout", seconds=f"{seconds:g}") from e
        raise
    finally:
        done.set()
        timer.join()
    if expired.is_set():
        raise YunyingError("web.query_timeout", seconds=f"{seconds:g}")
    return value
