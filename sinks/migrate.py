"""Versioned, idempotent schema migrations from `sinks/schema/NNNN_name.sql`.

Why files and a ledger table: the schema is plain ClickHouse SQL reviewed like
code, and `schema_migrations` records which versions ran (with a checksum), so
`migrate` can run at every start: a second run applies nothing. An applied file
that was edited afterwards is refused rather than silently skipped.

ClickHouse DDL is not transactional. Every statement uses `IF NOT EXISTS`, so a
migration interrupted halfway is simply applied again from its first statement.
Run one migrator at a time per database.

Errors: `MigrationError` for a bad migration folder, an edited applied file or a
failed statement (the cause is chained).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "SCHEMA_DIR",
    "Migration",
    "MigrationError",
    "applied_versions",
    "load_migrations",
    "migrate",
    "split_statements",
]

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY version
"""


class MigrationError(RuntimeError):
    """The schema could not be brought up to date."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def statements(self) -> tuple[str, ...]:
        return split_statements(self.sql)


def split_statements(sql: str) -> tuple[str, ...]:
    """Split a file on `;` at line ends; chunks holding only comments are dropped.

    Why this simple rule: clients run one statement per request, and our schema
    files never put `;` mid-line or inside a string literal.
    """
    statements: list[str] = []
    current: list[str] = []
    for line in sql.splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).rstrip().rstrip(";"))
            current = []
    statements.append("\n".join(current))
    return tuple(text.strip() for text in statements if _has_code(text))


def _has_code(text: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in text.splitlines())


def load_migrations(directory: Path = SCHEMA_DIR) -> tuple[Migration, ...]:
    """All `NNNN_name.sql` files, ordered by version; versions must be unique."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"migration file name must be NNNN_name.sql: {path.name}")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"duplicate migration version {version}: {path.name}")
        found[version] = Migration(version, match.group(2), path.read_text(encoding="utf-8"))
    return tuple(found[version] for version in sorted(found))


def applied_versions(client: Any) -> dict[int, str]:
    """Version -> checksum of every migration already applied."""
    client.command(_LEDGER_DDL)
    result = client.query("SELECT version, any(checksum) FROM schema_migrations GROUP BY version")
    return {int(version): str(checksum) for version, checksum in result.result_rows}


def migrate(
    client: Any, directory: Path = SCHEMA_DIR, now: datetime | None = None
) -> list[Migration]:
    """Apply pending migrations in order; return those applied (empty when current)."""
    done = applied_versions(client)
    applied: list[Migration] = []
    for migration in load_migrations(directory):
        if migration.version in done:
            _check_unchanged(migration, done[migration.version])
            continue
        _apply(client, migration, now or datetime.now(UTC))
        applied.append(migration)
    return applied


def _check_unchanged(migration: Migration, checksum: str) -> None:
    if checksum != migration.checksum:
        raise MigrationError(
            f"migration {migration.version:04d}_{migration.name} was edited after it was "
            "applied; add a new migration instead"
        )


def _apply(client: Any, migration: Migration, now: datetime) -> None:
    for statement in migration.statements:
        try:
            client.command(statement)
        except Exception as error:
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name} failed: {error}"
            ) from error
    client.insert(
        "schema_migrations",
        [[migration.version], [migration.name], [migration.checksum], [now]],
        column_names=["version", "name", "checksum", "applied_at"],
        column_oriented=True,
    )
