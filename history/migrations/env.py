"""Alembic's entry point for the run store: migrations run on the connection the store hands over.

The store opens the transaction (and, on PostgreSQL, takes an advisory lock) before calling Alembic, so
two processes upgrading one database at once run the migrations one after the other.
"""

from __future__ import annotations

from alembic import context

from history._schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the run store's migrations run through history.open_store, which passes a connection")
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
