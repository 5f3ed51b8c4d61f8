"""Alembic environment: migrations run on the connection gis-grid hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from gis_grid.store.postgis.schema import SCHEMA, metadata

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # run from the alembic command line
        engine = create_engine(config.get_main_option("sqlalchemy.url"))
        with engine.begin() as connection:
            _run(connection)
    else:
        _run(connection)


def _run(connection) -> None:
    # the version table lives in our schema, which must exist before Alembic looks
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table_schema=SCHEMA,
        include_schemas=True,
        include_name=lambda name, kind, parent: kind != "schema" or name == SCHEMA,
        # layer tables are made at run time from each layer's schema, not by migrations
        include_object=lambda obj, name, kind, reflected, compare_to: (
            not (kind == "table" and reflected and compare_to is None)
        ),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("gis-grid migrations run online only: gis-grid migrate STORE_URL")
run_migrations_online()
