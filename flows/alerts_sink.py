"""Alerts out of the flow: Kafka topic `arrecon.alerts` and signed HTTP webhooks.

Why two channels: the topic is the durable record (JSON keyed by customer, else
processor; every batch waits for the broker's acknowledgement, so an alert
written before a recovery snapshot is in Kafka), webhooks reach people. A replay
after a crash sends the same `alert_id` again, which consumers deduplicate on
(webhooks receive it as `Idempotency-Key`). Kafka is at-least-once; webhooks
are queued in memory, so those still queued when the process dies are lost
(the topic still holds them).

Webhooks are posted by one background thread per sink partition, so a slow or
dead receiver never stalls reconciliation. Each POST carries
`X-Arrecon-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (see
`arrecon.sinks.alerts.verify_signature`) and is retried with capped exponential
backoff on 5xx, 429 and connection errors; other 4xx are final.

Nothing here may crash the flow and no alert may vanish silently: a rule that
raises, a produce the broker refuses, a webhook that keeps failing, an alert
that finds the webhook queue full or still queued at shutdown: each is counted
in `arrecon_alerts_failed_total{channel}` and logged with its alert id.
Delivered alerts count in `arrecon_alerts_sent_total{kind,channel}`.

Environment variables (`AlertDelivery.from_env`; rules: `AlertRules.from_env`):

| variable | meaning | default |
|---|---|---|
| ARRECON_KAFKA | brokers for the alerts topic; unset = no Kafka channel | - |
| ARRECON_ALERTS_TOPIC | alerts topic | arrecon.alerts |
| ARRECON_ALERT_WEBHOOKS | comma-separated webhook URLs; unset = none | - |
| ARRECON_ALERT_WEBHOOK_SECRET | HMAC key, required with webhooks | - |
| ARRECON_ALERT_WEBHOOK_ATTEMPTS | attempts per alert and URL | 5 |
| ARRECON_ALERT_WEBHOOK_BACKOFF_S | first retry delay, doubled each retry | 0.5 |
| ARRECON_ALERT_WEBHOOK_BACKOFF_MAX_S | cap of the retry delay | 30 |
| ARRECON_ALERT_WEBHOOK_TIMEOUT_S | timeout of one POST | 5 |
| ARRECON_ALERT_CHECK_INTERVAL_S | how often unapplied-cash age is checked between batches | 60 |

With neither Kafka nor webhooks configured (an embedded run), alerts are
written to the log as JSON, so they are still seen.

Known limit: the unapplied-cash watch lives in the sink partition, so it starts
empty after a restart and, with several workers, sees only its worker's outcomes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from prometheus_client import Counter

from arrecon.flows.steps import Tagged
from arrecon.sinks.alerts import (
    UNAPPLIED_AGE,
    Alert,
    AlertConfigError,
    AlertRules,
    UnappliedWatch,
    alert_json,
    alerts_for,
    sign_payload,
)

__all__ = [
    "ALERTS_FAILED",
    "ALERTS_SENT",
    "AlertDelivery",
    "AlertPartition",
    "AlertSink",
    "KafkaAlertChannel",
    "LogChannel",
    "WebhookChannel",
    "WebhookSender",
]

log = logging.getLogger(__name__)

ALERTS_SENT = Counter(
    "arrecon_alerts_sent_total", "Alerts delivered, per kind and channel.", ["kind", "channel"]
)
ALERTS_FAILED = Counter(
    "arrecon_alerts_failed_total",
    "Alerts not delivered (given up, refused, dropped), per channel.",
    ["channel"],
)
KAFKA, WEBHOOK, LOG, RULES = "kafka", "webhook", "log", "rules"
SIGNATURE_HEADER = "X-Arrecon-Signature"
_RETRY_STATUSES = frozenset({408, 425, 429})


def _failed(channel: str, alert_id: str, reason: object) -> None:
    ALERTS_FAILED.labels(channel).inc()
    log.error("alert %s not delivered via %s: %s", alert_id, channel, reason)


@dataclass(frozen=True, slots=True)
class AlertDelivery:
    """Where alerts go and how hard webhooks are retried."""

    kafka: str | None = None
    topic: str = "arrecon.alerts"
    webhook_urls: tuple[str, ...] = ()
    webhook_secret: str = ""
    attempts: int = 5
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    timeout_s: float = 5.0
    check_interval_s: float | None = 60.0
    queue_size: int = 10_000
    flush_timeout_s: float = 30.0
    kafka_config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.webhook_urls and not self.webhook_secret:
            raise AlertConfigError("alert webhooks need ARRECON_ALERT_WEBHOOK_SECRET")
        if self.attempts < 1:
            raise AlertConfigError("webhook attempts must be at least 1")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlertDelivery:
        env = os.environ if environ is None else environ
        urls = (url.strip() for url in env.get("ARRECON_ALERT_WEBHOOKS", "").split(","))
        try:
            return cls(
                kafka=env.get("ARRECON_KAFKA") or None,
                topic=env.get("ARRECON_ALERTS_TOPIC", "arrecon.alerts"),
                webhook_urls=tuple(url for url in urls if url),
                webhook_secret=env.get("ARRECON_ALERT_WEBHOOK_SECRET", ""),
                attempts=int(env.get("ARRECON_ALERT_WEBHOOK_ATTEMPTS", "5")),
                backoff_s=float(env.get("ARRECON_ALERT_WEBHOOK_BACKOFF_S", "0.5")),
                backoff_max_s=float(env.get("ARRECON_ALERT_WEBHOOK_BACKOFF_MAX_S", "30")),
                timeout_s=float(env.get("ARRECON_ALERT_WEBHOOK_TIMEOUT_S", "5")),
                check_interval_s=float(env.get("ARRECON_ALERT_CHECK_INTERVAL_S", "60")) or None,
            )
        except AlertConfigError:
            raise
        except ValueError as error:
            raise AlertConfigError(f"bad alert delivery setting: {error}") from None


class Channel(Protocol):
    """A delivery route; `name` is its `channel` metric label."""

    name: str

    def send(self, alerts: Sequence[Alert]) -> None: ...

    def close(self) -> None: ...


class KafkaAlertChannel:
    """Produces alerts keyed by `Alert.key`; `send` returns once the broker acked.

    A delivery report with an error (including messages purged at close) counts
    as a failure, so an alert is either acknowledged or counted.
    """

    name = KAFKA

    def __init__(
        self,
        brokers: str,
        topic: str,
        config: Mapping[str, Any] | None = None,
        flush_timeout_s: float = 30.0,
    ) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.flush_timeout_s = flush_timeout_s
        self._producer = Producer(
            {
                "bootstrap.servers": brokers,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "compression.type": "lz4",
                "message.timeout.ms": int(flush_timeout_s * 1000),
                **(config or {}),
            }
        )

    def send(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            self._produce(alert)
        remaining = self._producer.flush(self.flush_timeout_s)
        if remaining:
            log.warning("%d alerts still unacknowledged after %ss", remaining, self.flush_timeout_s)

    def _produce(self, alert: Alert) -> None:
        def report(error: Any, _message: Any) -> None:
            if error is not None:
                _failed(KAFKA, alert.alert_id, error)
            else:
                ALERTS_SENT.labels(alert.kind, KAFKA).inc()

        value = alert_json(alert)
        for _ in range(2):
            try:
                self._producer.produce(
                    self.topic, value=value, key=alert.key.encode(), on_delivery=report
                )
                return
            except BufferError:
                self._producer.poll(1.0)  # queue full: serve reports, then try once more
            except Exception as error:  # KafkaException: bad config, topic refused
                _failed(KAFKA, alert.alert_id, error)
                return
        _failed(KAFKA, alert.alert_id, "producer queue full")

    def close(self) -> None:
        if self._producer.flush(self.flush_timeout_s):
            self._producer.purge()  # undelivered: their reports fail and are counted
            self._producer.flush(0)


class WebhookSender:
    """POSTs one alert to every URL, signed, retried with capped exponential backoff.

    `transport` lets tests answer in-process; `sleep` and `clock` (unix seconds)
    are injected for the same reason.
    """

    def __init__(
        self,
        urls: Sequence[str],
        secret: str,
        *,
        attempts: int = 5,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        timeout_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.urls = tuple(urls)
        self.secret = secret
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.sleep = sleep
        self.clock = clock
        self._client = httpx.Client(transport=transport, timeout=timeout_s)

    def deliver(self, alert: Alert) -> int:
        """Send to every URL; returns how many accepted (failures are counted)."""
        body = alert_json(alert)
        accepted = 0
        for url in self.urls:
            error = self._post(url, body, alert.alert_id)
            if error is None:
                accepted += 1
                ALERTS_SENT.labels(alert.kind, WEBHOOK).inc()
            else:
                _failed(WEBHOOK, alert.alert_id, f"{url}: {error}")
        return accepted

    def delay_s(self, retry: int) -> float:
        """Delay before retry number `retry` (1, 2, ...): doubling, capped."""
        return float(min(self.backoff_max_s, self.backoff_s * 2 ** (retry - 1)))

    def _post(self, url: str, body: bytes, alert_id: str) -> str | None:
        """None when accepted, else why the last attempt failed."""
        error = "no attempt"
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                self.sleep(self.delay_s(attempt - 1))
            retry, error = self._attempt(url, body, alert_id)
            if not error:
                return None
            if not retry:
                break
        return error

    def _attempt(self, url: str, body: bytes, alert_id: str) -> tuple[bool, str]:
        """(retry?, error) for one POST; error "" when accepted."""
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": alert_id,
            SIGNATURE_HEADER: sign_payload(body, self.secret, int(self.clock())),
        }
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.TransportError as error:
            return True, f"{type(error).__name__}: {error}"
        except httpx.HTTPError as error:  # bad URL and the like: retrying cannot help
            return False, f"{type(error).__name__}: {error}"
        status = response.status_code
        if 200 <= status < 300:
            return False, ""
        return status >= 500 or status in _RETRY_STATUSES, f"HTTP {status}"

    def close(self) -> None:
        self._client.close()


class LogChannel:
    """The fallback when no Kafka or webhook is configured: alerts go to the log.

    Why: an embedded run has neither, and an alert must not vanish silently.
    """

    name = LOG

    def send(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            log.warning("alert %s", alert_json(alert).decode())
            ALERTS_SENT.labels(alert.kind, LOG).inc()

    def close(self) -> None:
        return None


_STOP = object()


class WebhookChannel:
    """Hands alerts to a background thread that runs a `WebhookSender`.

    The queue is bounded: an alert that does not fit is counted and logged,
    never waited for (the flow must not stall on a receiver).
    """

    name = WEBHOOK

    def __init__(
        self, sender: WebhookSender, queue_size: int = 10_000, close_timeout_s: float = 60.0
    ) -> None:
        self.sender = sender
        self.close_timeout_s = close_timeout_s
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="alert-webhooks", daemon=True)
        self._thread.start()

    def send(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            try:
                self._queue.put_nowait(alert)
            except queue.Full:
                _failed(WEBHOOK, alert.alert_id, "webhook queue full")

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, Alert)
            try:
                self.sender.deliver(item)
            except Exception as error:  # a bug in delivery must not end the thread
                _failed(WEBHOOK, item.alert_id, error)

    def close(self) -> None:
        """Deliver what is queued (bounded wait); count whatever is left."""
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=self.close_timeout_s)
        self._thread.join(self.close_timeout_s)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Alert):
                _failed(WEBHOOK, item.alert_id, "still queued at shutdown")
        self.sender.close()


class AlertPartition(StatelessSinkPartition[Tagged]):
    """Outcomes -> alerts -> channels; also checks unapplied-cash age on a timer."""

    def __init__(
        self,
        rules: AlertRules,
        channels: Sequence[Channel],
        clock: Callable[[], datetime],
        check_interval_s: float | None,
    ) -> None:
        self.rules = rules
        self.channels = tuple(channels)
        self.clock = clock
        self.watch = UnappliedWatch(rules.unapplied_max_age) if rules.on(UNAPPLIED_AGE) else None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if self.watch is not None and check_interval_s:
            self._ticker = threading.Thread(
                target=self._tick, args=(check_interval_s,), name="alert-ages", daemon=True
            )
            self._ticker.start()

    def write_batch(self, items: list[Tagged]) -> None:
        with self._lock:
            alerts = self._evaluate(item for item in items if isinstance(item, Tagged))
            if self.watch is not None:
                alerts.extend(self.watch.check(self.clock()))
            self._send(alerts)

    def _evaluate(self, items: Iterable[Tagged]) -> list[Alert]:
        alerts: list[Alert] = []
        for item in items:
            outcome = item.outcome
            try:
                alerts.extend(alerts_for(outcome, self.rules))
                if self.watch is not None:
                    self.watch.observe(outcome)
            except Exception as error:  # a rule bug is counted, the flow goes on
                _failed(RULES, outcome.outcome_id, error)
        return alerts

    def _send(self, alerts: Sequence[Alert]) -> None:
        if not alerts:
            return
        for channel in self.channels:
            try:
                channel.send(alerts)
            except Exception as error:
                for alert in alerts:
                    _failed(channel.name, alert.alert_id, error)

    def _tick(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            self.check_ages()

    def check_ages(self) -> None:
        """Age alerts without waiting for the next batch (quiet streams)."""
        if self.watch is None:
            return
        with self._lock:
            self._send(self.watch.check(self.clock()))

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        for channel in self.channels:
            try:
                channel.close()
            except Exception as error:
                log.error("closing alert channel %s failed: %s", channel.name, error)


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class AlertSink(DynamicSink[Tagged]):
    """Bytewax sink: outcome-driven and age alerts to Kafka and webhooks.

    Items other than `Tagged` (raw envelopes, stamped events on a shared
    output stream) are ignored, so it can take the same stream as the
    ClickHouse sink.
    """

    def __init__(
        self,
        rules: AlertRules,
        delivery: AlertDelivery,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], datetime] = _wall_clock,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rules = rules
        self.delivery = delivery
        self.transport = transport
        self.clock = clock
        self.sleep = sleep

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlertSink:
        return cls(AlertRules.from_env(environ), AlertDelivery.from_env(environ))

    def channels(self) -> list[Channel]:
        delivery = self.delivery
        out: list[Channel] = []
        if delivery.kafka:
            out.append(
                KafkaAlertChannel(
                    delivery.kafka, delivery.topic, delivery.kafka_config, delivery.flush_timeout_s
                )
            )
        if delivery.webhook_urls:
            sender = WebhookSender(
                delivery.webhook_urls,
                delivery.webhook_secret,
                attempts=delivery.attempts,
                backoff_s=delivery.backoff_s,
                backoff_max_s=delivery.backoff_max_s,
                timeout_s=delivery.timeout_s,
                transport=self.transport,
                sleep=self.sleep,
            )
            out.append(WebhookChannel(sender, delivery.queue_size))
        return out or [LogChannel()]

    def build(self, step_id: str, worker_index: int, worker_count: int) -> AlertPartition:
        return AlertPartition(
            self.rules, self.channels(), self.clock, self.delivery.check_interval_s
        )
