"""rows.py: every outcome maps to the right table(s) with complete, stable rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arrecon.sinks.rows import (
    COLUMNS,
    MAX_SEQ,
    customer_rows,
    exception_update,
    fee_rows,
    outcome_rows,
    raw_event_row,
    version_of,
)
from arrecon.state.events import CustomerUpserted, PayoutLine, PayoutSettled
from arrecon.state.money import Money
from arrecon.state.outcomes import (
    Applied,
    Chargeback,
    CreditLimitExceeded,
    Duplicate,
    FeeAnomaly,
    InvoiceStatus,
    Outcome,
    Overpaid,
    Rejected,
    ReminderDue,
    Reversed,
    ShortPaid,
    Unapplied,
)

AT = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)

# outcome -> the tables it lands in, in order
CASES: list[tuple[Outcome, tuple[str, ...]]] = [
    (Applied("o1", AT, "ch_1", "INV1", "C1", 900, "USD", "exact", 1.0, ("ref",)),
     ("applications", "payments")),
    (Reversed("o2", AT, "ch_1", "INV1", "C1", 900, "USD", "refund"), ("applications",)),
    (Unapplied("o3", AT, "ch_2", None, 50, "EUR", "no_match", ("INV9",)),
     ("exceptions", "payments")),
    (ShortPaid("o4", AT, "ch_1", "INV1", "C1", 30, "USD", "unexplained"), ("exceptions",)),
    (Overpaid("o5", AT, "ch_1", "C1", 10, "USD"), ("exceptions",)),
    (Duplicate("o6", AT, "ch_1", "evt_1"), ("exceptions",)),
    (Chargeback("o7", AT, "ch_1", "INV1", "C1", 900, "USD", "opened", "dp_1", 1500),
     ("chargebacks",)),
    (FeeAnomaly("o8", AT, "stripe", "po_1", 290, 340), ("alerts",)),
    (InvoiceStatus("o9", AT, "INV1", "C1", "open", 900, 900, "USD", AT, AT), ("invoice_events",)),
    (ReminderDue("o10", AT, "INV1", "C1", "first", 900, "USD"), ("reminders",)),
    (CreditLimitExceeded("o11", AT, "C1", "INV1", 1000, 1300, "USD"), ("exceptions", "alerts")),
    (Rejected("o12", AT, 3, "bank", "malformed", "mt940"), ("exceptions",)),
]  # fmt: skip


@pytest.mark.parametrize(("outcome", "tables"), CASES, ids=lambda v: getattr(v, "type", ""))
def test_outcome_lands_in_its_tables_with_every_column(
    outcome: Outcome, tables: tuple[str, ...]
) -> None:
    rows = outcome_rows(outcome, seq=3)
    assert tuple(table for table, _ in rows) == tables
    for table, row in rows:
        assert tuple(row) == COLUMNS[table]
        assert outcome.outcome_id in row.values()  # the deterministic row id
    assert outcome_rows(outcome, seq=3) == rows


def test_reversal_is_a_negative_flagged_row() -> None:
    [(_, row)] = outcome_rows(Reversed("r", AT, "ch_1", "INV1", "C1", 900, "USD", "refund"))
    assert (row["amount_minor"], row["reversed"], row["reason"]) == (-900, 1, "refund")


@pytest.mark.parametrize(
    ("reason_code", "valid", "kind", "status"),
    [
        ("unexplained", True, "short_paid", "open"),
        ("deduction:damaged", True, "deduction", "open"),
        ("deduction:late", False, "invalid_deduction", "open"),
        ("processor_fee", True, "coded_gap", "resolved"),
        ("marketplace_fee", True, "coded_gap", "resolved"),
        ("return", True, "coded_gap", "resolved"),
        ("promotion", True, "coded_gap", "resolved"),
    ],
)
def test_short_pay_kinds(reason_code: str, valid: bool, kind: str, status: str) -> None:
    outcome = ShortPaid("s", AT, "ch_1", "INV1", "C1", 30, "USD", reason_code, valid)
    [(_, row)] = outcome_rows(outcome)
    assert (row["kind"], row["status"], row["amount_minor"]) == (kind, status, 30)


def test_credit_limit_rows_carry_the_excess() -> None:
    rows = dict(outcome_rows(CreditLimitExceeded("c", AT, "C1", "INV1", 1000, 1300, "USD")))
    assert rows["exceptions"]["amount_minor"] == 300
    assert orjson.loads(rows["alerts"]["details"]) == {"exposure_minor": 1300, "limit_minor": 1000}


def test_fee_anomaly_alert_details() -> None:
    [(_, row)] = outcome_rows(FeeAnomaly("f", AT, "stripe", "po_1", 290, 340))
    assert (row["processor"], row["subject"]) == ("stripe", "po_1")
    assert orjson.loads(row["details"])["observed_bps"] == 340


def test_unknown_outcome_is_refused() -> None:
    with pytest.raises(TypeError):
        outcome_rows("applied")  # type: ignore[arg-type]


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        outcome_rows(Overpaid("o", datetime(2025, 1, 1), "ch_1", "C1", 10, "USD"))


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    st.integers(0, MAX_SEQ - 1),
    st.integers(0, MAX_SEQ - 1),
)
def test_version_orders_by_time_then_seq(moment: datetime, seq_a: int, seq_b: int) -> None:
    at = moment.replace(tzinfo=UTC)
    later = at + timedelta(milliseconds=1)
    assert version_of(later, 0) > version_of(at, MAX_SEQ - 1)
    assert (version_of(at, seq_a) < version_of(at, seq_b)) == (seq_a < seq_b)


@pytest.mark.parametrize("seq", [-1, MAX_SEQ])
def test_version_seq_is_bounded(seq: int) -> None:
    with pytest.raises(ValueError, match="seq"):
        version_of(AT, seq)


def test_exception_update_must_move_forward() -> None:
    [(_, row)] = outcome_rows(Overpaid("o", AT, "ch_1", "C1", 10, "USD"))
    newer = exception_update(row, status="resolved", owner="ana", at=AT + timedelta(hours=1))
    assert (newer["exception_id"], newer["status"], newer["owner"]) == ("o", "resolved", "ana")
    assert newer["version"] > row["version"]
    assert newer["opened_at"] == row["opened_at"]
    with pytest.raises(ValueError, match="later"):
        exception_update(row, status="resolved", owner="ana", at=AT)


def test_customer_rows_keep_the_limit_or_null() -> None:
    limited = CustomerUpserted("e1", AT, "C1", "Acme", credit_limit=Money(5000, "JPY"))
    [(_, row)] = customer_rows(limited)
    assert (row["credit_limit_minor"], row["credit_currency"]) == (5000, "JPY")
    assert tuple(row) == COLUMNS["customers"]
    [(_, open_row)] = customer_rows(CustomerUpserted("e2", AT, "C2", "Bolt"))
    assert (open_row["credit_limit_minor"], open_row["credit_currency"]) == (None, "")


def test_fee_rows_one_per_line_with_distinct_ids() -> None:
    lines = (
        PayoutLine("charge", "ch_1", 10_000, 320, ("stripe_fee",), "card"),
        PayoutLine("charge", "ch_1", 10_000, 320),  # same source twice: still two rows
        PayoutLine("refund", "re_1", -2_000),
    )
    rows = fee_rows(PayoutSettled("ev", AT, "stripe", "po_1", "USD", 17_680, lines))
    assert [table for table, _ in rows] == ["fees"] * 3
    assert len({row["fee_line_id"] for _, row in rows}) == 3
    assert [row["fee_minor"] for _, row in rows] == [320, 320, 0]
    assert rows[2][1]["payment_method"] == ""
    assert fee_rows(PayoutSettled("ev", AT, "stripe", "po_1", "USD", 17_680, lines)) == rows


@dataclass(frozen=True)
class Envelope:
    source: str
    kind: str
    received_at: datetime
    body: Any
    position: int = 0


def test_raw_event_id_ignores_position_but_not_body() -> None:
    first = raw_event_row(Envelope("stripe", "charge.succeeded", AT, {"id": "evt_1"}, 5))[1]
    again = raw_event_row(Envelope("stripe", "charge.succeeded", AT, {"id": "evt_1"}, 99))[1]
    other = raw_event_row(Envelope("stripe", "charge.succeeded", AT, {"id": "evt_2"}, 5))[1]
    assert first["raw_id"] == again["raw_id"] != other["raw_id"]
    assert (first["position"], again["position"]) == (5, 99)
    assert orjson.loads(first["body"]) == {"id": "evt_1"}
    assert tuple(first) == COLUMNS["raw_events"]


@pytest.mark.parametrize("body", ["a,b\n1,2\n", b"a,b\n1,2\n"])
def test_raw_text_and_bytes_bodies_are_stored_verbatim(body: str | bytes) -> None:
    row = raw_event_row(Envelope("bank", "csv", AT, body))[1]
    assert (row["body"], row["body_bytes"]) == ("a,b\n1,2\n", 8)


@given(st.text(max_size=50), st.integers(0, 10**6))
def test_raw_rows_are_deterministic(text: str, position: int) -> None:
    envelope = Envelope("bank", "mt940", AT, text, position)
    assert raw_event_row(envelope) == raw_event_row(envelope)


def _deduction(outcome_id: str, at: datetime, valid: bool, minor: int = 400) -> ShortPaid:
    return ShortPaid(outcome_id, at, "ch_1", "INV1", "C1", minor, "USD", "deduction:promo", valid)


def test_accepted_deduction_replaces_its_refusal_even_when_dated_earlier() -> None:
    [(_, refused)] = outcome_rows(_deduction("sp-refused", AT, valid=False), seq=7)
    [(_, accepted)] = outcome_rows(_deduction("sp-accepted", AT - timedelta(days=3), valid=True))
    assert refused["exception_id"] == accepted["exception_id"]
    assert (refused["kind"], accepted["kind"]) == ("invalid_deduction", "deduction")
    assert accepted["version"] > refused["version"]
    assigned = exception_update(refused, status="open", owner="ana", at=AT + timedelta(days=1))
    assert accepted["version"] > assigned["version"]


def test_ops_update_of_an_accepted_deduction_moves_forward() -> None:
    [(_, accepted)] = outcome_rows(_deduction("sp-accepted", AT, valid=True))
    resolved = exception_update(
        accepted, status="resolved", owner="ana", at=AT + timedelta(hours=1)
    )
    assert resolved["version"] > accepted["version"]
    with pytest.raises(ValueError, match="later"):
        exception_update(accepted, status="resolved", owner="ana", at=AT - timedelta(hours=1))


def test_distinct_deductions_and_other_short_pays_keep_their_own_rows() -> None:
    ids = {
        outcome_rows(outcome)[0][1]["exception_id"]
        for outcome in (
            _deduction("a", AT, valid=False, minor=400),
            _deduction("b", AT, valid=False, minor=500),
            ShortPaid("c", AT, "ch_1", "INV1", "C1", 400, "USD", "deduction:late", False),
            ShortPaid("d", AT, "ch_1", "INV2", "C1", 400, "USD", "deduction:promo", False),
        )
    }
    assert len(ids) == 4
    for code, valid in (("processor_fee", True), ("unexplained", False), ("unexplained", True)):
        outcome = ShortPaid("sp-9", AT, "ch_1", "INV1", "C1", 400, "USD", code, valid)
        [(_, row)] = outcome_rows(outcome)
        assert (row["exception_id"], row["version"]) == ("sp-9", version_of(AT))
