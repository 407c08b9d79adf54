"""Outcomes and events to ClickHouse rows: pure functions, no IO.

Why pure: the flow's emit step and the tests build exactly the same rows, and a
row is a function of its input only, so a replay after a crash re-creates
byte-identical rows with the same ids and ReplacingMergeTree makes the second
copy vanish. Row ids are the outcome ids (or digests of the input); `version`
orders successive states of one entity (see `version_of`).

Each builder returns `(table, row)` pairs; `COLUMNS` lists every table's
columns in insert order, matching `sinks/schema/*.sql`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeAlias

import orjson

from arrecon.state.events import CustomerUpserted, PayoutSettled, ensure_utc
from arrecon.state.outcomes import (
    Applied,
    Chargeback,
    CreditLimitExceeded,
    Duplicate,
    FeeAnomaly,
    InvoiceStatus,
    Outcome,
    Overpaid,
    Rejected,
    ReminderDue,
    Reversed,
    ShortPaid,
    Unapplied,
    make_outcome_id,
)

__all__ = [
    "ACCEPTED_VERSION_BIT",
    "COLUMNS",
    "MAX_SEQ",
    "EnvelopeLike",
    "Row",
    "TableRow",
    "customer_rows",
    "exception_update",
    "fee_rows",
    "outcome_rows",
    "raw_event_row",
    "version_of",
]

Row: TypeAlias = dict[str, Any]
TableRow: TypeAlias = tuple[str, Row]

# Outcomes of one millisecond are ordered by a sequence below this bound.
MAX_SEQ = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

COLUMNS: dict[str, tuple[str, ...]] = {
    "raw_events": (
        "raw_id", "source", "kind", "received_at", "position", "body_bytes", "body",
    ),
    "invoice_events": (
        "row_id", "version_at", "version", "invoice_number", "customer_id", "status",
        "open_minor", "amount_minor", "currency", "issued_at", "due_at", "channel",
    ),
    "customers": (
        "customer_id", "version_at", "version", "row_id", "name", "segment", "terms_days",
        "credit_limit_minor", "credit_currency", "allowance_bps", "aliases", "external_ids",
        "source",
    ),
    "payments": (
        "payment_id", "customer_id", "currency", "status", "status_at", "version", "row_id",
    ),
    "applications": (
        "application_id", "at", "payment_id", "invoice_number", "customer_id", "amount_minor",
        "currency", "method", "confidence", "evidence", "rule_version", "reversed", "reason",
    ),
    "exceptions": (
        "exception_id", "opened_at", "updated_at", "version", "kind", "status", "owner",
        "payment_id", "invoice_number", "customer_id", "amount_minor", "currency", "reason",
        "source", "ref", "candidates", "evidence",
    ),
    "chargebacks": (
        "chargeback_id", "at", "dispute_key", "dispute_id", "payment_id", "invoice_number",
        "customer_id", "amount_minor", "currency", "status", "fee_minor",
    ),
    "fees": (
        "fee_line_id", "at", "processor", "payout_id", "currency", "line_kind", "source_id",
        "gross_minor", "fee_minor", "fee_types", "payment_method",
    ),
    "alerts": (
        "alert_id", "at", "kind", "severity", "customer_id", "processor", "subject",
        "amount_minor", "currency", "details",
    ),
    "reminders": (
        "reminder_id", "at", "invoice_number", "customer_id", "step", "open_minor", "currency",
    ),
}  # fmt: skip

# Short-pay reason codes explained at source: recorded, resolved at birth.
_CODED_GAPS = frozenset({"processor_fee", "marketplace_fee", "return", "promotion"})

# Deductions are the short-pays the ledger judges again (a refused one may be
# accepted later, as a second outcome with its own id and possibly an earlier event
# time).  Their exception row is keyed by what the deduction is, and an accepted
# version carries this bit, so it replaces the refusal whatever the times; ops
# updates keep the bit (`exception_update`).
_DEDUCTION_PREFIX = "deduction:"
ACCEPTED_VERSION_BIT = 1 << 62


def version_of(at: datetime, seq: int = 0) -> int:
    """Epoch microseconds * 1000 + seq: later states win, ties broken by seq.

    Microseconds because a customer's ledger places an out-of-order step one
    microsecond past the previous one (`step_at`); that order must survive here.
    """
    if not 0 <= seq < MAX_SEQ:
        raise ValueError(f"seq must be in [0, {MAX_SEQ}), got {seq}")
    epoch_us = (ensure_utc(at) - _EPOCH) // _MICROSECOND
    return epoch_us * MAX_SEQ + seq


def _step_at(outcome: Outcome) -> datetime:
    """Where the outcome stands in its customer's order of steps (its `at` if unknown)."""
    step_at: datetime | None = getattr(outcome, "step_at", None)
    return outcome.at if step_at is None else step_at


def outcome_rows(outcome: Outcome, *, seq: int = 0, rule_version: str = "") -> list[TableRow]:
    """Every row one outcome produces, keyed by its `outcome_id`.

    `seq` orders outcomes that share a timestamp (their index within the event
    that caused them); `rule_version` names the matching rules that decided.
    """
    match outcome:
        case Applied():
            return [_application(outcome, rule_version), _payment(outcome, "applied", seq)]
        case Reversed():
            return [_reversal(outcome)]
        case Unapplied():
            return [_unapplied(outcome, seq), _payment(outcome, "unapplied", seq)]
        case ShortPaid():
            return [_short_paid(outcome, seq)]
        case Overpaid():
            return [_overpaid(outcome, seq)]
        case Duplicate():
            return [_duplicate(outcome, seq)]
        case Rejected():
            return [_rejected(outcome, seq)]
        case Chargeback():
            return [_chargeback(outcome)]
        case FeeAnomaly():
            return [_fee_anomaly(outcome)]
        case InvoiceStatus():
            return [_invoice_event(outcome, seq)]
        case ReminderDue():
            return [_reminder(outcome)]
        case CreditLimitExceeded():
            return _credit_limit(outcome, seq)
    raise TypeError(f"not an outcome: {type(outcome).__name__}")


def _application(outcome: Applied, rule_version: str) -> TableRow:
    return _journal_row(
        outcome,
        outcome.amount_minor,
        method=outcome.method,
        confidence=outcome.confidence,
        evidence=list(outcome.evidence),
        rule_version=rule_version,
        reversed=0,
        reason="",
    )


def _reversal(outcome: Reversed) -> TableRow:
    """A reversal is its own row with a negative amount: history stays append-only."""
    return _journal_row(
        outcome,
        -outcome.amount_minor,
        method="reversal",
        confidence=1.0,
        evidence=[],
        rule_version="",
        reversed=1,
        reason=outcome.reason,
    )


def _journal_row(outcome: Applied | Reversed, amount_minor: int, **fields: Any) -> TableRow:
    """An `applications` row: what an application and a reversal share, then `fields`."""
    row: Row = {
        "application_id": outcome.outcome_id,
        "at": ensure_utc(outcome.at),
        "payment_id": outcome.payment_id,
        "invoice_number": outcome.invoice_number,
        "customer_id": outcome.customer_id,
        "amount_minor": amount_minor,
        "currency": outcome.currency,
        **fields,
    }
    return "applications", row


def _payment(outcome: Applied | Unapplied, status: str, seq: int) -> TableRow:
    return "payments", {
        "payment_id": outcome.payment_id,
        "customer_id": outcome.customer_id or "",
        "currency": outcome.currency,
        "status": status,
        "status_at": ensure_utc(outcome.at),
        "version": version_of(_step_at(outcome), seq),
        "row_id": outcome.outcome_id,
    }


def _exception(
    outcome: Outcome, seq: int, kind: str, status: str = "open", **fields: Any
) -> TableRow:
    """An `exceptions` row opened by `outcome`; `fields` fill the other columns."""
    row: Row = {
        "exception_id": outcome.outcome_id,
        "opened_at": ensure_utc(outcome.at),
        "updated_at": outcome.at,
        "version": version_of(_step_at(outcome), seq),
        "kind": kind,
        "status": status,
        "owner": "",
        "payment_id": "",
        "invoice_number": "",
        "customer_id": "",
        "amount_minor": 0,
        "currency": "",
        "reason": "",
        "source": "",
        "ref": "",
        "candidates": [],
        "evidence": [],
    }
    unknown = fields.keys() - row.keys()
    assert not unknown, f"unknown exception columns {unknown}"
    row.update(fields)
    return "exceptions", row


def _unapplied(outcome: Unapplied, seq: int) -> TableRow:
    return _exception(
        outcome,
        seq,
        "unapplied",
        payment_id=outcome.payment_id,
        customer_id=outcome.customer_id or "",
        amount_minor=outcome.amount_minor,
        currency=outcome.currency,
        reason=outcome.reason,
        candidates=list(outcome.candidates),
        evidence=list(outcome.evidence),
    )


def _short_paid_kind(outcome: ShortPaid) -> tuple[str, str]:
    """(kind, status): coded gaps close at birth; deductions and unexplained wait."""
    if not outcome.valid:
        return "invalid_deduction", "open"
    if outcome.reason_code.startswith("deduction"):
        return "deduction", "open"
    if outcome.reason_code in _CODED_GAPS:
        return "coded_gap", "resolved"
    return "short_paid", "open"


def _short_paid_id(outcome: ShortPaid) -> str:
    """One row per deduction (payment, invoice, code, amount), else the outcome id."""
    if not outcome.reason_code.startswith(_DEDUCTION_PREFIX):
        return outcome.outcome_id
    return make_outcome_id(
        "deduction",
        outcome.payment_id,
        outcome.invoice_number,
        outcome.reason_code,
        outcome.shortfall_minor,
    )


def _short_paid(outcome: ShortPaid, seq: int) -> TableRow:
    kind, status = _short_paid_kind(outcome)
    table, row = _exception(
        outcome,
        seq,
        kind,
        status,
        exception_id=_short_paid_id(outcome),
        payment_id=outcome.payment_id,
        invoice_number=outcome.invoice_number,
        customer_id=outcome.customer_id,
        amount_minor=outcome.shortfall_minor,
        currency=outcome.currency,
        reason=outcome.reason_code,
    )
    if outcome.valid and outcome.reason_code.startswith(_DEDUCTION_PREFIX):
        row["version"] |= ACCEPTED_VERSION_BIT
    return table, row


def _overpaid(outcome: Overpaid, seq: int) -> TableRow:
    return _exception(
        outcome,
        seq,
        "overpaid",
        payment_id=outcome.payment_id,
        customer_id=outcome.customer_id,
        amount_minor=outcome.excess_minor,
        currency=outcome.currency,
    )


def _duplicate(outcome: Duplicate, seq: int) -> TableRow:
    """Informational: the payment was applied once; nothing for ops to do."""
    return _exception(
        outcome,
        seq,
        "duplicate",
        "resolved",
        payment_id=outcome.payment_id,
        ref=outcome.event_id,
    )


def _rejected(outcome: Rejected, seq: int) -> TableRow:
    return _exception(
        outcome,
        seq,
        "dead_letter",
        reason=outcome.reason,
        source=outcome.source,
        ref=f"{outcome.kind}:{outcome.line}" if outcome.kind else str(outcome.line),
    )


def _credit_limit(outcome: CreditLimitExceeded, seq: int) -> list[TableRow]:
    excess_minor = outcome.exposure_minor - outcome.limit_minor
    exception = _exception(
        outcome,
        seq,
        "credit_limit_exceeded",
        invoice_number=outcome.invoice_number,
        customer_id=outcome.customer_id,
        amount_minor=excess_minor,
        currency=outcome.currency,
    )
    details = {"limit_minor": outcome.limit_minor, "exposure_minor": outcome.exposure_minor}
    alert = _alert(
        outcome.outcome_id,
        outcome.at,
        "credit_limit_exceeded",
        customer_id=outcome.customer_id,
        subject=outcome.invoice_number,
        amount_minor=excess_minor,
        currency=outcome.currency,
        details=details,
    )
    return [exception, alert]


def _alert(
    alert_id: str,
    at: datetime,
    kind: str,
    *,
    severity: str = "warning",
    customer_id: str = "",
    processor: str = "",
    subject: str = "",
    amount_minor: int = 0,
    currency: str = "",
    details: Mapping[str, Any],
) -> TableRow:
    return "alerts", {
        "alert_id": alert_id,
        "at": ensure_utc(at),
        "kind": kind,
        "severity": severity,
        "customer_id": customer_id,
        "processor": processor,
        "subject": subject,
        "amount_minor": amount_minor,
        "currency": currency,
        "details": orjson.dumps(details, option=orjson.OPT_SORT_KEYS).decode(),
    }


def _fee_anomaly(outcome: FeeAnomaly) -> TableRow:
    details = {
        "expected_bps": outcome.expected_bps,
        "observed_bps": outcome.observed_bps,
        "reason": outcome.reason,
    }
    return _alert(
        outcome.outcome_id,
        outcome.at,
        "fee_anomaly",
        processor=outcome.processor,
        subject=outcome.scope,
        details=details,
    )


def _chargeback(outcome: Chargeback) -> TableRow:
    return "chargebacks", {
        "chargeback_id": outcome.outcome_id,
        "at": ensure_utc(outcome.at),
        "dispute_key": outcome.dispute_id or outcome.payment_id,
        "dispute_id": outcome.dispute_id,
        "payment_id": outcome.payment_id,
        "invoice_number": outcome.invoice_number,
        "customer_id": outcome.customer_id,
        "amount_minor": outcome.amount_minor,
        "currency": outcome.currency,
        "status": outcome.status,
        "fee_minor": outcome.fee_minor,
    }


def _invoice_event(outcome: InvoiceStatus, seq: int) -> TableRow:
    return "invoice_events", {
        "row_id": outcome.outcome_id,
        "version_at": ensure_utc(outcome.at),
        "version": version_of(_step_at(outcome), seq),
        "invoice_number": outcome.invoice_number,
        "customer_id": outcome.customer_id,
        "status": outcome.status,
        "open_minor": outcome.open_minor,
        "amount_minor": outcome.amount_minor,
        "currency": outcome.currency,
        "issued_at": ensure_utc(outcome.issued_at),
        "due_at": ensure_utc(outcome.due_at),
        "channel": outcome.channel,
    }


def _reminder(outcome: ReminderDue) -> TableRow:
    return "reminders", {
        "reminder_id": outcome.outcome_id,
        "at": ensure_utc(outcome.at),
        "invoice_number": outcome.invoice_number,
        "customer_id": outcome.customer_id,
        "step": outcome.step,
        "open_minor": outcome.open_minor,
        "currency": outcome.currency,
    }


def exception_update(row: Row, *, status: str, owner: str, at: datetime, seq: int = 0) -> Row:
    """The next version of an exception row (ops assigned or resolved it)."""
    new_version = version_of(at, seq) | (row["version"] & ACCEPTED_VERSION_BIT)
    if new_version <= row["version"]:
        raise ValueError("an exception update must be later than the version it replaces")
    return {**row, "status": status, "owner": owner, "updated_at": ensure_utc(at),
            "version": new_version}  # fmt: skip


def customer_rows(event: CustomerUpserted, *, seq: int = 0) -> list[TableRow]:
    """One `customers` version per CustomerUpserted (history kept for "as of")."""
    limit = event.credit_limit
    return [
        (
            "customers",
            {
                "customer_id": event.customer_id,
                "version_at": ensure_utc(event.occurred_at),
                "version": version_of(event.occurred_at, seq),
                "row_id": event.event_id,
                "name": event.name,
                "segment": event.segment,
                "terms_days": event.terms_days,
                "credit_limit_minor": None if limit is None else limit.amount_minor,
                "credit_currency": "" if limit is None else limit.currency,
                "allowance_bps": event.allowance_bps,
                "aliases": list(event.aliases),
                "external_ids": list(event.external_ids),
                "source": event.source,
            },
        )
    ]


def fee_rows(event: PayoutSettled) -> list[TableRow]:
    """One `fees` row per payout line; the id is the payout, line index and source."""
    at = ensure_utc(event.occurred_at)
    return [
        (
            "fees",
            {
                "fee_line_id": make_outcome_id("fee", event.payout_id, index, line.source_id),
                "at": at,
                "processor": event.processor,
                "payout_id": event.payout_id,
                "currency": event.currency,
                "line_kind": line.kind,
                "source_id": line.source_id,
                "gross_minor": line.gross_minor,
                "fee_minor": line.fee_minor,
                "fee_types": list(line.fee_types),
                "payment_method": line.payment_method or "",
            },
        )
        for index, line in enumerate(event.lines)
    ]


class EnvelopeLike(Protocol):
    """The raw-delivery fields a `raw_events` row needs (connectors.RawEnvelope fits)."""

    @property
    def source(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def received_at(self) -> datetime: ...
    @property
    def body(self) -> Any: ...
    @property
    def position(self) -> int: ...


def _body_bytes(body: Any) -> bytes:
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def raw_event_row(envelope: EnvelopeLike) -> TableRow:
    """The delivery as stored for audit; the id ignores `position`, so the same
    delivery read from a replay file or from Kafka gets the same row id."""
    body = _body_bytes(envelope.body)
    received_at = ensure_utc(envelope.received_at)
    digest = hashlib.blake2b(body, digest_size=16).hexdigest()
    return "raw_events", {
        "raw_id": make_outcome_id("raw", envelope.source, envelope.kind, received_at, digest),
        "source": envelope.source,
        "kind": envelope.kind,
        "received_at": received_at,
        "position": envelope.position,
        "body_bytes": len(body),
        "body": body.decode("utf-8", errors="replace"),
    }
