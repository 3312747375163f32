"""Alembic environment: runs on the connection ``yunying.appdb.migrate`` hands in."""

from __future__ import annotations

from alembic import context

from yunying.appdb import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via yunying.appdb.migrate
    raise RuntimeError("run migrations through yunying.appdb.migrate")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
