"""Stripe decoder against real fixture payloads (dj-stripe, pay-rails, stripe-openapi)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrecon.connectors.envelope import Decoded, RawEnvelope
from arrecon.connectors.stripe import decode
from arrecon.state.events import (
    AdjustmentKind,
    DisputePhase,
    DisputeUpdated,
    InvoiceAdjusted,
    InvoiceIssued,
    PaymentReceived,
    PaymentReversed,
    PayoutSettled,
    Rail,
    ReversalKind,
)
from arrecon.state.money import Money

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "samples" / "stripe"
RECEIVED = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def load(name: str) -> dict[str, Any]:
    return copy.deepcopy(_load(name))


@cache
def _load(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / name).read_text())


def resource(name: str) -> dict[str, Any]:
    return copy.deepcopy(_load("stripe-openapi/fixtures3.json")["resources"][name])


def event(event_type: str, obj: dict[str, Any], previous: dict[str, Any] | None = None) -> dict:
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "id": "evt_1TEST",
        "object": "event",
        "type": event_type,
        "created": 1767225600,
        "data": data,
    }


def run(body: Any, kind: str = "") -> Decoded:
    return decode(RawEnvelope("stripe", kind, RECEIVED, body))


def only(decoded: Decoded) -> Any:
    assert decoded.rejections == ()
    assert len(decoded.events) == 1, decoded
    return decoded.events[0]


def test_charge_succeeded_dj_stripe() -> None:
    charge = load("dj-stripe/charge_ch_fakefakefakefakefake0001.json")
    payment = only(run(event("charge.succeeded", charge)))
    assert isinstance(payment, PaymentReceived)
    assert payment.payment_id == "ch_fakefakefakefakefake0001"
    assert payment.amount == Money(2000, "USD")
    assert payment.rail is Rail.CARD
    assert payment.invoice_refs == ("in_fakefakefakefakefake0001",)
    assert payment.hints.external_ids == ("cus_6lsBvm5rJ0zyHc",)
    assert payment.processor == "stripe"
    assert payment.event_id == "stripe:evt_1TEST:0"
    assert payment.occurred_at == datetime.fromtimestamp(1557995177, UTC)
    assert "Subscription creation" in payment.references


def test_charge_bytes_body_equals_parsed_body() -> None:
    body = event("charge.succeeded", load("pay-rails-pay/charge.succeeded.json")["object"])
    assert run(orjson.dumps(body)) == run(body)


def test_charge_metadata_refs_and_expanded_fee() -> None:
    charge = load("pay-rails-pay/charge.succeeded.json")["object"]
    charge["metadata"] = {"invoice_number": "INV-7, INV-8", "po_number": "PO-55"}
    charge["balance_transaction"] = load(
        "dj-stripe/balance_transaction_txn_fake_ch_fakefakefakefakefake0001.json"
    )
    charge["payment_method_details"] = {"type": "us_bank_account"}
    payment = only(run(event("charge.succeeded", charge)))
    assert payment.invoice_refs == ("INV-7", "INV-8")
    assert "PO-55" in payment.references
    assert payment.fee_minor == 88
    assert payment.rail is Rail.ACH


def test_uncaptured_charge_is_not_cash_until_captured() -> None:
    charge = resource("charge")  # captured: false, amount 100
    decoded = run(event("charge.succeeded", charge))
    assert decoded.events == ()
    assert decoded.rejections == ()
    assert decoded.ignored == ("stripe:charge.succeeded.uncaptured",)
    charge.update(captured=True, amount_captured=80)
    payment = only(run(event("charge.captured", charge)))
    assert payment.amount == Money(80, "USD")
    assert payment.payment_id == "ch_1PgafuB7WZ01zgkWXYmPNZs8"


def test_charge_refunded_emits_each_new_refund() -> None:
    charge = load("pay-rails-pay/charge.refunded.json")["object"]
    reversal = only(run(event("charge.refunded", charge)))
    assert isinstance(reversal, PaymentReversed)
    assert reversal.kind is ReversalKind.REFUND
    assert reversal.payment_id == "ch_chargeid"
    assert reversal.reversal_id == "re_3LQOJoKXBGcbgpbZ10i9Mg75"
    assert reversal.amount == Money(500, "USD")
    assert reversal.event_id == "stripe:re_3LQOJoKXBGcbgpbZ10i9Mg75"
    # A second refund: the first is in previous_attributes, only the new one is emitted.
    first = copy.deepcopy(charge["refunds"]["data"][0])
    second = dict(first, id="re_SECOND", amount=300)
    charge["refunds"]["data"] = [second, first]
    previous = {"refunds": {"data": [first]}, "amount_refunded": 500}
    decoded = run(event("charge.refunded", charge, previous))
    assert [e.reversal_id for e in decoded.events] == ["re_SECOND"]
    assert decoded.events[0].amount == Money(300, "USD")


def test_refund_without_list_uses_amount_refunded_delta() -> None:
    charge = load("pay-rails-pay/charge.refunded.json")["object"]
    del charge["refunds"]
    charge["amount_refunded"] = 1200
    reversal = only(run(event("charge.refunded", charge, {"amount_refunded": 500})))
    assert reversal.amount == Money(700, "USD")


def test_refund_object_event_shares_the_refund_event_id() -> None:
    refund = resource("refund")
    refund["status"] = "succeeded"
    reversal = only(run(event("refund.created", refund)))
    assert reversal.event_id == f"stripe:{refund['id']}"
    assert reversal.payment_id == refund["charge"]


def test_invoice_finalized_openapi_fixture() -> None:
    inv = resource("invoice")
    inv["metadata"] = {"po_number": "PO-4411"}
    issued = only(run(event("invoice.finalized", inv)))
    assert isinstance(issued, InvoiceIssued)
    assert issued.invoice_number == inv["id"]  # number is null before finalization
    assert issued.external_ids == (inv["id"],)
    assert issued.amount == Money(inv["amount_due"], "USD")
    assert issued.due_at == datetime.fromtimestamp(inv["due_date"], UTC)
    assert issued.po_number == "PO-4411"
    assert issued.hints.external_ids == ("cus_QXg1o8vcGmoR32",)


def test_invoice_due_defaults_to_created_plus_30_days_and_custom_field_po() -> None:
    inv = load("dj-stripe/invoice_in_fakefakefakefakefake0001.json")
    inv["custom_fields"] = [{"name": "P.O. Number", "value": "PO-9"}]
    issued = only(run(event("invoice.finalized", inv)))
    assert issued.invoice_number == "E5B23224-0001"
    assert (issued.due_at - datetime.fromtimestamp(inv["created"], UTC)).days == 30
    assert issued.po_number == "PO-9"
    assert issued.hints.email == "michael.smith@example.com"


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [
        ("invoice.voided", AdjustmentKind.VOID),
        ("invoice.marked_uncollectible", AdjustmentKind.WRITE_OFF),
    ],
)
def test_invoice_adjustments(event_type: str, kind: AdjustmentKind) -> None:
    inv = load("dj-stripe/invoice_in_fakefakefakefakefake0001.json")
    adjusted = only(run(event(event_type, inv)))
    assert isinstance(adjusted, InvoiceAdjusted)
    assert (adjusted.kind, adjusted.amount, adjusted.invoice_number) == (
        kind,
        None,
        "E5B23224-0001",
    )


OPENED = "dispute_dp_fakefakefakefake01.json"  # withdrawal -1000 with a 1500 fee
REINSTATED = "dispute_dp_funds_reinstated_full.json"  # withdrawal, then reversal and fee refund
Phase = DisputePhase


@pytest.mark.parametrize(
    ("event_type", "status", "file", "phase", "fee"),
    [
        ("charge.dispute.created", "needs_response", OPENED, Phase.OPENED, 1500),
        ("charge.dispute.funds_withdrawn", "needs_response", OPENED, Phase.FUNDS_WITHDRAWN, 1500),
        ("charge.dispute.funds_reinstated", "under_review", REINSTATED, Phase.FUNDS_REINSTATED, 0),
        ("charge.dispute.closed", "won", REINSTATED, Phase.WON, 0),
        ("charge.dispute.closed", "lost", OPENED, Phase.LOST, 1500),
    ],
)  # fmt: skip
def test_dispute_phases_and_fees(
    event_type: str, status: str, file: str, phase: DisputePhase, fee: int
) -> None:
    dispute = load(f"dj-stripe/{file}")
    dispute["status"] = status
    update = only(run(event(event_type, dispute)))
    assert isinstance(update, DisputeUpdated)
    assert update.phase is phase
    assert update.fee_minor == fee
    assert update.payment_id == "ch_fakefakefakefakefake0001"
    assert update.amount == Money(1000, "USD")
    assert update.reason == "fraudulent"


def test_dispute_closed_without_chargeback_is_ignored() -> None:
    dispute = resource("dispute")
    dispute["status"] = "warning_closed"
    decoded = run(event("charge.dispute.closed", dispute))
    assert decoded.events == ()
    assert decoded.rejections == ()
    assert decoded.ignored == ("stripe:charge.dispute.closed.other",)


@pytest.mark.parametrize(
    ("event_type", "status"), [("payout.paid", "paid"), ("payout.failed", "failed")]
)
def test_payout_events(event_type: str, status: str) -> None:
    payout = resource("payout")
    settled = only(run(event(event_type, payout)))
    assert isinstance(settled, PayoutSettled)
    assert (settled.payout_id, settled.net_minor, settled.status) == (payout["id"], 1100, status)
    assert settled.lines == ()
    assert settled.arrival_at == datetime.fromtimestamp(payout["arrival_date"], UTC)


def test_dj_stripe_decimal_string_payout_is_rejected_precisely() -> None:
    decoded = run(event("payout.paid", load("dj-stripe/payout_custom_bank_account.json")))
    assert decoded.events == ()
    assert decoded.rejections[0].reason == "stripe.wrong_type:data.object.amount"


def balance_list(*rows: dict[str, Any], payout: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"object": "list", "data": list(rows), "has_more": False}
    if payout:
        body["payout"] = payout
    return body


def test_balance_transactions_dj_stripe_totals() -> None:
    txn = load("dj-stripe/balance_transaction_txn_fake_ch_fakefakefakefakefake0001.json")
    settled = only(run(balance_list(txn, payout="po_123"), kind="balance_transactions"))
    assert settled.payout_id == "po_123"
    assert settled.net_minor == 1912
    (line,) = settled.lines
    assert (line.kind, line.source_id, line.gross_minor, line.fee_minor) == (
        "charge",
        "ch_fakefakefakefakefake0001",
        2000,
        88,
    )
    assert line.fee_types == ("stripe_fee",)


def test_balance_transactions_with_payout_row_and_dispute() -> None:
    charge = load("dj-stripe/balance_transaction_txn_fake_ch_fakefakefakefakefake0001.json")
    dispute = load("dj-stripe/dispute_txn_fakefakefakefake01.json")
    dispute["metadata"] = {}
    # The payout row moves the lines' net (1912 - 2500) out of the balance.
    payout = {"id": "txn_po", "object": "balance_transaction", "amount": 2500 - 1912, "fee": 0,
              "net": 2500 - 1912, "currency": "usd", "type": "payout", "source": "po_777",
              "created": 1558000000, "reporting_category": "payout"}  # fmt: skip
    settled = only(run(balance_list(charge, dispute, payout), kind="balance_transactions"))
    assert settled.payout_id == "po_777"
    assert settled.net_minor == 1912 - 2500
    assert settled.occurred_at == datetime.fromtimestamp(1558000000, UTC)
    assert [line.kind for line in settled.lines] == ["charge", "dispute"]
    assert sum(line.gross_minor - line.fee_minor for line in settled.lines) == settled.net_minor
    payout["amount"] = payout["net"] = 1
    decoded = run(balance_list(charge, dispute, payout), kind="balance_transactions")
    assert decoded.rejections[0].reason == "stripe.total_mismatch"


def test_balance_transactions_need_a_payout_id() -> None:
    txn = load("dj-stripe/balance_transaction_txn_fake_ch_fakefakefakefakefake0001.json")
    decoded = run(balance_list(txn), kind="balance_transactions")
    assert decoded.rejections[0].reason == "stripe.missing_field:payout"


@pytest.mark.parametrize(
    "event_type", ["payment_intent.succeeded", "invoice.paid", "charge.updated", "customer.created"]
)
def test_acknowledged_types_are_ignored_not_rejected(event_type: str) -> None:
    decoded = run(event(event_type, load("pay-rails-pay/charge.updated.json")["object"]))
    assert decoded.events == ()
    assert decoded.rejections == ()
    assert decoded.ignored == (f"stripe:{event_type}",)


def test_openapi_event_fixture_is_acknowledged() -> None:
    decoded = run(resource("event"))
    assert decoded.ignored == ("stripe:plan.created",)


def mutate(body: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    node = body
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return body


CHARGE_EVENT = event("charge.succeeded", _load("pay-rails-pay/charge.succeeded.json")["object"])


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        (("data", "object", "amount"), KeyError, "stripe.missing_field:data.object.amount"),
        (("data", "object", "amount"), "5.00", "stripe.wrong_type:data.object.amount"),
        (("data", "object", "amount"), True, "stripe.wrong_type:data.object.amount"),
        (("data", "object", "amount"), -5, "negative_amount"),
        (("data", "object", "amount"), 10**19, "amount_out_of_range"),
        (("data", "object", "currency"), "xxx", "unknown_currency:XXX"),
        (("data", "object", "id"), KeyError, "stripe.missing_field:data.object.id"),
        (("data", "object"), [], "stripe.wrong_type:data.object"),
        (("data",), KeyError, "stripe.missing_field:data"),
        (("type",), 7, "stripe.wrong_type:type"),
        (("created",), -1, "stripe.bad_timestamp:created"),
    ],
)
def test_rejection_reasons_name_the_field(path: tuple[str, ...], value: Any, reason: str) -> None:
    decoded = run(mutate(CHARGE_EVENT, path, value))
    assert decoded.events == ()
    assert [r.reason for r in decoded.rejections] == [reason]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "malformed_json"),
        ([], "stripe.wrong_type:body"),
        ("null", "stripe.missing_field:body"),
    ],
)
def test_bad_bodies(body: Any, reason: str) -> None:
    assert run(body).rejections[0].reason == reason


def test_unknown_kind() -> None:
    assert run(CHARGE_EVENT, kind="camt053").rejections[0].reason == "unknown_kind"


@settings(max_examples=200, deadline=None)
@given(
    amount=st.integers(min_value=0, max_value=10**18),
    currency=st.sampled_from(["usd", "jpy", "kwd", "eur"]),
)
def test_amount_is_carried_exactly(amount: int, currency: str) -> None:
    body = mutate(CHARGE_EVENT, ("data", "object", "amount"), amount)
    body["data"]["object"]["currency"] = currency
    payment = only(run(body))
    assert payment.amount == Money(amount, currency.upper())
