"""Canonical events: what connectors make of provider payloads.

Why one vocabulary: the ledger must not know whether cash came from Stripe, a
camt.053 statement or an Amazon settlement. Connectors translate; the core only
sees these frozen values. Every event carries `event_id`, a deterministic
idempotency key built from the provider's own ids, and `occurred_at` (UTC).

Customer-keyed events (`CUSTOMER_EVENTS`) go to one customer's ledger once the
resolver knows the customer; processor-keyed events (`PayoutSettled`,
`PayoutCredited`) go to the fee monitor and payout tracking.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeAlias

from arrecon.state.money import Money

__all__ = [
    "AdjustmentKind",
    "CUSTOMER_EVENTS",
    "CustomerHints",
    "CustomerUpserted",
    "DisputePhase",
    "DisputeUpdated",
    "Event",
    "InvoiceAdjusted",
    "InvoiceIssued",
    "PaymentReceived",
    "PaymentReversed",
    "PayoutCredited",
    "PayoutLine",
    "PayoutSettled",
    "Rail",
    "RemittanceLine",
    "ReversalKind",
    "ensure_utc",
]


def ensure_utc(moment: datetime) -> datetime:
    """Assert a timestamp is timezone-aware; the core never guesses a zone."""
    if moment.tzinfo is UTC:  # what decoders build: no utcoffset() call
        return moment
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: timestamps must be timezone-aware UTC")
    return moment


class Rail(StrEnum):
    CARD = "card"
    ACH = "ach"
    WIRE = "wire"
    SEPA = "sepa"
    CHECK = "check"
    MARKETPLACE = "marketplace"
    WALLET = "wallet"
    OTHER = "other"


class AdjustmentKind(StrEnum):
    CREDIT_MEMO = "credit_memo"
    RETURN = "return"
    PROMOTION = "promotion"
    VOID = "void"
    WRITE_OFF = "write_off"


class ReversalKind(StrEnum):
    REFUND = "refund"
    ACH_RETURN = "ach_return"
    BANK_REVERSAL = "bank_reversal"


class DisputePhase(StrEnum):
    OPENED = "opened"
    FUNDS_WITHDRAWN = "funds_withdrawn"
    FUNDS_REINSTATED = "funds_reinstated"
    WON = "won"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class CustomerHints:
    """What a payload says about who paid or who was billed.

    `customer_id` is set only when the source knows our customer id (the ERP);
    otherwise the resolver maps external ids, references, payer names and
    accounts to a customer.
    """

    customer_id: str | None = None
    external_ids: tuple[str, ...] = ()
    payer_name: str | None = None
    payer_account: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class CustomerUpserted:
    event_id: str
    occurred_at: datetime
    customer_id: str
    name: str
    aliases: tuple[str, ...] = ()
    external_ids: tuple[str, ...] = ()
    bank_accounts: tuple[str, ...] = ()
    credit_limit: Money | None = None
    terms_days: int = 30
    segment: str = "standard"
    # Deductions up to this share of an invoice are accepted without proof.
    allowance_bps: int = 0
    source: str = "erp"


@dataclass(frozen=True, slots=True)
class InvoiceIssued:
    event_id: str
    occurred_at: datetime
    invoice_number: str
    amount: Money
    issued_at: datetime
    due_at: datetime
    hints: CustomerHints = field(default_factory=CustomerHints)
    po_number: str | None = None
    channel: str = "direct"
    # Other ids the payer may quote: provider invoice id (in_...), order id/name.
    external_ids: tuple[str, ...] = ()
    source: str = "erp"


@dataclass(frozen=True, slots=True)
class InvoiceAdjusted:
    """Credit memo, return, promotion, void or write-off against one invoice.

    `amount` None means "the whole open amount" (void, write-off).
    """

    event_id: str
    occurred_at: datetime
    invoice_number: str
    kind: AdjustmentKind
    amount: Money | None
    hints: CustomerHints = field(default_factory=CustomerHints)
    memo_number: str | None = None
    reason: str = ""
    source: str = "erp"


@dataclass(frozen=True, slots=True)
class RemittanceLine:
    """One line of remittance advice: which invoice, how much, what was kept back."""

    invoice_ref: str
    paid_minor: int
    deduction_minor: int = 0
    deduction_code: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentReceived:
    """Cash from a customer (gross of any processor fee).

    `fee_minor` is the fee the processor already kept, when known, so that
    `amount - fee` is what reaches the bank. `invoice_refs` are explicit ids the
    provider attached (Stripe charge.invoice, Shopify order name); `references`
    are free texts to mine for invoice and PO numbers.
    """

    event_id: str
    occurred_at: datetime
    payment_id: str
    amount: Money
    source: str
    rail: Rail = Rail.OTHER
    hints: CustomerHints = field(default_factory=CustomerHints)
    fee_minor: int = 0
    invoice_refs: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    remittance: tuple[RemittanceLine, ...] = ()
    processor: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentReversed:
    """Money going back: refund, ACH return or bank reversal of `payment_id`."""

    event_id: str
    occurred_at: datetime
    payment_id: str
    reversal_id: str
    kind: ReversalKind
    amount: Money
    reason: str = ""
    hints: CustomerHints = field(default_factory=CustomerHints)
    source: str = ""


@dataclass(frozen=True, slots=True)
class DisputeUpdated:
    """A step of a chargeback: opened, funds withdrawn/reinstated, won or lost."""

    event_id: str
    occurred_at: datetime
    dispute_id: str
    payment_id: str
    phase: DisputePhase
    amount: Money
    fee_minor: int = 0
    reason: str = ""
    hints: CustomerHints = field(default_factory=CustomerHints)
    source: str = ""


@dataclass(frozen=True, slots=True)
class PayoutLine:
    """One balance transaction inside a payout (amounts in the payout currency)."""

    kind: str  # charge, refund, fee, adjustment, reserve, dispute, payout, other
    source_id: str
    gross_minor: int
    fee_minor: int = 0
    fee_types: tuple[str, ...] = ()
    payment_method: str | None = None


@dataclass(frozen=True, slots=True)
class PayoutSettled:
    """A processor payout with its itemised lines; `net_minor` goes to the bank."""

    event_id: str
    occurred_at: datetime
    processor: str
    payout_id: str
    currency: str
    net_minor: int
    lines: tuple[PayoutLine, ...] = ()
    status: str = "paid"
    arrival_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PayoutCredited:
    """A bank credit recognised as a processor payout (closes "in transit")."""

    event_id: str
    occurred_at: datetime
    processor: str
    payout_ref: str
    amount: Money
    bank_entry_id: str


Event: TypeAlias = (
    CustomerUpserted
    | InvoiceIssued
    | InvoiceAdjusted
    | PaymentReceived
    | PaymentReversed
    | DisputeUpdated
    | PayoutSettled
    | PayoutCredited
)

CUSTOMER_EVENTS = (
    CustomerUpserted,
    InvoiceIssued,
    InvoiceAdjusted,
    PaymentReceived,
    PaymentReversed,
    DisputeUpdated,
)
