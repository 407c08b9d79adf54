"""Registry: dispatch, lazy bank decoders, catch-all and counting."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from arrecon.connectors import registry
from arrecon.connectors.envelope import Decoded, RawEnvelope
from arrecon.connectors.registry import DecodeCounters, decode_envelope
from arrecon.state.events import InvoiceIssued, PaymentReceived, PayoutSettled

RECEIVED = datetime(2026, 3, 2, tzinfo=UTC)
AMAZON = Path(__file__).resolve().parent / "data" / "amazon" / "settlement_us.txt"
ERP_INVOICE = {
    "invoice_number": "INV-1", "customer_id": "C-1", "currency": "USD", "amount": "10.00",
    "issued_at": "2026-03-01T00:00:00Z", "due_at": "2026-03-31T00:00:00Z",
}  # fmt: skip
CHARGE = {
    "id": "evt_1", "type": "charge.succeeded", "created": 1767225600,
    "data": {"object": {"id": "ch_1", "amount": 500, "currency": "usd", "captured": True}},
}  # fmt: skip


def envelope(source: str, kind: str, body: Any) -> RawEnvelope:
    return RawEnvelope(source, kind, RECEIVED, body)


@pytest.mark.parametrize(
    ("source", "kind", "body", "event_type"),
    [
        ("stripe", "", CHARGE, PaymentReceived),
        ("stripe", "charge.succeeded", CHARGE, PaymentReceived),
        ("erp", "invoice", ERP_INVOICE, InvoiceIssued),
        ("amazon", "settlement_v2", AMAZON.read_text(), PayoutSettled),
        ("shopify", "orders/create", {"id": 1, "name": "#1", "currency": "USD",
                                      "total_price": "5.00"}, InvoiceIssued),
    ],
)  # fmt: skip
def test_dispatch(source: str, kind: str, body: Any, event_type: type) -> None:
    decoded = decode_envelope(envelope(source, kind, body), counters=None)
    assert decoded.rejections == ()
    assert type(decoded.events[-1]) is event_type


@pytest.mark.parametrize(
    ("source", "kind", "reason"),
    [
        ("paypal", "stl", "unknown_source"),
        ("erp", "payment", "unknown_kind"),
        ("shopify", "carts/create", "unknown_kind"),
        ("amazon", "settlement_v1", "unknown_kind"),
        ("bank", "swift_mt101", "unknown_kind"),
        ("stripe", "camt053", "unknown_kind"),
    ],
)
def test_unknown_routes(source: str, kind: str, reason: str) -> None:
    decoded = decode_envelope(envelope(source, kind, {}), counters=None)
    assert [r.reason for r in decoded.rejections] == [reason]


def test_missing_bank_module_is_a_rejection_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.BANK_KINDS, "qif", "qif_not_written_yet")
    decoded = decode_envelope(envelope("bank", "qif", "!Type:Bank"), counters=None)
    assert decoded.rejections[0].reason == "decoder_unavailable"
    assert decoded.rejections[0].detail == "arrecon.connectors.bank.qif_not_written_yet"


def test_bank_kinds_route_to_a_bank_decoder() -> None:
    decoded = decode_envelope(envelope("bank", "mt940", "garbage"), counters=None)
    assert decoded.events == ()
    assert decoded.rejections  # refused by the bank parser, or unavailable until it lands
    assert all(r.reason for r in decoded.rejections)


def test_unexpected_exception_becomes_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(_: RawEnvelope) -> Decoded:
        raise RuntimeError("boom")

    monkeypatch.setattr(registry, "decoder_for", lambda source, kind: explode)
    decoded = decode_envelope(envelope("stripe", "", CHARGE), counters=None)
    assert decoded.rejections[0].reason == "internal_error"
    assert "boom" in decoded.rejections[0].detail


def test_counters_count_events_rejections_and_ignored_with_bounded_labels() -> None:
    counters = DecodeCounters()
    ignored = {"id": "evt_2", "type": "customer.created", "data": {"object": {}}}
    bad = dict(CHARGE, data={"object": {"id": "ch_2", "amount": "5", "currency": "usd"}})
    for body in (CHARGE, CHARGE, ignored, bad):
        decode_envelope(envelope("stripe", "", body), counters=counters)
    decode_envelope(envelope("nonsense-source-123", "x", {}), counters=counters)
    snapshot = counters.snapshot()
    assert snapshot["events"] == {"stripe:PaymentReceived": 2}
    assert snapshot["ignored"] == {"stripe:customer.created": 1}
    assert snapshot["rejections"] == {
        "stripe:stripe.wrong_type": 1,
        "other:unknown_source": 1,
    }


def test_settlement_feed_routes_amazon_reports_and_stripe_list_answers() -> None:
    from arrecon.connectors.registry import decoder_for

    assert decoder_for("settlement", "settlement_v2") is decoder_for("amazon", "settlement_v2")
    assert decoder_for("settlement", "balance_transactions") is decoder_for(
        "stripe", "balance_transactions"
    )
    assert not callable(decoder_for("settlement", "nope"))
