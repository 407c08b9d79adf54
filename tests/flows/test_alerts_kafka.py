"""Alerts to Kafka: produced by the sink in a real flow, consumed back keyed by customer."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main
from confluent_kafka import Consumer
from prometheus_client import REGISTRY

from arrecon.flows.alerts_sink import AlertDelivery, AlertSink, KafkaAlertChannel
from arrecon.flows.services import KafkaService, free_port
from arrecon.flows.steps import Tagged
from arrecon.sinks.alerts import Alert, AlertRules
from arrecon.state.outcomes import (
    Applied,
    Chargeback,
    CreditLimitExceeded,
    FeeAnomaly,
    Outcome,
    ShortPaid,
    Unapplied,
)

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _consume(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                messages.append(message)
        # anything beyond `expected` would be a duplicate or a stray alert
        extra = consumer.poll(1.0)
        if extra is not None and extra.error() is None:
            messages.append(extra)
    finally:
        consumer.close()
    return messages


def _outcomes(customers: int) -> list[Outcome]:
    out: list[Outcome] = []
    for n in range(customers):
        customer, invoice = f"cus_{n}", f"INV-{n}"
        out += [
            Chargeback(f"cb{n}", T0, f"ch_{n}", invoice, customer, 1_000 + n, "USD", "opened"),
            ShortPaid(f"sp{n}", T0, f"py_{n}", invoice, customer, 300, "USD", "unexplained", False),
            CreditLimitExceeded(f"cl{n}", T0, customer, invoice, 10_000, 12_000, "USD"),
            Applied(f"ap{n}", T0, f"py_{n}", invoice, customer, 700, "USD", "exact", 1.0),
        ]
    out.append(FeeAnomaly("fa", T0, "stripe", "po_9", 290, 350))
    out.append(Unapplied("un", T0, "py_x", None, 5_000, "EUR", "customer_unresolved"))
    return out


def _sent(kind: str) -> float:
    labels = {"kind": kind, "channel": "kafka"}
    return REGISTRY.get_sample_value("arrecon_alerts_sent_total", labels) or 0.0


@pytest.mark.integration
def test_alerts_reach_the_topic_keyed_by_customer(kafka_service: KafkaService) -> None:
    topic = f"arrecon.alerts.test-{uuid.uuid4().hex[:8]}"
    kafka_service.create_topic(topic, partitions=4)
    customers = 12
    items = [Tagged(n, 0, 0, o, T0) for n, o in enumerate(_outcomes(customers))]
    rules = AlertRules(unapplied_max_age_hours=1)
    delivery = AlertDelivery(kafka=kafka_service.bootstrap, topic=topic, check_interval_s=None)
    sink = AlertSink(rules, delivery, clock=lambda: T0 + timedelta(hours=2))
    chargebacks_before = _sent("chargeback")

    flow = Dataflow("alerts_kafka")
    op.output("alerts", op.input("in", flow, TestingSource(items, batch_size=7)), sink)
    run_main(flow)

    expected = customers * 3 + 2  # chargeback, unexplained, credit limit; fee; unapplied age
    messages = _consume(kafka_service.bootstrap, topic, expected)
    records = [orjson.loads(m.value()) for m in messages]
    assert len(records) == expected
    assert len({r["alert_id"] for r in records}) == expected
    partitions: dict[str, set[int]] = defaultdict(set)
    for message, record in zip(messages, records, strict=True):
        key = message.key().decode()
        partitions[key].add(message.partition())
        if record["customer_id"]:
            assert key == record["customer_id"]
    assert all(len(found) == 1 for found in partitions.values())  # one key, one partition
    assert len({p for found in partitions.values() for p in found}) > 1
    by_id = {r["alert_id"]: r for r in records}
    assert by_id["fa:fee_anomaly"]["processor"] == "stripe"
    assert [m.key() for m in messages if orjson.loads(m.value())["kind"] == "fee_anomaly"] == [
        b"stripe"
    ]
    assert by_id["un:unapplied_age"]["amount_minor"] == 5_000
    assert by_id["cb3:chargeback"] == {
        "alert_id": "cb3:chargeback",
        "kind": "chargeback",
        "severity": "critical",
        "customer_id": "cus_3",
        "processor": "",
        "subject": "ch_3",
        "amount_minor": 1_003,
        "currency": "USD",
        "at": "2026-03-02T10:00:00Z",
        "details": {
            "payment_id": "ch_3",
            "invoice_number": "INV-3",
            "status": "opened",
            "dispute_id": "",
            "fee_minor": 0,
        },
    }
    assert _sent("chargeback") == chargebacks_before + customers


def test_undeliverable_alerts_are_counted_not_raised() -> None:
    """No broker: produce and flush give up within the timeout; every alert is counted."""
    failed = {"channel": "kafka"}
    before = REGISTRY.get_sample_value("arrecon_alerts_failed_total", failed) or 0.0
    channel = KafkaAlertChannel(
        f"127.0.0.1:{free_port()}",
        "arrecon.alerts",
        config={"socket.connection.setup.timeout.ms": 1000},
        flush_timeout_s=1.0,
    )
    alerts = [
        Alert(f"o{n}:chargeback", "chargeback", "critical", "c", "s", 1, "USD", T0)
        for n in range(3)
    ]
    channel.send(alerts)
    channel.close()
    after = REGISTRY.get_sample_value("arrecon_alerts_failed_total", failed) or 0.0
    assert after == before + 3
