"""One connection factory for every engine; analytics are Ibis expressions over it.

DuckDB keeps the tables in one embedded file. Spark and ClickHouse read the same
contracts: Spark from a Parquet lake (one folder per table) that the importer writes,
ClickHouse from tables of the same names on its server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yunying import config
from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.warehouse.contracts import CONTRACTS, SQL_TYPES, Contract

if TYPE_CHECKING:
    import ibis
    import ibis.expr.types as ir
    import pyarrow as pa

ENGINES = ("duckdb", "spark", "clickhouse")

_spark_lock = threading.Lock()
_spark_session: Any = None


def spark_session(master: str = "local[2]") -> Any:
    """One Spark session per process: it takes ~12 s to start, so every caller shares it."""
    global _spark_session
    with _spark_lock:
        if _spark_session is None:
            try:
                from pyspark.sql import SparkSession
            except ImportError as e:  # pragma: no cover - depends on the install
                raise YunyingError("warehouse.spark_missing") from e
            _spark_session = (
                SparkSession.builder.master(master)
                .appName("yunying")
                .config("spark.sql.session.timeZone", "UTC")
                .config("spark.sql.shuffle.partitions", "4")
                .config("spark.ui.enabled", "false")
                .config("spark.driver.memory", "2g")
                .config("spark.sql.ansi.enabled", "false")
                .getOrCreate()
            )
            _spark_session.sparkContext.setLogLevel("ERROR")
        return _spark_session


def arrow_schema(c: Contract) -> pa.Schema:
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "timestamp": pa.timestamp("us"),
        "date": pa.date32(),
        "decimal": pa.decimal128(18, 2),
        "json": pa.string(),
    }
    return pa.schema([pa.field(col.name, types[col.type]) for col in c.columns])


def is_lock_error(e: BaseException) -> bool:
    """DuckDB's answer when another process holds the file (its lock is per process)."""
    text = str(e).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


def _is_config_clash(e: BaseException) -> bool:
    """This process already has the file open read-write (DuckDB shares one instance)."""
    return "different configuration" in str(e).lower()


class Warehouse:
    """A connected warehouse. ``table(name)`` gives the Ibis table of a contract.

    On DuckDB the raw connection (``duck``) opens first and Ibis wraps it only when an
    expression needs it, so a command that only runs plain queries (``status``) never
    imports Ibis or pandas.

    DuckDB lets one process hold the file read-write, or several hold it read-only. A
    ``read_only`` warehouse (every analysis, status and overview) therefore shares the file
    with other readers, in this process and others; a writer (import, flush, demo) waits
    for the readers to close. While the file is held the other way, connecting retries for
    up to ``lock_wait`` seconds (default ``warehouse.lock_wait``), calling ``on_wait``
    once so that a command can say why it waits, then fails with ``warehouse.busy``.
    """

    def __init__(
        self,
        settings: Settings,
        engine: str | None = None,
        *,
        read_only: bool = False,
        lock_wait: float | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine or settings.warehouse.engine
        if self.engine not in ENGINES:
            raise YunyingError("warehouse.unknown_engine", engine=self.engine)
        self.read_only = read_only
        self.lock_wait = settings.warehouse.lock_wait if lock_wait is None else lock_wait
        self.on_wait = on_wait
        self._con: ibis.BaseBackend | None = None
        self._duck: Any = None

    # -- connection -------------------------------------------------------------------
    @property
    def con(self) -> ibis.BaseBackend:
        if self._con is None:
            self._con = self._connect()
        return self._con

    def _connect(self) -> ibis.BaseBackend:
        import ibis

        if self.engine == "duckdb":
            return ibis.duckdb.from_connection(self.duck)
        if self.engine == "spark":
            session = spark_session(self.settings.warehouse.spark_master)
            con = ibis.pyspark.connect(session)
            self._register_lake(con)
            return con
        try:
            from urllib.parse import urlparse

            u = urlparse(self.settings.warehouse.clickhouse_url)
            return ibis.clickhouse.connect(
                host=u.hostname or "localhost",
                port=u.port or 8123,
                database=(u.path or "/default").strip("/") or "default",
                user=u.username or "default",
                password=u.password or "",
            )
        except Exception as e:  # the server is outside our control
            raise YunyingError("warehouse.connect_failed", engine="clickhouse", reason=str(e)) from e

    def _connect_duckdb(self, read_only: bool) -> Any:
        import duckdb

        path = self.settings.warehouse_path
        path.parent.mkdir(parents=True, exist_ok=True)
        cfg: dict[str, Any] = {}
        if self.settings.warehouse.threads:
            cfg["threads"] = self.settings.warehouse.threads
        if self.settings.warehouse.memory_limit:
            cfg["memory_limit"] = self.settings.warehouse.memory_limit
        con = self._retry(lambda: duckdb.connect(str(path.absolute()), read_only=read_only, config=cfg))
        # ICU cannot be set at connect time (no autoload here), but can be after.
        con.execute("SET TimeZone = 'UTC'")
        # As Ibis sets it: no Python variables read as tables by accident.
        con.execute("SET python_enable_replacements = false")
        if not read_only:
            for c in CONTRACTS.values():
                con.execute(c.ddl())
            con.execute(
                "CREATE TABLE IF NOT EXISTS _yunying_meta (key VARCHAR PRIMARY KEY, value VARCHAR)"
            )
        return con

    def _connect_reader(self) -> Any:
        """Read-only; a missing file or table is created first by a brief read-write open."""
        if self.settings.warehouse_path.exists():
            try:
                con = self._connect_duckdb(read_only=True)
            except YunyingError:
                raise
            except Exception as e:
                if not _is_config_clash(e):
                    raise
                # This process writes the file right now (a test, the demo): share its instance.
                return self._connect_duckdb(read_only=False)
            have = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
            if have >= {*CONTRACTS, "_yunying_meta"}:
                return con
            con.close()
        self._connect_duckdb(read_only=False).close()
        return self._connect_duckdb(read_only=True)

    def _retry(self, connect: Callable[[], Any]) -> Any:
        """Connect, waiting while another process holds the file the other way."""
        deadline = time.monotonic() + max(0.0, self.lock_wait)
        delay = 0.02
        told = False
        while True:
            try:
                return connect()
            except Exception as e:
                if not is_lock_error(e):
                    raise
                if time.monotonic() + delay > deadline:
                    raise YunyingError(
                        "warehouse.busy", path=str(self.settings.warehouse_path), seconds=f"{self.lock_wait:g}"
                    ) from e
                notice = self.on_wait or config.on_warehouse_wait
                if not told and notice is not None:
                    notice()
                told = True
                time.sleep(delay)
                delay = min(delay * 2, 0.25)

    def interrupt(self) -> None:
        """Cancel the query running on this connection (from another thread); DuckDB only."""
        if self._duck is not None and self.engine == "duckdb":
            self._duck.interrupt()

    def _register_lake(self, con: ibis.BaseBackend) -> None:
        session = spark_session()
        for c in CONTRACTS.values():
            folder = self.settings.lake_path / c.table
            files = sorted(folder.glob("*.parquet")) if folder.exists() else []
            if files:
                df = session.read.parquet(*[str(f) for f in files])
            else:
                df = session.createDataFrame([], _spark_ddl(c))
            df.createOrReplaceTempView(c.table)

    def refresh(self) -> None:
        """Pick up data written since connecting (the lake grows by new files)."""
        if self.engine == "spark" and self._con is not None:
            self._register_lake(self._con)

    def close(self) -> None:
        if self.engine == "duckdb":
            if self._duck is not None:
                self._duck.close()
            self._duck = None
        self._con = None

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------------
    def table(self, name: str) -> ir.Table:
        if name not in CONTRACTS and not name.startswith("_"):
            raise YunyingError("warehouse.unknown_table", table=name, tables=", ".join(CONTRACTS))
        return self.con.table(name)

    def execute(self, expr: ir.Expr) -> Any:
        return self.con.execute(expr)

    def to_pyarrow(self, expr: ir.Expr) -> pa.Table:
        return self.con.to_pyarrow(expr)

    @property
    def duck(self) -> Any:
        """The raw DuckDB connection, for the engine-specific paths (import, bulk load)."""
        if self.engine != "duckdb":
            raise YunyingError("warehouse.duckdb_only", engine=self.engine)
        if self._duck is None:
            self._duck = self._connect_reader() if self.read_only else self._connect_duckdb(read_only=False)
        return self._duck

    # -- writing ----------------------------------------------------------------------
    def append_arrow(self, table: str, data: pa.Table) -> int:
        """Append rows that are already valid (the demo, tests, the importer's sink)."""
        c = CONTRACTS[table]
        data = data.select(c.names).cast(arrow_schema(c))
        if self.engine == "duckdb":
            d = self.duck
            d.register("_yy_append", data)
            try:
                d.execute(f'INSERT INTO "{table}" SELECT * FROM _yy_append')
            finally:
                d.unregister("_yy_append")
        elif self.engine == "spark":
            import uuid

            import pyarrow.parquet as pq

            folder = self.settings.lake_path / table
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".part-{uuid.uuid4().hex}.tmp"
            pq.write_table(data, tmp)
            tmp.rename(folder / f"part-{uuid.uuid4().hex}.parquet")
        else:
            self.con.insert(table, data.to_pandas())
        self.bump_version()
        return data.num_rows

    def truncate(self, table: str) -> None:
        """Remove every row of a contract table (the demo rebuilds from scratch)."""
        c = CONTRACTS[table]
        if self.engine == "duckdb":
            self.duck.execute(f'DELETE FROM "{c.table}"')
        elif self.engine == "spark":
            for f in lake_files(self.settings, c.table):
                f.unlink()
            if self._con is not None:
                self._register_lake(self._con)
        else:
            self.con.truncate_table(c.table)
        self.bump_version()

    def bump_version(self) -> None:
        if self.engine == "duckdb":
            self.duck.execute(
                "INSERT INTO _yunying_meta VALUES ('data_version', '1') ON CONFLICT (key) "
                "DO UPDATE SET value = CAST(CAST(value AS BIGINT) + 1 AS VARCHAR)"
            )
        elif self.engine == "spark":
            marker = self.settings.lake_path / "_version"
            marker.parent.mkdir(parents=True, exist_ok=True)
            n = int(marker.read_text()) if marker.exists() else 0
            marker.write_text(str(n + 1))

    def data_version(self) -> str:
        """Changes whenever data is written: part of every cache key."""
        if self.engine == "duckdb":
            rows = self.duck.execute(
                "SELECT value FROM _yunying_meta WHERE key = 'data_version'"
            ).fetchall()
            return f"duckdb:{rows[0][0] if rows else 0}"
        if self.engine == "spark":
            marker = self.settings.lake_path / "_version"
            return f"spark:{marker.read_text() if marker.exists() else 0}"
        return "clickhouse:live"

    def row_count(self, table: str) -> int:
        if self.engine == "duckdb":
            c = CONTRACTS.get(table)
            if c is None:
                raise YunyingError("warehouse.unknown_table", table=table, tables=", ".join(CONTRACTS))
            return int(self.duck.execute(f'SELECT count(*) FROM "{c.table}"').fetchone()[0])
        return int(self.execute(self.table(table).count()))


def _spark_ddl(c: Contract) -> str:
    spark_types = {"VARCHAR": "STRING", "TIMESTAMP": "TIMESTAMP", "DATE": "DATE"}
    parts = []
    for col in c.columns:
        sql = SQL_TYPES[col.type]
        parts.append(f"`{col.name}` {spark_types.get(sql, sql)}")
    return ", ".join(parts)


def connect(settings: Settings, engine: str | None = None) -> Warehouse:
    return Warehouse(settings, engine)


@contextmanager
def open_warehouse(
    settings: Settings,
    engine: str | None = None,
    *,
    read_only: bool = False,
    on_wait: Callable[[], None] | None = None,
) -> Iterator[Warehouse]:
    wh = Warehouse(settings, engine, read_only=read_only, on_wait=on_wait)
    try:
        yield wh
    finally:
        wh.close()


def lake_files(settings: Settings, table: str) -> list[Path]:
    folder = settings.lake_path / table
    return sorted(folder.glob("*.parquet")) if folder.exists() else []
