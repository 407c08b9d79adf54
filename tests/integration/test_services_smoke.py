"""Prove each real service is real: Kafka, Redis and chDB round trips."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer, Producer

from arrecon.flows.services import KafkaService

pytestmark = pytest.mark.integration

MESSAGE_COUNT = 10_000


def test_kafka_produces_and_consumes_every_message(kafka_service: KafkaService) -> None:
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    kafka_service.create_topic(topic, partitions=4)
    producer = Producer(
        {"bootstrap.servers": kafka_service.bootstrap, "acks": "all", "enable.idempotence": True}
    )
    for number in range(MESSAGE_COUNT):
        producer.produce(topic, key=str(number % 97).encode(), value=str(number).encode())
        producer.poll(0)
    assert producer.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_service.bootstrap,
            "group.id": f"smoke-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen: set[int] = set()
    try:
        for _ in range(600):
            for message in consumer.consume(num_messages=1000, timeout=1.0):
                assert message.error() is None, message.error()
                seen.add(int(message.value()))
            if len(seen) == MESSAGE_COUNT:
                break
    finally:
        consumer.close()
    assert seen == set(range(MESSAGE_COUNT))


def test_redis_round_trip_and_pipeline(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set("arrecon:smoke", "42")
    assert client.get("arrecon:smoke") == b"42"
    pipe = client.pipeline(transaction=False)
    for number in range(1000):
        pipe.set(f"arrecon:smoke:{number}", number)
    pipe.execute()
    values = client.mget([f"arrecon:smoke:{number}" for number in range(1000)])
    assert [int(value) for value in values if value is not None] == list(range(1000))


def test_chdb_insert_and_aggregate(chdb: Any) -> None:
    chdb.command(
        "CREATE TABLE smoke (id UInt64, customer String, amount_minor Int64) "
        "ENGINE = MergeTree ORDER BY id"
    )
    rows = [[number, f"c{number % 10}", number] for number in range(100_000)]
    chdb.insert("smoke", rows, column_names=["id", "customer", "amount_minor"])
    result = chdb.query(
        "SELECT count(), sum(amount_minor), uniqExact(customer) FROM smoke"
    ).result_rows
    assert result == [(100_000, sum(range(100_000)), 10)]
