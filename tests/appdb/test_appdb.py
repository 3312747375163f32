from __future__ import annotations

import pytest
import sqlalchemy as sa

from yunying.appdb import engine_for, migrate, session_scope
from yunying.config import Settings


def _check(url: str) -> None:
    migrate(url)
    migrate(url)  # idempotent
    with session_scope(url) as s:
        s.execute(sa.text("DELETE FROM app_meta WHERE key = 'k'"))
        s.execute(sa.text("INSERT INTO app_meta (key, value) VALUES ('k', 'v')"))
    with pytest.raises(RuntimeError), session_scope(url) as s:
        s.execute(sa.text("UPDATE app_meta SET value = 'changed' WHERE key = 'k'"))
        raise RuntimeError("boom")
    with engine_for(url).connect() as c:
        assert c.execute(sa.text("SELECT value FROM app_meta WHERE key='k'")).scalar() == "v"


def test_sqlite_migrate_and_rollback(settings: Settings) -> None:
    _check(settings.appdb_url)


@pytest.mark.postgres
def test_postgres_migrate_and_rollback(pg_url: str) -> None:
    _check(pg_url)
