"""Alert rules as a table, the unapplied-cash watch, signing, configuration and delivery."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import bytewax.operators as op
import httpx
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from arrecon.flows.alerts_sink import (
    AlertDelivery,
    AlertPartition,
    AlertSink,
    WebhookChannel,
    WebhookSender,
)
from arrecon.flows.steps import Tagged
from arrecon.sinks.alerts import (
    ALL_KINDS,
    Alert,
    AlertConfigError,
    AlertRules,
    UnappliedWatch,
    alert_json,
    alerts_for,
    sign_payload,
    verify_signature,
)
from arrecon.state.outcomes import (
    Applied,
    Chargeback,
    CreditLimitExceeded,
    Duplicate,
    FeeAnomaly,
    InvoiceStatus,
    Outcome,
    Reversed,
    ShortPaid,
    Unapplied,
)

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
RULES = AlertRules(short_pay_min_minor=10_000, short_pay_min_minor_by_currency={"JPY": 5_000})


def short(code: str, shortfall: int, valid: bool = True, currency: str = "USD") -> ShortPaid:
    return ShortPaid("sp1", T0, "pay1", "INV-1", "cus1", shortfall, currency, code, valid)


def chargeback(status: str) -> Chargeback:
    return Chargeback("cb1", T0, "ch_1", "INV-1", "cus1", 5_000, "USD", status, "dp_1", 1_500)


FEE = FeeAnomaly("fa1", T0, "stripe", "po_1", 290, 340, "rate_drift", "card")
CREDIT = CreditLimitExceeded("cl1", T0, "cus1", "INV-9", 100_000, 130_000, "USD")
APPLIED = Applied("ap1", T0, "pay1", "INV-1", "cus1", 100, "USD", "exact", 1.0)


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        # short-pay threshold: at, above and below; per-currency override
        (short("return", 10_000), [("short_pay", "warning", 10_000)]),
        (short("return", 9_999), []),
        (short("promotion", 25_000, currency="JPY"), [("short_pay", "warning", 25_000)]),
        (short("promotion", 4_999, currency="JPY"), []),
        # expected fees never count as a short-pay, however large
        (short("processor_fee", 50_000), []),
        (short("marketplace_fee", 50_000), []),
        # unexplained: always flagged, info when within tolerance (valid)
        (short("unexplained", 50, valid=True), [("unexplained_short_pay", "info", 50)]),
        (short("unexplained", 500, valid=False), [("unexplained_short_pay", "warning", 500)]),
        (
            short("unexplained", 20_000, valid=False),
            [("short_pay", "warning", 20_000), ("unexplained_short_pay", "warning", 20_000)],
        ),
        # deductions: only invalid ones
        (short("deduction:damaged", 700, valid=False), [("invalid_deduction", "warning", 700)]),
        (short("deduction:damaged", 700, valid=True), []),
        # chargebacks: opened and lost alert, won does not
        (chargeback("opened"), [("chargeback", "critical", 5_000)]),
        (chargeback("lost"), [("chargeback", "critical", 5_000)]),
        (chargeback("won"), []),
        (FEE, [("fee_anomaly", "warning", 0)]),
        (CREDIT, [("credit_limit", "critical", 30_000)]),
        # outcomes that are not alerts
        (APPLIED, []),
        (Duplicate("d1", T0, "pay1", "evt1"), []),
    ],
)
def test_rules_table(outcome: Outcome, expected: list[tuple[str, str, int]]) -> None:
    alerts = alerts_for(outcome, RULES)
    assert [(a.kind, a.severity, a.amount_minor) for a in alerts] == expected
    for alert in alerts:
        assert alert.alert_id == f"{outcome.outcome_id}:{alert.kind}"
        assert alert.at == outcome.at


@pytest.mark.parametrize("kind", sorted(ALL_KINDS - {"unapplied_age"}))
def test_switching_a_kind_off_silences_only_that_kind(kind: str) -> None:
    samples: list[Outcome] = [
        short("unexplained", 20_000, valid=False),
        short("deduction:late", 300, valid=False),
        chargeback("opened"),
        FEE,
        CREDIT,
    ]
    rules = AlertRules(enabled=ALL_KINDS - {kind}, short_pay_min_minor=10_000)
    all_on = AlertRules(short_pay_min_minor=10_000)
    everything = [a.kind for o in samples for a in alerts_for(o, all_on)]
    without = [a.kind for o in samples for a in alerts_for(o, rules)]
    assert kind in everything
    assert kind not in without
    assert sorted(without) == sorted(k for k in everything if k != kind)


def test_alert_details_and_keys() -> None:
    (cb,) = alerts_for(chargeback("opened"), RULES)
    assert cb.key == "cus1"
    assert cb.subject == "dp_1"
    assert cb.details["payment_id"] == "ch_1"
    assert cb.details["fee_minor"] == 1_500
    (fee,) = alerts_for(FEE, RULES)
    assert fee.customer_id == ""
    assert fee.key == "stripe"
    assert fee.details["observed_bps"] == 340
    (deduction,) = alerts_for(short("deduction:damaged", 700, valid=False), RULES)
    assert deduction.details["deduction_code"] == "damaged"
    assert deduction.subject == "INV-1"


def test_alert_json_is_the_record() -> None:
    (alert,) = alerts_for(CREDIT, RULES)
    record = orjson.loads(alert_json(alert))
    assert record == {
        "alert_id": "cl1:credit_limit",
        "kind": "credit_limit",
        "severity": "critical",
        "customer_id": "cus1",
        "processor": "",
        "subject": "INV-9",
        "amount_minor": 30_000,
        "currency": "USD",
        "at": "2026-03-02T10:00:00Z",
        "details": {"invoice_number": "INV-9", "limit_minor": 100_000, "exposure_minor": 130_000},
    }


def unapplied(oid: str, payment_id: str, at: datetime, customer: str | None = "cus1") -> Unapplied:
    return Unapplied(oid, at, payment_id, customer, 4_200, "EUR", "no_match", ("INV-7",))


def test_watch_alerts_once_after_max_age() -> None:
    watch = UnappliedWatch(timedelta(hours=24))
    watch.observe(unapplied("u1", "pay1", T0))
    assert watch.check(T0 + timedelta(hours=23, minutes=59)) == []
    (alert,) = watch.check(T0 + timedelta(hours=25))
    assert alert.alert_id == "u1:unapplied_age"
    assert (alert.kind, alert.amount_minor, alert.currency) == ("unapplied_age", 4_200, "EUR")
    assert alert.details["age_hours"] == 25
    assert alert.details["candidates"] == ["INV-7"]
    assert alert.at == T0 + timedelta(hours=25)
    assert watch.check(T0 + timedelta(hours=48)) == []
    # a retry's re-emitted unapplied outcome does not alert a second time
    watch.observe(unapplied("u2", "pay1", T0 + timedelta(hours=30)))
    assert watch.check(T0 + timedelta(days=10)) == []


def test_watch_forgets_applied_and_reversed_payments() -> None:
    watch = UnappliedWatch(timedelta(hours=1))
    watch.observe_all(
        [
            unapplied("u1", "pay1", T0),
            unapplied("u2", "pay2", T0),
            unapplied("u3", "pay3", T0, customer=None),
            Applied("a1", T0, "pay1", "INV-1", "cus1", 4_200, "EUR", "exact", 1.0),
            Reversed("r1", T0, "pay2", "", "cus1", 4_200, "EUR", "ach_return"),
        ]
    )
    alerts = watch.check(T0 + timedelta(hours=2))
    assert [a.subject for a in alerts] == ["pay3"]
    assert alerts[0].customer_id == ""
    assert alerts[0].key == "pay3"


def test_watch_counts_age_from_first_sighting() -> None:
    watch = UnappliedWatch(timedelta(hours=10))
    watch.observe(unapplied("u2", "pay1", T0 + timedelta(hours=5)))
    watch.observe(unapplied("u1", "pay1", T0))  # an earlier sighting arriving late
    watch.observe(unapplied("u3", "pay1", T0 + timedelta(hours=8)))
    (alert,) = watch.check(T0 + timedelta(hours=10))
    assert alert.alert_id == "u1:unapplied_age"


def test_watch_refuses_naive_now() -> None:
    with pytest.raises(AssertionError):
        UnappliedWatch(timedelta(hours=1)).check(datetime(2026, 3, 2))


events = st.lists(
    st.tuples(
        st.sampled_from(["unapplied", "applied"]),
        st.integers(0, 5),  # payment number
        st.integers(0, 100),  # hours after T0
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(events, st.lists(st.integers(0, 200), max_size=6))
def test_watch_invariants(items: list[tuple[str, int, int]], checks: list[int]) -> None:
    """Each payment alerts at most once; only payments never applied alert; ages hold."""
    watch = UnappliedWatch(timedelta(hours=24))
    applied: set[str] = set()
    seen: list[Alert] = []
    for n, (kind, number, hours) in enumerate(items):
        payment_id, at = f"pay{number}", T0 + timedelta(hours=hours)
        if kind == "unapplied":
            watch.observe(unapplied(f"u{n}", payment_id, at))
        else:
            watch.observe(Applied(f"a{n}", at, payment_id, "I", "c", 1, "EUR", "exact", 1.0))
            applied.add(payment_id)
    for hours in sorted(checks):
        now = T0 + timedelta(hours=hours)
        for alert in watch.check(now):
            assert now - datetime.fromisoformat(str(alert.details["unapplied_since"])) >= (
                timedelta(hours=24)
            )
            seen.append(alert)
    subjects = [alert.subject for alert in seen]
    assert len(subjects) == len(set(subjects))
    last_unapplied = {f"pay{n}": i for i, (k, n, _h) in enumerate(items) if k == "unapplied"}
    last_applied = {f"pay{n}": i for i, (k, n, _h) in enumerate(items) if k == "applied"}
    for subject in subjects:
        assert last_unapplied[subject] > last_applied.get(subject, -1)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, AlertRules()),
        (
            {
                "ARRECON_ALERT_KINDS": "chargeback, fee_anomaly",
                "ARRECON_ALERT_SHORT_PAY_MIN_MINOR": "0",
                "ARRECON_ALERT_SHORT_PAY_MIN_MINOR_jpy": "70000",
                "ARRECON_ALERT_SHORT_PAY_IGNORE": "processor_fee",
                "ARRECON_ALERT_UNAPPLIED_MAX_AGE_HOURS": "1.5",
            },
            AlertRules(
                enabled=frozenset({"chargeback", "fee_anomaly"}),
                short_pay_min_minor=0,
                short_pay_min_minor_by_currency={"JPY": 70_000},
                short_pay_ignore=frozenset({"processor_fee"}),
                unapplied_max_age_hours=1.5,
            ),
        ),
        ({"ARRECON_ALERT_KINDS": "none"}, AlertRules(enabled=frozenset())),
        ({"ARRECON_ALERT_SHORT_PAY_IGNORE": ""}, AlertRules(short_pay_ignore=frozenset())),
    ],
)
def test_rules_from_env(env: dict[str, str], expected: AlertRules) -> None:
    assert AlertRules.from_env(env) == expected


@pytest.mark.parametrize(
    "env",
    [
        {"ARRECON_ALERT_KINDS": "chargebacks"},
        {"ARRECON_ALERT_SHORT_PAY_MIN_MINOR": "12.50"},
        {"ARRECON_ALERT_SHORT_PAY_MIN_MINOR": "-1"},
        {"ARRECON_ALERT_SHORT_PAY_MIN_MINOR_XXX": "100"},
        {"ARRECON_ALERT_UNAPPLIED_MAX_AGE_HOURS": "0"},
        {"ARRECON_ALERT_UNAPPLIED_MAX_AGE_HOURS": "soon"},
        {"ARRECON_ALERT_UNAPPLIED_MAX_AGE_HOURS": "nan"},
    ],
)
def test_bad_env_fails_at_startup(env: dict[str, str]) -> None:
    with pytest.raises(AlertConfigError):
        AlertRules.from_env(env)


def test_signature_round_trip_and_tamper() -> None:
    body = b'{"alert_id":"x:chargeback"}'
    header = sign_payload(body, "s3cret", 1_770_000_000)
    assert header.startswith("t=1770000000,v1=")
    assert verify_signature(header, body, "s3cret", 1_770_000_100)
    assert not verify_signature(header, body + b" ", "s3cret", 1_770_000_100)
    assert not verify_signature(header, body, "other", 1_770_000_100)
    assert not verify_signature(header, body, "s3cret", 1_770_000_301)  # too old
    assert not verify_signature("garbage", body, "s3cret", 1_770_000_000)


@given(st.binary(max_size=200), st.text(min_size=1, max_size=20), st.integers(0, 2**33))
def test_signature_verifies_for_any_body(body: bytes, secret: str, stamp: int) -> None:
    assert verify_signature(sign_payload(body, secret, stamp), body, secret, stamp)


def test_invoice_status_is_no_alert() -> None:
    status = InvoiceStatus("is1", T0, "INV-1", "cus1", "overdue", 100, 100, "USD", T0, T0)
    assert alerts_for(status, AlertRules()) == []


# --- delivery: webhooks against a real local HTTP server -------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Hook:
    """A local webhook receiver answering with scripted statuses, then 200."""

    url: str
    script: list[int]
    received: list[Received] = field(default_factory=list)


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook(url="", script=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append(Received(dict(self.headers.items()), body))
            status = state.script.pop(0) if state.script else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


SECRET = "whsec_alerts"
(CHARGEBACK_ALERT,) = alerts_for(chargeback("opened"), RULES)


def sender(urls: list[str], sleeps: list[float], **options: Any) -> WebhookSender:
    return WebhookSender(
        urls, SECRET, attempts=5, backoff_s=0.01, backoff_max_s=0.03, sleep=sleeps.append, **options
    )


def test_webhook_retries_5xx_then_delivers_signed_with_stable_key(hook: Hook) -> None:
    hook.script = [503, 503]
    sleeps: list[float] = []
    sent_before = counter("arrecon_alerts_sent_total", kind="chargeback", channel="webhook")
    assert sender([hook.url], sleeps).deliver(CHARGEBACK_ALERT) == 1
    assert len(hook.received) == 3
    assert sleeps == [0.01, 0.02]
    now_s = int(time.time())
    for request in hook.received:
        assert request.headers["Idempotency-Key"] == "cb1:chargeback"
        assert request.headers["Content-Type"] == "application/json"
        assert verify_signature(request.headers["X-Arrecon-Signature"], request.body, SECRET, now_s)
        assert not verify_signature(
            request.headers["X-Arrecon-Signature"], request.body, "x", now_s
        )
        assert orjson.loads(request.body) == CHARGEBACK_ALERT.to_record()
    assert len({request.body for request in hook.received}) == 1
    after = counter("arrecon_alerts_sent_total", kind="chargeback", channel="webhook")
    assert after == sent_before + 1


@pytest.mark.parametrize(
    ("script", "requests", "accepted"),
    [
        ([500, 502, 503, 504, 500], 5, 0),  # gives up after `attempts`
        ([429, 200], 2, 1),  # throttled: retried
        ([400], 1, 0),  # refused: retrying cannot help
        ([401], 1, 0),
        ([204], 1, 1),
    ],
)
def test_webhook_status_handling(
    hook: Hook, script: list[int], requests: int, accepted: int, caplog: pytest.LogCaptureFixture
) -> None:
    hook.script = list(script)
    failed_before = counter("arrecon_alerts_failed_total", channel="webhook")
    assert sender([hook.url], []).deliver(CHARGEBACK_ALERT) == accepted
    assert len(hook.received) == requests
    failed = counter("arrecon_alerts_failed_total", channel="webhook") - failed_before
    assert failed == 1 - accepted
    if not accepted:
        assert "cb1:chargeback" in caplog.text


def test_webhook_connection_errors_are_retried_then_counted() -> None:
    calls: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    sleeps: list[float] = []
    failed_before = counter("arrecon_alerts_failed_total", channel="webhook")
    one = sender(["http://alerts.invalid/a"], sleeps, transport=httpx.MockTransport(refuse))
    assert one.deliver(CHARGEBACK_ALERT) == 0
    assert len(calls) == 5
    assert sleeps == [0.01, 0.02, 0.03, 0.03]  # doubling, capped
    assert counter("arrecon_alerts_failed_total", channel="webhook") == failed_before + 1


def test_webhook_each_url_gets_the_alert(hook: Hook) -> None:
    hook.script = [503] * 5
    dead_url = hook.url  # first URL exhausts its attempts; the second still gets it
    other: list[bytes] = []

    def accept(request: httpx.Request) -> httpx.Response:
        other.append(request.content)
        return httpx.Response(200)

    mixed = WebhookSender(
        [dead_url, "http://second.example/a"],
        SECRET,
        attempts=5,
        backoff_s=0.0,
        transport=_Route(dead_url, httpx.MockTransport(accept)),
    )
    assert mixed.deliver(CHARGEBACK_ALERT) == 1
    assert len(hook.received) == 5
    assert other == [alert_json(CHARGEBACK_ALERT)]


class _Route(httpx.BaseTransport):
    """Real HTTP for one URL, the given transport for the rest."""

    def __init__(self, real_url: str, other: httpx.BaseTransport) -> None:
        self.real_url = real_url
        self.real = httpx.HTTPTransport()
        self.other = other

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        target = self.real if str(request.url) == self.real_url else self.other
        return target.handle_request(request)


def test_webhook_channel_drains_on_close_and_counts_overflow(hook: Hook) -> None:
    alerts = [
        Alert(f"o{n}:chargeback", "chargeback", "critical", "c", "s", 1, "USD", T0)
        for n in range(5)
    ]
    failed_before = counter("arrecon_alerts_failed_total", channel="webhook")
    gate = threading.Event()

    def held(request: httpx.Request) -> httpx.Response:
        gate.wait(10)
        return httpx.Response(200)

    channel = WebhookChannel(
        WebhookSender([hook.url], SECRET, transport=httpx.MockTransport(held)), queue_size=2
    )
    channel.send(alerts)  # one in flight, two queued, the rest do not fit
    gate.set()
    channel.close()
    overflow = counter("arrecon_alerts_failed_total", channel="webhook") - failed_before
    assert 2 <= overflow <= 3  # the worker may or may not have taken the first one yet
    real = WebhookChannel(WebhookSender([hook.url], SECRET))
    real.send(alerts)
    real.close()
    assert sorted(r.headers["Idempotency-Key"] for r in hook.received) == [
        a.alert_id for a in alerts
    ]


# --- the Bytewax sink, end to end over a real flow -------------------------


def _run_sink(items: list[object], sink: AlertSink) -> None:
    flow = Dataflow("alerts_test")
    stream = op.input("in", flow, TestingSource(items, batch_size=len(items)))
    op.output("alerts", stream, sink)
    run_main(flow)


class _ThresholdsWithABug(dict[str, int]):
    """Per-currency thresholds whose look-up fails for XTS: a rule that raises."""

    def get(self, key: str, default: int | None = None) -> int | None:  # type: ignore[override]
        if key == "XTS":
            raise RuntimeError("a bug in a rule")
        return super().get(key, default)


def test_alert_sink_in_a_flow_delivers_rule_and_age_alerts(hook: Hook) -> None:
    bad = ShortPaid("bad", T0, "p", "I", "c", 1, "XTS", "unexplained", False)
    outcomes: list[Outcome] = [
        chargeback("opened"),
        bad,  # a rule that raises is counted, the flow goes on
        unapplied("u1", "pay1", T0),
        unapplied("u2", "pay2", T0),
        Applied("a2", T0, "pay2", "INV-2", "cus1", 4_200, "EUR", "exact", 1.0),
        FEE,
    ]
    items: list[object] = [Tagged(n, 0, 0, o, T0) for n, o in enumerate(outcomes)]
    items.insert(1, "not an outcome")  # other outputs on a shared stream are ignored
    rules = AlertRules(
        short_pay_min_minor_by_currency=_ThresholdsWithABug(), unapplied_max_age_hours=24
    )
    delivery = AlertDelivery(webhook_urls=(hook.url,), webhook_secret=SECRET, backoff_s=0.0)
    rules_failed = counter("arrecon_alerts_failed_total", channel="rules")
    sink = AlertSink(rules, delivery, clock=lambda: T0 + timedelta(hours=30))
    _run_sink(items, sink)
    got = sorted(r.headers["Idempotency-Key"] for r in hook.received)
    assert got == ["cb1:chargeback", "fa1:fee_anomaly", "u1:unapplied_age"]
    assert counter("arrecon_alerts_failed_total", channel="rules") == rules_failed + 1


def test_alert_sink_from_env_reads_rules_and_delivery() -> None:
    env = {
        "ARRECON_ALERT_KINDS": "chargeback",
        "ARRECON_ALERT_WEBHOOKS": "http://a.example/x, http://b.example/y",
        "ARRECON_ALERT_WEBHOOK_SECRET": "k",
        "ARRECON_ALERT_WEBHOOK_ATTEMPTS": "3",
        "ARRECON_ALERTS_TOPIC": "alerts.test",
    }
    sink = AlertSink.from_env(env)
    assert sink.rules.enabled == frozenset({"chargeback"})
    assert sink.delivery.webhook_urls == ("http://a.example/x", "http://b.example/y")
    assert (sink.delivery.attempts, sink.delivery.topic, sink.delivery.kafka) == (
        3,
        "alerts.test",
        None,
    )
    with pytest.raises(AlertConfigError):
        AlertDelivery.from_env({"ARRECON_ALERT_WEBHOOKS": "http://a.example/x"})
    with pytest.raises(AlertConfigError):
        AlertDelivery.from_env({"ARRECON_ALERT_WEBHOOK_ATTEMPTS": "many"})


@dataclass
class Collect:
    """A channel that keeps what it is sent (or refuses everything)."""

    name: str = "collect"
    refuse: bool = False
    sent: list[Alert] = field(default_factory=list)
    closed: bool = False

    def send(self, alerts: Sequence[Alert]) -> None:
        if self.refuse:
            raise RuntimeError("channel down")
        self.sent.extend(alerts)

    def close(self) -> None:
        self.closed = True


def test_age_alerts_fire_between_batches_and_a_broken_channel_is_counted() -> None:
    now = [T0]
    good, broken = Collect(), Collect(name="broken", refuse=True)
    partition = AlertPartition(
        AlertRules(unapplied_max_age_hours=1), [broken, good], lambda: now[0], 0.01
    )
    failed_before = counter("arrecon_alerts_failed_total", channel="broken")
    partition.write_batch([Tagged(0, 0, 0, unapplied("u1", "pay1", T0), T0)])
    assert good.sent == []
    now[0] = T0 + timedelta(hours=2)  # no further batch arrives: the ticker finds it
    deadline = time.monotonic() + 5
    while not good.sent and time.monotonic() < deadline:
        time.sleep(0.01)
    partition.close()
    assert [a.alert_id for a in good.sent] == ["u1:unapplied_age"]
    assert counter("arrecon_alerts_failed_total", channel="broken") == failed_before + 1
    assert good.closed
    assert broken.closed


def test_disabled_age_rule_keeps_no_watch() -> None:
    partition = AlertPartition(
        AlertRules(enabled=ALL_KINDS - {"unapplied_age"}), [], lambda: T0, 0.01
    )
    partition.write_batch([Tagged(0, 0, 0, unapplied("u1", "pay1", T0), T0)])
    assert partition.watch is None
    partition.close()


def test_without_kafka_or_webhooks_alerts_go_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    sink = AlertSink(AlertRules(), AlertDelivery(check_interval_s=None))
    partition = sink.build("alerts", 0, 1)
    assert [channel.name for channel in partition.channels] == ["log"]
    with caplog.at_level("WARNING", logger="arrecon.flows.alerts_sink"):
        partition.write_batch([Tagged(0, 0, 0, chargeback("lost"), T0)])
    partition.close()
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("alert ")]
    assert len(logged) == 1
    assert orjson.loads(logged[0].removeprefix("alert "))["alert_id"] == "cb1:chargeback"
