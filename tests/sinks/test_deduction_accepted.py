"""A refused deduction that the ledger accepts later leaves no open invalid row behind.

The ledger reports the acceptance as a second `short_paid` outcome (valid, its own
outcome id, the time of the event that made it valid: possibly dated before the
refusal).  Written to chDB twice (a replay after a crash), in both orders.

    D1  P1/J1 400 deduction:promo  refused 03-10, assigned to ana 03-11, accepted 03-12
    D2  P2/J2 700 deduction:promo  refused 03-10, accepted by an event dated 03-01
    D3  P3/J3 300 deduction:late   refused 03-10, never accepted
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from arrecon.sinks.clickhouse import ClickHouseWriter, run_view
from arrecon.sinks.rows import TableRow, exception_update, outcome_rows
from arrecon.state.outcomes import ShortPaid
from tests.sinks.helpers import ts

pytestmark = pytest.mark.integration


def deduction(
    outcome_id: str, at: str, payment: str, minor: int, code: str, *, valid: bool
) -> ShortPaid:
    invoice = payment.replace("P", "J")
    return ShortPaid(outcome_id, ts(at), payment, invoice, "C1", minor, "USD", code, valid)


REFUSED_1 = deduction("sp-1-refused", "2025-03-10 10:00", "P1", 400, "deduction:promo", valid=False)
ACCEPTED_1 = deduction(
    "sp-1-accepted", "2025-03-12 10:00", "P1", 400, "deduction:promo", valid=True
)
REFUSED_2 = deduction("sp-2-refused", "2025-03-10 10:00", "P2", 700, "deduction:promo", valid=False)
ACCEPTED_2 = deduction(
    "sp-2-accepted", "2025-03-01 10:00", "P2", 700, "deduction:promo", valid=True
)
REFUSED_3 = deduction("sp-3-refused", "2025-03-10 10:00", "P3", 300, "deduction:late", valid=False)


def rows(accepted_first: bool) -> list[TableRow]:
    refused = [outcome_rows(o, seq=i)[0] for i, o in enumerate((REFUSED_1, REFUSED_2, REFUSED_3))]
    assigned = exception_update(refused[0][1], status="open", owner="ana", at=ts("2025-03-11"))
    accepted = [outcome_rows(o)[0] for o in (ACCEPTED_1, ACCEPTED_2)]
    ordered = [*accepted, *refused] if accepted_first else [*refused, *accepted]
    return [*ordered, ("exceptions", assigned)]


@pytest.fixture(scope="module", params=[False, True], ids=["refused-first", "accepted-first"])
def db(module_chdb: Any, request: pytest.FixtureRequest) -> Any:
    module_chdb.command("TRUNCATE TABLE exceptions")
    with ClickHouseWriter(client=module_chdb, batch_rows=2) as writer:
        writer.write(rows(request.param))
        writer.flush()
        writer.write(rows(request.param))  # replayed after a crash
    return module_chdb


def queue(db: Any, as_of: datetime) -> dict[str, dict[str, Any]]:
    found = run_view(db, "exception_queue", as_of=as_of, limit=100, offset=0)
    return {row["payment_id"]: row for row in found}


def test_one_row_per_deduction_and_the_acceptance_wins(db: Any) -> None:
    final = db.query(
        "SELECT payment_id, kind, status, owner FROM exceptions FINAL ORDER BY payment_id"
    ).result_rows
    assert final == [
        ("P1", "deduction", "open", ""),
        ("P2", "deduction", "open", ""),
        ("P3", "invalid_deduction", "open", ""),
    ]


def test_queue_now_holds_no_refusal_that_was_accepted(db: Any) -> None:
    rows = queue(db, ts("2025-03-31"))
    assert {payment: row["kind"] for payment, row in rows.items()} == {
        "P1": "deduction",
        "P2": "deduction",
        "P3": "invalid_deduction",
    }
    # The acceptance replaced the refusal whole: opened when accepted.
    assert rows["P1"]["opened_at"] == datetime(2025, 3, 12, 10)
    assert rows["P2"]["opened_at"] == datetime(2025, 3, 1, 10)
    assert {row["total_open"] for row in rows.values()} == {3}


def test_cash_kpis_count_each_deduction_once(db: Any) -> None:
    [usd] = run_view(db, "cash_kpis", as_of=ts("2025-03-31"), period_days=90)
    assert (usd["deductions_count"], usd["deductions_minor"]) == (3, 400 + 700 + 300)
