"""Alembic migrations of the operational store's schema, run at every start by `store.db.schema`."""
