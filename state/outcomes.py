"""Outcomes: what the engine decided, one frozen value per decision.

Each outcome type matches a `type` of the replay contract (DESIGN.md section 3)
and renders to a plain dict with `to_record()`. Every outcome has a
deterministic `outcome_id` derived from the event that caused it, so writing it
twice (at-least-once delivery, replay after a crash) is harmless.

Matching decisions carry `method`, `confidence` (0..1, not money) and
`evidence`: short strings naming the tokens and the rule that decided.

`at` is the time of the event that caused the outcome. Outcomes of a customer's
ledger also carry `step_at`: `at`, or just past that customer's previous step
when the event is dated no later, so a customer's outcomes are strictly ordered
in the order they were decided; stores keep the latest state of an invoice or
payment by it, as events reach a customer out of time order (a bank credit
dated midnight pays an invoice issued at 09:00).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar, TypeAlias

__all__ = [
    "Applied",
    "Chargeback",
    "CreditLimitExceeded",
    "Duplicate",
    "FeeAnomaly",
    "InvoiceStatus",
    "Outcome",
    "Overpaid",
    "Rejected",
    "ReminderDue",
    "Reversed",
    "ShortPaid",
    "Unapplied",
    "make_outcome_id",
]


def make_outcome_id(kind: str, *parts: object) -> str:
    """A stable 16-hex id from the outcome type and the parts that make it unique."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(kind.encode())
    for part in parts:
        digest.update(b"\x1f")
        digest.update(str(part).encode())
    return digest.hexdigest()


def _render(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, tuple):
        return [_render(item) for item in value]
    return value


class _Record:
    """Mixin: `to_record()` gives the contract's JSON shape with `type` first."""

    __slots__ = ()
    type: ClassVar[str]

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"type": self.type}
        for name in _field_names(type(self)):
            record[name] = _render(getattr(self, name))
        return record


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    """Field names per outcome class, computed once (to_record is on the hot path)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(item.name for item in fields(cls))
    return names


@dataclass(frozen=True, slots=True)
class Applied(_Record):
    type: ClassVar[str] = "applied"
    outcome_id: str
    at: datetime
    payment_id: str
    invoice_number: str
    customer_id: str
    amount_minor: int
    currency: str
    method: str
    confidence: float
    evidence: tuple[str, ...] = ()
    step_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Reversed(_Record):
    type: ClassVar[str] = "reversed"
    outcome_id: str
    at: datetime
    payment_id: str
    invoice_number: str
    customer_id: str
    amount_minor: int
    currency: str
    reason: str
    step_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Unapplied(_Record):
    type: ClassVar[str] = "unapplied"
    outcome_id: str
    at: datetime
    payment_id: str
    customer_id: str | None
    amount_minor: int
    currency: str
    reason: str
    candidates: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    step_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ShortPaid(_Record):
    type: ClassVar[str] = "short_paid"
    outcome_id: str
    at: datetime
    payment_id: str
    invoice_number: str
    customer_id: str
    shortfall_minor: int
    currency: str
    # processor_fee, marketplace_fee, return, promotion, deduction:<code>, unexplained
    reason_code: str
    valid: bool = True
    step_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Overpaid(_Record):
    type: ClassVar[str] = "overpaid"
    outcome_id: str
    at: datetime
    payment_id: str
    customer_id: str
    excess_minor: int
    currency: str
    step_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Duplicate(_Record):
    type: ClassVar[str] = "duplicate"
    outcome_id: str
    at: datetime
    payment_id: str
    event_id: str
    step_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Chargeback(_Record):
    type: ClassVar[str] = "chargeback"
    outcome_id: str
    at: datetime
    payment_id: str
    invoice_number: str
    customer_id: str
    amount_minor: int
    currency: str
    status: str  # opened, won, lost
    dispute_id: str = ""
    fee_minor: int = 0
    step_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class FeeAnomaly(_Record):
    type: ClassVar[str] = "fee_anomaly"
    outcome_id: str
    at: datetime
    processor: str
    scope: str
    expected_bps: int
    observed_bps: int
    reason: str = "rate_drift"
    # Which slice drifted ("" when the processor does not say) and, for
    # reason "new_fee_type", the fee type that appeared.
    payment_method: str = ""
    fee_type: str = ""


@dataclass(frozen=True, slots=True)
class InvoiceStatus(_Record):
    type: ClassVar[str] = "invoice_status"
    outcome_id: str
    at: datetime
    invoice_number: str
    customer_id: str
    status: str
    open_minor: int
    amount_minor: int
    currency: str
    due_at: datetime
    issued_at: datetime
    channel: str = "direct"
    step_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReminderDue(_Record):
    type: ClassVar[str] = "reminder_due"
    outcome_id: str
    at: datetime
    invoice_number: str
    customer_id: str
    step: str
    open_minor: int
    currency: str
    step_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CreditLimitExceeded(_Record):
    type: ClassVar[str] = "credit_limit_exceeded"
    outcome_id: str
    at: datetime
    customer_id: str
    invoice_number: str
    limit_minor: int
    exposure_minor: int
    currency: str
    step_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Rejected(_Record):
    type: ClassVar[str] = "rejected"
    outcome_id: str
    at: datetime
    line: int
    source: str
    reason: str
    kind: str = ""


Outcome: TypeAlias = (
    Applied
    | Reversed
    | Unapplied
    | ShortPaid
    | Overpaid
    | Duplicate
    | Chargeback
    | FeeAnomaly
    | InvoiceStatus
    | ReminderDue
    | CreditLimitExceeded
    | Rejected
)
