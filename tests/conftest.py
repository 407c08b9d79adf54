"""Session-wide real services for integration tests.

Kafka and Redis are started once per test session on free loopback ports and
stopped by pid at teardown, even when tests fail. chDB needs no server; each
test gets a client on its own folder (only one process may open a folder).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arrecon.flows.services import ChdbService, KafkaService, RedisService

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = (REPO_ROOT / ".." / "shared" / "samples").resolve()


@pytest.fixture(scope="session")
def kafka_service() -> Iterator[KafkaService]:
    service = KafkaService().start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_service: KafkaService) -> str:
    return kafka_service.bootstrap


@pytest.fixture(scope="session")
def redis_service() -> Iterator[RedisService]:
    service = RedisService().start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def redis_url(redis_service: RedisService) -> str:
    return redis_service.url


@pytest.fixture
def chdb(tmp_path: Path) -> Iterator[Any]:
    """A clickhouse-connect client backed by chDB in a fresh folder."""
    service = ChdbService(tmp_path / "chdb")
    client = service.client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    if not SAMPLES.is_dir():
        raise FileNotFoundError(f"shared samples not found at {SAMPLES}")
    return SAMPLES
