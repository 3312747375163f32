"""Project settings: ``yunying.toml`` in the project folder, overridden by ``YUNYING_*``.

Nested keys are reached from the environment with a double underscore, e.g.
``YUNYING_WAREHOUSE__ENGINE=spark``. Every setting here is documented in
``docs/configuration.md``; a test fails when one is not.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from yunying.errors import YunyingError

# Called once when a warehouse connection starts waiting for the DuckDB file held by
# another process (unless the caller passed its own ``on_wait``): the CLI sets it to say
# "waiting for the warehouse"; the server leaves it unset. Here, not in the engine, so
# that setting it costs a command no import.
on_warehouse_wait: Callable[[], None] | None = None

CONFIG_FILE = "yunying.toml"
DATA_DIR = ".yunying"


class WarehouseSettings(BaseModel):
    engine: Literal["duckdb", "spark", "clickhouse"] = "duckdb"
    # DuckDB file; relative paths are resolved against the project folder.
    path: str = f"{DATA_DIR}/warehouse.duckdb"
    # Parquet lake used by the Spark engine (one folder per table).
    lake_path: str = f"{DATA_DIR}/lake"
    spark_master: str = "local[2]"
    clickhouse_url: str = "http://localhost:8123/default"
    threads: int | None = None
    memory_limit: str | None = None
    # Seconds a command waits while another process (the server's flush, an import) holds
    # the DuckDB file; 0 fails at once.
    lock_wait: float = Field(default=30.0, ge=0, le=3600)


class AppDbSettings(BaseModel):
    # SQLAlchemy URL; empty means SQLite at .yunying/app.db.
    url: str = ""


class ImportSettings(BaseModel):
    chunk_rows: int = 1_000_000
    # Zone abbreviations read as these IANA zones; any other abbreviation is refused.
    zone_abbreviations: dict[str, str] = Field(default_factory=lambda: {"CST": "Asia/Shanghai"})


class MetricsSettings(BaseModel):
    libraries: list[str] = Field(default_factory=lambda: ["ecommerce", "app", "user", "saas"])
    folder: str = "metrics"


class WebSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    # Addresses (or networks) of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto
    # are believed; empty = none, the socket's peer is the client (sign-in throttling keys
    # on it). "*" trusts everyone: only behind a proxy that is the sole way in.
    trusted_proxies: list[str] = Field(default_factory=list)
    secret_key: str = ""
    session_max_age: int = 14 * 24 * 3600
    # What one request may ask of the warehouse (docs/configuration.md#web).
    query_timeout: float = Field(default=30.0, gt=0, le=3600)
    max_query_cells: int = Field(default=250_000, ge=1)
    max_response_bytes: int = Field(default=10_000_000, ge=1024)
    # Seconds a request waits while another process writes the warehouse, then 503.
    lock_wait: float = Field(default=5.0, ge=0, le=600)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="YUNYING_", env_nested_delimiter="__", extra="forbid"
    )

    name: str = "yunying project"
    timezone: str = "Asia/Shanghai"
    language: Literal["zh_CN", "en"] = "zh_CN"
    currency: str = "CNY"
    # The window of event times that capture (and import) accept: not before this day
    # (UTC) and not later than now plus this many seconds of client clock skew.
    event_time_floor: dt.date = dt.date(2000, 1, 1)
    event_future_skew: int = Field(default=3600, ge=0, le=7 * 24 * 3600)
    warehouse: WarehouseSettings = Field(default_factory=WarehouseSettings)
    appdb: AppDbSettings = Field(default_factory=AppDbSettings)
    imports: ImportSettings = Field(default_factory=ImportSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    web: WebSettings = Field(default_factory=WebSettings)

    # Not read from the file: where the project lives.
    project_dir: Path = Field(default=Path("."), exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file; the file arrives through init kwargs.
        return (env_settings, init_settings)

    def resolve(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.project_dir / p

    @property
    def data_dir(self) -> Path:
        return self.project_dir / DATA_DIR

    @property
    def warehouse_path(self) -> Path:
        return self.resolve(self.warehouse.path)

    @property
    def lake_path(self) -> Path:
        return self.resolve(self.warehouse.lake_path)

    @property
    def appdb_url(self) -> str:
        if self.appdb.url:
            return self.appdb.url
        return f"sqlite:///{self.data_dir / 'app.db'}"


def project_dir_default() -> Path:
    return Path(os.environ.get("YUNYING_PROJECT", "."))


def load_settings(project_dir: Path | str | None = None, **overrides: Any) -> Settings:
    """Read ``yunying.toml`` (if present) then apply the environment."""
    pdir = Path(project_dir) if project_dir is not None else project_dir_default()
    pdir = pdir.resolve()
    data: dict[str, Any] = {}
    cfg = pdir / CONFIG_FILE
    if cfg.exists():
        try:
            data = tomllib.loads(cfg.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise YunyingError("config.bad_toml", path=str(cfg), reason=str(e)) from e
    data.update(overrides)
    try:
        settings = Settings(**data)
    except ValidationError as e:
        first = e.errors()[0]
        raise YunyingError(
            "config.invalid",
            path=str(cfg),
            field=".".join(str(x) for x in first["loc"]),
            reason=first["msg"],
        ) from e
    settings.project_dir = pdir
    return settings


CONFIG_TEMPLATE = """\
# yunying project settings. Every key is optional; the values shown are the defaults.
# Any key can be overridden by an environment variable: YUNYING_<KEY>, with "__" between
# nested keys, e.g. YUNYING_WAREHOUSE__ENGINE=spark. See docs/configuration.md.

name = "{name}"
# Times are stored in UTC and shown in this time zone.
timezone = "Asia/Shanghai"
# Language of the CLI and the web app: "zh_CN" or "en".
language = "zh_CN"
currency = "CNY"
# Event times accepted by capture and import: from this day (UTC) to now plus this many
# seconds of client clock skew; capture refuses the others with a reason, import
# quarantines them (a year-1 or 2099 time is a broken value, not history).
event_time_floor = 2000-01-01
event_future_skew = 3600

[warehouse]
# duckdb (embedded, default) | spark (PySpark, local or cluster) | clickhouse
engine = "duckdb"
path = ".yunying/warehouse.duckdb"
# Parquet lake that the Spark engine reads (one folder per table).
lake_path = ".yunying/lake"
spark_master = "local[2]"
clickhouse_url = "http://localhost:8123/default"
# Seconds a command waits while another process (the server's flush, an import) holds
# the DuckDB file; 0 = fail at once.
lock_wait = 30.0

[appdb]
# SQLAlchemy URL for application state; empty = SQLite at .yunying/app.db.
# Production: "postgresql+psycopg://user:pass@host/db"
url = ""

[imports]
# Rows committed per transaction (rounded up to whole DuckDB row groups of 122880);
# a killed import keeps the chunks it committed.
chunk_rows = 1000000
# Zone abbreviations in times ("2025-03-01 10:00 CST") read as these zones; others are refused.
zone_abbreviations = {{ CST = "Asia/Shanghai" }}

[metrics]
# Built-in metric libraries to enable: ecommerce, app, user, saas, credit
libraries = ["ecommerce", "app", "user", "saas"]
folder = "metrics"

[web]
host = "127.0.0.1"
port = 8000
# Reverse proxies whose X-Forwarded-For is believed (addresses or networks); empty = none.
trusted_proxies = []
# Secret for session cookies; empty = generated and stored in .yunying/secret_key.
secret_key = ""
session_max_age = 1209600
# What one request may ask of the warehouse: seconds before the query is cancelled,
# periods x groups x steps it may compute, and bytes its answer may take.
query_timeout = 30.0
max_query_cells = 250000
max_response_bytes = 10000000
# Seconds a request waits while another process writes the warehouse, then 503.
lock_wait = 5.0
"""
