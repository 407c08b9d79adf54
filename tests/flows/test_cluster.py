"""Two processes (-i 0/1 -a ...) over a 4-partition topic reach the balances of one.

Deliveries are keyed by the receiver's routing key (customer hints), so each
customer's webhooks stay in order on one partition; the ledgers end in the same
state as `arrecon replay` of the whole stream in one process.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from arrecon.connectors.webhook import routing_key
from arrecon.flows.replay import replay
from arrecon.flows.services import KafkaService, free_port
from arrecon.loadtest.generator import MessConfig, write
from tests.flows.test_kafka_flow import _produce_records

pytestmark = pytest.mark.integration

WORKER = Path(__file__).with_name("cluster_worker.py")


def _final_open(records: list[dict[str, Any]]) -> dict[str, int]:
    final: dict[str, int] = {}
    for record in records:
        if record["type"] == "invoice_status":
            final[record["invoice_number"]] = record["open_minor"]
    return final


def test_two_processes_reach_the_same_final_balances_as_one(
    kafka_service: KafkaService, tmp_path: Path
) -> None:
    stream, truth = tmp_path / "input.jsonl", tmp_path / "truth.jsonl"
    write(stream, truth, MessConfig(), seed=5, n_events=1500)
    topic = f"raw-{uuid.uuid4().hex[:8]}"
    kafka_service.create_topic(topic, partitions=4)
    producer = Producer({"bootstrap.servers": kafka_service.bootstrap, "acks": "all"})
    _produce_records(producer, topic, stream, key=routing_key)

    addresses = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    group = f"g-{uuid.uuid4().hex[:6]}"
    outs = [tmp_path / f"proc{index}.jsonl" for index in range(2)]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                kafka_service.bootstrap,
                topic,
                group,
                str(out),
                str(index),
                addresses,
            ]
        )
        for index, out in enumerate(outs)
    ]
    for process in processes:
        assert process.wait(timeout=300) == 0

    clustered: dict[str, int] = {}
    for out in outs:
        clustered.update(
            _final_open([orjson.loads(line) for line in out.read_bytes().splitlines()])
        )
    single = replay(stream, tmp_path / "single", progress=False)
    expected = _final_open([orjson.loads(line) for line in single.read_bytes().splitlines()])
    assert len(expected) > 200
    assert all(out.stat().st_size > 0 for out in outs), "both processes must do work"
    assert clustered == expected
