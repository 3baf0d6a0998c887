"""Alembic's entry point: runs the migrations on the connection `store.db.schema` opened and locked."""

from alembic import context

context.configure(connection=context.config.attributes["connection"], target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
