"""Shopify decoder against the shopify_python_api fixtures."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrecon.connectors.envelope import Decoded, RawEnvelope
from arrecon.connectors.shopify import decode
from arrecon.state.events import (
    AdjustmentKind,
    DisputePhase,
    InvoiceAdjusted,
    InvoiceIssued,
    PaymentReceived,
    PaymentReversed,
    PayoutSettled,
    Rail,
)
from arrecon.state.money import Money

SAMPLES = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "samples" / "shopify"
    / "Shopify-shopify_python_api"
)  # fmt: skip
RECEIVED = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@cache
def _load(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def load(name: str) -> Any:
    return copy.deepcopy(_load(name))


def run(kind: str, body: Any) -> Decoded:
    return decode(RawEnvelope("shopify", kind, RECEIVED, body))


def test_consumer_order_is_an_immediate_receivable() -> None:
    (issued,) = run("orders/create", load("order.json")).events
    assert isinstance(issued, InvoiceIssued)
    assert issued.invoice_number == "#1001"
    assert issued.amount == Money(40994, "USD")
    assert issued.external_ids == ("450789469", "#1001")
    assert issued.channel == "shopify"
    assert issued.issued_at == datetime(2008, 1, 10, 16, 0, tzinfo=UTC)
    assert issued.due_at == issued.issued_at
    assert issued.hints.email == "bob.norman@hostmail.com"
    assert issued.hints.external_ids == ("shopify_customer:207119551",)


def test_unwrapped_webhook_body_decodes_like_the_rest_answer() -> None:
    assert run("orders/create", load("order.json")["order"]) == run(
        "orders/create", load("order.json")
    )


def test_b2b_order_uses_payment_schedule_and_po() -> None:
    order = load("order.json")["order"]
    order["company"] = {"id": 98765, "name": "Acme Wholesale", "location_id": 1}
    order["po_number"] = "PO-2026-17"
    order["payment_terms"] = {
        "payment_terms_name": "Net 30", "payment_terms_type": "NET", "due_in_days": 30,
        "payment_schedules": [{"amount": "409.94", "currency": "USD",
                               "due_at": "2008-02-09T16:00:00Z"}],
    }  # fmt: skip
    (issued,) = run("orders/updated", order).events
    assert issued.channel == "shopify_b2b"
    assert issued.po_number == "PO-2026-17"
    assert issued.due_at == datetime(2008, 2, 9, 16, 0, tzinfo=UTC)
    assert issued.hints.payer_name == "Acme Wholesale"
    assert issued.hints.external_ids[0] == "shopify_company:98765"
    del order["payment_terms"]["payment_schedules"]
    (issued,) = run("orders/updated", order).events
    assert (issued.due_at - issued.issued_at).days == 30


def test_order_event_id_changes_only_with_the_total() -> None:
    order = load("order.json")["order"]
    first = run("orders/create", order).events[0]
    order["updated_at"] = "2008-01-11T11:00:00-05:00"
    assert run("orders/updated", order).events[0].event_id == first.event_id
    order["total_price"] = "400.00"
    assert run("orders/updated", order).events[0].event_id != first.event_id


def test_cancelled_and_voided_orders() -> None:
    order = load("order.json")["order"]
    order["cancelled_at"] = "2008-01-12T11:00:00-05:00"
    (void,) = run("orders/updated", order).events
    assert isinstance(void, InvoiceAdjusted)
    assert (void.kind, void.invoice_number, void.amount) == (AdjustmentKind.VOID, "#1001", None)
    order["financial_status"] = "voided"
    assert run("orders/updated", order).ignored == ("shopify:order.voided",)


def test_authorization_transaction_is_ignored_and_capture_is_cash() -> None:
    txn = load("transaction.json")
    assert run("order_transactions/create", txn).ignored == (
        "shopify:transaction.authorization.success",
    )
    txn["transaction"].update(kind="capture", currency="USD", gateway="shopify_payments")
    (payment,) = run("order_transactions/create", txn).events
    assert isinstance(payment, PaymentReceived)
    assert payment.payment_id == "389404469"
    assert payment.amount == Money(40994, "USD")
    assert payment.invoice_refs == ("450789469", "shopify_order:450789469")
    assert payment.rail is Rail.CARD


def test_refund_webhook_and_refund_transaction_share_event_ids() -> None:
    (reversal,) = run("refunds/create", load("refund.json")).events
    assert isinstance(reversal, PaymentReversed)
    assert reversal.amount == Money(20900, "USD")
    assert reversal.reversal_id == "179259969"
    assert reversal.reason == "it broke during shipping"
    txn = load("refund.json")["refund"]["transactions"][0]
    (same,) = run("order_transactions/create", txn).events
    assert same.event_id == reversal.event_id


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (0, "shopify.missing_field:order_id"),
        (1, DisputePhase.OPENED),
        (2, DisputePhase.WON),
        (3, "inquiry"),
    ],
)
def test_disputes(index: int, expected: object) -> None:
    dispute = load("disputes.json")["disputes"][index]
    decoded = run("disputes/update", dispute)
    if isinstance(expected, DisputePhase):
        (update,) = decoded.events
        assert update.phase is expected
        assert update.amount == Money(1150, "USD")
        assert update.payment_id == "shopify_order:625362839"
    elif expected == "inquiry":
        assert decoded.ignored == ("shopify:dispute.inquiry",)
    else:
        assert decoded.rejections[0].reason == expected


def test_payouts_by_status() -> None:
    decoded = run("payouts", load("payouts.json"))
    statuses = [(e.payout_id, e.status, e.currency, e.net_minor) for e in decoded.events]
    assert ("512467833", "failed", "USD", 4312) in statuses
    assert ("623721858", "paid", "USD", 4190) in statuses
    assert all(isinstance(e, PayoutSettled) and e.lines == () for e in decoded.events)
    assert "shopify:payout.scheduled" in decoded.ignored
    (single,) = run("payouts", load("payout.json")).events
    assert single.arrival_at == datetime(2019, 11, 12, tzinfo=UTC)


def cents(texts: Any) -> int:
    return int(sum(Decimal(text) for text in texts) * 100)


def test_payout_balance_transactions() -> None:
    (settled,) = run("balance_transactions", load("payouts_transactions.json")).events
    rows = load("payouts_transactions.json")["transactions"]
    assert settled.payout_id == "623721858"
    assert settled.net_minor == 4190  # the payout row -41.90 is Shopify's own figure
    assert len(settled.lines) == len(rows) - 1
    charges = [line for line in settled.lines if line.kind == "charge"]
    charge_rows = [row for row in rows if row["type"] == "charge"]
    assert sum(line.gross_minor for line in charges) == cents(row["amount"] for row in charge_rows)
    assert (
        sum(line.fee_minor for line in charges) == cents(row["fee"] for row in charge_rows) == 502
    )
    (dispute,) = [line for line in settled.lines if line.kind == "dispute"]
    assert (dispute.gross_minor, dispute.fee_minor) == (-1150, 1500)
    assert {line.kind for line in settled.lines} == {
        "adjustment",
        "refund",
        "charge",
        "dispute",
        "reserve",
    }


@pytest.mark.parametrize(
    ("kind", "mutation", "reason"),
    [
        ("orders/create", {"currency": "ZZZ"}, "unknown_currency:ZZZ"),
        ("orders/create", {"total_price": "409.945"}, "shopify.too_many_decimals:total_price"),
        ("orders/create", {"total_price": None}, "shopify.missing_field:total_price"),
        ("orders/create", {"total_price": "-1.00"}, "negative_amount"),
        ("orders/create", {"id": None}, "shopify.missing_field:id"),
        ("orders/create", {"created_at": "yesterday"}, "shopify.bad_timestamp:created_at"),
        ("unknown/topic", {}, "unknown_kind"),
    ],
)
def test_rejections(kind: str, mutation: dict[str, Any], reason: str) -> None:
    order = load("order.json")["order"]
    order.update(mutation)
    assert [r.reason for r in run(kind, order).rejections] == [reason]


@settings(max_examples=200, deadline=None)
@given(
    cents=st.integers(min_value=0, max_value=10**15),
    currency=st.sampled_from([("USD", 2), ("JPY", 0), ("KWD", 3)]),
)
def test_decimal_strings_become_exact_minor_units(cents: int, currency: tuple[str, int]) -> None:
    code, places = currency
    whole, frac = divmod(cents, 10**places)
    text = f"{whole}.{frac:0{places}d}" if places else str(whole)
    order = load("order.json")["order"]
    order.update(total_price=text, currency=code)
    assert run("orders/create", order).events[0].amount == Money(cents, code)
