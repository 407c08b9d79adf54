"""The receiver in Kafka mode: a 200 means the broker acknowledged the envelope."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka import Consumer

from arrecon.connectors.intake import IntakeUnavailableError, KafkaSink, decode_envelope
from arrecon.connectors.signatures import sign_shopify, sign_stripe
from arrecon.connectors.webhook import ReceiverSettings, create_app, routing_key

NOW = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
SETTINGS = ReceiverSettings(stripe_secrets=("whsec_k",), shopify_secrets=("shpss_k",))


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
    finally:
        consumer.close()
    return messages


def _stripe_body(i: int) -> bytes:
    obj = {"id": f"ch_{i}", "object": "charge", "amount": 100 + i, "customer": f"cus_{i % 5}"}
    return orjson.dumps({"id": f"evt_{i}", "type": "charge.succeeded", "data": {"object": obj}})


@pytest.mark.integration
def test_acknowledged_webhooks_are_in_kafka_with_routing_keys(kafka_bootstrap: str) -> None:
    topic = f"arrecon.raw.test-{uuid.uuid4().hex[:8]}"
    sink = KafkaSink(kafka_bootstrap, topic=topic)
    bodies = [_stripe_body(i) for i in range(60)]
    shopify_body = b'{"id":9001,"customer":{"id":314},"total_price":"10.00"}'
    responses: list[httpx.Response] = []
    readiness: list[int] = []

    async def main() -> None:
        app = create_app(SETTINGS, sink, clock=lambda: NOW)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://rx") as client:
                readiness.append((await client.get("/readyz")).status_code)
                stamp = int(NOW.timestamp())
                posts = [
                    client.post(
                        "/webhooks/stripe",
                        content=body,
                        headers={
                            "content-type": "application/json",
                            "stripe-signature": sign_stripe(body, "whsec_k", stamp),
                        },
                    )
                    for body in bodies
                ]
                posts.append(
                    client.post(
                        "/webhooks/shopify",
                        content=shopify_body,
                        headers={
                            "content-type": "application/json",
                            "x-shopify-topic": "orders/paid",
                            "x-shopify-hmac-sha256": sign_shopify(shopify_body, "shpss_k"),
                        },
                    )
                )
                responses.extend(await asyncio.gather(*posts))
        readiness.append(int(sink.ready()))

    asyncio.run(main())
    assert readiness == [200, 0]
    assert [r.status_code for r in responses] == [200] * 61
    assert all(r.json()["stored"].startswith(f"{topic}/") for r in responses)

    messages = _consume(kafka_bootstrap, topic, expected=61)
    assert len(messages) == 61
    envelopes = [decode_envelope(m.value(), position=m.offset()) for m in messages]
    by_body = {e.body: (e, m.key()) for e, m in zip(envelopes, messages, strict=True)}
    for body in bodies:
        envelope, key = by_body[body.decode()]
        assert (envelope.source, envelope.kind, envelope.received_at) == ("stripe", "", NOW)
        assert key == routing_key("stripe", {}, body)
    shop_envelope, shop_key = by_body[shopify_body.decode()]
    assert (shop_envelope.source, shop_envelope.kind) == ("shopify", "orders/paid")
    assert shop_key == b"314"
    # One customer's events share a key, hence a partition, hence their order.
    partitions: dict[bytes, set[int]] = {}
    for message in messages:
        partitions.setdefault(message.key(), set()).add(message.partition())
    assert all(len(p) == 1 for p in partitions.values())


def test_unreachable_broker_fails_start_instead_of_accepting() -> None:
    sink = KafkaSink("127.0.0.1:1", topic="arrecon.raw", connect_timeout_s=1.0)
    assert sink.config["acks"] == "all"
    assert sink.config["enable.idempotence"] is True

    async def main() -> None:
        with pytest.raises(IntakeUnavailableError):
            await sink.start()
        assert not sink.ready()
        with pytest.raises(IntakeUnavailableError):
            await sink.store(b"{}", b"k")

    asyncio.run(main())
