"""The analyses the web app serves, found from the runners that exist.

Each analysis is a runner ``run_xxx(wh, q: XxxQuery) -> XxxResult`` in ``yunying.analytics``
(or ``yunying.metrics``). The web app takes the query and result types from the runner's
type hints, so the API body and answer are exactly the CLI's models; an analysis whose
module is not installed yet is simply absent from the routes.
"""

from __future__ import annotations

import importlib
import threading
import typing
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.warehouse.engine import Warehouse

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


def check_limits(q: BaseModel) -> None:
    """Refuse date ranges longer than MAX_RANGE_DAYS (naming the field)."""
    for name in type(q).model_fields:
        value = getattr(q, name, None)
        days = getattr(value, "days", None)
        if isinstance(days, int) and hasattr(value, "to") and days > MAX_RANGE_DAYS:
            raise YunyingError("web.range_too_long", field=name, days=days, max=MAX_RANGE_DAYS)


def _is_model(x: object) -> bool:
    return isinstance(x, type) and issubclass(x, BaseModel)


class WarehouseGate:
    """Open the warehouse per request and close it after, one request at a time.

    Holding DuckDB open would lock out the CLI. Results are cached by query and the
    warehouse's data version, so a warm page costs one small version read.
    """

    def __init__(self, settings: Settings, cache_size: int = 256) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
        self._size = cache_size

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
        if key is not None:
            v = self.version()
            if v is not None:
                with self._lock:
                    hit = self._cache.get((*key, v))
                    if hit is not None:
                        self._cache.move_to_end((*key, v))
                        return hit
                    return self._run_locked(key, fn, v)
        with self._lock:
            return self._run_locked(key, fn, None)

    def _run_locked(self, key: tuple[str, str] | None, fn: Callable[[Warehouse], Any], version: str | None) -> Any:
        try:
            wh = Warehouse(self.settings)
            try:
                if key is None:
                    return fn(wh)
                full = (*key, version or wh.data_version())
                if full in self._cache:
                    self._cache.move_to_end(full)
                    return self._cache[full]
                value = fn(wh)
                self._cache[full] = value
                if len(self._cache) > self._size:
                    self._cache.popitem(last=False)
                return value
            finally:
                wh.close()
        except YunyingError:
            raise
        except Exception as e:
            if _is_lock_error(e):
                raise YunyingError("web.warehouse_busy") from e
            raise


def _is_lock_error(e: Exception) -> bool:
    text = str(e).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)
