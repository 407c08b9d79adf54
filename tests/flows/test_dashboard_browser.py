"""The ops dashboard in headless Chromium against a running `arrecon run`.

A generated stream is split: most of it is in the journal before the server
starts, the rest is POSTed to the receiver (signed webhooks, bearer-token
feeds) while the page is open. The page must update without a reload, and
what it finally shows (KPIs, aging buckets, the invoices behind a clicked bar)
must equal the SQL views run afterwards on the same chDB folder at the same
`as_of`. A screenshot is saved to `test-artifacts/dashboard.png`.

Chromium is Debian's (`/usr/bin/chromium`), driven by Playwright's Python
package without any browser download.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from arrecon.connectors.envelope import RawEnvelope
from arrecon.connectors.intake import encode_envelope
from arrecon.connectors.journal import Journal
from arrecon.connectors.signatures import sign_shopify, sign_stripe
from arrecon.flows.services import free_port
from arrecon.loadtest.generator import MessConfig, write
from arrecon.sinks.clickhouse import acquire_client, release_client, run_view
from arrecon.sinks.dashboard.queries import BUCKETS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = Path(__file__).resolve().parent / "dashboard_app.py"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DASH_TOKEN = "dash-token-1"
FEED_TOKEN = "feed-token-1"
STRIPE_SECRET = "whsec_dashboard_test"
SHOPIFY_SECRET = "shpss_dashboard_test"
EVENTS = 420
PREFILLED = 300
TIMEOUT_S = 120.0

KPI_FIELDS = (
    "ar_minor",
    "past_due_pct",
    "dso_days",
    "cei_pct",
    "add_days",
    "unapplied_minor",
    "deductions_minor",
    "disputed_minor",
)


def _records(tmp: Path) -> list[dict[str, Any]]:
    stream, truth = tmp / "input.jsonl", tmp / "truth.jsonl"
    write(stream, truth, MessConfig(), seed=23, n_events=EVENTS)
    return [orjson.loads(line) for line in stream.read_bytes().splitlines()]


def _fill_journal(data_dir: Path, records: list[dict[str, Any]]) -> None:
    payloads = []
    for record in records:
        received_at = datetime.fromisoformat(record["received_at"].replace("Z", "+00:00"))
        envelope = RawEnvelope(
            record["source"],
            record.get("kind") or "",
            received_at,
            record["body"],
            record.get("headers") or {},
        )
        payloads.append(encode_envelope(envelope))
    journal = Journal(data_dir / "journal" / "raw").open()
    try:
        journal.append_batch(payloads)
    finally:
        journal.close()


_FEED_ROUTES = {
    "erp": ("/feeds/erp", "application/json"),
    "bank": ("/feeds/bank", "text/plain"),
    "amazon": ("/feeds/settlement", "text/tab-separated-values"),
}


def _request(record: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    """URL path, body and headers a provider would send for one recorded delivery."""
    source, kind, body = record["source"], record.get("kind") or "", record["body"]
    data = body.encode() if isinstance(body, str) else orjson.dumps(body)
    if source == "stripe" and kind == "balance_transactions":
        return f"/feeds/settlement?kind={kind}", data, _bearer("application/json")
    if source == "stripe":
        signature = sign_stripe(data, STRIPE_SECRET, int(time.time()))
        return (
            "/webhooks/stripe",
            data,
            {"content-type": "application/json", "stripe-signature": signature},
        )
    if source == "shopify":
        headers = {name.lower(): value for name, value in (record.get("headers") or {}).items()}
        headers |= {
            "content-type": "application/json",
            "x-shopify-hmac-sha256": sign_shopify(data, SHOPIFY_SECRET),
        }
        return "/webhooks/shopify", data, headers
    path, content_type = _FEED_ROUTES[source]
    if kind.startswith("camt"):
        content_type = "application/xml"
    return f"{path}?kind={kind}", data, _bearer(content_type)


def _bearer(content_type: str) -> dict[str, str]:
    return {"content-type": content_type, "authorization": f"Bearer {FEED_TOKEN}"}


class Server:
    """The launcher (`arrecon run` + dashboard) as a child process."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "ARRECON_WALL_CLOCK_TIMERS": "0",
            "ARRECON_FEED_TOKENS": FEED_TOKEN,
            "ARRECON_DASHBOARD_TOKEN": DASH_TOKEN,
            "ARRECON_STRIPE_WEBHOOK_SECRETS": STRIPE_SECRET,
            "ARRECON_SHOPIFY_WEBHOOK_SECRETS": SHOPIFY_SECRET,
        }
        self.log = data_dir.parent / f"server-{self.port}.log"
        self.process = subprocess.Popen(
            [sys.executable, str(LAUNCHER), str(data_dir), str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
            env=env,
        )
        self.http = httpx.Client(base_url=self.base, timeout=10)

    def metric(self, name: str) -> float:
        try:
            text = self.http.get("/metrics").text
        except httpx.HTTPError:
            return -1
        values = re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE)
        return sum(float(value) for value in values) if values else -1

    def wait_until(self, what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while not ready():
            assert self.process.poll() is None, f"server exited: {self.log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.2)

    def wait_drained(self, events: int) -> None:
        """Until the flow read `events` envelopes and its output position stood still 2 s."""
        self.wait_until(
            f"{events} events", lambda: self.metric("arrecon_events_in_total") >= events
        )
        last, since = self.metric("arrecon_input_position"), time.monotonic()
        while time.monotonic() - since < 2.0:
            time.sleep(0.25)
            now = self.metric("arrecon_input_position")
            if now != last:
                last, since = now, time.monotonic()

    def post(self, record: dict[str, Any]) -> int:
        path, body, headers = _request(record)
        return self.http.post(path, content=body, headers=headers).status_code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=60)
        self.http.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("dashboard")
    records = _records(tmp)
    data_dir = tmp / "data"
    _fill_journal(data_dir, records[:PREFILLED])
    server = Server(data_dir)
    try:
        server.wait_drained(PREFILLED)
        yield {"server": server, "records": records, "data_dir": data_dir}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_wrong_or_missing_token_gets_401(world: dict[str, Any]) -> None:
    http: httpx.Client = world["server"].http
    for path in ("/dashboard/", "/dashboard/api/summary", "/dashboard/static/app.js"):
        assert http.get(path).status_code == 401
        assert http.get(path, params={"token": "wrong"}).status_code == 401
        assert http.get(path, headers={"authorization": "Bearer wrong"}).status_code == 401
        assert http.get(path, headers={"authorization": f"Bearer {FEED_TOKEN}x"}).status_code == 401
    spec = http.get(
        "/dashboard/api/openapi.json", headers={"authorization": f"Bearer {DASH_TOKEN}"}
    )
    assert spec.status_code == 200
    assert spec.json()["servers"] == [{"url": "/dashboard"}]


def _dom_kpis(page: Any) -> dict[str, str]:
    return page.eval_on_selector_all(
        "[data-kpi]",
        "cards => Object.fromEntries(cards.map(c => [c.dataset.kpi, c.dataset.value]))",
    )


def _dom_aging(page: Any) -> dict[tuple[str, str], dict[str, int]]:
    rows = page.eval_on_selector_all(
        "#aging-table tbody tr[data-key]",
        """rows => rows.map(r => ({key: r.dataset.key, currency: r.dataset.currency,
            cells: Object.fromEntries([...r.querySelectorAll('td[data-bucket]')]
                .map(td => [td.dataset.bucket, Number(td.dataset.minor)])),
            count: Number(r.querySelector('td[data-count]').dataset.count)}))""",
    )
    return {(row["key"], row["currency"]): {**row["cells"], "count": row["count"]} for row in rows}


def _close(dom: str, value: Any) -> bool:
    if value is None:
        return dom == ""
    return abs(float(dom) - float(value)) <= 1e-9 * max(1.0, abs(float(value)))


def _click_biggest_bar(page: Any) -> dict[str, Any]:
    """Click (with the mouse, on the canvas) the largest aging bar segment."""
    page.wait_for_timeout(600)  # let the bar animation settle
    target = page.evaluate(
        """() => {
        const chart = window.arrecon.charts.aging, rows = window.arrecon.agingRows;
        let best = null;
        chart.data.datasets.forEach((set, d) => set.data.forEach((v, i) => {
            if (v > 0 && (!best || v > best.v)) best = {v, d, i};
        }));
        const bar = chart.getDatasetMeta(best.d).data[best.i].getProps(['x', 'y', 'base'], true);
        return {x: bar.x, y: (bar.y + bar.base) / 2, key: rows[best.i].key,
                currency: rows[best.i].currency, dataset: best.d};
    }"""
    )
    box = page.locator("#aging-chart").bounding_box()
    page.mouse.click(box["x"] + target["x"], box["y"] + target["y"])
    target["bucket"] = list(BUCKETS)[target["dataset"]]
    return target


def test_page_matches_the_views_updates_live_and_lists_a_bucket(
    world: dict[str, Any], browser: Any
) -> None:
    server: Server = world["server"]
    # The page's CSP forbids eval; Playwright's string predicates need it.
    context = browser.new_context(viewport={"width": 1600, "height": 1000}, bypass_csp=True)
    page = context.new_page()
    page.goto(f"{server.base}/dashboard/?token={DASH_TOKEN}")
    assert page.url == f"{server.base}/dashboard/"  # the token left the address bar
    page.select_option("#as-of-mode", "latest")
    page.wait_for_function("document.querySelector('[data-kpi=ar_minor]').dataset.value > 0")
    page.evaluate("window.__sameDocument = true")
    before_as_of = page.get_attribute("body", "data-as-of")
    before_deliveries = int(page.get_attribute("#live-status", "data-deliveries") or 0)

    # Live: the rest of the stream arrives over HTTP while the page is open.
    accepted = sum(server.post(record) in (200, 202) for record in world["records"][PREFILLED:])
    assert accepted == len(world["records"]) - PREFILLED
    page.wait_for_function(
        f"Number(document.querySelector('#live-status').dataset.deliveries) > {before_deliveries}",
        timeout=30_000,
    )
    server.wait_drained(len(world["records"]))
    page.wait_for_function(
        f"document.body.dataset.asOf !== {orjson.dumps(before_as_of).decode()}", timeout=30_000
    )
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"

    # Let one more poll run on the final data, then read what the page shows.
    page.wait_for_timeout(3_500)
    as_of_text = page.get_attribute("body", "data-as-of")
    currency = page.input_value("#currency")
    kpis, aging = _dom_kpis(page), _dom_aging(page)
    assert aging, "no aging rows on the page"

    clicked = _click_biggest_bar(page)
    page.wait_for_selector("#bucket-panel:not([hidden])")
    page.wait_for_function(
        "(t) => document.querySelector('#bucket-panel').dataset.bucket === t",
        arg=clicked["bucket"],
    )
    listed = page.eval_on_selector_all(
        "#bucket-invoices tbody tr", "rows => rows.map(r => r.dataset.invoice)"
    )
    listed_total = int(page.get_attribute("#bucket-panel", "data-total") or -1)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    context.close()
    server.stop()

    as_of = datetime.fromisoformat(str(as_of_text).replace("Z", "+00:00"))
    dsn = f"chdb://{world['data_dir'] / 'chdb'}"
    client = acquire_client(dsn)
    try:
        kpi_view = {r["currency"]: r for r in run_view(client, "kpis", as_of=as_of, period_days=90)}
        cash_view = {
            r["currency"]: r for r in run_view(client, "cash_kpis", as_of=as_of, period_days=90)
        }
        aging_view = run_view(client, "aging", as_of=as_of, dimension="channel")
        members = _bucket_members(client, as_of, clicked)
    finally:
        release_client(dsn)

    expected = {**kpi_view.get(currency, {}), **cash_view.get(currency, {})}
    for field in KPI_FIELDS:
        assert _close(kpis[field], expected.get(field)), (field, kpis[field], expected.get(field))
    assert currency in kpi_view
    view_rows = {
        (row["key"], row["currency"]): row for row in aging_view if row["currency"] == currency
    }
    assert set(aging) <= set(view_rows)
    assert len(aging) == min(12, len(view_rows))
    for key, cells in aging.items():
        row = view_rows[key]
        assert cells == {**{b: row[f"{b}_minor"] for b in BUCKETS}, "count": row["open_invoices"]}

    assert listed_total == len(members)
    assert listed == [number for number, _days, _open in members][:25]


def _bucket_members(
    client: Any, as_of: datetime, clicked: dict[str, Any]
) -> list[tuple[str, int, int]]:
    """Invoices of one (channel, currency, bucket), computed here from invoice_events."""
    result = client.query(
        """
        SELECT invoice_number, argMax(channel, version), argMax(currency, version),
               argMax(status, version), argMax(open_minor, version), argMax(due_at, version)
        FROM invoice_events WHERE version_at <= {t:DateTime64(3, 'UTC')}
        GROUP BY invoice_number
        """,
        parameters={"t": as_of},
    )
    low, high = BUCKETS[clicked["bucket"]]
    members = []
    for number, channel, currency, status, open_minor, due_at in result.result_rows:
        days = (as_of.date() - due_at.date()).days
        closed = status in ("paid", "credited", "written_off", "void")
        if (
            (channel, currency) != (clicked["key"], clicked["currency"])
            or closed
            or open_minor <= 0
        ):
            continue
        if low <= days <= high:
            members.append((number, days, open_minor))
    return sorted(members, key=lambda m: (-m[1], -m[2], m[0]))
