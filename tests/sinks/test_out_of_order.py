"""A backdated payment still leaves the latest state in ClickHouse (real chDB).

Bank credits are dated at midnight and often pay invoices issued later that
day; rows keep the latest state by version, which follows the ledger's step
times, so the payment's state must win over the invoice's first row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from arrecon.sinks.clickhouse import ClickHouseWriter
from arrecon.sinks.migrate import migrate
from arrecon.sinks.rows import TableRow, outcome_rows
from arrecon.state.events import InvoiceIssued, PaymentReceived
from arrecon.state.ledger import CustomerEvent, Ledger, LedgerPolicy, apply
from arrecon.state.money import Money

ISSUED = datetime(2026, 3, 2, 9, 4, 17, tzinfo=UTC)
MIDNIGHT = datetime(2026, 3, 2, tzinfo=UTC)

STREAM: list[CustomerEvent] = [
    InvoiceIssued("erp:INV-7", ISSUED, "INV-7", Money(182_626, "EUR"), ISSUED, ISSUED),
    PaymentReceived(
        "camt:E1", MIDNIGHT, "E1", Money(182_626, "EUR"), "bank", invoice_refs=("INV-7",)
    ),
]


def rows_of(events: list[CustomerEvent]) -> list[TableRow]:
    ledger: Ledger | None = None
    rows: list[TableRow] = []
    for event in events:
        ledger, outcomes = apply(ledger, "C-1", event, event.occurred_at, LedgerPolicy())
        for seq, outcome in enumerate(outcomes):
            rows.extend(outcome_rows(outcome, seq=seq))
    return rows


def test_invoice_paid_by_a_credit_dated_before_it_reads_paid(chdb: Any) -> None:
    migrate(chdb)
    with ClickHouseWriter(client=chdb) as writer:
        writer.write(rows_of(STREAM))
    status = chdb.query("SELECT status, open_minor FROM invoices FINAL").result_rows
    assert status == [("paid", 0)]
    payments = chdb.query("SELECT payment_id, status FROM payments FINAL").result_rows
    assert payments == [("E1", "applied")]
