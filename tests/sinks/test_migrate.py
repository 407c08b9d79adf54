"""Migrations: ordered, recorded, idempotent; edited history is refused."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arrecon.sinks.clickhouse import ClickHouseWriter, acquire_client, release_client
from arrecon.sinks.migrate import (
    SCHEMA_DIR,
    MigrationError,
    load_migrations,
    migrate,
    split_statements,
)
from arrecon.sinks.rows import COLUMNS


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1;", ("SELECT 1",)),
        ("-- only a comment;\n", ()),
        ("-- note\nCREATE TABLE a (x Int8)\nENGINE = Memory;\n\n-- tail\n",
         ("-- note\nCREATE TABLE a (x Int8)\nENGINE = Memory",)),
        ("SELECT 1;\nSELECT 2", ("SELECT 1", "SELECT 2")),
    ],
)  # fmt: skip
def test_split_statements(sql: str, expected: tuple[str, ...]) -> None:
    assert split_statements(sql) == expected


def test_migration_files_are_numbered_in_order() -> None:
    migrations = load_migrations()
    versions = [migration.version for migration in migrations]
    assert versions == sorted(versions) == list(range(1, len(versions) + 1))


def test_badly_named_migration_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_tables.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_name"):
        load_migrations(tmp_path)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Any]:
    dsn = f"chdb://{tmp_path / 'chdb'}"
    handle = acquire_client(dsn)
    try:
        yield handle
    finally:
        release_client(dsn)


def tables(client: Any) -> set[str]:
    result = client.query("SELECT name FROM system.tables WHERE database = currentDatabase()")
    return {row[0] for row in result.result_rows}


@pytest.mark.integration
def test_migrate_twice_applies_once(client: Any) -> None:
    first = migrate(client)
    assert [m.version for m in first] == [m.version for m in load_migrations()]
    before = client.query("SELECT version, checksum FROM schema_migrations ORDER BY version")
    assert migrate(client) == []
    after = client.query("SELECT version, checksum FROM schema_migrations ORDER BY version")
    assert after.result_rows == before.result_rows
    assert set(COLUMNS) | {"invoices", "invoices_mv", "schema_migrations"} == tables(client)


@pytest.mark.integration
def test_table_columns_match_the_row_builders(client: Any) -> None:
    migrate(client)
    for table, columns in COLUMNS.items():
        described = client.query(f"DESCRIBE TABLE {table}").result_rows
        inserted = tuple(row[0] for row in described if row[2] != "MATERIALIZED")
        assert inserted == columns, table


@pytest.mark.integration
def test_application_keys_are_computed_at_insert(client: Any) -> None:
    migrate(client)
    client.command(
        "INSERT INTO applications (application_id, payment_id, invoice_number) "
        "VALUES ('a1', 'P1', 'I1'), ('a2', 'P1', 'I2')"
    )
    keys = client.query(
        "SELECT pair_key = cityHash64(payment_id, invoice_number), "
        "payment_key = cityHash64(payment_id) FROM applications"
    ).result_rows
    assert keys == [(1, 1), (1, 1)]
    pairs = client.query("SELECT uniqExact(pair_key), uniqExact(payment_key) FROM applications")
    assert pairs.result_rows == [(2, 1)]


@pytest.mark.integration
def test_new_migration_applies_alone_and_edits_are_refused(client: Any, tmp_path: Path) -> None:
    folder = tmp_path / "schema"
    shutil.copytree(SCHEMA_DIR, folder)
    migrate(client, folder)
    (folder / "0099_extra.sql").write_text(
        "CREATE TABLE IF NOT EXISTS extra (x Int8) ENGINE = MergeTree ORDER BY x;\n"
    )
    assert [m.name for m in migrate(client, folder)] == ["extra"]
    assert "extra" in tables(client)
    (folder / "0099_extra.sql").write_text("-- edited\n" + (folder / "0099_extra.sql").read_text())
    with pytest.raises(MigrationError, match="edited"):
        migrate(client, folder)


@pytest.mark.integration
def test_failed_statement_is_reported_and_not_recorded(client: Any, tmp_path: Path) -> None:
    (tmp_path / "0001_broken.sql").write_text("CREATE TABLE nope (x Int8) ENGINE = Nope;\n")
    with pytest.raises(MigrationError, match="0001_broken"):
        migrate(client, tmp_path)
    assert client.query("SELECT count() FROM schema_migrations").result_rows == [(0,)]


@pytest.mark.integration
def test_writers_on_one_dsn_share_one_client(tmp_path: Path) -> None:
    dsn = f"chdb://{tmp_path / 'shared'}"
    first = ClickHouseWriter(dsn).open()
    second = ClickHouseWriter(dsn, run_migrations=False).open()
    try:
        assert first.client is second.client
        assert "applications" in tables(first.client)
    finally:
        first.close()
        second.close()
    # The last release closed the folder: another folder may now be opened.
    other = f"chdb://{tmp_path / 'other'}"
    handle = acquire_client(other)
    release_client(other)
    assert handle is not None
