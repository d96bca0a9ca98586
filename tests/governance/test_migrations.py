"""`lumbar-cds db upgrade` / `db current`: the migrations build the schema the code expects."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from cds_service.cli import main as cli_main
from cds_service.governance.store.database import create_store_engine, head_revision
from cds_service.governance.store.schema import VERSION_TABLE, metadata


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_url(request, tmp_path):
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path / 'fresh.sqlite3'}"


def test_db_upgrade_builds_the_schema_of_the_code(fresh_url, capsys):
    assert cli_main(["db", "current", "--database-url", fresh_url]) == 1
    assert "behind" in capsys.readouterr().out
    assert cli_main(["db", "upgrade", "--database-url", fresh_url]) == 0
    assert f"is at revision {head_revision()}" in capsys.readouterr().out
    assert cli_main(["db", "current", "--database-url", fresh_url]) == 0
    assert "(current)" in capsys.readouterr().out
    assert cli_main(["db", "upgrade", "--database-url", fresh_url]) == 0  # idempotent

    engine = create_store_engine(fresh_url)
    try:
        assert {"lcds_judgement", "lcds_feedback", VERSION_TABLE} <= set(inspect(engine).get_table_names())
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = [d for d in compare_metadata(context, metadata) if d[0] != "remove_table"]
        assert differences == []
    finally:
        engine.dispose()


def test_db_upgrade_names_an_unreachable_database_without_its_password(capsys):
    url = "postgresql+psycopg://gov:s3cret-pw@127.0.0.1:1/none"
    assert cli_main(["db", "upgrade", "--database-url", url]) == 3  # the store cannot be reached
    err = capsys.readouterr().err
    assert "cannot reach the governance store postgresql+psycopg://gov:***@127.0.0.1:1/none" in err
    assert len(err.strip().splitlines()) == 1
    assert "s3cret-pw" not in err
