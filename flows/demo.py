"""`arrecon demo`: the embedded engine fed a realistic stream over HTTP, live.

It starts `arrecon run` in embedded mode, then a feeder thread sends the
load generator's deliveries the way providers would: Stripe and Shopify as
signed webhooks, bank statements, ERP records and settlement reports through
the bearer-authenticated feed endpoints. Every two seconds it prints what the
engine did; the dashboard URL is printed once the server is up.

Re-running resumes: the seed, the stream's start date and the number of
deliveries already accepted are kept in `<data>/demo.json`, and the journal
and recovery folders carry the engine's state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client import REGISTRY

from arrecon.connectors.webhook import ReceiverSettings
from arrecon.flows.run import Runtime, run
from arrecon.flows.settings import Settings
from arrecon.loadtest.generator import MessConfig, generate

__all__ = ["DemoState", "deliveries", "run_demo"]

STREAM_EVENTS = 20_000
STATUS_EVERY_S = 2.0


@dataclass(frozen=True, slots=True)
class DemoState:
    """What a re-run needs to continue the same stream with the same secrets."""

    seed: int
    start: str
    sent: int
    stripe_secret: str
    shopify_secret: str
    token: str

    @classmethod
    def load_or_create(cls, path: Path, seed: int, now: datetime) -> DemoState:
        if path.exists():
            return cls(**orjson.loads(path.read_bytes()))
        start = (now - timedelta(days=45)).replace(hour=0, minute=0, second=0, microsecond=0)
        return cls(
            seed=seed,
            start=start.isoformat(),
            sent=0,
            stripe_secret="whsec_" + secrets.token_hex(16),
            shopify_secret=secrets.token_hex(16),
            token=secrets.token_urlsafe(16),
        )

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(_as_dict(self)))
        tmp.replace(path)


def _as_dict(state: DemoState) -> dict[str, Any]:
    return {name: getattr(state, name) for name in DemoState.__slots__}


@dataclass(frozen=True, slots=True)
class Delivery:
    """One HTTP request the feeder sends: path, headers and raw body."""

    path: str
    headers: dict[str, str]
    body: bytes


def _body_bytes(body: Any) -> bytes:
    return body.encode() if isinstance(body, str) else orjson.dumps(body)


def _stripe_signature(secret: str, body: bytes, now: int) -> str:
    signed = f"{now}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={now},v1={digest}"


def _shopify_signature(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


_CONTENT_TYPES = {"camt053": "application/xml", "camt054": "application/xml"}


def as_delivery(record: dict[str, Any], state: DemoState, now: int) -> Delivery:
    """The HTTP request a provider would send for one replay-format record."""
    source, kind = record["source"], record.get("kind") or ""
    body = _body_bytes(record["body"])
    if source == "stripe" and kind != "balance_transactions":
        headers = {
            "content-type": "application/json",
            "stripe-signature": _stripe_signature(state.stripe_secret, body, now),
        }
        return Delivery("/webhooks/stripe", headers, body)
    if source == "shopify":
        headers = {
            "content-type": "application/json",
            "x-shopify-topic": kind,
            "x-shopify-hmac-sha256": _shopify_signature(state.shopify_secret, body),
        }
        return Delivery("/webhooks/shopify", headers, body)
    auth = {"authorization": f"Bearer {state.token}"}
    if source in ("stripe", "amazon"):
        content = "application/json" if source == "stripe" else "text/tab-separated-values"
        return Delivery(f"/feeds/settlement?kind={kind}", {**auth, "content-type": content}, body)
    if source == "bank":
        content = _CONTENT_TYPES.get(kind, "text/plain")
        return Delivery(f"/feeds/bank?kind={kind}", {**auth, "content-type": content}, body)
    return Delivery(
        f"/feeds/{source}?kind={kind}", {**auth, "content-type": "application/json"}, body
    )


def deliveries(state: DemoState, events: int) -> Iterator[dict[str, Any]]:
    """The generated stream (deterministic for the state's seed and start)."""
    config = replace(MessConfig(), start=datetime.fromisoformat(state.start))
    for line, _truth in generate(config, state.seed, events):
        yield orjson.loads(line)


def _outcome_counts() -> dict[str, float]:
    counts: dict[str, float] = {}
    for metric in REGISTRY.collect():
        if metric.name != "arrecon_outcomes":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                kind = sample.labels["type"]
                counts[kind] = counts.get(kind, 0.0) + sample.value
    return counts


class Feeder:
    """Sends the stream at a steady pace and remembers how far it got."""

    def __init__(self, state: DemoState, state_path: Path, base_url: str, rate: float) -> None:
        self.state = state
        self.state_path = state_path
        self.base_url = base_url
        self.interval_s = 1.0 / rate if rate > 0 else 0.0
        self.stop = threading.Event()
        self.sent = state.sent
        self.failed = 0

    def run(self, events: int) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            for number, record in enumerate(deliveries(self.state, events)):
                if self.stop.is_set():
                    break
                if number < self.sent:
                    continue
                self._send(client, record)
                if self.interval_s:
                    self.stop.wait(self.interval_s)
        self._save()

    def _send(self, client: httpx.Client, record: dict[str, Any]) -> None:
        """Send until the receiver answers (it may be restarting); count refusals."""
        while not self.stop.is_set():
            delivery = as_delivery(record, self.state, int(time.time()))
            try:
                answer = client.post(delivery.path, content=delivery.body, headers=delivery.headers)
            except httpx.TransportError:
                self.stop.wait(0.5)
                continue
            if answer.status_code >= 300:
                self.failed += 1
            break
        else:
            return
        self.sent += 1
        if self.sent % 100 == 0:
            self._save()

    def _save(self) -> None:
        self.state = replace(self.state, sent=self.sent)
        self.state.save(self.state_path)


def _status_line(feeder: Feeder) -> str:
    counts = _outcome_counts()
    exceptions = sum(counts.get(kind, 0.0) for kind in ("unapplied", "short_paid", "rejected"))
    return (
        f"sent {feeder.sent:>6}  applied {int(counts.get('applied', 0)):>6}  "
        f"exceptions {int(exceptions):>5}  chargebacks {int(counts.get('chargeback', 0)):>4}  "
        f"duplicates {int(counts.get('duplicate', 0)):>4}  refused {feeder.failed}"
    )


def run_demo(
    settings: Settings,
    *,
    seed: int = 7,
    rate: float = 50.0,
    events: int = STREAM_EVENTS,
    echo: Callable[[str], None] = print,
    dashboard: Callable[[str], Callable[[Any, str], None]] | None = None,
) -> None:
    """Run the embedded engine and feed it until the stream ends or Ctrl-C."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    state_path = settings.data_dir / "demo.json"
    state = DemoState.load_or_create(state_path, seed, datetime.now(UTC))
    state.save(state_path)
    receiver = ReceiverSettings(
        stripe_secrets=(state.stripe_secret,),
        shopify_secrets=(state.shopify_secret,),
        feed_tokens=(state.token,),
    )
    base_url = f"http://{settings.host}:{settings.port}"
    feeder = Feeder(state, state_path, base_url, rate)

    def on_ready(runtime: Runtime) -> None:
        feeder.stop = runtime.stop  # Ctrl-C ends the feeder with the flow
        echo(f"arrecon demo: engine up at {base_url}  (data in {settings.data_dir})")
        echo(f"dashboard: {base_url}/dashboard/?token={state.token}")
        echo(f"metrics:   {base_url}/metrics")
        echo(f"alerts:    {settings.data_dir / 'alerts.log'}")
        if state.sent:
            echo(f"resuming after {state.sent} deliveries")
        threading.Thread(target=feeder.run, args=(events,), daemon=True).start()
        threading.Thread(target=_report, args=(feeder, runtime, echo), daemon=True).start()

    try:
        routes = dashboard(state.token) if dashboard is not None else None
        run(settings, receiver, extra_routes=routes, on_ready=on_ready)
    finally:
        feeder.stop.set()
        feeder._save()
        echo(_status_line(feeder))
        echo("arrecon demo: stopped; run it again to resume")


def _report(feeder: Feeder, runtime: Runtime, echo: Callable[[str], None]) -> None:
    while not runtime.stop.is_set():
        echo(_status_line(feeder))
        runtime.stop.wait(STATUS_EVERY_S)
