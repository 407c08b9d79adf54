"""Average days to pay over (payment, invoice) pairs whose history crosses the window.

The cash KPIs view pre-filters the applications history by a hashed pair key taken
from the window; these cases pin that the whole history of a pair still decides.
Rows are written twice (a replay after a crash), so duplicates must not count.

T = 2025-06-30 12:00 (window after 2025-04-01 12:00), M = 2025-05-15 00:00
(window after 2025-02-14 00:00); all USD.

pair       rows (at, minor)                                  as of T          as of M
Q1-J1      +1000 01-05, -1000 02-01, +1000 05-01            first 01-05: out  out
Q2-J2      +8000 05-01, -3000 05-10  (J2 issued 04-01)      5000 x 30 days    5000 x 30
Q3-J3      +2000 01-20                                      out (first 01-20) out
Q3-J4      +4000 05-10               (J4 issued 04-05)      4000 x 35         4000 x 35
Q4-J5      +6000 05-01, -6000 05-20  (J5 issued 04-01)      nets to 0: out    6000 x 30
Q5-J6      +1000 06-01               (J6 issued 04-01)      1000 x 61         not yet
Q6-J6      +1000 06-11                                      1000 x 71         not yet
Q7-J7      -500 03-01 (reversal first), +2000 05-01          1500 x 30         1500 x 30
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from arrecon.sinks.clickhouse import ClickHouseWriter, run_view
from arrecon.sinks.rows import TableRow, outcome_rows
from arrecon.state.outcomes import Applied, InvoiceStatus, Outcome, Reversed
from tests.sinks.helpers import ts

pytestmark = pytest.mark.integration


T = ts("2025-06-30 12:00")
M = ts("2025-05-15 00:00")

_ISSUED = {
    "J1": "2025-01-01 09:00",
    "J2": "2025-04-01 09:00",
    "J3": "2025-01-01 09:00",
    "J4": "2025-04-05 09:00",
    "J5": "2025-04-01 09:00",
    "J6": "2025-04-01 09:00",
    "J7": "2025-04-01 09:00",
}


def issued(number: str) -> InvoiceStatus:
    at = ts(_ISSUED[number])
    return InvoiceStatus(
        f"st-{number}", at, number, "C1", "open", 10_000, 10_000, "USD", at, at, "direct"
    )


def applied(payment: str, invoice: str, at: str, minor: int) -> Applied:
    return Applied(
        f"ap-{payment}-{invoice}-{at}", ts(at), payment, invoice, "C1", minor, "USD", "exact", 1.0
    )


def reversed_(payment: str, invoice: str, at: str, minor: int) -> Reversed:
    return Reversed(
        f"rv-{payment}-{invoice}-{at}", ts(at), payment, invoice, "C1", minor, "USD", "chargeback"
    )


OUTCOMES: list[Outcome] = [
    *(issued(number) for number in _ISSUED),
    applied("Q1", "J1", "2025-01-05 10:00", 1_000),
    reversed_("Q1", "J1", "2025-02-01 10:00", 1_000),
    applied("Q1", "J1", "2025-05-01 10:00", 1_000),
    applied("Q2", "J2", "2025-05-01 10:00", 8_000),
    reversed_("Q2", "J2", "2025-05-10 10:00", 3_000),
    applied("Q3", "J3", "2025-01-20 10:00", 2_000),
    applied("Q3", "J4", "2025-05-10 10:00", 4_000),
    applied("Q4", "J5", "2025-05-01 10:00", 6_000),
    reversed_("Q4", "J5", "2025-05-20 10:00", 6_000),
    applied("Q5", "J6", "2025-06-01 10:00", 1_000),
    applied("Q6", "J6", "2025-06-11 10:00", 1_000),
    reversed_("Q7", "J7", "2025-03-01 10:00", 500),
    applied("Q7", "J7", "2025-05-01 10:00", 2_000),
]


def rows() -> list[TableRow]:
    found: list[TableRow] = []
    for seq, outcome in enumerate(OUTCOMES):
        found.extend(outcome_rows(outcome, seq=seq))
    return found


@pytest.fixture(scope="module")
def db(module_chdb: Any) -> Any:
    with ClickHouseWriter(client=module_chdb, batch_rows=5) as writer:
        writer.write(rows())
        writer.flush()
        writer.write(rows())
    return module_chdb


def usd(db: Any, as_of: datetime) -> dict[str, Any]:
    found = {row["currency"]: row for row in run_view(db, "cash_kpis", as_of=as_of, period_days=90)}
    assert set(found) == {"USD"}
    return found["USD"]


def test_pairs_now_use_whole_history(db: Any) -> None:
    row = usd(db, T)
    assert row["paid_minor"] == 5_000 + 4_000 + 1_000 + 1_000 + 1_500
    weighted_days = 5_000 * 30 + 4_000 * 35 + 1_000 * 61 + 1_000 * 71 + 1_500 * 30
    assert row["avg_days_to_pay"] == pytest.approx(weighted_days / 12_500)


def test_pairs_as_of_past(db: Any) -> None:
    row = usd(db, M)
    assert row["paid_minor"] == 5_000 + 4_000 + 6_000 + 1_500
    weighted_days = 5_000 * 30 + 4_000 * 35 + 6_000 * 30 + 1_500 * 30
    assert row["avg_days_to_pay"] == pytest.approx(weighted_days / 16_500)


def test_first_application_alone(db: Any) -> None:
    row = usd(db, ts("2025-01-10 00:00"))
    assert (row["paid_minor"], row["avg_days_to_pay"]) == (1_000, pytest.approx(4.0))


def test_window_before_any_payment_is_empty(db: Any) -> None:
    assert run_view(db, "cash_kpis", as_of=ts("2025-01-04 00:00"), period_days=90) == []
