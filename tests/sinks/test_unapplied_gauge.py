"""`arrecon_unapplied_cash_minor` and `arrecon_open_ar_minor`: read back from real chDB
tables, at a bounded rate.

Ledger: P4 2500 USD unapplied; P5 1200 EUR unapplied, later applied to I5;
P6 900 USD unapplied twice (the newer, 700, supersedes). Open: USD 2500 + 700.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Gauge

from arrecon.flows.live import ClickHouseSink
from arrecon.flows.steps import Tagged
from arrecon.sinks.clickhouse import ClickHouseWriter, acquire_client, release_client, run_view
from arrecon.sinks.metrics import TableGauge, open_receivables, unapplied_cash
from arrecon.sinks.migrate import migrate
from arrecon.sinks.rows import TableRow, outcome_rows
from arrecon.state.outcomes import Applied, InvoiceStatus, Outcome, Unapplied
from tests.sinks.helpers import ts

pytestmark = pytest.mark.integration


OUTCOMES: list[Outcome] = [
    Unapplied("un-p4", ts("2025-03-20 08:00"), "P4", "C2", 2_500, "USD", "no_match"),
    Unapplied("un-p5", ts("2025-02-01 00:00"), "P5", None, 1_200, "EUR", "no_customer"),
    Unapplied("un-p6a", ts("2025-03-01 00:00"), "P6", "C1", 900, "USD", "no_match"),
    Unapplied("un-p6b", ts("2025-03-02 00:00"), "P6", "C1", 700, "USD", "no_match"),
]
P5_APPLIED = Applied("ap-p5", ts("2025-03-25 00:00"), "P5", "I5", "C3", 1_200, "EUR", "fuzzy", 0.8)


def rows(outcomes: list[Outcome]) -> list[TableRow]:
    return [row for outcome in outcomes for row in outcome_rows(outcome)]


class Counting:
    """A client that counts queries and can be told to fail."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.queries = 0
        self.fail = False

    def query(self, *args: Any, **kwargs: Any) -> Any:
        self.queries += 1
        if self.fail:
            raise ConnectionError("server gone")
        return self.client.query(*args, **kwargs)


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def fresh_gauge() -> Gauge:
    return Gauge("unapplied_test", "test", ["currency"], registry=CollectorRegistry())


def value(gauge: Gauge, currency: str) -> float:
    [family] = gauge.collect()
    return next(s.value for s in family.samples if s.labels == {"currency": currency})


@pytest.fixture(scope="module")
def dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated chDB folder for this module; the flow's sink opens the same DSN."""
    folder = tmp_path_factory.mktemp("chdb")
    dsn = f"chdb://{folder}"
    client = acquire_client(dsn)
    try:
        migrate(client)
        yield dsn
    finally:
        release_client(dsn)


@pytest.fixture
def db(dsn: str) -> Any:
    client = acquire_client(dsn)
    release_client(dsn)  # the module fixture keeps it open
    for table in ("exceptions", "payments", "applications"):
        client.command(f"TRUNCATE TABLE {table}")
    with ClickHouseWriter(client=client) as writer:
        writer.write(rows(OUTCOMES))
        writer.flush()
        writer.write(rows(OUTCOMES))  # a replay: duplicates must not count
    return client


def test_open_unapplied_cash_per_currency(db: Any) -> None:
    assert unapplied_cash(db) == {"EUR": 1_200, "USD": 3_200}
    with ClickHouseWriter(client=db) as writer:
        writer.write(rows([P5_APPLIED]))
    assert unapplied_cash(db) == {"USD": 3_200}


def test_agrees_with_the_cash_kpis_view(db: Any) -> None:
    view = run_view(db, "cash_kpis", as_of=ts("2025-12-31"), period_days=90)
    assert unapplied_cash(db) == {row["currency"]: row["unapplied_minor"] for row in view}


def test_gauge_follows_the_tables_at_a_bounded_rate(db: Any) -> None:
    client, clock, gauge = Counting(db), Clock(), fresh_gauge()
    refresher = TableGauge(lambda: client, unapplied_cash, gauge, interval_s=10, clock=clock)
    assert refresher.maybe_refresh()
    assert (value(gauge, "USD"), value(gauge, "EUR")) == (3_200, 1_200)
    with ClickHouseWriter(client=db) as writer:
        writer.write(rows([P5_APPLIED]))
    refresher.written()
    clock.now_s += 5
    assert not refresher.maybe_refresh()  # too soon
    clock.now_s += 5
    assert refresher.maybe_refresh()
    assert (value(gauge, "USD"), value(gauge, "EUR")) == (3_200, 0)  # EUR dropped out
    clock.now_s += 60
    assert not refresher.maybe_refresh()  # nothing written since
    assert client.queries == 2


def test_failed_refresh_keeps_values_and_retries(db: Any) -> None:
    client, clock, gauge = Counting(db), Clock(), fresh_gauge()
    refresher = TableGauge(lambda: client, unapplied_cash, gauge, interval_s=10, clock=clock)
    assert refresher.maybe_refresh()
    client.fail = True
    refresher.written()
    clock.now_s += 10
    assert not refresher.maybe_refresh()
    assert value(gauge, "USD") == 3_200
    client.fail = False
    clock.now_s += 10
    assert refresher.maybe_refresh()
    assert client.queries == 3


def test_flow_sink_sets_the_exported_gauges(dsn: str) -> None:
    currency = "XTS"  # the ISO test currency: no other test sets it
    sink = ClickHouseSink(dsn, flush_ms=20, gauge_refresh_s=0.0)
    part = sink.build_part("clickhouse_out", "rows", None)
    try:
        outcome = Unapplied("un-x", ts("2025-03-01 00:00"), "PX", "C9", 4_200, currency, "no_match")
        invoice = status("IX", "2025-03-01 00:00", "open", 3_300, currency)
        part.write_batch([Tagged(1, 0, 0, outcome), Tagged(2, 0, 0, invoice)])
        deadline = time.monotonic() + 10
        samples: tuple[float | None, ...] = ()
        while samples != (4_200, 3_300) and time.monotonic() < deadline:
            time.sleep(0.02)
            samples = tuple(
                REGISTRY.get_sample_value(name, {"currency": currency})
                for name in ("arrecon_unapplied_cash_minor", "arrecon_open_ar_minor")
            )
        assert samples == (4_200, 3_300)
    finally:
        part.close()


def status(number: str, at: str, state: str, open_minor: int, currency: str) -> InvoiceStatus:
    issued = ts("2025-01-01 00:00")
    return InvoiceStatus(
        f"st-{number}-{at}", ts(at), number, "C1", state, open_minor, 10_000, currency,
        ts("2025-02-01 00:00"), issued,
    )  # fmt: skip


def test_open_receivables_follow_the_aging_rules(db: Any) -> None:
    db.command("TRUNCATE TABLE invoice_events")
    db.command("TRUNCATE TABLE invoices")
    statuses = [
        status("I1", "2025-01-01 00:00", "open", 10_000, "USD"),
        status("I1", "2025-03-01 00:00", "partially_paid", 4_000, "USD"),  # latest wins
        status("I2", "2025-01-01 00:00", "open", 7_000, "EUR"),
        status("I3", "2025-01-01 00:00", "open", 5_000, "USD"),
        status("I3", "2025-02-01 00:00", "paid", 0, "USD"),  # closed: not open AR
        status("I4", "2025-01-01 00:00", "credited", -500, "USD"),  # credit: not open AR
    ]
    with ClickHouseWriter(client=db) as writer:
        writer.write(rows(statuses))
        writer.flush()
        writer.write(rows(statuses))  # a replay: duplicates must not count
    assert open_receivables(db) == {"EUR": 7_000, "USD": 4_000}
    aging = run_view(db, "aging", as_of=ts("2299-12-31 00:00"), dimension="currency")
    assert open_receivables(db) == {row["currency"]: row["total_open_minor"] for row in aging}
