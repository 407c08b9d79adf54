"""Outcomes: what the engine decided, one read-only value per decision.

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

Each outcome is a dataclass with `Final` fields and a hand-written `__init__`
(see `arrecon.state`): compiled, it builds an outcome in ~0.15 us where a
frozen dataclass took ~1.3, and two are built per payment. Constructors take
the fields in order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar, Final, TypeAlias

from arrecon.state.pickling import by_constructor

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


_ID_HASH = hashlib.blake2b(digest_size=8)  # copied per id: cheaper than a new one


def make_outcome_id(kind: str, *parts: object) -> str:
    """A stable 16-hex id from the outcome type and the parts that make it unique:
    blake2b-64 of the type and the parts as text, separated by U+001F."""
    text = "\x1f".join([kind, *[part if type(part) is str else str(part) for part in parts]])
    digest = _ID_HASH.copy()
    digest.update(text.encode())
    return digest.hexdigest()


def _render(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, tuple):
        return [_render(item) for item in value]
    return value


_Reduced: TypeAlias = tuple[type[Any], tuple[Any, ...]]  # (class, constructor arguments)


class _Record:
    """Mixin: `to_record()` gives the contract's JSON shape with `type` first."""

    __slots__ = ()
    # The replay contract's `type`, set after each class: written in the class
    # body, mypyc would make it one of the dataclass's fields.
    type: ClassVar[str]

    def __reduce__(self) -> _Reduced:
        return by_constructor(self)  # see `state.pickling`

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


@dataclass(init=False, slots=True)
class Applied(_Record):
    outcome_id: Final[str]
    at: Final[datetime]
    payment_id: Final[str]
    invoice_number: Final[str]
    customer_id: Final[str]
    amount_minor: Final[int]
    currency: Final[str]
    method: Final[str]
    confidence: Final[float]
    evidence: Final[tuple[str, ...]]
    step_at: Final[datetime | None]

    def __init__(
        self,
        outcome_id: str,
        at: datetime,
        payment_id: str,
        invoice_number: str,
        customer_id: str,
        amount_minor: int,
        currency: str,
        method: str,
        confidence: float,
        evidence: tuple[str, ...] = (),
        step_at: datetime | None = None,
    ) -> None:
        self.outcome_id = outcome_id
        self.at = at
        self.payment_id = payment_id
        self.invoice_number = invoice_number
        self.customer_id = customer_id
        self.amount_minor = amount_minor
        self.currency = currency
        self.method = method
        self.confidence = confidence
        self.evidence = evidence
        self.step_at = step_at


Applied.type = "applied"


@dataclass(init=False, slots=True)
class Reversed(_Record):
    outcome_id: Final[str]
    at: Final[datetime]
    payment_id: Final[str]
    invoice_number: Final[str]
    customer_id: Final[str]
    amount_minor: Final[int]
    currency: Final[str]
    reason: Final[str]
    step_at: Final[datetime | None]

    def __init__(
        self,
        outcome_id: str,
        at: datetime,
        payment_id: str,
        invoice_number: str,
        customer_id: str,
        amount_minor: int,
        currency: str,
        reason: str,
        step_at: datetime | None = None,
    ) -> None:
        self.outcome_id = outcome_id
        self.at = at
        self.payment_id = payment_id
        self.invoice_number = invoice_number
        self.customer_id = customer_id
        self.amount_minor = amount_minor
        self.currency = currency
        self.reason = reason
        self.step_at = step_at


Reversed.type = "reversed"


@dataclass(init=False, slots=True)
class Unapplied(_Record):
    outcome_id: Final[str]
    at: Final[datetime]
    payment_id: Final[str]
    customer_id: Final[str | None]
    amount_minor: Final[int]
    currency: Final[str]
    reason: Final[str]
    candidates: Final[tuple[str, ...]]
    evidence: Final[tuple[str, ...]]
    step_at: Final[datetime | None]

    def __init__(
        self,
        outcome_id: str,
        at: datetime,
        payment_id: str,
        customer_id: str | None,
        amount_minor: int,
        currency: str,
        reason: str,
        candidates: tuple[str, ...] = (),
        evidence: tuple[str, ...] = (),
        step_at: datetime | None = None,
    ) -> None:
        self.outcome_id = outcome_id
        self.at = at
        self.payment_id = payment_id
        self.customer_id = customer_id
        self.amount_minor = amount_minor
        self.currency = currency
        self.reason = reason
        self.candidates = candidates
        self.evidence = evidence
        self.step_at = step_at


Unapplied.type = "unapplied"


@dataclass(init=False, slots=True)
class ShortPaid(_Record):
    outcome_id: Final[str]
    at: Final[datetime]
    payment_id: Final[str]
    invoice_number: Final[str]
    customer_id: Final[str]
    shortfall_minor: Final[int]
    currency: Final[str]
    # processor_fee, marketplace_fee, return, promotion, deduction:<code>, unexplained
    reason_code: Final[str]
    valid: Final[bool]
    step_at: Final[datetime | None]

    def __init__(
        self,
        outcome_id: str,
        at: datetime,
        payment_id: str,
        invoice_number: str,
        customer_id: str,
        shortfall_minor: int,
        currency: str,
        reason_code: str,
        valid: bool = True,
        step_at: datetime | None = None,
    ) -> None:
        self.outcome_id = outcome_id
        self.at = at
        self.payment_id = payment_id
        self.invoice_number = invoice_number
        self.customer_id = customer_id
        self.shortfall_minor = shortfall_minor
        self.currency = currency
        self.reason_code = reason_code
        self.valid = valid
        self.step_at = step_at


ShortPaid.type = "short_paid"


@dataclass(init=False, slots=True)
class Overpaid(_Record):
    outcome_id: Final[str]
    at: Final[datetime]
    payment_id: Final[str]
    customer_id: Final[str]
    excess_minor: Final[int]
    currency: Final[str]
    step_at: Final[datetime | None]

    def __init__(
        self,
        outcome_id: str,
        at: datetime,
        payment_id: str,
        customer_id: str,
        excess_minor: int,
        currency: str,
        step_at: datetime | None = None,
    ) -> None:
        self.outcome_id = outcome_id
        self.at = at
        self.payment_id = payment_id
        self.customer_id = customer_id
        self.excess_minor = excess_minor
        self.currency = currency
        self.step_at = step_at


Overpaid.type = "overpaid"


@dataclass(init=False, slots=True)
class Duplicate(_Record):
    outcome_id: Final[str]
    at: Final[datetime]
    payment_id: Final[str]
    event_id: Final[str]
    step_at: Final[datetime | None]

    def __init__(
        self,
        outcome_id: str,
        at: datetime,
        payment_id: str,
        event_id: str,
        step_at: datetime | None = None,
    ) -> None:
        self.outcome_id = outcome_id
        self.at = at
        self.payment_id = payment_id
        self.event_id = event_id
        self.step_at = step_at


Duplicate.type = "duplicate"


@dataclass(init=False, slots=True)
class Chargeback(_Record):
    outcome_id: Final[str]
    at: Final[datetime]
    payment_id: Final[str]
    invoice_number: Final[str]
    customer_id: Final[str]
    amount_minor: Final[int]
    currency: Final[str]
    status: Final[str]  # opened, won, lost
    dispute_id: Final[str]
    fee_minor: Final[int]
    step_at: Final[datetime | None]

    def __init__(
        self,
        outcome_id: str,
        at: datetime,
        payment_id: str,
        invoice_number: str,
        customer_id: str,
        amount_minor: int,
        currency: str,
        status: str,
        dispute_id: str = "",
        fee_minor: int = 0,
        step_at: datetime | None = None,
    ) -> None:
        self.outcome_id = outcome_id
        self.at = at
        self.payment_id = payment_id
        self.invoice_number = invoice_number
        self.customer_id = customer_id
        self.amount_minor = amount_minor
        self.currency = currency
        self.status = status
        self.dispute_id = dispute_id
        self.fee_minor = fee_minor
        self.step_at = step_at


Chargeback.type = "chargeback"


@dataclass(init=False, slots=True)
class FeeAnomaly(_Record):
    outcome_id: Final[str]
    at: Final[datetime]
    processor: Final[str]
    scope: Final[str]
    expected_bps: Final[int]
    observed_bps: Final[int]
    reason: Final[str]
    # Which slice drifted ("" when the processor does not say) and, for
    # reason "new_fee_type", the fee type that appeared.
    payment_method: Final[str]
    fee_type: Final[str]

    def __init__(
        self,
        outcome_id: str,
        at: datetime,
        processor: str,
        scope: str,
        expected_bps: int,
        observed_bps: int,
        reason: str = "rate_drift",
        payment_method: str = "",
        fee_type: str = "",
    ) -> None:
        self.outcome_id = outcome_id
        self.at = at
        self.processor = processor
        self.scope = scope
        self.expected_bps = expected_bps
        self.observed_bps = observed_bps
        self.reason = reason
        self.payment_method = payment_method
        self.fee_type = fee_type


FeeAnomaly.type = "fee_anomaly"


@dataclass(init=False, slots=True)
class InvoiceStatus(_Record):
    outcome_id: Final[str]
    at: Final[datetime]
    invoice_number: Final[str]
    customer_id: Final[str]
    status: Final[str]
    open_minor: Final[int]
    amount_minor: Final[int]
    currency: Final[str]
    due_at: Final[datetime]
    issued_at: Final[datetime]
    channel: Final[str]
    step_at: Final[datetime | None]

    def __init__(
        self,
        outcome_id: str,
        at: datetime,
        invoice_number: str,
        customer_id: str,
        status: str,
        open_minor: int,
        amount_minor: int,
        currency: str,
        due_at: datetime,
        issued_at: datetime,
        channel: str = "direct",
        step_at: datetime | None = None,
    ) -> None:
        self.outcome_id = outcome_id
        self.at = at
        self.invoice_number = invoice_number
        self.customer_id = customer_id
        self.status = status
        self.open_minor = open_minor
        self.amount_minor = amount_minor
        self.currency = currency
        self.due_at = due_at
        self.issued_at = issued_at
        self.channel = channel
        self.step_at = step_at


InvoiceStatus.type = "invoice_status"


@dataclass(init=False, slots=True)
class ReminderDue(_Record):
    outcome_id: Final[str]
    at: Final[datetime]
    invoice_number: Final[str]
    customer_id: Final[str]
    step: Final[str]
    open_minor: Final[int]
    currency: Final[str]
    step_at: Final[datetime | None]

    def __init__(
        self,
        outcome_id: str,
        at: datetime,
        invoice_number: str,
        customer_id: str,
        step: str,
        open_minor: int,
        currency: str,
        step_at: datetime | None = None,
    ) -> None:
        self.outcome_id = outcome_id
        self.at = at
        self.invoice_number = invoice_number
        self.customer_id = customer_id
        self.step = step
        self.open_minor = open_minor
        self.currency = currency
        self.step_at = step_at


ReminderDue.type = "reminder_due"


@dataclass(init=False, slots=True)
class CreditLimitExceeded(_Record):
    outcome_id: Final[str]
    at: Final[datetime]
    customer_id: Final[str]
    invoice_number: Final[str]
    limit_minor: Final[int]
    exposure_minor: Final[int]
    currency: Final[str]
    step_at: Final[datetime | None]

    def __init__(
        self,
        outcome_id: str,
        at: datetime,
        customer_id: str,
        invoice_number: str,
        limit_minor: int,
        exposure_minor: int,
        currency: str,
        step_at: datetime | None = None,
    ) -> None:
        self.outcome_id = outcome_id
        self.at = at
        self.customer_id = customer_id
        self.invoice_number = invoice_number
        self.limit_minor = limit_minor
        self.exposure_minor = exposure_minor
        self.currency = currency
        self.step_at = step_at


CreditLimitExceeded.type = "credit_limit_exceeded"


@dataclass(init=False, slots=True)
class Rejected(_Record):
    outcome_id: Final[str]
    at: Final[datetime]
    line: Final[int]
    source: Final[str]
    reason: Final[str]
    kind: Final[str]

    def __init__(
        self,
        outcome_id: str,
        at: datetime,
        line: int,
        source: str,
        reason: str,
        kind: str = "",
    ) -> None:
        self.outcome_id = outcome_id
        self.at = at
        self.line = line
        self.source = source
        self.reason = reason
        self.kind = kind


Rejected.type = "rejected"


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
