"""Amazon settlement V2 decoder on flat files built from the documented layout."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrecon.connectors.amazon import COLUMNS, decode
from arrecon.connectors.envelope import Decoded, RawEnvelope
from arrecon.state.events import PaymentReceived, PaymentReversed, PayoutSettled, Rail
from arrecon.state.money import Money, format_minor

DATA = Path(__file__).resolve().parent / "data" / "amazon"
RECEIVED = datetime(2026, 3, 4, tzinfo=UTC)


def run(text: str | bytes, kind: str = "settlement_v2") -> Decoded:
    return decode(RawEnvelope("amazon", kind, RECEIVED, text))


def read(name: str) -> str:
    return (DATA / name).read_text()


def test_us_settlement() -> None:
    decoded = run(read("settlement_us.txt"))
    assert decoded.rejections == ()
    payments = [e for e in decoded.events if isinstance(e, PaymentReceived)]
    (refund,) = [e for e in decoded.events if isinstance(e, PaymentReversed)]
    (payout,) = [e for e in decoded.events if isinstance(e, PayoutSettled)]
    first = payments[0]
    assert first.payment_id == "amazon:11223344556:111-4827712-0198231"
    assert first.amount == Money(4999 + 599 + 412 - 599, "USD")  # principal+shipping+tax-promo
    assert first.fee_minor == 750 + 322 + 412  # commission, FBA fee, withheld tax
    assert first.invoice_refs == ("111-4827712-0198231", "SO-10021")
    assert (first.rail, first.processor) == (Rail.MARKETPLACE, "amazon")
    assert first.occurred_at == datetime(2026, 2, 18, 14, 22, 5, tzinfo=UTC)
    assert refund.amount == Money(2500 + 206, "USD")
    assert refund.hints.external_ids == ("111-0938810-3371205", "SO-09877")
    assert payout.payout_id == "11223344556"
    assert payout.net_minor == 5550
    assert payout.arrival_at == datetime(2026, 3, 3, 7, 0, tzinfo=UTC)
    assert sum(line.gross_minor - line.fee_minor for line in payout.lines) == payout.net_minor
    kinds = [line.kind for line in payout.lines]
    assert kinds == ["charge", "charge", "refund", "fee", "fee", "reserve", "reserve"]


def test_european_file_with_decimal_comma_and_day_first_dates() -> None:
    decoded = run(read("settlement_de.txt").encode())
    assert decoded.rejections == ()
    payout = decoded.events[-1]
    assert isinstance(payout, PayoutSettled)
    assert (payout.currency, payout.net_minor) == ("EUR", 6746)
    assert payout.occurred_at == datetime(2026, 3, 3, 7, 0, tzinfo=UTC)


def test_totals_that_do_not_balance_are_refused_whole() -> None:
    decoded = run(read("settlement_total_mismatch.txt"))
    assert decoded.events == ()
    assert [r.reason for r in decoded.rejections] == ["amazon.total_mismatch"]


def test_settlement_is_deterministic() -> None:
    assert run(read("settlement_us.txt")) == run(read("settlement_us.txt"))


def replace_cell(text: str, line: int, column: str, value: str) -> str:
    lines = text.split("\n")
    cells = lines[line].split("\t")
    cells[COLUMNS.index(column)] = value
    lines[line] = "\t".join(cells)
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("line", "column", "value", "reason"),
    [
        (1, "currency", "XYZ", "unknown_currency:XYZ"),
        (1, "total-amount", "", "amazon.missing_field:line2.total-amount"),
        (2, "amount", "49.999", "amazon.too_many_decimals:line3.amount"),
        (2, "amount", "abc", "amazon.bad_amount:line3.amount"),
        (
            2,
            "posted-date-time",
            "31.02.2026 10:00:00 UTC",
            "amazon.bad_timestamp:line3.posted-date",
        ),
        (2, "settlement-id", "999", "amazon.mixed_settlements"),
    ],
)
def test_rejections(line: int, column: str, value: str, reason: str) -> None:
    decoded = run(replace_cell(read("settlement_us.txt"), line, column, value))
    assert [r.reason for r in decoded.rejections] == [reason]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "amazon.empty_file"),
        ("settlement-id\tcurrency\n1\tUSD\n", "amazon.missing_column:total-amount"),
        ("\t".join(COLUMNS) + "\n", "amazon.no_rows"),
        (b"\xff\xfe", "bad_encoding"),
    ],
)
def test_bad_files(text: str | bytes, reason: str) -> None:
    assert [r.reason for r in run(text).rejections] == [reason]


def test_wrong_kind() -> None:
    assert (
        run(read("settlement_us.txt"), kind="settlement_v1").rejections[0].reason == "unknown_kind"
    )


@settings(max_examples=100, deadline=None)
@given(
    orders=st.lists(
        st.tuples(st.integers(1, 10**7), st.integers(0, 10**5), st.integers(0, 10**5)),
        min_size=1,
        max_size=8,
    )
)
def test_money_is_conserved(orders: list[tuple[int, int, int]]) -> None:
    """Generated settlements: payments minus fees equal the deposit, cent for cent."""
    rows = []
    for index, (price, commission, fba) in enumerate(orders):
        for amount_type, description, minor in (
            ("ItemPrice", "Principal", price),
            ("ItemFees", "Commission", -commission),
            ("ItemFees", "FBAPerUnitFulfillmentFee", -fba),
        ):
            cells = dict.fromkeys(COLUMNS, "")
            cells.update({
                "settlement-id": "777", "transaction-type": "Order",
                "order-id": f"111-{index:07d}-0000000", "amount-type": amount_type,
                "amount-description": description, "amount": format_minor(minor, "USD"),
                "posted-date": "2026-02-20",
            })  # fmt: skip
            rows.append("\t".join(cells[c] for c in COLUMNS))
    total = sum(p - c - f for p, c, f in orders)
    head = dict.fromkeys(COLUMNS, "") | {
        "settlement-id": "777", "total-amount": format_minor(total, "USD"), "currency": "USD"
    }  # fmt: skip
    text = "\n".join(["\t".join(COLUMNS), "\t".join(head[c] for c in COLUMNS), *rows])
    decoded = run(text)
    assert decoded.rejections == ()
    payments = [e for e in decoded.events if isinstance(e, PaymentReceived)]
    assert sum(p.amount.amount_minor - p.fee_minor for p in payments) == total
    assert decoded.events[-1].net_minor == total
