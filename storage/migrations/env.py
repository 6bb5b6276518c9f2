"""Alembic environment: runs on the connection handed over by storage.db.upgrade()."""

from __future__ import annotations

from alembic import context

from storage.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `wuye db upgrade` (storage.db.upgrade)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite can't ALTER most things
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
