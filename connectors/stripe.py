"""Stripe webhook events and recorded balance-transaction lists -> canonical events.

Two body shapes arrive with `source: stripe`:

* an Event `{"id": "evt_..", "type": .., "created": .., "data": {"object": {..}}}`
  (`kind` absent, "event", "webhook" or the event type itself), and
* `kind: balance_transactions`: a recorded list answer `{"object": "list",
  "data": [..]}` holding one payout's balance transactions, the way the live
  system enriches a `payout.paid` webhook.

What becomes what, and why:

    invoice.finalized             InvoiceIssued (number, else in_ id; due_date, else created + 30 d)
    invoice.voided                InvoiceAdjusted(VOID)
    invoice.marked_uncollectible  InvoiceAdjusted(WRITE_OFF)
    invoice.paid                  ignored: the cash is carried by its charge.succeeded
    charge.succeeded              PaymentReceived (ignored while uncaptured: an auth is not cash)
    charge.captured               PaymentReceived (same payment id, so a repeat is a duplicate)
    charge.refunded               PaymentReversed(REFUND) per refund not listed as already seen
    refund.created/updated        PaymentReversed(REFUND), same event id as via charge.refunded
    charge.dispute.*              DisputeUpdated (created, funds_withdrawn, funds_reinstated,
                                  closed won/lost); fee = dispute fees Stripe currently keeps
    payout.paid / payout.failed   PayoutSettled without lines (status only)
    payment_intent.succeeded      ignored: its charge.succeeded carries the payment
    charge.updated, other types   ignored (acknowledged and counted, never rejected)

Event ids are `stripe:<evt id>:<n>`, except refunds: `stripe:<re id>`, so the same
refund reported by several events (charge.refunded, refund.created) is one event.
Amounts are Stripe's integer minor units; the SDK object model is not used
because plain dict access is an order of magnitude faster on the hot path.
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

__all__ = ["BALANCE_TRANSACTIONS_KIND", "EVENT_KINDS", "decode"]

F = Fields("stripe")
OBJ = "data.object"
BALANCE_TRANSACTIONS_KIND = "balance_transactions"
# Envelope kinds that mean "the body is an Event" (types also pass: they contain a dot).
EVENT_KINDS = frozenset({"", "event", "events", "webhook"})
DEFAULT_TERMS_DAYS = 30

_RAILS = {
    "card": Rail.CARD,
    "card_present": Rail.CARD,
    "interac_present": Rail.CARD,
    "ach_debit": Rail.ACH,
    "ach_credit_transfer": Rail.ACH,
    "us_bank_account": Rail.ACH,
    "acss_debit": Rail.ACH,
    "sepa_debit": Rail.SEPA,
    "sepa_credit_transfer": Rail.SEPA,
    "bacs_debit": Rail.OTHER,
    "customer_balance": Rail.WIRE,
    "link": Rail.WALLET,
    "paypal": Rail.WALLET,
    "cashapp": Rail.WALLET,
    "amazon_pay": Rail.WALLET,
    "wechat_pay": Rail.WALLET,
    "alipay": Rail.WALLET,
}
_INVOICE_REF_KEYS = ("invoice", "invoice_number", "invoice_id", "invoice_numbers", "invoices")
_PO_KEYS = ("po_number", "po", "purchase_order")
_REFUND_LIVE_STATUSES = frozenset({"succeeded", "pending"})
_IGNORED_TYPES = frozenset({"invoice.paid", "payment_intent.succeeded", "charge.updated"})


@reject_on_error
def decode(envelope: RawEnvelope) -> Decoded:
    """Decode one Stripe delivery; never raises (see module docstring)."""
    kind = envelope.kind or ""
    body = json_body(envelope)
    if kind == BALANCE_TRANSACTIONS_KIND:
        return _decode_balance_transactions(F.mapping(body, ""), envelope.received_at)
    if kind in EVENT_KINDS or "." in kind:
        return _decode_event(F.mapping(body, ""), envelope.received_at)
    raise DecodeError("unknown_kind", f"stripe kind {kind[:40]!r}")


# --- events -----------------------------------------------------------------------


class _Ctx:
    """What every handler needs from the event envelope."""

    __slots__ = ("created", "event_id", "obj", "previous", "type")

    def __init__(self, body: dict[str, Any], received_at: datetime) -> None:
        self.event_id = F.text(body, "id", "")
        self.type = F.text(body, "type", "")
        data = F.obj(body, "data", "")
        self.obj = F.obj(data, "object", "data")
        previous = data.get("previous_attributes")
        self.previous: dict[str, Any] = previous if isinstance(previous, dict) else {}
        created = F.opt_unix(body, "created", "")
        self.created = created or received_at

    def eid(self, index: int = 0) -> str:
        return f"stripe:{self.event_id}:{index}"


Handler = Callable[[_Ctx], Decoded]


def _decode_event(body: dict[str, Any], received_at: datetime) -> Decoded:
    ctx = _Ctx(body, received_at)
    handler = _HANDLERS.get(ctx.type)
    if handler is None:
        return Decoded(ignored=(f"stripe:{ctx.type[:80]}",))
    return handler(ctx)


def _ignored(ctx: _Ctx) -> Decoded:
    return Decoded(ignored=(f"stripe:{ctx.type}",))


def _one(event: Event) -> Decoded:
    return Decoded(events=(event,))


def _customer_id(value: object) -> str | None:
    """`customer` is an id, or an expanded object with an id."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        inner = value.get("id")
        return inner if isinstance(inner, str) and inner else None
    return None


def _ref_id(value: object) -> str | None:
    """An id field that may also be expanded into its object (charge, invoice, source)."""
    return _customer_id(value)


# --- invoices -----------------------------------------------------------------------


def _invoice_number(inv: dict[str, Any]) -> tuple[str, str]:
    invoice_id = F.text(inv, "id", OBJ)
    return F.opt_text(inv, "number") or invoice_id, invoice_id


def _invoice_hints(inv: dict[str, Any]) -> CustomerHints:
    return CustomerHints(
        external_ids=dedupe([_customer_id(inv.get("customer"))]),
        payer_name=F.opt_text(inv, "customer_name"),
        email=F.opt_text(inv, "customer_email"),
    )


def _po_number(inv: dict[str, Any]) -> str | None:
    """PO from metadata (po_number, ...) or an invoice custom field named like "PO"."""
    metadata = F.opt_obj(inv, "metadata") or {}
    for key in _PO_KEYS:
        value = F.opt_text(metadata, key)
        if value:
            return value.strip()
    for field in F.opt_array(inv, "custom_fields"):
        if not isinstance(field, dict):
            continue
        name = (F.opt_text(field, "name") or "").lower().replace(".", "").strip()
        if name in {"po", "po number", "po #", "purchase order", "purchase order number"}:
            value = F.opt_text(field, "value")
            if value:
                return value.strip()
    return None


def _invoice_finalized(ctx: _Ctx) -> Decoded:
    inv = ctx.obj
    number, invoice_id = _invoice_number(inv)
    currency = F.currency(inv, "currency", OBJ)
    key = "amount_due" if inv.get("amount_due") is not None else "total"
    amount_minor = F.minor(inv, key, OBJ)
    created = F.unix(inv, "created", OBJ)
    transitions = F.opt_obj(inv, "status_transitions") or {}
    issued_at = F.opt_unix(transitions, "finalized_at", f"{OBJ}.status_transitions") or created
    due_at = F.opt_unix(inv, "due_date", OBJ) or add_days(created, DEFAULT_TERMS_DAYS)
    return _one(
        InvoiceIssued(
            event_id=ctx.eid(),
            occurred_at=ctx.created,
            invoice_number=number,
            amount=Money(amount_minor, currency),
            issued_at=issued_at,
            due_at=due_at,
            hints=_invoice_hints(inv),
            po_number=_po_number(inv),
            channel="stripe",
            external_ids=(invoice_id,),
            source="stripe",
        )
    )


def _invoice_adjusted(kind: AdjustmentKind, reason: str) -> Handler:
    def handle(ctx: _Ctx) -> Decoded:
        number, _ = _invoice_number(ctx.obj)
        return _one(
            InvoiceAdjusted(
                event_id=ctx.eid(),
                occurred_at=ctx.created,
                invoice_number=number,
                kind=kind,
                amount=None,
                hints=_invoice_hints(ctx.obj),
                reason=reason,
                source="stripe",
            )
        )

    return handle


# --- charges ------------------------------------------------------------------------


def _rail(charge: dict[str, Any]) -> Rail:
    details = charge.get("payment_method_details")
    if isinstance(details, dict):
        method = details.get("type")
        if isinstance(method, str):
            return _RAILS.get(method, Rail.OTHER)
    return Rail.OTHER


def _charge_fee(charge: dict[str, Any]) -> int:
    """The processor fee, known only when balance_transaction is expanded."""
    txn = charge.get("balance_transaction")
    if isinstance(txn, dict) and txn.get("fee") is not None:
        return F.minor(txn, "fee", f"{OBJ}.balance_transaction")
    return 0


def _metadata_refs(metadata: dict[str, Any], keys: tuple[str, ...]) -> list[str | None]:
    refs: list[str | None] = []
    if not metadata:
        return refs
    for key in keys:
        value = metadata.get(key)
        if type(value) is str and value:
            refs.extend(part.strip() for part in value.split(","))
    return refs


def _charge_hints(charge: dict[str, Any]) -> CustomerHints:
    billing = F.opt_obj(charge, "billing_details") or {}
    return CustomerHints(
        external_ids=dedupe([_customer_id(charge.get("customer"))]),
        payer_name=F.opt_text(billing, "name"),
        email=F.opt_text(billing, "email") or F.opt_text(charge, "receipt_email"),
    )


def _payment(ctx: _Ctx, amount_key: str) -> Decoded:
    charge = ctx.obj
    charge_id = F.text(charge, "id", OBJ)
    currency = F.currency(charge, "currency", OBJ)
    amount_minor = F.minor(charge, amount_key, OBJ)
    metadata = F.opt_obj(charge, "metadata") or {}
    invoice_refs = dedupe(
        [_ref_id(charge.get("invoice")), *_metadata_refs(metadata, _INVOICE_REF_KEYS)]
    )
    references = dedupe(
        [
            F.opt_text(charge, "description"),
            F.opt_text(charge, "statement_descriptor"),
            F.opt_text(charge, "statement_descriptor_suffix"),
            F.opt_text(charge, "calculated_statement_descriptor"),
            *_metadata_refs(metadata, _PO_KEYS),
        ]
    )
    return _one(
        PaymentReceived(
            event_id=ctx.eid(),
            occurred_at=F.opt_unix(charge, "created", OBJ) or ctx.created,
            payment_id=charge_id,
            amount=Money(amount_minor, currency),
            source="stripe",
            rail=_rail(charge),
            hints=_charge_hints(charge),
            fee_minor=_charge_fee(charge),
            invoice_refs=invoice_refs,
            references=references,
            processor="stripe",
        )
    )


def _charge_succeeded(ctx: _Ctx) -> Decoded:
    if ctx.obj.get("captured") is False:
        return Decoded(ignored=("stripe:charge.succeeded.uncaptured",))
    return _payment(ctx, "amount")


def _charge_captured(ctx: _Ctx) -> Decoded:
    captured = ctx.obj.get("amount_captured")
    return _payment(ctx, "amount_captured" if type(captured) is int and captured else "amount")


def _seen_refund_ids(previous: dict[str, Any]) -> set[str]:
    """Refund ids the charge already had before this event (previous_attributes)."""
    refunds = previous.get("refunds")
    data = refunds.get("data") if isinstance(refunds, dict) else None
    if not isinstance(data, list):
        return set()
    return {_ref_id(item) or "" for item in data} - {""}


def _reversal(
    refund: dict[str, Any], path: str, charge_id: str, currency: str, at: datetime
) -> PaymentReversed:
    refund_id = F.text(refund, "id", path)
    refund_currency = (
        F.currency(refund, "currency", path) if refund.get("currency") is not None else currency
    )
    return PaymentReversed(
        event_id=f"stripe:{refund_id}",
        occurred_at=F.opt_unix(refund, "created", path) or at,
        payment_id=charge_id,
        reversal_id=refund_id,
        kind=ReversalKind.REFUND,
        amount=Money(F.minor(refund, "amount", path), refund_currency),
        reason=F.opt_text(refund, "reason") or "",
        source="stripe",
    )


def _charge_refunded(ctx: _Ctx) -> Decoded:
    charge = ctx.obj
    charge_id = F.text(charge, "id", OBJ)
    currency = F.currency(charge, "currency", OBJ)
    seen = _seen_refund_ids(ctx.previous)
    refunds = F.opt_obj(charge, "refunds")
    items = F.opt_array(refunds, "data") if refunds else []
    events: list[Event] = []
    ignored: list[str] = []
    for index, item in enumerate(items):
        path = f"{OBJ}.refunds.data[{index}]"
        refund = F.mapping(item, path)
        if F.text(refund, "id", path) in seen:
            continue
        if (F.opt_text(refund, "status") or "succeeded") not in _REFUND_LIVE_STATUSES:
            ignored.append("stripe:refund.not_succeeded")
            continue
        events.append(_reversal(refund, path, charge_id, currency, ctx.created))
    if not items:
        events.extend(_refund_without_list(ctx, charge_id, currency))
    if not events and not ignored:
        ignored.append("stripe:charge.refunded.nothing_new")
    return Decoded(events=tuple(events), ignored=tuple(ignored))


def _refund_without_list(ctx: _Ctx, charge_id: str, currency: str) -> list[Event]:
    """Newer API versions omit `refunds`: the delta of amount_refunded is the refund."""
    total_minor = F.minor(ctx.obj, "amount_refunded", OBJ)
    before = ctx.previous.get("amount_refunded")
    before_minor = before if type(before) is int and 0 <= before <= total_minor else 0
    delta_minor = total_minor - before_minor
    if delta_minor <= 0:
        return []
    reversal_id = f"{charge_id}:refunded:{total_minor}"
    return [
        PaymentReversed(
            event_id=f"stripe:{reversal_id}",
            occurred_at=ctx.created,
            payment_id=charge_id,
            reversal_id=reversal_id,
            kind=ReversalKind.REFUND,
            amount=Money(delta_minor, currency),
            source="stripe",
        )
    ]


def _refund_object(ctx: _Ctx) -> Decoded:
    refund = ctx.obj
    if F.opt_text(refund, "status") not in _REFUND_LIVE_STATUSES:
        return Decoded(ignored=("stripe:refund.not_succeeded",))
    charge_id = _ref_id(refund.get("charge"))
    if charge_id is None:
        raise F.error("missing_field", f"{OBJ}.charge")
    currency = F.currency(refund, "currency", OBJ)
    return _one(_reversal(refund, OBJ, charge_id, currency, ctx.created))


# --- disputes -----------------------------------------------------------------------

_CLOSED_PHASES = {"won": DisputePhase.WON, "lost": DisputePhase.LOST}
_DISPUTE_PHASES = {
    "charge.dispute.created": DisputePhase.OPENED,
    "charge.dispute.funds_withdrawn": DisputePhase.FUNDS_WITHDRAWN,
    "charge.dispute.funds_reinstated": DisputePhase.FUNDS_REINSTATED,
}


def _dispute_fee(dispute: dict[str, Any]) -> int:
    """Dispute fees Stripe currently keeps: the sum over its balance transactions.

    A withdrawal carries the fee (+1500), a reinstatement may refund it (-1500),
    so the sum is what the seller is out of pocket at this step.
    """
    total_minor = 0
    for index, item in enumerate(F.opt_array(dispute, "balance_transactions")):
        path = f"{OBJ}.balance_transactions[{index}]"
        txn = F.mapping(item, path)
        if txn.get("fee") is not None:
            total_minor += F.minor(txn, "fee", path, allow_negative=True)
    return total_minor


def _dispute(ctx: _Ctx) -> Decoded:
    dispute = ctx.obj
    if ctx.type == "charge.dispute.closed":
        phase = _CLOSED_PHASES.get(str(dispute.get("status")))
        if phase is None:  # warning_closed: an inquiry that never became a chargeback
            return Decoded(ignored=("stripe:charge.dispute.closed.other",))
    else:
        phase = _DISPUTE_PHASES[ctx.type]
    charge_id = _ref_id(dispute.get("charge"))
    if charge_id is None:
        raise F.error("missing_field", f"{OBJ}.charge")
    evidence = F.opt_obj(dispute, "evidence") or {}
    return _one(
        DisputeUpdated(
            event_id=ctx.eid(),
            occurred_at=ctx.created,
            dispute_id=F.text(dispute, "id", OBJ),
            payment_id=charge_id,
            phase=phase,
            amount=Money(F.minor(dispute, "amount", OBJ), F.currency(dispute, "currency", OBJ)),
            fee_minor=_dispute_fee(dispute),
            reason=F.opt_text(dispute, "reason") or "",
            hints=CustomerHints(
                payer_name=F.opt_text(evidence, "customer_name"),
                email=F.opt_text(evidence, "customer_email_address"),
            ),
            source="stripe",
        )
    )


# --- payouts ------------------------------------------------------------------------


def _payout(ctx: _Ctx) -> Decoded:
    payout = ctx.obj
    return _one(
        PayoutSettled(
            event_id=ctx.eid(),
            occurred_at=ctx.created,
            processor="stripe",
            payout_id=F.text(payout, "id", OBJ),
            currency=F.currency(payout, "currency", OBJ),
            net_minor=F.minor(payout, "amount", OBJ),
            status="paid" if ctx.type == "payout.paid" else "failed",
            arrival_at=F.opt_unix(payout, "arrival_date", OBJ),
        )
    )


_HANDLERS: dict[str, Handler] = {
    "invoice.finalized": _invoice_finalized,
    "invoice.voided": _invoice_adjusted(AdjustmentKind.VOID, "voided"),
    "invoice.marked_uncollectible": _invoice_adjusted(
        AdjustmentKind.WRITE_OFF, "marked_uncollectible"
    ),
    "charge.succeeded": _charge_succeeded,
    "charge.captured": _charge_captured,
    "charge.refunded": _charge_refunded,
    "refund.created": _refund_object,
    "refund.updated": _refund_object,
    "charge.dispute.created": _dispute,
    "charge.dispute.funds_withdrawn": _dispute,
    "charge.dispute.funds_reinstated": _dispute,
    "charge.dispute.closed": _dispute,
    "payout.paid": _payout,
    "payout.failed": _payout,
    **dict.fromkeys(_IGNORED_TYPES, _ignored),
}


# --- balance transactions -------------------------------------------------------------

_LINE_KINDS = {
    "charge": "charge",
    "payment": "charge",
    "refund": "refund",
    "payment_refund": "refund",
    "payment_failure_refund": "refund",
    "refund_failure": "refund",
    "stripe_fee": "fee",
    "application_fee": "fee",
    "tax": "fee",
    "stripe_fx_fee": "fee",
    "reserve_transaction": "reserve",
    "reserved_funds": "reserve",
    "payout": "payout",
    "payout_cancel": "payout",
    "payout_failure": "payout",
    "adjustment": "adjustment",
}
_DISPUTE_CATEGORIES = frozenset({"dispute", "dispute_reversal"})


def _line_kind(txn_type: str, category: str) -> str:
    if category in _DISPUTE_CATEGORIES:
        return "dispute"
    return _LINE_KINDS.get(txn_type) or _LINE_KINDS.get(category) or "other"


def _fee_types(txn: dict[str, Any], path: str) -> tuple[str, ...]:
    types: list[str | None] = []
    for index, item in enumerate(F.opt_array(txn, "fee_details")):
        detail = F.mapping(item, f"{path}.fee_details[{index}]")
        types.append(F.opt_text(detail, "type"))
    return dedupe(types)


class _Payout:
    """Accumulates one payout's balance transactions."""

    __slots__ = ("currency", "lines", "net_minor", "payout_amount_minor", "payout_id", "when")

    def __init__(self) -> None:
        self.currency: str | None = None
        self.lines: list[PayoutLine] = []
        self.net_minor = 0
        self.payout_amount_minor: int | None = None
        self.payout_id: str | None = None
        self.when: datetime | None = None

    def add(self, txn: dict[str, Any], path: str) -> None:
        currency = F.currency(txn, "currency", path)
        if self.currency not in (None, currency):
            raise DecodeError("stripe.mixed_currency", f"{currency} at {path}")
        self.currency = currency
        txn_type = F.text(txn, "type", path)
        amount_minor = F.minor(txn, "amount", path, allow_negative=True)
        created = F.opt_unix(txn, "created", path)
        if _line_kind(txn_type, F.opt_text(txn, "reporting_category") or "") == "payout":
            self._payout_row(txn, path, amount_minor, created)
            return
        has_fee = txn.get("fee") is not None
        fee_minor = F.minor(txn, "fee", path, allow_negative=True) if has_fee else 0
        net_minor = amount_minor - fee_minor
        if txn.get("net") is not None and F.minor(txn, "net", path, allow_negative=True) != (
            net_minor
        ):
            raise DecodeError("stripe.net_mismatch", f"amount - fee != net at {path}")
        self.net_minor += net_minor
        self.lines.append(self._line(txn, path, txn_type, amount_minor, fee_minor))
        self._own_payout_field(txn)
        if created and (self.when is None or created > self.when):
            self.when = created

    def _line(
        self, txn: dict[str, Any], path: str, txn_type: str, amount_minor: int, fee_minor: int
    ) -> PayoutLine:
        category = F.opt_text(txn, "reporting_category") or ""
        source = _ref_id(txn.get("source")) or F.text(txn, "id", path)
        return PayoutLine(
            kind=_line_kind(txn_type, category),
            source_id=source,
            gross_minor=amount_minor,
            fee_minor=fee_minor,
            fee_types=_fee_types(txn, path),
        )

    def _payout_row(
        self, txn: dict[str, Any], path: str, amount_minor: int, created: datetime | None
    ) -> None:
        if self.payout_amount_minor is not None:
            raise DecodeError("stripe.several_payouts", f"second payout row at {path}")
        self.payout_amount_minor = amount_minor
        self.payout_id = self.payout_id or _ref_id(txn.get("source"))
        self.when = created or self.when

    def _own_payout_field(self, txn: dict[str, Any]) -> None:
        payout = _ref_id(txn.get("payout"))
        if payout and self.payout_id is None:
            self.payout_id = payout


def _decode_balance_transactions(body: dict[str, Any], received_at: datetime) -> Decoded:
    acc = _Payout()
    acc.payout_id = _ref_id(body.get("payout"))
    items = F.array(body, "data", "")
    for index, item in enumerate(items):
        path = f"data[{index}]"
        acc.add(F.mapping(item, path), path)
    if acc.payout_id is None:
        raise F.error("missing_field", "payout", "no payout field and no type=payout row")
    if acc.currency is None:
        raise F.error("missing_field", "data", "no balance transactions")
    if acc.payout_amount_minor is not None and -acc.payout_amount_minor != acc.net_minor:
        raise DecodeError(
            "stripe.total_mismatch",
            f"lines net {acc.net_minor} != payout {-acc.payout_amount_minor}",
        )
    return _one(
        PayoutSettled(
            event_id=f"stripe:{acc.payout_id}:balance_transactions",
            occurred_at=acc.when or received_at,
            processor="stripe",
            payout_id=acc.payout_id,
            currency=acc.currency,
            net_minor=acc.net_minor,
            lines=tuple(acc.lines),
        )
    )
