"""Alembic environment: run with the connection the store hands over (see DocumentStore.migrate)."""

from alembic import context

from rag.store.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
