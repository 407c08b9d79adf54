"""The receiver: webhooks and file feeds in, durable raw envelopes out.

Why so little work per request: the receiver's only job is to authenticate a
delivery and make it durable before answering 2xx; decoding happens later in the
flow, so a decoder bug can never lose or refuse a delivery. The body is stored as
received text, with a few headers, the source, the kind and `received_at` from
the injected clock.

Routes (all POST; `kind` is required on feeds):
    /webhooks/stripe     Stripe-Signature (Stripe SDK, 300 s tolerance)
    /webhooks/shopify    X-Shopify-Hmac-Sha256, kind from X-Shopify-Topic
    /feeds/bank          ?kind=camt053|camt054|mt940|bai2|csv (camt052, mt942 too)
    /feeds/erp           ?kind=invoice|credit_memo|customer
    /feeds/settlement    ?kind=settlement_v2 (source amazon) | balance_transactions (stripe)
    feeds need `Authorization: Bearer <token>`
    GET /healthz, /readyz

Refusals never reach the log and are counted by (endpoint, reason):
401 bad signature/token, 400 stale timestamp/unknown kind/bad encoding,
413 too large (Content-Length and streamed bytes), 415 content type,
503 sink unavailable. Endpoints are raw ASGI callables inside a Starlette app:
the hot path skips request/response objects, and callers can still mount more
routes (dashboard, /metrics) on the returned app.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qs

import orjson
from prometheus_client import Counter, Histogram
from starlette.applications import Starlette
from starlette.routing import Route

from arrecon.connectors.envelope import RawEnvelope
from arrecon.connectors.intake import DurableSink, IntakeError, encode_envelope
from arrecon.connectors.signatures import (
    STRIPE_TOLERANCE_S,
    SignatureError,
    StaleTimestampError,
    verify_bearer,
    verify_shopify,
    verify_stripe,
)

__all__ = [
    "ACCEPTED",
    "REJECTED",
    "STORE_SECONDS",
    "ReceiverConfig",
    "ReceiverSettings",
    "create_app",
    "routing_key",
    "utc_now",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Clock = Callable[[], datetime]

MIB = 1024 * 1024

ACCEPTED = Counter(
    "arrecon_receiver_accepted_total", "Deliveries made durable, by endpoint.", ["endpoint"]
)
REJECTED = Counter(
    "arrecon_receiver_rejected_total",
    "Deliveries refused before the log, by endpoint and reason.",
    ["endpoint", "reason"],
)
STORE_SECONDS = Histogram(
    "arrecon_receiver_store_seconds",
    "Time from body received to durable (fsync or broker ack).",
    ["endpoint"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)


class ReceiverConfig(Protocol):
    """The settings the receiver reads; any settings object with these attributes."""

    @property
    def stripe_secrets(self) -> tuple[str, ...]: ...
    @property
    def shopify_secrets(self) -> tuple[str, ...]: ...
    @property
    def feed_tokens(self) -> tuple[str, ...]: ...
    @property
    def webhook_max_bytes(self) -> int: ...
    @property
    def file_max_bytes(self) -> int: ...
    @property
    def stripe_tolerance_s(self) -> int: ...


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class ReceiverSettings:
    """Receiver settings; several secrets/tokens each, for rotation."""

    stripe_secrets: tuple[str, ...] = ()
    shopify_secrets: tuple[str, ...] = ()
    feed_tokens: tuple[str, ...] = ()
    webhook_max_bytes: int = 1 * MIB
    file_max_bytes: int = 64 * MIB
    stripe_tolerance_s: int = STRIPE_TOLERANCE_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ReceiverSettings:
        """Read `ARRECON_*` variables once; lists are comma-separated."""
        return cls(
            stripe_secrets=_split(environ.get("ARRECON_STRIPE_WEBHOOK_SECRETS")),
            shopify_secrets=_split(environ.get("ARRECON_SHOPIFY_WEBHOOK_SECRETS")),
            feed_tokens=_split(environ.get("ARRECON_FEED_TOKENS")),
            webhook_max_bytes=int(environ.get("ARRECON_WEBHOOK_MAX_BYTES", 1 * MIB)),
            file_max_bytes=int(environ.get("ARRECON_FILE_MAX_BYTES", 64 * MIB)),
            stripe_tolerance_s=int(environ.get("ARRECON_STRIPE_TOLERANCE_S", STRIPE_TOLERANCE_S)),
        )


def utc_now() -> datetime:
    """The default clock of a live receiver."""
    return datetime.now(UTC)


_JSON = ("application/json",)
_TEXT = ("text/plain", "text/csv", "application/octet-stream")
_XML = ("application/xml", "text/xml", "text/plain", "application/octet-stream")
_TSV = ("text/tab-separated-values", "text/plain", "text/csv", "application/octet-stream")

# feed -> kind -> (envelope source the decoders dispatch on, accepted media types).
# Settlement files belong to their provider: Amazon's flat file, Stripe's
# recorded balance-transaction list (DESIGN.md section 3).
FEED_KINDS: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "bank": {
        "camt052": ("bank", _XML),
        "camt053": ("bank", _XML),
        "camt054": ("bank", _XML),
        "mt940": ("bank", _TEXT),
        "mt942": ("bank", _TEXT),
        "bai2": ("bank", _TEXT),
        "csv": ("bank", _TEXT),
    },
    "erp": {"invoice": ("erp", _JSON), "credit_memo": ("erp", _JSON), "customer": ("erp", _JSON)},
    "settlement": {"settlement_v2": ("amazon", _TSV), "balance_transactions": ("stripe", _JSON)},
}

_COMMON_HEADERS = ("content-type", "user-agent", "x-request-id")
KEPT_HEADERS: dict[str, frozenset[str]] = {
    "stripe": frozenset((*_COMMON_HEADERS, "stripe-signature")),
    "shopify": frozenset(
        (
            *_COMMON_HEADERS,
            "x-shopify-topic",
            "x-shopify-hmac-sha256",
            "x-shopify-shop-domain",
            "x-shopify-webhook-id",
            "x-shopify-event-id",
            "x-shopify-triggered-at",
            "x-shopify-api-version",
        )
    ),
    "feed": frozenset((*_COMMON_HEADERS, "content-disposition")),
}


class _RefusedError(Exception):
    """A refusal: status code plus a bounded metrics reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _hash_key(body: bytes) -> bytes:
    return hashlib.sha256(body).hexdigest()[:32].encode()


def _first_str(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "":
            return str(value)
    return None


def routing_key(source: str, headers: Mapping[str, str], body: bytes) -> bytes:
    """Kafka key: a customer hint when one is cheap to find, else the delivery's id.

    Keying by customer keeps one customer's events in order on one partition
    (ERP records by their customer id, so a customer's master data precedes its
    invoices); file feeds are keyed by content hash so a resent file lands
    beside its twin.
    """
    if source not in ("stripe", "shopify", "erp"):
        return _hash_key(body)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _hash_key(body)
    if not isinstance(data, dict):
        return _hash_key(body)
    if source == "erp":
        key = _first_str(data.get("customer_id"))
    elif source == "stripe":
        inner = data.get("data")
        obj = inner.get("object") if isinstance(inner, dict) else None
        hint = _first_str(obj.get("customer") if isinstance(obj, dict) else None)
        key = _first_str(hint, data.get("account"), data.get("id"))
    else:
        customer = data.get("customer")
        hint = customer.get("id") if isinstance(customer, dict) else None
        key = _first_str(hint, headers.get("x-shopify-webhook-id"), data.get("id"))
    return key.encode() if key else _hash_key(body)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


def _media_type(content_type: str) -> tuple[str, str]:
    """(media type, charset) from a Content-Type value."""
    media, _, params = content_type.partition(";")
    charset = "utf-8"
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "charset" and value:
            charset = value.strip().strip('"').lower()
    return media.strip().lower(), charset


def _declared_length(headers: Mapping[str, str]) -> int:
    """Content-Length as an int (0 when absent: chunked bodies are counted as read)."""
    value = headers.get("content-length", "").strip()
    if not value:
        return 0
    if not value.isdigit():
        raise _RefusedError(400, "bad_content_length")
    return int(value)


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it exceeds `limit`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _RefusedError(400, "client_disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _RefusedError(413, "too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_json(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True, slots=True)
class _Delivery:
    source: str
    kind: str
    body: bytes
    headers: dict[str, str]
    charset: str


class _Endpoint:
    """One POST route: authenticate, bound, store; subclasses say how to authenticate."""

    name = ""  # the bounded `endpoint` metrics label
    header_set = "feed"

    def __init__(self, settings: ReceiverConfig, sink: DurableSink, clock: Clock) -> None:
        self.settings = settings
        self.sink = sink
        self.clock = clock
        self.max_bytes = settings.webhook_max_bytes
        self.kept = KEPT_HEADERS[self.header_set]
        self.accepted = ACCEPTED.labels(self.name)
        self.latency = STORE_SECONDS.labels(self.name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            position = await self._handle(scope, receive)
        except _RefusedError as refused:
            REJECTED.labels(self.name, refused.reason).inc()
            await _send_json(send, refused.status, b'{"error":"%s"}' % refused.reason.encode())
            return
        self.accepted.inc()
        await _send_json(send, 200, b'{"stored":"%s"}' % position.encode())

    async def _handle(self, scope: Scope, receive: Receive) -> str:
        headers = _headers(scope)
        source, kind, allowed = self.kind_of(scope, headers)
        media, charset = _media_type(headers.get("content-type", ""))
        if media not in allowed:
            raise _RefusedError(415, "unsupported_media_type")
        if _declared_length(headers) > self.max_bytes:
            raise _RefusedError(413, "too_large")
        body = await _read_body(receive, self.max_bytes)
        self.authenticate(headers, body)
        delivery = _Delivery(source, kind, body, headers, charset)
        return await self._store(delivery)

    def kind_of(self, scope: Scope, headers: Mapping[str, str]) -> tuple[str, str, tuple[str, ...]]:
        """(envelope source, kind, accepted media types) of this request."""
        raise NotImplementedError

    def authenticate(self, headers: Mapping[str, str], body: bytes) -> None:
        raise NotImplementedError

    async def _store(self, delivery: _Delivery) -> str:
        try:
            text = delivery.body.decode(delivery.charset)
        except (UnicodeDecodeError, LookupError):
            raise _RefusedError(400, "bad_encoding") from None
        envelope = RawEnvelope(
            source=delivery.source,
            kind=delivery.kind,
            received_at=self.clock(),
            body=text,
            headers={k: v for k, v in delivery.headers.items() if k in self.kept},
        )
        key = routing_key(delivery.source, delivery.headers, delivery.body)
        started = time.perf_counter()
        try:
            position = await self.sink.store(encode_envelope(envelope), key)
        except IntakeError:
            raise _RefusedError(503, "unavailable") from None
        self.latency.observe(time.perf_counter() - started)
        return position


class _StripeEndpoint(_Endpoint):
    name = "stripe"
    header_set = "stripe"

    def kind_of(self, scope: Scope, headers: Mapping[str, str]) -> tuple[str, str, tuple[str, ...]]:
        # Stripe events carry their type inside the body; the replay format
        # leaves `kind` empty for them too.
        return "stripe", "", _JSON

    def authenticate(self, headers: Mapping[str, str], body: bytes) -> None:
        try:
            verify_stripe(
                body,
                headers.get("stripe-signature"),
                self.settings.stripe_secrets,
                self.clock(),
                self.settings.stripe_tolerance_s,
            )
        except StaleTimestampError as error:
            raise _RefusedError(400, error.reason) from None
        except SignatureError as error:
            raise _RefusedError(401, error.reason) from None


class _ShopifyEndpoint(_Endpoint):
    name = "shopify"
    header_set = "shopify"

    def kind_of(self, scope: Scope, headers: Mapping[str, str]) -> tuple[str, str, tuple[str, ...]]:
        topic = headers.get("x-shopify-topic", "").strip()
        if not topic:
            raise _RefusedError(400, "missing_topic")
        return "shopify", topic, _JSON

    def authenticate(self, headers: Mapping[str, str], body: bytes) -> None:
        try:
            verify_shopify(
                body, headers.get("x-shopify-hmac-sha256"), self.settings.shopify_secrets
            )
        except SignatureError as error:
            raise _RefusedError(401, error.reason) from None


class _FeedEndpoint(_Endpoint):
    """File feeds: bearer-authenticated before the (possibly large) body is read."""

    def __init__(
        self, feed: str, settings: ReceiverConfig, sink: DurableSink, clock: Clock
    ) -> None:
        self.name = feed
        super().__init__(settings, sink, clock)
        self.max_bytes = settings.file_max_bytes
        self.kinds = FEED_KINDS[feed]

    def kind_of(self, scope: Scope, headers: Mapping[str, str]) -> tuple[str, str, tuple[str, ...]]:
        try:
            verify_bearer(headers.get("authorization"), self.settings.feed_tokens)
        except SignatureError as error:
            raise _RefusedError(401, error.reason) from None
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        kind = (query.get("kind") or [""])[0]
        if kind not in self.kinds:
            raise _RefusedError(400, "unknown_kind")
        source, allowed = self.kinds[kind]
        return source, kind, allowed

    def authenticate(self, headers: Mapping[str, str], body: bytes) -> None:
        """Already authenticated by token in `kind_of`."""


class _Probe:
    """GET /healthz (process alive) and /readyz (sink accepting)."""

    def __init__(self, check: Callable[[], bool]) -> None:
        self.check = check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.check():
            await _send_json(send, 200, b'{"status":"ok"}')
        else:
            await _send_json(send, 503, b'{"status":"unavailable"}')


def create_app(
    settings: ReceiverConfig,
    sink: DurableSink,
    clock: Clock = utc_now,
    *,
    manage_sink: bool = True,
) -> Starlette:
    """The receiver as an ASGI app; mount more routes on it as needed.

    With `manage_sink` the app's lifespan starts the sink and, on shutdown
    (after the server has drained in-flight requests), flushes and closes it.
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_sink:
            await sink.start()
        try:
            yield
        finally:
            if manage_sink:
                await sink.aclose()

    routes = [
        Route("/webhooks/stripe", _StripeEndpoint(settings, sink, clock), methods=["POST"]),
        Route("/webhooks/shopify", _ShopifyEndpoint(settings, sink, clock), methods=["POST"]),
        *(
            Route(f"/feeds/{feed}", _FeedEndpoint(feed, settings, sink, clock), methods=["POST"])
            for feed in FEED_KINDS
        ),
        Route("/healthz", _Probe(lambda: True), methods=["GET"]),
        Route("/readyz", _Probe(sink.ready), methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
