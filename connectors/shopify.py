"""Shopify webhook bodies (topic as `kind`) -> canonical events.

Bodies are the resource itself, as webhooks send them; the REST wrapper
(`{"order": {..}}`) is unwrapped too, so recorded API answers decode the same.

    orders/create, orders/updated   InvoiceIssued; orders/cancelled (or a cancelled
                                    update) InvoiceAdjusted(VOID); voided orders ignored
    order_transactions/create       sale/capture success -> PaymentReceived,
                                    refund success -> PaymentReversed, others ignored
    refunds/create                  PaymentReversed per successful refund transaction
    disputes/create, disputes/update DisputeUpdated (chargebacks; inquiries are ignored)
    payouts                         PayoutSettled without lines (paid, in_transit, failed)
    balance_transactions            PayoutSettled per payout with one line per transaction

Orders as receivables, a decision: a B2B order (it has `payment_terms` or a
`company`) is an invoice due per its payment schedule (channel "shopify_b2b").
Every other non-voided order is a marketplace-style receivable due at once
(channel "shopify"), so that its transactions have something to apply to.
The invoice number is the order name ("#1001"); the order id and name are
external ids. Event ids carry the order's total, so a re-delivered update is a
duplicate while a changed total is a new, upserting issue.

Shopify sends decimal strings in major units; they become minor units exactly
for the currency. Disputes name only the order, so their payment id is
`shopify_order:<order id>`, the same handle the order's payments list in
`invoice_refs`. A payout's net is the payout row of its balance transactions
when present (Shopify's own figure), else the lines' net sum.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from arrecon.connectors._util import Fields, add_days, dedupe, reject_on_error
from arrecon.connectors.envelope import Decoded, DecodeError, RawEnvelope, json_body
from arrecon.state.events import (
    AdjustmentKind,
    CustomerHints,
    DisputePhase,
    DisputeUpdated,
    Event,
    InvoiceAdjusted,
    InvoiceIssued,
    PaymentReceived,
    PaymentReversed,
    PayoutLine,
    PayoutSettled,
    Rail,
    ReversalKind,
)
from arrecon.state.money import Money

__all__ = ["KINDS", "decode"]

F = Fields("shopify")

_WALLETS = frozenset({"paypal", "shop_pay", "apple_pay", "google_pay", "amazon_payments"})
_WIRE_GATEWAYS = frozenset({"bank_deposit", "bank deposit", "wire_transfer", "bank_transfer"})
_PAYMENT_KINDS = frozenset({"sale", "capture"})
_DISPUTE_OPEN = frozenset({"needs_response", "under_review"})
_DISPUTE_LOST = frozenset({"lost", "accepted", "charge_refunded"})
_PAYOUT_STATUSES = frozenset({"paid", "in_transit", "failed"})
_LINE_KINDS = {
    "charge": "charge",
    "refund": "refund",
    "dispute": "dispute",
    "reserve": "reserve",
    "adjustment": "adjustment",
    "credit": "adjustment",
    "debit": "adjustment",
    "payout": "payout",
    "payout_failure": "payout",
    "payout_cancellation": "payout",
    "application_fee": "fee",
    "shop_cash_credit": "adjustment",
}


def _unwrap(body: object, name: str) -> dict[str, Any]:
    """The resource itself, also when wrapped as `{"<name>": {...}}` (REST answers)."""
    obj = F.mapping(body, "")
    inner = obj.get(name)
    if isinstance(inner, dict) and len(obj) == 1:
        return inner
    return obj


def _money(obj: dict[str, Any], key: str, currency: str, path: str) -> Money:
    return Money(F.major(obj, key, currency, path), currency)


def _payment_handle(order_id: str) -> str:
    return f"shopify_order:{order_id}"


# --- orders -------------------------------------------------------------------------


def _hints(order: dict[str, Any]) -> CustomerHints:
    customer = F.opt_obj(order, "customer") or {}
    company = F.opt_obj(order, "company") or {}
    billing = F.opt_obj(order, "billing_address") or {}
    customer_id = F.opt_ident(customer, "id")
    company_id = F.opt_ident(company, "id")
    return CustomerHints(
        external_ids=dedupe(
            [
                f"shopify_company:{company_id}" if company_id else None,
                f"shopify_customer:{customer_id}" if customer_id else None,
            ]
        ),
        payer_name=(
            F.opt_text(company, "name")
            or F.opt_text(billing, "company")
            or F.opt_text(billing, "name")
        ),
        email=F.opt_text(order, "email") or F.opt_text(customer, "email"),
    )


def _is_b2b(order: dict[str, Any]) -> bool:
    return bool(F.opt_obj(order, "payment_terms")) or bool(order.get("company"))


def _due_at(order: dict[str, Any], issued_at: datetime) -> datetime:
    """First scheduled due date, else issue date + due_in_days, else at once."""
    terms = F.opt_obj(order, "payment_terms")
    if not terms:
        return issued_at
    for index, item in enumerate(F.opt_array(terms, "payment_schedules")):
        path = f"payment_terms.payment_schedules[{index}]"
        schedule = F.mapping(item, path)
        due = F.opt_iso_time(schedule, "due_at", path)
        if due is not None:
            return due
    days = F.opt_integer(terms, "due_in_days", "payment_terms")
    if days is not None and 0 <= days <= 3650:
        return add_days(issued_at, days)
    return issued_at


def _order(envelope: RawEnvelope) -> Decoded:
    order = _unwrap(json_body(envelope), "order")
    order_id = F.ident(order, "id", "")
    name = F.opt_text(order, "name") or f"#{F.opt_ident(order, 'order_number') or order_id}"
    if F.opt_text(order, "financial_status") == "voided":
        return Decoded(ignored=("shopify:order.voided",))
    if order.get("cancelled_at") or envelope.kind == "orders/cancelled":
        return _order_cancelled(order, order_id, name, envelope.received_at)
    currency = F.currency(order, "currency", "")
    amount = _money(order, "total_price", currency, "")
    issued_at = (
        F.opt_iso_time(order, "created_at", "")
        or F.opt_iso_time(order, "processed_at", "")
        or envelope.received_at
    )
    b2b = _is_b2b(order)
    return Decoded(
        events=(
            InvoiceIssued(
                event_id=f"shopify:order:{order_id}:{amount.amount_minor}",
                occurred_at=F.opt_iso_time(order, "updated_at", "") or issued_at,
                invoice_number=name,
                amount=amount,
                issued_at=issued_at,
                due_at=_due_at(order, issued_at) if b2b else issued_at,
                hints=_hints(order),
                po_number=F.opt_text(order, "po_number"),
                channel="shopify_b2b" if b2b else "shopify",
                external_ids=dedupe([order_id, name]),
                source="shopify",
            ),
        )
    )


def _order_cancelled(
    order: dict[str, Any], order_id: str, name: str, received_at: datetime
) -> Decoded:
    return Decoded(
        events=(
            InvoiceAdjusted(
                event_id=f"shopify:order:{order_id}:cancelled",
                occurred_at=F.opt_iso_time(order, "cancelled_at", "") or received_at,
                invoice_number=name,
                kind=AdjustmentKind.VOID,
                amount=None,
                hints=_hints(order),
                reason=F.opt_text(order, "cancel_reason") or "cancelled",
                source="shopify",
            ),
        )
    )


# --- transactions -------------------------------------------------------------------


def _rail(txn: dict[str, Any]) -> Rail:
    gateway = (F.opt_text(txn, "gateway") or "").lower()
    if gateway in _WALLETS:
        return Rail.WALLET
    if gateway in _WIRE_GATEWAYS:
        return Rail.WIRE
    details = F.opt_obj(txn, "payment_details") or {}
    if gateway == "shopify_payments" or F.opt_text(details, "credit_card_number"):
        return Rail.CARD
    return Rail.OTHER


def _transaction(envelope: RawEnvelope) -> Decoded:
    txn = _unwrap(json_body(envelope), "transaction")
    kind = F.opt_text(txn, "kind") or ""
    status = F.opt_text(txn, "status") or ""
    if status != "success" or (kind not in _PAYMENT_KINDS and kind != "refund"):
        return Decoded(ignored=(f"shopify:transaction.{kind[:20]}.{status[:20]}",))
    if kind == "refund":
        return Decoded(events=(_reversal(txn, "", None, envelope.received_at),))
    txn_id = F.ident(txn, "id", "")
    order_id = F.ident(txn, "order_id", "")
    currency = F.currency(txn, "currency", "")
    gateway = F.opt_text(txn, "gateway")
    return Decoded(
        events=(
            PaymentReceived(
                event_id=f"shopify:txn:{txn_id}",
                occurred_at=_txn_time(txn, "", envelope.received_at),
                payment_id=txn_id,
                amount=_money(txn, "amount", currency, ""),
                source="shopify",
                rail=_rail(txn),
                invoice_refs=(order_id, _payment_handle(order_id)),
                references=dedupe([F.opt_text(txn, "authorization")]),
                processor=gateway or "shopify",
            ),
        )
    )


def _txn_time(txn: dict[str, Any], path: str, fallback: datetime) -> datetime:
    return (
        F.opt_iso_time(txn, "processed_at", path)
        or F.opt_iso_time(txn, "created_at", path)
        or fallback
    )


def _reversal(
    txn: dict[str, Any], path: str, refund: dict[str, Any] | None, received_at: datetime
) -> PaymentReversed:
    """A refund transaction; its parent is the payment, else the order's handle."""
    txn_id = F.ident(txn, "id", path)
    order_id = F.opt_ident(txn, "order_id") or (F.opt_ident(refund, "order_id") if refund else None)
    parent = F.opt_ident(txn, "parent_id")
    if parent is None and order_id is None:
        raise F.error("missing_field", f"{path}.parent_id" if path else "parent_id")
    currency = F.currency(txn, "currency", path)
    reason = (F.opt_text(refund, "note") if refund else None) or F.opt_text(txn, "message")
    return PaymentReversed(
        event_id=f"shopify:txn:{txn_id}",
        occurred_at=_txn_time(txn, path, received_at),
        payment_id=parent or _payment_handle(order_id or ""),
        reversal_id=txn_id,
        kind=ReversalKind.REFUND,
        amount=_money(txn, "amount", currency, path),
        reason=reason or "",
        source="shopify",
    )


def _refund(envelope: RawEnvelope) -> Decoded:
    refund = _unwrap(json_body(envelope), "refund")
    F.ident(refund, "id", "")
    events: list[Event] = []
    ignored: list[str] = []
    for index, item in enumerate(F.opt_array(refund, "transactions")):
        path = f"transactions[{index}]"
        txn = F.mapping(item, path)
        if F.opt_text(txn, "kind") != "refund" or F.opt_text(txn, "status") != "success":
            ignored.append("shopify:refund.transaction_not_success")
            continue
        events.append(_reversal(txn, path, refund, envelope.received_at))
    if not events and not ignored:
        ignored.append("shopify:refund.no_transactions")
    return Decoded(events=tuple(events), ignored=tuple(ignored))


# --- disputes -----------------------------------------------------------------------


def _dispute_phase(status: str) -> DisputePhase | None:
    if status in _DISPUTE_OPEN:
        return DisputePhase.OPENED
    if status == "won":
        return DisputePhase.WON
    if status in _DISPUTE_LOST:
        return DisputePhase.LOST
    return None


def _dispute(envelope: RawEnvelope) -> Decoded:
    dispute = _unwrap(json_body(envelope), "dispute")
    dispute_id = F.ident(dispute, "id", "")
    if F.opt_text(dispute, "type") == "inquiry":
        return Decoded(ignored=("shopify:dispute.inquiry",))
    status = F.text(dispute, "status", "")
    phase = _dispute_phase(status)
    if phase is None:
        return Decoded(ignored=(f"shopify:dispute.{status[:20]}",))
    order_id = F.ident(dispute, "order_id", "")
    currency = F.currency(dispute, "currency", "")
    when = F.opt_iso_time(dispute, "finalized_on", "") if phase != DisputePhase.OPENED else None
    return Decoded(
        events=(
            DisputeUpdated(
                event_id=f"shopify:dispute:{dispute_id}:{phase.value}",
                occurred_at=when
                or F.opt_iso_time(dispute, "initiated_at", "")
                or envelope.received_at,
                dispute_id=dispute_id,
                payment_id=_payment_handle(order_id),
                phase=phase,
                amount=_money(dispute, "amount", currency, ""),
                reason=F.opt_text(dispute, "reason") or "",
                source="shopify",
            ),
        )
    )


# --- payouts ------------------------------------------------------------------------


def _payout_items(body: object) -> list[tuple[str, Any]]:
    obj = F.mapping(body, "")
    if isinstance(obj.get("payouts"), list):
        return [(f"payouts[{i}]", item) for i, item in enumerate(obj["payouts"])]
    if isinstance(obj.get("payout"), dict) and len(obj) == 1:
        return [("payout", obj["payout"])]
    return [("", obj)]


def _payouts(envelope: RawEnvelope) -> Decoded:
    events: list[Event] = []
    ignored: list[str] = []
    for path, item in _payout_items(json_body(envelope)):
        payout = F.mapping(item, path)
        status = F.text(payout, "status", path)
        if status not in _PAYOUT_STATUSES:
            ignored.append(f"shopify:payout.{status[:20]}")
            continue
        payout_id = F.ident(payout, "id", path)
        currency = F.currency(payout, "currency", path)
        day = F.opt_iso_time(payout, "date", path)
        events.append(
            PayoutSettled(
                event_id=f"shopify:payout:{payout_id}:{status}",
                occurred_at=day or envelope.received_at,
                processor="shopify_payments",
                payout_id=payout_id,
                currency=currency,
                net_minor=F.major(payout, "amount", currency, path, allow_negative=True),
                status=status,
                arrival_at=day,
            )
        )
    if not events and not ignored:
        ignored.append("shopify:payouts.empty")
    return Decoded(events=tuple(events), ignored=tuple(ignored))


class _Payout:
    __slots__ = ("currency", "lines", "net_minor", "payout_minor", "when")

    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.lines: list[PayoutLine] = []
        self.net_minor = 0
        self.payout_minor: int | None = None
        self.when: datetime | None = None


def _balance_items(body: object) -> list[Any]:
    if isinstance(body, list):
        return body
    return F.array(F.mapping(body, ""), "transactions", "")


def _balance_transactions(envelope: RawEnvelope) -> Decoded:
    payouts: dict[str, _Payout] = {}
    for index, item in enumerate(_balance_items(json_body(envelope))):
        path = f"transactions[{index}]"
        _add_balance_line(payouts, F.mapping(item, path), path)
    if not payouts:
        raise F.error("missing_field", "transactions", "no balance transactions")
    events = tuple(
        PayoutSettled(
            event_id=f"shopify:payout:{payout_id}:balance_transactions",
            occurred_at=acc.when or envelope.received_at,
            processor="shopify_payments",
            payout_id=payout_id,
            currency=acc.currency,
            net_minor=-acc.payout_minor if acc.payout_minor is not None else acc.net_minor,
            lines=tuple(acc.lines),
        )
        for payout_id, acc in payouts.items()
    )
    return Decoded(events=events)


def _add_balance_line(payouts: dict[str, _Payout], txn: dict[str, Any], path: str) -> None:
    payout_id = F.ident(txn, "payout_id", path)
    currency = F.currency(txn, "currency", path)
    acc = payouts.setdefault(payout_id, _Payout(currency))
    if acc.currency != currency:
        raise DecodeError("shopify.mixed_currency", f"{currency} at {path}")
    kind = _LINE_KINDS.get(F.text(txn, "type", path), "other")
    amount_minor = F.major(txn, "amount", currency, path, allow_negative=True)
    processed = F.opt_iso_time(txn, "processed_at", path)
    if kind == "payout":
        acc.payout_minor = (acc.payout_minor or 0) + amount_minor
        acc.when = processed or acc.when
        return
    fee_minor = (
        F.major(txn, "fee", currency, path, allow_negative=True)
        if txn.get("fee") is not None
        else 0
    )
    acc.net_minor += amount_minor - fee_minor
    source = (
        F.opt_ident(txn, "source_order_transaction_id")
        or F.opt_ident(txn, "source_id")
        or F.ident(txn, "id", path)
    )
    acc.lines.append(
        PayoutLine(
            kind=kind,
            source_id=source,
            gross_minor=amount_minor,
            fee_minor=fee_minor,
            fee_types=("shopify_payments_fee",) if fee_minor else (),
        )
    )
    if acc.when is None and processed is not None:
        acc.when = processed


_TOPICS: dict[str, Callable[[RawEnvelope], Decoded]] = {
    "orders/create": _order,
    "orders/updated": _order,
    "orders/paid": _order,
    "orders/cancelled": _order,
    "order_transactions/create": _transaction,
    "refunds/create": _refund,
    "disputes/create": _dispute,
    "disputes/update": _dispute,
    "payouts": _payouts,
    "balance_transactions": _balance_transactions,
}
KINDS = frozenset(_TOPICS)


@reject_on_error
def decode(envelope: RawEnvelope) -> Decoded:
    """Decode one Shopify delivery; never raises (see module docstring)."""
    handler = _TOPICS.get(envelope.kind)
    if handler is None:
        raise DecodeError("unknown_kind", f"shopify kind {str(envelope.kind)[:40]!r}")
    return handler(envelope)
