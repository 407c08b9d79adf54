"""`arrecon_unapplied_cash_minor`: read back from real chDB tables, at a bounded rate.

Ledger: P4 2500 USD unapplied; P5 1200 EUR unapplied, later applied to I5;
P6 900 USD unapplied twice (the newer, 700, supersedes). Open: USD 2500 + 700.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Gauge

from arrecon.flows.live import ClickHouseSink
from arrecon.flows.steps import Tagged
from arrecon.sinks.clickhouse import ClickHouseWriter, acquire_client, release_client, run_view
from arrecon.sinks.metrics import UnappliedCash, unapplied_cash
from arrecon.sinks.migrate import migrate
from arrecon.sinks.rows import TableRow, outcome_rows
from arrecon.state.outcomes import Applied, Outcome, Unapplied

pytestmark = pytest.mark.integration


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


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
    refresher = UnappliedCash(lambda: client, interval_s=10, gauge=gauge, clock=clock)
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
    refresher = UnappliedCash(lambda: client, interval_s=10, gauge=gauge, clock=clock)
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


def test_flow_sink_sets_the_exported_gauge(dsn: str) -> None:
    currency = "XTS"  # the ISO test currency: no other test sets it
    sink = ClickHouseSink(dsn, flush_ms=20, unapplied_refresh_s=0.0)
    part = sink.build_part("clickhouse_out", "rows", None)
    try:
        outcome = Unapplied("un-x", ts("2025-03-01 00:00"), "PX", "C9", 4_200, currency, "no_match")
        part.write_batch([Tagged(1, 0, 0, outcome)])
        deadline = time.monotonic() + 10
        sample = None
        while sample != 4_200 and time.monotonic() < deadline:
            time.sleep(0.02)
            sample = REGISTRY.get_sample_value(
                "arrecon_unapplied_cash_minor", {"currency": currency}
            )
        assert sample == 4_200
    finally:
        part.close()
