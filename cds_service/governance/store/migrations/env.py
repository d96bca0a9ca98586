"""Alembic environment of the governance store (run programmatically, see store/database.py).

Role in the data flow: start-up / `lumbar-cds db upgrade` only. Uses the connection handed over
in `config.attributes["connection"]` when there is one (the app and the CLI do), else the URL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from cds_service.governance.store.schema import VERSION_TABLE, metadata

config = context.config


def _configure(**kwargs) -> None:
    context.configure(
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
        **kwargs,
    )


def run_offline() -> None:
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        # SQLite cannot ALTER most things in place: batch mode rebuilds tables when needed.
        _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
