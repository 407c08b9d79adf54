"""The receiver over a real journal, driven through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import stripe
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from arrecon.connectors.envelope import Decoded, RawEnvelope
from arrecon.connectors.intake import (
    DeadLetters,
    IntakeUnavailableError,
    JournalSink,
    decode_envelope,
    open_embedded,
)
from arrecon.connectors.journal import Journal, JournalReader
from arrecon.connectors.registry import decoder_for
from arrecon.connectors.signatures import (
    BadSignatureError,
    sign_shopify,
    sign_stripe,
    verify_shopify,
    verify_stripe,
)
from arrecon.connectors.webhook import ReceiverSettings, create_app, routing_key

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "samples"
NOW = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
STRIPE_SECRET = "whsec_current"
OLD_STRIPE_SECRET = "whsec_previous"
SHOPIFY_SECRET = "shpss_current"
OLD_SHOPIFY_SECRET = "shpss_previous"
TOKEN = "feed-token-1"
SETTINGS = ReceiverSettings(
    stripe_secrets=(STRIPE_SECRET, OLD_STRIPE_SECRET),
    shopify_secrets=(SHOPIFY_SECRET, OLD_SHOPIFY_SECRET),
    feed_tokens=(TOKEN, "feed-token-2"),
)

Scenario = Callable[[httpx.AsyncClient, JournalSink], Awaitable[None]]


def _run(tmp_path: Path, scenario: Scenario, settings: ReceiverSettings = SETTINGS) -> list[Any]:
    """Run `scenario` against a live app (lifespan included); return stored envelopes."""
    sink = JournalSink(Journal(tmp_path / "raw"))

    async def main() -> None:
        app = create_app(settings, sink, clock=lambda: NOW)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://rx") as client:
                await scenario(client, sink)

    asyncio.run(main())
    return [decode_envelope(payload) for _, payload in JournalReader(tmp_path / "raw")]


def _stripe_event(event_id: str = "evt_1", customer: str = "cus_42") -> bytes:
    obj = {"id": "ch_1", "object": "charge", "amount": 2000, "customer": customer}
    event = {"id": event_id, "type": "charge.succeeded", "data": {"object": obj}}
    return orjson.dumps(event)


def _stripe_headers(body: bytes, secret: str = STRIPE_SECRET, at: datetime = NOW) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "stripe-signature": sign_stripe(body, secret, int(at.timestamp())),
    }


def _rejected(endpoint: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "arrecon_receiver_rejected_total", {"endpoint": endpoint, "reason": reason}
    )
    return value or 0.0


def test_valid_stripe_webhook_is_stored_verbatim(tmp_path: Path) -> None:
    body = _stripe_event()
    responses: list[httpx.Response] = []

    async def scenario(client: httpx.AsyncClient, sink: JournalSink) -> None:
        headers = {**_stripe_headers(body), "authorization": "Bearer leak", "x-other": "drop"}
        responses.append(await client.post("/webhooks/stripe", content=body, headers=headers))

    accepted_before = REGISTRY.get_sample_value(
        "arrecon_receiver_accepted_total", {"endpoint": "stripe"}
    )
    stored = _run(tmp_path, scenario)
    accepted_after = REGISTRY.get_sample_value(
        "arrecon_receiver_accepted_total", {"endpoint": "stripe"}
    )
    assert accepted_after == (accepted_before or 0.0) + 1
    assert responses[0].status_code == 200
    assert responses[0].json()["stored"] == "0:0"
    assert len(stored) == 1
    envelope = stored[0]
    assert isinstance(envelope, RawEnvelope)
    assert (envelope.source, envelope.kind, envelope.received_at) == ("stripe", "", NOW)
    assert envelope.body == body.decode()
    assert envelope.headers["stripe-signature"] == _stripe_headers(body)["stripe-signature"]
    assert "authorization" not in envelope.headers
    assert "x-other" not in envelope.headers


def test_stripe_signature_made_by_the_sdk_and_real_sample_body(tmp_path: Path) -> None:
    sample = SAMPLES / "stripe" / "pay-rails-pay" / "charge.succeeded.json"
    data = orjson.loads(sample.read_bytes())
    body = orjson.dumps({"id": "evt_sample", "type": "charge.succeeded", "data": data})
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), STRIPE_SECRET, int(NOW.timestamp()) - 299
    )
    statuses: list[int] = []

    async def scenario(client: httpx.AsyncClient, sink: JournalSink) -> None:
        headers = {"content-type": "application/json; charset=utf-8", "stripe-signature": header}
        response = await client.post("/webhooks/stripe", content=body, headers=headers)
        statuses.append(response.status_code)

    stored = _run(tmp_path, scenario)
    assert statuses == [200]
    assert orjson.loads(stored[0].body) == orjson.loads(body)


def _oversized_stream() -> AsyncIterator[bytes]:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 65_536  # 1.25 MiB in total, no Content-Length

    return chunks()


STRIPE_REFUSALS: list[tuple[str, Callable[[bytes], dict[str, Any]], int, str]] = [
    (
        "wrong secret",
        lambda b: {"headers": _stripe_headers(b, secret="whsec_other")},
        401,
        "bad_signature",
    ),
    (
        "missing header",
        lambda b: {"headers": {"content-type": "application/json"}},
        401,
        "missing_signature",
    ),
    (
        "garbage header",
        lambda b: {"headers": {"content-type": "application/json", "stripe-signature": "x"}},
        401,
        "bad_signature",
    ),
    (
        "tampered body",
        lambda b: {"headers": _stripe_headers(b), "content": b.replace(b"2000", b"9000")},
        401,
        "bad_signature",
    ),
    (
        "stale timestamp",
        lambda b: {"headers": _stripe_headers(b, at=NOW - timedelta(seconds=301))},
        400,
        "stale_timestamp",
    ),
    (
        "timestamp from the future",
        lambda b: {"headers": _stripe_headers(b, at=NOW + timedelta(seconds=301))},
        400,
        "stale_timestamp",
    ),
    (
        "wrong content type",
        lambda b: {"headers": {**_stripe_headers(b), "content-type": "text/plain"}},
        415,
        "unsupported_media_type",
    ),
    (
        "declared too large",
        lambda b: {"headers": {**_stripe_headers(b), "content-length": str(1024 * 1024 + 1)}},
        413,
        "too_large",
    ),
    (
        "streamed too large",
        lambda b: {"headers": _stripe_headers(b), "content": _oversized_stream()},
        413,
        "too_large",
    ),
]


@pytest.mark.parametrize(
    ("case", "request_args", "status", "reason"),
    STRIPE_REFUSALS,
    ids=[case[0] for case in STRIPE_REFUSALS],
)
def test_refused_stripe_deliveries_never_reach_the_log(
    tmp_path: Path,
    case: str,
    request_args: Callable[[bytes], dict[str, Any]],
    status: int,
    reason: str,
) -> None:
    body = _stripe_event()
    args = {"content": body, **request_args(body)}
    before = _rejected("stripe", reason)
    responses: list[httpx.Response] = []

    async def scenario(client: httpx.AsyncClient, sink: JournalSink) -> None:
        responses.append(await client.post("/webhooks/stripe", **args))

    assert _run(tmp_path, scenario) == []
    assert responses[0].status_code == status
    assert responses[0].json() == {"error": reason}
    assert _rejected("stripe", reason) == before + 1


def test_stripe_secret_rotation_accepts_old_and_new(tmp_path: Path) -> None:
    bodies = [_stripe_event(f"evt_{i}") for i in range(3)]
    statuses: list[int] = []

    async def scenario(client: httpx.AsyncClient, sink: JournalSink) -> None:
        old = _stripe_headers(bodies[0], secret=OLD_STRIPE_SECRET)
        new = _stripe_headers(bodies[1], secret=STRIPE_SECRET)
        # During a roll Stripe sends one v1 signature per active secret.
        timestamp = int(NOW.timestamp())
        both = sign_stripe(bodies[2], "whsec_unknown", timestamp)
        both += "," + sign_stripe(bodies[2], OLD_STRIPE_SECRET, timestamp).split(",")[1]
        for body, headers in zip(
            bodies, [old, new, {**new, "stripe-signature": both}], strict=True
        ):
            response = await client.post("/webhooks/stripe", content=body, headers=headers)
            statuses.append(response.status_code)

    stored = _run(tmp_path, scenario)
    assert statuses == [200, 200, 200]
    assert [orjson.loads(e.body)["id"] for e in stored] == ["evt_0", "evt_1", "evt_2"]

    only_new = ReceiverSettings(stripe_secrets=(STRIPE_SECRET,))
    refused: list[int] = []

    async def retired(client: httpx.AsyncClient, sink: JournalSink) -> None:
        headers = _stripe_headers(bodies[0], secret=OLD_STRIPE_SECRET)
        refused.append(
            (await client.post("/webhooks/stripe", content=bodies[0], headers=headers)).status_code
        )

    assert _run(tmp_path / "second", retired, only_new) == []
    assert refused == [401]


def _shopify_order() -> bytes:
    return (SAMPLES / "shopify" / "Shopify-shopify_python_api" / "order.json").read_bytes()


@pytest.mark.parametrize(
    ("secret", "topic", "status", "reason"),
    [
        (SHOPIFY_SECRET, "orders/create", 200, ""),
        (OLD_SHOPIFY_SECRET, "orders/paid", 200, ""),
        ("shpss_wrong", "orders/create", 401, "bad_signature"),
        (None, "orders/create", 401, "missing_signature"),
        (SHOPIFY_SECRET, None, 400, "missing_topic"),
    ],
)
def test_shopify_hmac_and_topic(
    tmp_path: Path, secret: str | None, topic: str | None, status: int, reason: str
) -> None:
    body = _shopify_order()
    headers = {"content-type": "application/json", "x-shopify-shop-domain": "demo.myshopify.com"}
    if secret is not None:
        headers["x-shopify-hmac-sha256"] = sign_shopify(body, secret)
    if topic is not None:
        headers["x-shopify-topic"] = topic
    before = _rejected("shopify", reason)
    responses: list[httpx.Response] = []

    async def scenario(client: httpx.AsyncClient, sink: JournalSink) -> None:
        responses.append(await client.post("/webhooks/shopify", content=body, headers=headers))

    stored = _run(tmp_path, scenario)
    assert responses[0].status_code == status
    if status == 200:
        assert [(e.source, e.kind) for e in stored] == [("shopify", topic)]
        assert stored[0].body == body.decode()
        assert stored[0].headers["x-shopify-shop-domain"] == "demo.myshopify.com"
    else:
        assert stored == []
        assert _rejected("shopify", reason) == before + 1


def test_shopify_hmac_is_over_the_raw_bytes(tmp_path: Path) -> None:
    body = _shopify_order()
    reformatted = orjson.dumps(orjson.loads(body))  # same JSON, different bytes
    statuses: list[int] = []

    async def scenario(client: httpx.AsyncClient, sink: JournalSink) -> None:
        headers = {
            "content-type": "application/json",
            "x-shopify-topic": "orders/create",
            "x-shopify-hmac-sha256": sign_shopify(body, SHOPIFY_SECRET),
        }
        response = await client.post("/webhooks/shopify", content=reformatted, headers=headers)
        statuses.append(response.status_code)

    assert _run(tmp_path, scenario) == []
    assert statuses == [401]


def _camt() -> bytes:
    return (SAMPLES / "camt053" / "genkgo-camt" / "camt053.v2.minimal.ultimate.xml").read_bytes()


BEARER = f"Bearer {TOKEN}"
XML = "application/xml"
# (path, kind, content type, Authorization header, status, refusal reason)
FEED_CASES: list[tuple[str, str, str, str, int, str]] = [
    ("/feeds/bank", "camt053", XML, BEARER, 200, ""),
    ("/feeds/bank", "camt053", XML, "Bearer feed-token-2", 200, ""),
    ("/feeds/bank", "camt053", XML, "", 401, "missing_token"),
    ("/feeds/bank", "camt053", XML, "Bearer nope", 401, "bad_token"),
    ("/feeds/bank", "camt053", XML, f"Basic {TOKEN}", 401, "missing_token"),
    ("/feeds/bank", "pdf", XML, BEARER, 400, "unknown_kind"),
    ("/feeds/bank", "camt053", "image/png", BEARER, 415, "unsupported_media_type"),
    ("/feeds/erp", "camt053", XML, BEARER, 400, "unknown_kind"),
]


@pytest.mark.parametrize("case", FEED_CASES)
def test_bank_feed_bearer_kind_and_type(
    tmp_path: Path, case: tuple[str, str, str, str, int, str]
) -> None:
    path, kind, content_type, authorization, status, reason = case
    body = _camt()
    endpoint = path.rsplit("/", 1)[1]
    before = _rejected(endpoint, reason)
    responses: list[httpx.Response] = []

    async def scenario(client: httpx.AsyncClient, sink: JournalSink) -> None:
        headers = {"content-type": content_type}
        if authorization:
            headers["authorization"] = authorization
        responses.append(
            await client.post(path, params={"kind": kind}, content=body, headers=headers)
        )

    stored = _run(tmp_path, scenario)
    assert responses[0].status_code == status
    if status == 200:
        assert [(e.source, e.kind, e.body) for e in stored] == [("bank", kind, body.decode())]
        assert "authorization" not in stored[0].headers
    else:
        assert stored == []
        assert _rejected(endpoint, reason) == before + 1


def test_feed_files_have_their_own_size_limit(tmp_path: Path) -> None:
    settings = ReceiverSettings(feed_tokens=(TOKEN,), file_max_bytes=3 * 1024 * 1024)
    line = b"2026-03-02,ACME Corp,INV-1001,1250.00,USD\n"
    two_mib = line * (2 * 1024 * 1024 // len(line))
    four_mib = two_mib * 2
    statuses: list[int] = []

    async def scenario(client: httpx.AsyncClient, sink: JournalSink) -> None:
        headers = {"content-type": "text/csv", "authorization": f"Bearer {TOKEN}"}
        for body in (two_mib, four_mib):
            response = await client.post(
                "/feeds/bank", params={"kind": "csv"}, content=body, headers=headers
            )
            statuses.append(response.status_code)

    stored = _run(tmp_path, scenario, settings)
    assert statuses == [200, 413]
    assert [e.body for e in stored] == [two_mib.decode()]


def test_feed_text_honours_declared_charset_and_refuses_bad_bytes(tmp_path: Path) -> None:
    latin1 = ":20:STARTUMS\n:86:Überweisung Müller\n".encode("latin-1")
    statuses: list[int] = []

    async def scenario(client: httpx.AsyncClient, sink: JournalSink) -> None:
        auth = {"authorization": f"Bearer {TOKEN}"}
        for content_type in ("text/plain; charset=ISO-8859-1", "text/plain"):
            headers = {"content-type": content_type, **auth}
            response = await client.post(
                "/feeds/bank", params={"kind": "mt940"}, content=latin1, headers=headers
            )
            statuses.append(response.status_code)

    stored = _run(tmp_path, scenario)
    assert statuses == [200, 400]
    assert [e.body for e in stored] == [latin1.decode("latin-1")]


def test_feed_files_round_trip_under_the_sources_decoders_expect(tmp_path: Path) -> None:
    mt940 = (SAMPLES / "mt940" / "wolph-mt940" / "betterplace" / "sepa_snippet.sta").read_bytes()
    tsv = b"settlement-id\tsettlement-start-date\ttotal-amount\n1234\t2026-03-01\t100.00\n"
    balance_list = b'{"object":"list","data":[{"id":"txn_1","payout":"po_1","fee":88}]}'
    deliveries = [
        ("/feeds/bank", "mt940", "text/plain", mt940, "bank"),
        ("/feeds/bank", "camt053", "application/xml", _camt(), "bank"),
        ("/feeds/settlement", "settlement_v2", "text/tab-separated-values", tsv, "amazon"),
        ("/feeds/settlement", "balance_transactions", "application/json", balance_list, "stripe"),
        ("/feeds/erp", "invoice", "application/json", b'{"number":"INV-1"}', "erp"),
    ]
    statuses: list[int] = []

    async def scenario(client: httpx.AsyncClient, sink: JournalSink) -> None:
        for path, kind, content_type, body, _ in deliveries:
            headers = {"content-type": content_type, "authorization": f"Bearer {TOKEN}"}
            response = await client.post(path, params={"kind": kind}, content=body, headers=headers)
            statuses.append(response.status_code)

    stored = _run(tmp_path, scenario)
    assert statuses == [200] * 5
    # Envelope sources are the ones the decoder registry dispatches on.
    assert [(e.source, e.kind, e.body) for e in stored] == [
        (source, kind, body.decode()) for _, kind, _, body, source in deliveries
    ]
    for envelope in stored:
        assert not isinstance(decoder_for(envelope.source, envelope.kind), Decoded)


def test_health_and_readiness_follow_the_sink(tmp_path: Path) -> None:
    sink = JournalSink(Journal(tmp_path / "raw"))
    app = create_app(SETTINGS, sink, clock=lambda: NOW)
    seen: list[tuple[str, int]] = []

    async def probe(client: httpx.AsyncClient, label: str) -> None:
        for path in ("/healthz", "/readyz"):
            seen.append((f"{label}{path}", (await client.get(path)).status_code))

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rx") as client:
            await probe(client, "before")
            async with app.router.lifespan_context(app):
                await probe(client, "running")
            await probe(client, "after")
            body = _stripe_event()
            late = await client.post(
                "/webhooks/stripe", content=body, headers=_stripe_headers(body)
            )
            seen.append(("late", late.status_code))

    before = _rejected("stripe", "unavailable")
    asyncio.run(main())
    assert seen == [
        ("before/healthz", 200),
        ("before/readyz", 503),
        ("running/healthz", 200),
        ("running/readyz", 200),
        ("after/healthz", 200),
        ("after/readyz", 503),
        ("late", 503),
    ]
    assert _rejected("stripe", "unavailable") == before + 1


def test_thousand_concurrent_requests_are_all_durable_with_shared_fsyncs(tmp_path: Path) -> None:
    bodies = [_stripe_event(f"evt_{i:04d}", customer=f"cus_{i % 17}") for i in range(1000)]
    responses: list[httpx.Response] = []
    batches: list[int] = []

    async def scenario(client: httpx.AsyncClient, sink: JournalSink) -> None:
        posts = [
            client.post("/webhooks/stripe", content=b, headers=_stripe_headers(b)) for b in bodies
        ]
        responses.extend(await asyncio.gather(*posts))
        batches.append(sink.batches)

    fsynced_before = REGISTRY.get_sample_value("arrecon_journal_batch_records_sum") or 0.0
    stored = _run(tmp_path, scenario)
    assert [r.status_code for r in responses] == [200] * 1000
    assert len({r.json()["stored"] for r in responses}) == 1000
    assert sorted(orjson.loads(e.body)["id"] for e in stored) == [
        f"evt_{i:04d}" for i in range(1000)
    ]
    assert 1 <= batches[0] < 1000  # group commit: fsyncs are shared
    fsynced = REGISTRY.get_sample_value("arrecon_journal_batch_records_sum") or 0.0
    assert fsynced - fsynced_before == 1000


def test_shutdown_drains_queued_stores(tmp_path: Path) -> None:
    sink = JournalSink(Journal(tmp_path / "raw"))
    results: list[str] = []

    async def main() -> None:
        await sink.start()
        stores = [asyncio.create_task(sink.store(f"r{i}".encode())) for i in range(200)]
        await asyncio.sleep(0)  # queued, none flushed yet
        await sink.aclose()
        results.extend(await asyncio.gather(*stores))
        with pytest.raises(IntakeUnavailableError):
            await sink.store(b"too late")

    asyncio.run(main())
    assert len(results) == 200
    stored = [p for _, p in JournalReader(tmp_path / "raw")]
    assert stored == [f"r{i}".encode() for i in range(200)]


def test_failed_fsync_fails_the_batch_and_readiness(tmp_path: Path) -> None:
    class BrokenJournal(Journal):
        def append_batch(self, payloads: Any) -> Any:
            raise OSError(28, "No space left on device")

    sink = JournalSink(BrokenJournal(tmp_path / "raw"))
    outcome: list[object] = []

    async def main() -> None:
        await sink.start()
        with pytest.raises(IntakeUnavailableError):
            await sink.store(b"one")
        outcome.append(sink.ready())
        await sink.aclose()

    asyncio.run(main())
    assert outcome == [False]


def test_dead_letters_keep_envelope_and_reason(tmp_path: Path) -> None:
    sink, dead = open_embedded(tmp_path)
    envelope = RawEnvelope("bank", "mt940", NOW, ":20:broken", {"content-type": "text/plain"}, 7)
    offsets = dead.write_batch([(envelope, "malformed_mt940", "no :25: tag")])
    dead.close()
    assert isinstance(dead, DeadLetters)
    assert sink.journal.directory == tmp_path / "raw"
    [(offset, record)] = list(JournalReader(tmp_path / "dead-letter"))
    assert offset == offsets[0]
    data = orjson.loads(record)
    assert (data["reason"], data["detail"], data["position"]) == (
        "malformed_mt940",
        "no :25: tag",
        7,
    )
    again = decode_envelope(orjson.dumps(data["envelope"]), position=7)
    assert again == envelope


@pytest.mark.parametrize(
    ("source", "headers", "body", "expected"),
    [
        ("stripe", {}, _stripe_event("evt_9", "cus_7"), b"cus_7"),
        ("stripe", {}, b'{"id":"evt_9","account":"acct_1","data":{"object":{}}}', b"acct_1"),
        ("stripe", {}, b'{"id":"evt_9","data":{"object":{"customer":null}}}', b"evt_9"),
        ("shopify", {"x-shopify-webhook-id": "wh_1"}, b'{"id":5,"customer":{"id":77}}', b"77"),
        ("shopify", {"x-shopify-webhook-id": "wh_1"}, b'{"id":5}', b"wh_1"),
        ("bank", {}, b"file", hashlib.sha256(b"file").hexdigest()[:32].encode()),
        ("stripe", {}, b"not json", hashlib.sha256(b"not json").hexdigest()[:32].encode()),
    ],
)
def test_routing_key(source: str, headers: dict[str, str], body: bytes, expected: bytes) -> None:
    assert routing_key(source, headers, body) == expected


def test_routing_key_of_a_list_answer_is_its_content_hash_not_a_crash() -> None:
    from arrecon.connectors.webhook import routing_key

    body = b'{"object":"list","data":[{"id":"txn_1","payout":"po_1"}]}'
    assert routing_key("stripe", {}, body) == hashlib.sha256(body).hexdigest()[:32].encode()


def test_sink_refuses_when_its_queue_is_full(tmp_path: Path) -> None:
    sink = JournalSink(Journal(tmp_path / "raw"), max_queued_bytes=100)
    stored: list[str] = []

    async def main() -> None:
        await sink.start()
        with pytest.raises(IntakeUnavailableError, match="queue full"):
            await sink.store(b"x" * 101)
        stored.append(await sink.store(b"y" * 100))
        await sink.aclose()

    asyncio.run(main())
    assert stored == ["0:0"]
    assert [p for _, p in JournalReader(tmp_path / "raw")] == [b"y" * 100]


def test_uvicorn_shutdown_drains_in_flight_requests(tmp_path: Path) -> None:
    """SIGTERM-style exit while fsyncs are slow: every 200 is on disk, none lost."""

    class SlowDisk(Journal):
        def append_batch(self, payloads: Any) -> Any:
            time.sleep(0.05)
            return super().append_batch(payloads)

    sink = JournalSink(SlowDisk(tmp_path / "raw"))
    app = create_app(SETTINGS, sink, clock=lambda: NOW)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    bodies = [_stripe_event(f"evt_{i:03d}") for i in range(200)]
    outcomes: list[httpx.Response | BaseException] = []

    async def post_all() -> None:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:
            posts = [
                client.post("/webhooks/stripe", content=b, headers=_stripe_headers(b))
                for b in bodies
            ]
            outcomes.extend(await asyncio.gather(*posts, return_exceptions=True))

    async def main() -> None:
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        load = asyncio.create_task(post_all())
        while sink.batches == 0:  # requests are in flight, fsyncs are slow
            await asyncio.sleep(0.005)
        server.should_exit = True
        await serving
        await load

    asyncio.run(main())
    acknowledged = [o for o in outcomes if isinstance(o, httpx.Response) and o.status_code == 200]
    on_disk = {str(offset) for offset, _ in JournalReader(tmp_path / "raw")}
    assert acknowledged, "some requests should have completed before shutdown"
    assert {r.json()["stored"] for r in acknowledged} <= on_disk
    assert len(on_disk) == len(acknowledged)  # nothing stored that was not answered 200
    assert not sink.ready()
    assert not sink.journal.is_open


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(max_size=400),
    secrets=st.lists(
        st.text(alphabet="abcdef0123456789", min_size=8, max_size=16),
        min_size=1,
        max_size=3,
        unique=True,
    ),
    which=st.integers(min_value=0),
    flip=st.integers(min_value=0),
)
def test_stripe_signature_accepts_any_configured_secret_and_rejects_any_edit(
    text: str, secrets: list[str], which: int, flip: int
) -> None:
    body = text.encode()
    stamp = int(NOW.timestamp())
    header = sign_stripe(body, secrets[which % len(secrets)], stamp)
    assert verify_stripe(body, header, secrets, NOW) == stamp
    edited = bytearray(body + b"!")
    edited[flip % len(edited)] ^= 0x01
    with pytest.raises(BadSignatureError):
        verify_stripe(bytes(edited), header, secrets, NOW)
    with pytest.raises(BadSignatureError):
        verify_shopify(body, sign_shopify(body, "other-secret"), secrets)
    verify_shopify(body, sign_shopify(body, secrets[which % len(secrets)]), secrets)


def test_malformed_content_length_is_refused(tmp_path: Path) -> None:
    body = _stripe_event()
    responses: list[httpx.Response] = []

    async def scenario(client: httpx.AsyncClient, sink: JournalSink) -> None:
        # Bypass httpx's own header so the app sees exactly this value.
        request = client.build_request("POST", "/webhooks/stripe", content=body)
        request.headers.update(_stripe_headers(body))
        request.headers["content-length"] = "12abc"
        responses.append(await client.send(request))

    assert _run(tmp_path, scenario) == []
    assert responses[0].status_code == 400
    assert responses[0].json() == {"error": "bad_content_length"}


def test_settings_from_env_split_lists_and_limits() -> None:
    env = {
        "ARRECON_STRIPE_WEBHOOK_SECRETS": "whsec_a, whsec_b,,",
        "ARRECON_SHOPIFY_WEBHOOK_SECRETS": "shp_1",
        "ARRECON_FEED_TOKENS": "t1,t2",
        "ARRECON_WEBHOOK_MAX_BYTES": "2048",
    }
    parsed = ReceiverSettings.from_env(env)
    assert parsed.stripe_secrets == ("whsec_a", "whsec_b")
    assert parsed.shopify_secrets == ("shp_1",)
    assert parsed.feed_tokens == ("t1", "t2")
    assert parsed.webhook_max_bytes == 2048
    assert parsed.file_max_bytes == 64 * 1024 * 1024
    assert ReceiverSettings.from_env({}).stripe_secrets == ()
