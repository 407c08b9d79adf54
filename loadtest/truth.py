"""Ground-truth records: what a perfect engine would conclude from the stream.

Why a separate file: the scorer must judge the engine's outcomes against the
generator's intent without re-deriving it. Every record names ids the engine
reports (Stripe `ch_...`, Shopify transaction id, bank end-to-end id, the
invoice number as issued) plus `aliases` for other ids a decoder may pick.

Money in a `PaymentTruth` is conserved:
`sum(allocations) + overpaid_minor + unapplied_minor - fee_minor == amount_minor`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeAlias

__all__ = [
    "Allocation",
    "ChargebackTruth",
    "DuplicateTruth",
    "FeeAnomalyTruth",
    "InvoiceTruth",
    "PaymentTruth",
    "PayoutTruth",
    "RefundTruth",
    "ShortPayTruth",
    "TruthRecord",
    "parse_truth",
]


@dataclass(frozen=True, slots=True)
class Allocation:
    """Part of a payment that belongs to one invoice."""

    invoice_number: str
    amount_minor: int


@dataclass(frozen=True, slots=True)
class ShortPayTruth:
    """An expected `short_paid`: the invoice got less than was open."""

    invoice_number: str
    shortfall_minor: int
    reason_code: str  # deduction:<code> or unexplained


def _render(value: Any) -> Any:
    if isinstance(value, (Allocation, ShortPayTruth)):
        return {item.name: getattr(value, item.name) for item in fields(value)}
    if isinstance(value, tuple):
        return [_render(item) for item in value]
    return value


class _Record:
    __slots__ = ()
    record: ClassVar[str]

    def to_record(self) -> dict[str, Any]:
        rendered: dict[str, Any] = {"record": self.record}
        for item in fields(self):  # type: ignore[arg-type]
            rendered[item.name] = _render(getattr(self, item.name))
        return rendered


@dataclass(frozen=True, slots=True)
class PaymentTruth(_Record):
    """One payment; `placeable` is False when no engine could know the invoice."""

    record: ClassVar[str] = "payment"
    payment_id: str
    source: str
    format: str
    customer_id: str | None
    currency: str
    amount_minor: int
    category: str
    placeable: bool
    received_at: str
    allocations: tuple[Allocation, ...] = ()
    short_pays: tuple[ShortPayTruth, ...] = ()
    overpaid_minor: int = 0
    unapplied_minor: int = 0
    fee_minor: int = 0
    aliases: tuple[str, ...] = ()

    def conserved(self) -> bool:
        allocated = sum(item.amount_minor for item in self.allocations)
        total = allocated + self.overpaid_minor + self.unapplied_minor - self.fee_minor
        return total == self.amount_minor


@dataclass(frozen=True, slots=True)
class ChargebackTruth(_Record):
    record: ClassVar[str] = "chargeback"
    payment_id: str
    dispute_id: str
    invoice_number: str
    amount_minor: int
    currency: str
    outcome: str  # won, lost


@dataclass(frozen=True, slots=True)
class RefundTruth(_Record):
    record: ClassVar[str] = "refund"
    payment_id: str
    refund_id: str
    invoice_number: str
    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class DuplicateTruth(_Record):
    """A delivery sent twice (same event id); the payment must apply once."""

    record: ClassVar[str] = "duplicate"
    payment_id: str
    event_id: str


@dataclass(frozen=True, slots=True)
class FeeAnomalyTruth(_Record):
    """A period in which one processor charged more than its rate card."""

    record: ClassVar[str] = "fee_anomaly"
    processor: str
    start: str
    end: str
    expected_bps: int
    observed_bps: int
    payout_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PayoutTruth(_Record):
    """A processor payout and the bank entry that carries it (not customer cash)."""

    record: ClassVar[str] = "payout"
    processor: str
    payout_id: str
    currency: str
    gross_minor: int
    fee_minor: int
    net_minor: int
    bank_entry_id: str


@dataclass(frozen=True, slots=True)
class InvoiceTruth(_Record):
    """The final open amount of an invoice once nothing more touches it."""

    record: ClassVar[str] = "invoice"
    invoice_number: str
    customer_id: str
    currency: str
    amount_minor: int
    open_minor: int
    channel: str
    categories: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


TruthRecord: TypeAlias = (
    PaymentTruth
    | ChargebackTruth
    | RefundTruth
    | DuplicateTruth
    | FeeAnomalyTruth
    | PayoutTruth
    | InvoiceTruth
)

_TYPES: dict[str, type[Any]] = {
    cls.record: cls
    for cls in (
        PaymentTruth,
        ChargebackTruth,
        RefundTruth,
        DuplicateTruth,
        FeeAnomalyTruth,
        PayoutTruth,
        InvoiceTruth,
    )
}


def parse_truth(raw: dict[str, Any]) -> TruthRecord:
    """Rebuild a truth record from its JSON form; ValueError when unknown."""
    kind = raw.get("record")
    cls = _TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown truth record {kind!r}")
    values: dict[str, Any] = {}
    for item in fields(cls):
        if item.name not in raw:
            continue
        value = raw[item.name]
        if item.name == "allocations":
            value = tuple(Allocation(**entry) for entry in value)
        elif item.name == "short_pays":
            value = tuple(ShortPayTruth(**entry) for entry in value)
        elif isinstance(value, list):
            value = tuple(value)
        values[item.name] = value
    record: TruthRecord = cls(**values)
    return record
