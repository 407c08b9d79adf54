"""Sink benchmark: writer throughput per table and view latency over a large ledger.

Part 1 pushes pre-built rows (made by `sinks/rows.py` from outcomes and events)
through `ClickHouseWriter` into chDB and reports rows/s per table at the
writer's batch size. Part 2 generates a ledger of `--invoices` invoices (about
1.6 versions each in invoice_events) and `--applications` applications directly
with INSERT ... SELECT, then times every view, the dashboard's header KPIs and
an aging bar's invoice list (`DashboardQueries.summary`, `.bucket_invoices`;
median of `--repeat` runs after a warm-up) as of the end of the data and as of a
date in the past.

    .venv/bin/python -m arrecon.loadtest.bench_sinks --folder /tmp/bench-chdb

chDB opens one folder per process: run it in its own process.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from arrecon.sinks.clickhouse import ClickHouseWriter, acquire_client, release_client, run_view
from arrecon.sinks.dashboard.queries import DashboardQueries
from arrecon.sinks.rows import TableRow, customer_rows, fee_rows, outcome_rows, raw_event_row
from arrecon.state.events import CustomerUpserted, PayoutLine, PayoutSettled
from arrecon.state.money import Money
from arrecon.state.outcomes import (
    Applied,
    Chargeback,
    InvoiceStatus,
    ShortPaid,
    Unapplied,
    make_outcome_id,
)

__all__ = ["GENERATORS", "bench_dashboard", "bench_views", "bench_writer", "load_ledger", "main"]

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
CURRENCIES = ("USD", "EUR", "GBP")


class _Envelope:
    __slots__ = ("body", "kind", "position", "received_at", "source")

    def __init__(self, position: int) -> None:
        self.source = "stripe"
        self.kind = "charge.succeeded"
        self.received_at = EPOCH + timedelta(seconds=position)
        self.body = {"id": f"evt_{position}", "object": "event", "amount": position % 100_000}
        self.position = position


def _at(index: int) -> datetime:
    return EPOCH + timedelta(seconds=index * 7)


def _applications(count: int) -> Iterator[TableRow]:
    for i in range(count):
        outcome = Applied(
            make_outcome_id("applied", i), _at(i), f"ch_{i}", f"INV{i % 500_000}",
            f"C{i % 20_000}", 1_000 + i % 90_000, CURRENCIES[i % 3], "exact_reference", 1.0,
            ("ref:INV",),
        )  # fmt: skip
        yield outcome_rows(outcome)[0]


def _payments(count: int) -> Iterator[TableRow]:
    for i in range(count):
        outcome = Unapplied(
            make_outcome_id("unapplied", i), _at(i), f"py_{i}", f"C{i % 20_000}",
            5_000 + i % 7_000, CURRENCIES[i % 3], "no_candidate",
        )  # fmt: skip
        yield outcome_rows(outcome)[1]


def _invoice_events(count: int) -> Iterator[TableRow]:
    for i in range(count):
        outcome = InvoiceStatus(
            make_outcome_id("invoice_status", i), _at(i), f"INV{i}", f"C{i % 20_000}",
            "open", 10_000 + i % 50_000, 10_000 + i % 50_000, CURRENCIES[i % 3],
            _at(i) + timedelta(days=30), _at(i),
        )  # fmt: skip
        yield outcome_rows(outcome)[0]


def _exceptions(count: int) -> Iterator[TableRow]:
    for i in range(count):
        outcome = ShortPaid(
            make_outcome_id("short_paid", i), _at(i), f"ch_{i}", f"INV{i}", f"C{i % 20_000}",
            100 + i % 900, CURRENCIES[i % 3], "deduction:promo",
        )  # fmt: skip
        yield outcome_rows(outcome)[0]


def _chargebacks(count: int) -> Iterator[TableRow]:
    for i in range(count):
        outcome = Chargeback(
            make_outcome_id("chargeback", i), _at(i), f"ch_{i}", f"INV{i}", f"C{i % 20_000}",
            2_500, "USD", "opened", f"dp_{i}",
        )  # fmt: skip
        yield outcome_rows(outcome)[0]


def _customers(count: int) -> Iterator[TableRow]:
    for i in range(count):
        event = CustomerUpserted(
            f"cust-{i}", _at(i), f"C{i}", f"Customer {i}", credit_limit=Money(1_000_000, "USD"),
            segment=("enterprise", "mid", "smb")[i % 3],
        )  # fmt: skip
        yield from customer_rows(event)


def _fees(count: int) -> Iterator[TableRow]:
    per_payout = 100
    for payout in range(count // per_payout):
        lines = tuple(
            PayoutLine("charge", f"ch_{payout}_{j}", 10_000, 320, ("stripe_fee",), "card")
            for j in range(per_payout)
        )
        yield from fee_rows(
            PayoutSettled(f"po-{payout}", _at(payout), "stripe", f"po_{payout}", "USD", 0, lines)
        )


def _raw_events(count: int) -> Iterator[TableRow]:
    for i in range(count):
        yield raw_event_row(_Envelope(i))


GENERATORS: dict[str, Callable[[int], Iterator[TableRow]]] = {
    "applications": _applications,
    "payments": _payments,
    "invoice_events": _invoice_events,
    "exceptions": _exceptions,
    "chargebacks": _chargebacks,
    "customers": _customers,
    "fees": _fees,
    "raw_events": _raw_events,
}


def bench_writer(client: Any, rows_per_table: int, batch_rows: int) -> dict[str, dict[str, float]]:
    """Rows/s per table through the writer (rows built beforehand, not timed)."""
    results: dict[str, dict[str, float]] = {}
    for table, generate in GENERATORS.items():
        rows = list(generate(rows_per_table))
        writer = ClickHouseWriter(client=client, batch_rows=batch_rows, batch_ms=10_000_000)
        writer.open()
        started = time.perf_counter()
        writer.write(rows)
        writer.close()
        elapsed_s = time.perf_counter() - started
        results[table] = {
            "rows": len(rows),
            "seconds": elapsed_s,
            "rows_per_s": len(rows) / elapsed_s,
        }
    return results


_LEDGER_SQL = (
    # Every invoice issued once; 60% later paid (a second version), 10% partially.
    """
    INSERT INTO invoice_events
    SELECT concat('ie', toString(number)), issued, toUInt64(toUnixTimestamp64Milli(issued)) * 1000,
           concat('INV', toString(number)), concat('C', toString(number % 20000)), 'open',
           amount, amount, ['USD', 'EUR', 'GBP'][number % 3 + 1], issued,
           issued + toIntervalDay(30), ['direct', 'shopify', 'amazon', 'stripe'][number % 4 + 1]
    FROM (SELECT number, toDateTime64('2025-01-01 00:00:00', 3, 'UTC')
                 + toIntervalSecond(intDiv(number * 31536000, {invoices:UInt64})) AS issued,
                 toInt64(1000 + cityHash64(number) % 500000) AS amount
          FROM numbers({invoices:UInt64}))
    """,
    """
    INSERT INTO invoice_events
    SELECT concat('iv', toString(number)), paid_at,
           toUInt64(toUnixTimestamp64Milli(paid_at)) * 1000 + 1,
           concat('INV', toString(number)), concat('C', toString(number % 20000)),
           if(number % 10 = 0, 'partially_paid', 'paid'), if(number % 10 = 0, intDiv(amount, 2), 0),
           amount, ['USD', 'EUR', 'GBP'][number % 3 + 1], issued, issued + toIntervalDay(30),
           ['direct', 'shopify', 'amazon', 'stripe'][number % 4 + 1]
    FROM (SELECT number, toDateTime64('2025-01-01 00:00:00', 3, 'UTC')
                 + toIntervalSecond(intDiv(number * 31536000, {invoices:UInt64})) AS issued,
                 issued + toIntervalDay(cityHash64(number, 1) % 80) AS paid_at,
                 toInt64(1000 + cityHash64(number) % 500000) AS amount
          FROM numbers({invoices:UInt64}))
    WHERE number % 10 < 6
    """,
    """
    INSERT INTO applications
    SELECT concat('ap', toString(number)), at, concat('ch_', toString(number)),
           concat('INV', toString(inv)), concat('C', toString(inv % 20000)),
           if(number % 50 = 0, -1, 1) * toInt64(100 + cityHash64(number) % 10000),
           ['USD', 'EUR', 'GBP'][inv % 3 + 1],
           'exact_reference', 1., [], 'v1', number % 50 = 0, ''
    FROM (SELECT number, intDiv(number, 3) % {invoices:UInt64} AS inv,
                 toDateTime64('2025-01-01 00:00:00', 3, 'UTC')
                 + toIntervalSecond(intDiv(inv * 31536000, {invoices:UInt64}))
                 + toIntervalDay(cityHash64(number, 2) % 60) AS at
          FROM numbers({applications:UInt64}))
    """,
    """
    INSERT INTO customers
    SELECT concat('C', toString(number)), toDateTime64('2024-12-01 00:00:00', 3, 'UTC'),
           toUInt64(1733011200000) * 1000, concat('cu', toString(number)),
           concat('Customer ', toString(number)), ['enterprise', 'mid', 'smb'][number % 3 + 1],
           30, toInt64(50000000), 'USD', 0, [], [], 'erp'
    FROM numbers(20000)
    """,
    """
    INSERT INTO exceptions
    SELECT concat('ex', toString(number)), at, at, toUInt64(toUnixTimestamp64Milli(at)) * 1000,
           ['unapplied', 'deduction', 'short_paid', 'overpaid'][number % 4 + 1], 'open', '',
           concat('py_', toString(number)), concat('INV', toString(number)),
           concat('C', toString(number % 20000)), toInt64(100 + number % 9000),
           ['USD', 'EUR', 'GBP'][number % 3 + 1], '', '', '', [], []
    FROM (SELECT number, toDateTime64('2025-01-01 00:00:00', 3, 'UTC')
                 + toIntervalSecond(number * 157) AS at FROM numbers(200000))
    """,
    """
    INSERT INTO chargebacks
    SELECT concat('cb', toString(number)), at, concat('dp_', toString(intDiv(number, 2))),
           concat('dp_', toString(intDiv(number, 2))), concat('ch_', toString(number)),
           concat('INV', toString(number)), concat('C', toString(number % 20000)), toInt64(2500),
           'USD', if(number % 2 = 0, 'opened', 'won'), 1500
    FROM (SELECT number, toDateTime64('2025-01-01 00:00:00', 3, 'UTC')
                 + toIntervalSecond(number * 1500) AS at FROM numbers(20000))
    """,
)


def load_ledger(client: Any, invoices: int, applications: int) -> float:
    """Generate the query-benchmark ledger in place; returns seconds taken."""
    started = time.perf_counter()
    sizes = {
        "{invoices:UInt64}": str(int(invoices)),
        "{applications:UInt64}": str(int(applications)),
    }
    for template in _LEDGER_SQL:
        statement = template
        for placeholder, value in sizes.items():
            statement = statement.replace(placeholder, value)
        client.command(statement)
    return time.perf_counter() - started


VIEW_PARAMS: dict[str, dict[str, Any]] = {
    "aging": {"dimension": "customer_id"},
    "kpis": {"period_days": 90},
    "cash_kpis": {"period_days": 90},
    "credit_exposure": {},
    "exception_queue": {"limit": 50, "offset": 0},
}


_MOMENTS = {
    "end": datetime(2026, 3, 1, tzinfo=UTC),
    "past": datetime(2025, 6, 30, 12, tzinfo=UTC),
}


def bench_views(client: Any, repeat: int) -> dict[str, dict[str, float]]:
    """Median ms per view, as of the end of the data and as of a past date."""
    results: dict[str, dict[str, float]] = {}
    for name, extra in VIEW_PARAMS.items():
        for label, as_of in _MOMENTS.items():
            run_view(client, name, as_of=as_of, **extra)  # warm-up
            timings_ms = []
            for _ in range(repeat):
                started = time.perf_counter()
                rows = run_view(client, name, as_of=as_of, **extra)
                timings_ms.append((time.perf_counter() - started) * 1000)
            results[f"{name}@{label}"] = {
                "median_ms": statistics.median(timings_ms),
                "max_ms": max(timings_ms),
                "rows": len(rows),
            }
    return results


def bench_dashboard(client: Any, repeat: int) -> dict[str, dict[str, float]]:
    """Median ms of dashboard calls: the header KPIs (kpis + cash_kpis + match rate) and
    the invoices behind the largest aging bar (USD, 90+ days, first page)."""
    queries = DashboardQueries(client=client)
    calls: dict[str, Callable[[datetime], object]] = {
        "summary": lambda as_of: queries.summary(as_of, period_days=90),
        "bucket_invoices": lambda as_of: queries.bucket_invoices(
            as_of, dimension="currency", key="USD", currency="USD", bucket="d90_plus"
        ),
    }
    results: dict[str, dict[str, float]] = {}
    for name, call in calls.items():
        for label, as_of in _MOMENTS.items():
            call(as_of)  # warm-up
            timings_ms = []
            for _ in range(repeat):
                started = time.perf_counter()
                call(as_of)
                timings_ms.append((time.perf_counter() - started) * 1000)
            results[f"{name}@{label}"] = {
                "median_ms": statistics.median(timings_ms),
                "max_ms": max(timings_ms),
            }
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=None, help="chDB folder (default: temp)")
    parser.add_argument("--rows", type=int, default=200_000, help="rows per table, part 1")
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--applications", type=int, default=3_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="arrecon-bench-"))
    dsn = f"chdb://{folder.resolve()}"
    write_client = acquire_client(dsn)
    try:
        writer_results = bench_writer(write_client, args.rows, args.batch_rows)
        for table in (*GENERATORS, "invoices"):
            write_client.command(f"TRUNCATE TABLE {table}")
        load_s = load_ledger(write_client, args.invoices, args.applications)
        view_results = bench_views(write_client, args.repeat)
        dashboard_results = bench_dashboard(write_client, args.repeat)
    finally:
        release_client(dsn)
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)
    report = {
        "writer": writer_results,
        "ledger_load_s": load_s,
        "views": view_results,
        "dashboard": dashboard_results,
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
