"""Application state (users, campaigns, ledgers…): SQLite by default, PostgreSQL in production.

Each domain declares its tables on the shared ``Base`` in its own ``models.py`` and ships
its migrations as an Alembic branch of its own (``branch_labels=("<domain>",)``) in
``appdb/migrations/versions/``; ``migrate`` upgrades every branch head.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from yunying.config import Settings

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


@cache
def engine_for(url: str) -> Engine:
    """One engine (and pool) per URL per process."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        eng = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(eng, "connect", _sqlite_pragmas)
        return eng
    return create_engine(url, pool_size=20, max_overflow=230, pool_pre_ping=True)


def engine_from(settings: Settings) -> Engine:
    return engine_for(settings.appdb_url)


def migrate(url: str, target: str = "heads") -> None:
    """Bring the database to the newest schema of every domain branch."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(MIGRATIONS / "versions"))
    eng = engine_for(url)
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, target)


@cache
def _factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=engine_for(url), expire_on_commit=False)


@contextmanager
def session_scope(url_or_settings: str | Settings) -> Iterator[Session]:
    """A transaction: commits on success, rolls back on any error."""
    url = url_or_settings if isinstance(url_or_settings, str) else url_or_settings.appdb_url
    session = _factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def open_appdb(settings: Settings) -> str:
    """Migrate (idempotent) and return the URL to pass to ``session_scope``."""
    migrate(settings.appdb_url)
    return settings.appdb_url
