"""chDB fixtures for the sink tests.

chDB opens one folder per process, so a module-scoped database is opened
through the writer's shared client cache and released at module end, before
the next module (or the shared per-test `chdb` fixture) opens another folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arrecon.sinks.clickhouse import acquire_client, release_client
from arrecon.sinks.migrate import migrate


@pytest.fixture(scope="module")
def module_chdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A migrated chDB database shared by one test module."""
    folder: Path = tmp_path_factory.mktemp("chdb")
    dsn = f"chdb://{folder}"
    client = acquire_client(dsn)
    try:
        migrate(client)
        yield client
    finally:
        release_client(dsn)
