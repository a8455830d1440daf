"""Alembic environment: runs on the connection the store hands over (see store.migrate)."""

from alembic import context
from sqlalchemy import create_engine

from erp_slack.schema import metadata

config = context.config
connection = config.attributes.get("connection")

if connection is None:
    # `alembic -x url=... upgrade head` from a shell, for operators who prefer the tool itself.
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    with create_engine(url).connect() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
