"""The Alembic migrations on real Postgres and SQLite: upgrade, idempotence, downgrade, and
agreement with the models (no autogenerate differences left)."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from csms.db.engine import create_engine
from csms.db.migrate import alembic_config, upgrade_to_head
from csms.db.models import Base

MODEL_TABLES = set(Base.metadata.tables)


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def _schema(connection: Connection) -> dict[str, Any]:
    """Tables, columns, indexes and unique constraints, comparable between two moments."""
    inspector = inspect(connection)
    schema: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        schema[table] = {
            "columns": [
                (column["name"], str(column["type"]), column["nullable"])
                for column in inspector.get_columns(table)
            ],
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (index["name"] or "", tuple(index["column_names"]))
                for index in inspector.get_indexes(table)
            ),
            "unique": sorted(
                (constraint["name"] or "", tuple(constraint["column_names"]))
                for constraint in inspector.get_unique_constraints(table)
            ),
        }
    return schema


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _differences(connection: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


async def inspect_database(url: str) -> tuple[dict[str, Any], str | None, list[Any]]:
    """The schema, the applied revision and the autogenerate differences from the models."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            schema = await connection.run_sync(_schema)
            revision = await connection.run_sync(_revision)
            differences = await connection.run_sync(_differences)
    finally:
        await engine.dispose()
    return schema, revision, differences


async def test_upgrade_from_an_empty_database_creates_every_table(
    empty_database_url: str,
) -> None:
    schema, revision, _ = await inspect_database(empty_database_url)
    assert schema == {}
    assert revision is None

    await asyncio.to_thread(upgrade_to_head, empty_database_url)

    schema, revision, _ = await inspect_database(empty_database_url)
    assert set(schema) == {*MODEL_TABLES, "alembic_version"}
    assert revision == head_revision(empty_database_url)
    for table in MODEL_TABLES:
        columns = {name for name, _, _ in schema[table]["columns"]}
        assert columns == set(Base.metadata.tables[table].columns.keys()), table


async def test_upgrading_twice_changes_nothing(empty_database_url: str) -> None:
    await asyncio.to_thread(upgrade_to_head, empty_database_url)
    first_schema, first_revision, _ = await inspect_database(empty_database_url)

    await asyncio.to_thread(upgrade_to_head, empty_database_url)

    second_schema, second_revision, _ = await inspect_database(empty_database_url)
    assert second_schema == first_schema
    assert second_revision == first_revision == head_revision(empty_database_url)


async def test_models_match_the_migrations(empty_database_url: str) -> None:
    await asyncio.to_thread(upgrade_to_head, empty_database_url)

    _, _, differences = await inspect_database(empty_database_url)

    assert differences == []


async def test_downgrade_to_base_then_upgrade_again(empty_database_url: str) -> None:
    config = alembic_config(empty_database_url)
    await asyncio.to_thread(upgrade_to_head, empty_database_url)
    upgraded_schema, _, _ = await inspect_database(empty_database_url)

    await asyncio.to_thread(command.downgrade, config, "base")

    schema, revision, _ = await inspect_database(empty_database_url)
    assert set(schema) <= {"alembic_version"}
    assert revision is None

    await asyncio.to_thread(command.upgrade, config, "head")

    schema, revision, differences = await inspect_database(empty_database_url)
    assert schema == upgraded_schema
    assert revision == head_revision(empty_database_url)
    assert differences == []
