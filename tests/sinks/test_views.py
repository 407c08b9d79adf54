"""Every view against a small known ledger, checked by hand-computed numbers.

The ledger is written through rows.py and ClickHouseWriter TWICE (two separate
flushes, so two sets of parts): every expectation below therefore also proves
that re-inserting the same rows changes nothing.

Moments: T = 2025-03-31 12:00 (now) and P = 2025-02-15 00:00 (the past).

Invoices (USD unless noted)                 issued  due     history
  I1 C1 10000 direct                        01-01   01-31   4000 paid 02-20 -> open 6000
  I2 C1  5000 shopify                       03-01   03-31   open
  I3 C2 20000 direct                        2024-11-01 12-01 open
  I4 C2  8000 direct                        01-10   02-09   paid 02-10
  I5 C3  3000 EUR amazon                    02-01   03-03   1200 applied 03-25 -> open 1800
  I6 C1  7000 direct                        01-15   02-14   paid 02-14, charged back 03-10
Customers: C1 enterprise, limit 100000 USD, raised to 150000 on 03-01;
           C2 'mid' until 03-01, then 'smb', no limit; C3 has no customers row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from arrecon.sinks.clickhouse import ClickHouseWriter, run_view
from arrecon.sinks.rows import TableRow, customer_rows, exception_update, outcome_rows
from arrecon.state.events import CustomerUpserted
from arrecon.state.money import Money
from arrecon.state.outcomes import (
    Applied,
    Chargeback,
    CreditLimitExceeded,
    Duplicate,
    InvoiceStatus,
    Outcome,
    Overpaid,
    Rejected,
    Reversed,
    ShortPaid,
    Unapplied,
)
from tests.sinks.helpers import ts

pytestmark = pytest.mark.integration


T = ts("2025-03-31 12:00")
P = ts("2025-02-15 00:00")

_INVOICES = {
    # number: (customer, amount, currency, issued, due, channel)
    "I1": ("C1", 10_000, "USD", "2025-01-01 09:00", "2025-01-31", "direct"),
    "I2": ("C1", 5_000, "USD", "2025-03-01 09:00", "2025-03-31", "shopify"),
    "I3": ("C2", 20_000, "USD", "2024-11-01 09:00", "2024-12-01", "direct"),
    "I4": ("C2", 8_000, "USD", "2025-01-10 09:00", "2025-02-09", "direct"),
    "I5": ("C3", 3_000, "EUR", "2025-02-01 09:00", "2025-03-03", "amazon"),
    "I6": ("C1", 7_000, "USD", "2025-01-15 09:00", "2025-02-14", "direct"),
}


def status(number: str, at: str, state: str, open_minor: int) -> InvoiceStatus:
    customer, amount, currency, issued, due, channel = _INVOICES[number]
    return InvoiceStatus(
        f"st-{number}-{at}", ts(at), number, customer, state, open_minor, amount, currency,
        ts(due), ts(issued), channel,
    )  # fmt: skip


def issued(number: str) -> InvoiceStatus:
    _, amount, _, issued_at, _, _ = _INVOICES[number]
    return status(number, issued_at, "open", amount)


DEDUCTION = ShortPaid(
    "sp-p1", ts("2025-02-20 10:00"), "P1", "I1", "C1", 500, "USD", "deduction:damaged"
)
INVALID_DEDUCTION = ShortPaid(
    "sp-p1-late", ts("2025-02-20 10:00"), "P1", "I1", "C1", 300, "USD", "deduction:late", False
)

OUTCOMES: list[Outcome] = [
    *(issued(number) for number in _INVOICES),
    # P1 pays 4000 of I1 and deducts (one valid, one invalid deduction).
    Applied("ap-p1", ts("2025-02-20 10:00"), "P1", "I1", "C1", 4_000, "USD", "exact", 1.0),
    status("I1", "2025-02-20 10:00", "partially_paid", 6_000),
    DEDUCTION,
    INVALID_DEDUCTION,
    # P2 pays I4 in full with 300 too much; its webhook is retried once.
    Applied("ap-p2", ts("2025-02-10 12:00"), "P2", "I4", "C2", 8_000, "USD", "exact", 1.0),
    status("I4", "2025-02-10 12:00", "paid", 0),
    Overpaid("ov-p2", ts("2025-02-10 12:00"), "P2", "C2", 300, "USD"),
    Duplicate("dup-p2", ts("2025-02-11 00:00"), "P2", "evt-p2-retry"),
    # P3 pays I6 (net of a processor fee), then a chargeback reverses it.
    Applied("ap-p3", ts("2025-02-14 10:00"), "P3", "I6", "C1", 7_000, "USD", "amount", 0.9),
    ShortPaid("sp-p3", ts("2025-02-14 10:00"), "P3", "I6", "C1", 210, "USD", "processor_fee"),
    status("I6", "2025-02-14 10:00", "paid", 0),
    Chargeback("cb-1", ts("2025-03-10 09:00"), "P3", "I6", "C1", 7_000, "USD", "opened", "dp_1"),
    Reversed("rv-p3", ts("2025-03-10 09:00"), "P3", "I6", "C1", 7_000, "USD", "chargeback"),
    status("I6", "2025-03-10 09:00", "reopened", 7_000),
    # A dispute on P2 opened and won.
    Chargeback("cb-2a", ts("2025-02-01 00:00"), "P2", "I4", "C2", 1_000, "USD", "opened", "dp_2"),
    Chargeback("cb-2b", ts("2025-03-01 00:00"), "P2", "I4", "C2", 1_000, "USD", "won", "dp_2"),
    # Unapplied cash: P4 stays unapplied; P5 is applied to I5 later.
    Unapplied("un-p4", ts("2025-03-20 08:00"), "P4", "C2", 2_500, "USD", "no_match"),
    Unapplied("un-p5", ts("2025-02-01 00:00"), "P5", None, 1_200, "EUR", "no_customer"),
    Applied("ap-p5", ts("2025-03-25 00:00"), "P5", "I5", "C3", 1_200, "EUR", "fuzzy", 0.8),
    status("I5", "2025-03-25 00:00", "partially_paid", 1_800),
    CreditLimitExceeded("cl-c1", ts("2025-03-01 00:00"), "C1", "I2", 100_000, 105_000, "USD"),
    Rejected("rj-7", ts("2025-03-30 00:00"), 7, "bank", "malformed", "mt940"),
]

CUSTOMERS = [
    CustomerUpserted(
        "cu-1a", ts("2025-01-01 00:00"), "C1", "Acme", credit_limit=Money(100_000, "USD"),
        segment="enterprise",
    ),
    CustomerUpserted(
        "cu-1b", ts("2025-03-01 00:00"), "C1", "Acme", credit_limit=Money(150_000, "USD"),
        segment="enterprise",
    ),
    CustomerUpserted("cu-2a", ts("2025-01-01 00:00"), "C2", "Bolt", segment="mid"),
    CustomerUpserted("cu-2b", ts("2025-03-01 00:00"), "C2", "Bolt", segment="smb"),
]  # fmt: skip


def ledger_rows() -> list[TableRow]:
    rows: list[TableRow] = []
    for seq, outcome in enumerate(OUTCOMES):
        rows.extend(outcome_rows(outcome, seq=seq % 1000))
    for event in CUSTOMERS:
        rows.extend(customer_rows(event))
    # Ops: the valid deduction is assigned, the invalid one resolved.
    deduction = dict(outcome_rows(DEDUCTION)[0][1])
    invalid = dict(outcome_rows(INVALID_DEDUCTION)[0][1])
    rows.append(
        ("exceptions", exception_update(deduction, status="open", owner="ana",
                                        at=ts("2025-03-05 00:00")))
    )  # fmt: skip
    rows.append(
        ("exceptions", exception_update(invalid, status="resolved", owner="ana",
                                        at=ts("2025-03-15 00:00")))
    )  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def db(module_chdb: Any) -> Any:
    with ClickHouseWriter(client=module_chdb, batch_rows=7) as writer:
        writer.write(ledger_rows())
        writer.flush()
        writer.write(ledger_rows())  # a replay after a crash: same rows again
    return module_chdb


def by(rows: list[dict[str, Any]], *keys: str) -> dict[Any, dict[str, Any]]:
    return {tuple(row[key] for key in keys) if len(keys) > 1 else row[keys[0]]: row for row in rows}


def buckets(row: dict[str, Any]) -> tuple[int, ...]:
    names = ("current_minor", "d1_30_minor", "d31_60_minor", "d61_90_minor", "d90_plus_minor")
    return (*(row[name] for name in names), row["total_open_minor"], row["open_invoices"])


# (moment, dimension, key, currency) -> (current, 1-30, 31-60, 61-90, 90+, total, count)
AGING_CASES: list[tuple[datetime, str, str, str, tuple[int, ...]]] = [
    (T, "customer_id", "C1", "USD", (5_000, 0, 13_000, 0, 0, 18_000, 3)),
    (T, "customer_id", "C2", "USD", (0, 0, 0, 0, 20_000, 20_000, 1)),
    (T, "customer_id", "C3", "EUR", (0, 1_800, 0, 0, 0, 1_800, 1)),
    (T, "segment", "enterprise", "USD", (5_000, 0, 13_000, 0, 0, 18_000, 3)),
    (T, "segment", "smb", "USD", (0, 0, 0, 0, 20_000, 20_000, 1)),
    (T, "segment", "unassigned", "EUR", (0, 1_800, 0, 0, 0, 1_800, 1)),
    (T, "channel", "direct", "USD", (0, 0, 13_000, 0, 20_000, 33_000, 3)),
    (T, "channel", "shopify", "USD", (5_000, 0, 0, 0, 0, 5_000, 1)),
    (T, "channel", "amazon", "EUR", (0, 1_800, 0, 0, 0, 1_800, 1)),
    (T, "currency", "USD", "USD", (5_000, 0, 13_000, 0, 20_000, 38_000, 4)),
    (P, "customer_id", "C1", "USD", (0, 10_000, 0, 0, 0, 10_000, 1)),
    (P, "customer_id", "C2", "USD", (0, 0, 0, 20_000, 0, 20_000, 1)),
    (P, "customer_id", "C3", "EUR", (3_000, 0, 0, 0, 0, 3_000, 1)),
    (P, "segment", "mid", "USD", (0, 0, 0, 20_000, 0, 20_000, 1)),
    (P, "channel", "direct", "USD", (0, 10_000, 0, 20_000, 0, 30_000, 2)),
]


AgingCase = tuple[datetime, str, str, str, tuple[int, ...]]


@pytest.mark.parametrize("case", AGING_CASES, ids=lambda c: f"{c[0]:%m-%d}-{c[1]}-{c[2]}")
def test_aging_buckets(db: Any, case: AgingCase) -> None:
    as_of, dimension, key, currency, expected = case
    rows = by(run_view(db, "aging", as_of=as_of, dimension=dimension), "key", "currency")
    assert buckets(rows[(key, currency)]) == expected


def test_aging_has_no_other_groups(db: Any) -> None:
    assert sorted(by(run_view(db, "aging", as_of=T, dimension="customer_id"), "key")) == [
        "C1", "C2", "C3",
    ]  # fmt: skip
    assert sorted(by(run_view(db, "aging", as_of=P, dimension="segment"), "key")) == [
        "enterprise", "mid", "unassigned",
    ]  # fmt: skip


def approx(value: float) -> Any:
    return pytest.approx(value, rel=1e-9)


def test_kpis_now(db: Any) -> None:
    rows = by(run_view(db, "kpis", as_of=T, period_days=90), "currency")
    usd, eur = rows["USD"], rows["EUR"]
    assert (usd["ar_minor"], usd["ar_begin_minor"], usd["past_due_minor"]) == (
        38_000,
        20_000,
        33_000,
    )
    assert (usd["current_minor"], usd["sales_minor"]) == (5_000, 30_000)
    assert usd["dso_days"] == approx(38_000 / 30_000 * 90)  # 114
    assert usd["best_dso_days"] == approx(15.0)
    assert usd["add_days"] == approx(99.0)
    # Back from 03-31: I2 (day 30), I6 (75), I4 (80), I1 (89) = 30000; I3 (day 150)
    # covers the remaining 8000 of its 20000.
    assert usd["countback_dso_days"] == approx(150 + 8_000 / 20_000)
    assert usd["cei_pct"] == approx((20_000 + 30_000 - 38_000) / (20_000 + 30_000 - 5_000) * 100)
    assert usd["past_due_pct"] == approx(33_000 / 38_000 * 100)
    assert usd["ar_turnover"] == approx(30_000 / ((20_000 + 38_000) / 2))
    assert (eur["ar_minor"], eur["past_due_minor"], eur["sales_minor"]) == (1_800, 1_800, 3_000)
    assert eur["dso_days"] == approx(54.0)
    assert eur["countback_dso_days"] == approx(58 + 1_800 / 3_000)
    assert eur["cei_pct"] == approx(40.0)
    assert eur["ar_turnover"] == approx(3_000 / 900)


def test_kpis_as_of_past(db: Any) -> None:
    usd = by(run_view(db, "kpis", as_of=P, period_days=45), "currency")["USD"]
    assert (usd["ar_minor"], usd["ar_begin_minor"], usd["past_due_minor"]) == (
        30_000,
        20_000,
        30_000,
    )
    assert usd["sales_minor"] == 25_000  # I1, I4, I6 issued in (01-01 00:00, 02-15]
    assert usd["dso_days"] == approx(54.0)
    assert usd["add_days"] == approx(54.0)
    assert usd["cei_pct"] == approx(15_000 / 45_000 * 100)


def test_kpis_without_sales_are_null(db: Any) -> None:
    eur = by(run_view(db, "kpis", as_of=ts("2025-03-30 00:00"), period_days=1), "currency")["EUR"]
    assert (eur["sales_minor"], eur["ar_minor"], eur["ar_begin_minor"]) == (0, 1_800, 1_800)
    assert (eur["dso_days"], eur["best_dso_days"], eur["add_days"]) == (None, None, None)
    assert eur["cei_pct"] == approx(0.0)
    assert eur["ar_turnover"] == approx(0.0)
    assert eur["countback_dso_days"] == approx(57 + 1_800 / 3_000)  # I5, 57 days back


def test_cash_kpis_now(db: Any) -> None:
    rows = by(run_view(db, "cash_kpis", as_of=T, period_days=90), "currency")
    usd, eur = rows["USD"], rows["EUR"]
    # (P1, I1) 4000 after 50 days, (P2, I4) 8000 after 31; (P3, I6) nets to zero.
    assert usd["avg_days_to_pay"] == approx((4_000 * 50 + 8_000 * 31) / 12_000)
    assert usd["paid_minor"] == 12_000
    assert (usd["unapplied_count"], usd["unapplied_minor"]) == (1, 2_500)
    assert (usd["deductions_count"], usd["deductions_minor"]) == (1, 500)
    assert usd["deductions_avg_age_days"] == approx(39.0)
    assert usd["deductions_max_age_days"] == 39
    assert (usd["disputes_count"], usd["disputed_minor"]) == (1, 7_000)
    assert eur["avg_days_to_pay"] == approx(52.0)
    assert (eur["unapplied_count"], eur["unapplied_minor"]) == (0, 0)


def test_cash_kpis_as_of_past(db: Any) -> None:
    rows = by(run_view(db, "cash_kpis", as_of=P, period_days=90), "currency")
    usd, eur = rows["USD"], rows["EUR"]
    # Before the chargeback, (P3, I6) 7000 counts with 30 days.
    assert usd["avg_days_to_pay"] == approx((8_000 * 31 + 7_000 * 30) / 15_000)
    assert (usd["deductions_count"], usd["disputes_count"], usd["disputed_minor"]) == (0, 1, 1_000)
    assert (eur["unapplied_count"], eur["unapplied_minor"]) == (1, 1_200)


def test_deductions_before_ops_resolved_one(db: Any) -> None:
    usd = by(run_view(db, "cash_kpis", as_of=ts("2025-03-10 00:00"), period_days=90), "currency")
    assert (usd["USD"]["deductions_count"], usd["USD"]["deductions_minor"]) == (2, 800)
    assert usd["USD"]["deductions_max_age_days"] == 18


def test_credit_exposure_now(db: Any) -> None:
    rows = by(run_view(db, "credit_exposure", as_of=T), "customer_id", "currency")
    c1 = rows[("C1", "USD")]
    assert (c1["limit_minor"], c1["open_minor"], c1["available_minor"]) == (
        150_000,
        18_000,
        132_000,
    )
    assert (c1["open_invoices"], c1["open_disputes"], c1["disputed_minor"]) == (3, 1, 7_000)
    assert (c1["name"], c1["segment"]) == ("Acme", "enterprise")
    c2 = rows[("C2", "USD")]
    assert (c2["limit_minor"], c2["open_minor"], c2["available_minor"]) == (None, 20_000, None)
    assert (c2["open_disputes"], c2["segment"]) == (0, "smb")
    c3 = rows[("C3", "EUR")]
    assert (c3["open_minor"], c3["segment"], c3["limit_minor"]) == (1_800, "unassigned", None)
    assert len(rows) == 3


def test_credit_exposure_as_of_past(db: Any) -> None:
    rows = by(run_view(db, "credit_exposure", as_of=P), "customer_id", "currency")
    c1 = rows[("C1", "USD")]
    assert (c1["limit_minor"], c1["open_minor"], c1["available_minor"]) == (100_000, 10_000, 90_000)
    assert rows[("C2", "USD")]["open_disputes"] == 1
    assert rows[("C2", "USD")]["segment"] == "mid"
    assert rows[("C3", "EUR")]["open_minor"] == 3_000


def queue(db: Any, as_of: datetime, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    return run_view(db, "exception_queue", as_of=as_of, limit=limit, offset=offset)


def test_exception_queue_now_oldest_first(db: Any) -> None:
    rows = queue(db, T)
    deduction_id = outcome_rows(DEDUCTION)[0][1]["exception_id"]
    assert [row["exception_id"] for row in rows] == [
        "ov-p2",
        deduction_id,
        "cl-c1",
        "un-p4",
        "rj-7",
    ]
    assert [row["kind"] for row in rows] == [
        "overpaid", "deduction", "credit_limit_exceeded", "unapplied", "dead_letter",
    ]  # fmt: skip
    assert [row["amount_minor"] for row in rows] == [300, 500, 5_000, 2_500, 0]
    assert {row["total_open"] for row in rows} == {5}
    overpaid, deduction = rows[0], rows[1]
    assert (overpaid["age_days"], overpaid["age_hours"]) == (49, 49 * 24)
    assert deduction["owner"] == "ana"
    assert rows[3]["age_hours"] == 11 * 24 + 4


def test_exception_queue_pages(db: Any) -> None:
    page = queue(db, T, limit=2, offset=2)
    assert [row["exception_id"] for row in page] == ["cl-c1", "un-p4"]
    assert {row["total_open"] for row in page} == {5}
    assert queue(db, T, limit=2, offset=5) == []


def test_exception_queue_as_of_past(db: Any) -> None:
    rows = queue(db, P)
    assert [row["exception_id"] for row in rows] == ["un-p5", "ov-p2"]
    assert rows[0]["age_hours"] == 14 * 24
    assert rows[0]["currency"] == "EUR"


def test_replayed_rows_collapse_under_final(db: Any) -> None:
    for table, key in (("applications", "application_id"), ("exceptions", "exception_id")):
        raw = db.query(f"SELECT count() FROM {table}").result_rows[0][0]
        final = db.query(f"SELECT count() FROM {table} FINAL").result_rows[0][0]
        distinct = db.query(f"SELECT uniqExact({key}) FROM {table}").result_rows[0][0]
        assert final == distinct
        assert raw >= final
    current = db.query("SELECT invoice_number, open_minor FROM invoices FINAL ORDER BY 1")
    assert dict(current.result_rows) == {
        "I1": 6_000, "I2": 5_000, "I3": 20_000, "I4": 0, "I5": 1_800, "I6": 7_000,
    }  # fmt: skip
