"""Kafka -> flow -> outcomes equals `arrecon replay` on the same deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from bytewax.testing import run_main
from confluent_kafka import Producer

from arrecon.connectors.envelope import RawEnvelope
from arrecon.connectors.intake import encode_envelope
from arrecon.flows.live import ClickHouseSink, kafka_input
from arrecon.flows.reconcile import FlowConfig, InputSpec, build_flow
from arrecon.flows.replay import CollectSink, ordered_records, replay
from arrecon.flows.services import KafkaService
from arrecon.loadtest.generator import MessConfig, write
from arrecon.sinks.clickhouse import acquire_client, release_client

pytestmark = pytest.mark.integration

EVENTS = 1500


def _stream(tmp_path: Path) -> Path:
    path, truth = tmp_path / "input.jsonl", tmp_path / "truth.jsonl"
    write(path, truth, MessConfig(), seed=7, n_events=EVENTS)
    return path


def _produce_records(
    producer: Producer,
    topic: str,
    path: Path,
    key: Callable[[str, dict[str, str], bytes], bytes] | None = None,
) -> int:
    """Every replay line as a stored envelope, optionally keyed like the receiver does."""
    count = 0
    for line in path.read_bytes().splitlines():
        record = orjson.loads(line)
        headers = record.get("headers") or {}
        envelope = RawEnvelope(
            source=record["source"],
            kind=record.get("kind") or "",
            received_at=datetime.fromisoformat(record["received_at"].replace("Z", "+00:00")),
            body=record["body"],
            headers=headers,
        )
        body = record["body"]
        raw = body.encode() if isinstance(body, str) else orjson.dumps(body)
        routing = key(record["source"], headers, raw) if key else None
        producer.produce(topic, encode_envelope(envelope), key=routing)
        producer.poll(0)
        count += 1
    assert producer.flush(30) == 0
    return count


def _produce(kafka: KafkaService, topic: str, path: Path) -> int:
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "acks": "all"})
    return _produce_records(producer, topic, path)


def _kafka_source(kafka: KafkaService, topic: str) -> InputSpec:
    return kafka_input(kafka.bootstrap, topic, group=f"g-{uuid.uuid4().hex[:6]}", tail=False)


def test_kafka_flow_gives_the_same_outcomes_as_replay(
    kafka_service: KafkaService, tmp_path: Path
) -> None:
    path = _stream(tmp_path)
    topic = f"raw-{uuid.uuid4().hex[:8]}"
    kafka_service.create_topic(topic, partitions=1)
    lines = _produce(kafka_service, topic, path)

    sink = CollectSink()
    config = FlowConfig(snapshots=False)
    run_main(build_flow(_kafka_source(kafka_service, topic), sink, config))
    from_kafka = [orjson.loads(line) for line in ordered_records(sink.items)]

    expected_path = replay(path, tmp_path / "replay", progress=False)
    from_replay = [orjson.loads(line) for line in expected_path.read_bytes().splitlines()]

    def comparable(records: list[dict[str, object]]) -> list[tuple[object, ...]]:
        # Rejections name their input position: a line number in replay, an offset in Kafka.
        return [(r["type"], r["outcome_id"]) for r in records if r["type"] != "rejected"]

    assert lines >= EVENTS
    assert comparable(from_kafka) == comparable(from_replay)
    assert sum(1 for r in from_kafka if r["type"] == "applied") > 100


def test_flow_writes_outcome_rows_into_chdb(kafka_service: KafkaService, tmp_path: Path) -> None:
    path = _stream(tmp_path)
    topic = f"raw-{uuid.uuid4().hex[:8]}"
    kafka_service.create_topic(topic, partitions=1)
    _produce(kafka_service, topic, path)
    dsn = f"chdb://{tmp_path / 'chdb'}"
    sink = ClickHouseSink(dsn)
    source = _kafka_source(kafka_service, topic)
    flow = build_flow(source, sink, FlowConfig(), record_events=True)
    run_main(flow)
    expected = [
        orjson.loads(line)
        for line in replay(path, tmp_path / "replay", progress=False).read_bytes().splitlines()
    ]
    applied_ids = {r["outcome_id"] for r in expected if r["type"] == "applied"}
    client = acquire_client(dsn)
    try:
        rows = client.query("SELECT application_id FROM applications FINAL").result_rows
        assert {row[0] for row in rows} >= applied_ids
        raw = client.query("SELECT count() FROM raw_events").result_rows[0][0]
        assert raw >= EVENTS
    finally:
        release_client(dsn)
