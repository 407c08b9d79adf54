"""Alert rules: which outcomes need a person's attention, as plain values.

Why pure: a rule decides from one outcome and the configured thresholds only,
so the rules are tested as a table and a replay yields the same alerts with the
same ids. Delivery (Kafka, signed webhooks) lives in `arrecon.flows.alerts_sink`.
The one rule that needs time, unapplied cash older than N hours, is
`UnappliedWatch`: it is told `now`, it never reads a clock.

Kinds (each can be switched off) and what raises them:

| kind | severity | raised by |
|---|---|---|
| short_pay | warning | `short_paid` >= the currency's threshold, not an expected fee |
| unexplained_short_pay | warning; info within tolerance | `short_paid`, reason `unexplained` |
| invalid_deduction | warning | `short_paid` with reason `deduction:<code>` and `valid` false |
| fee_anomaly | warning | every `fee_anomaly` (processor rate drift, new fee type) |
| chargeback | critical | `chargeback` opened or lost (a won dispute is good news) |
| credit_limit | critical | `credit_limit_exceeded` |
| unapplied_age | warning | a payment still unapplied N hours after it was first seen |

One outcome may raise several kinds (a large unexplained short-pay is both
`short_pay` and `unexplained_short_pay`). `alert_id` is `<outcome_id>:<kind>`, so
a replayed outcome yields the same id and receivers deduplicate on it.

Environment variables (`AlertRules.from_env`), all optional:

| variable | meaning | default |
|---|---|---|
| ARRECON_ALERT_KINDS | comma-separated kinds that are on; `all` or `none` | all |
| ARRECON_ALERT_SHORT_PAY_MIN_MINOR | short-pay threshold in minor units, any currency | 100000 |
| ARRECON_ALERT_SHORT_PAY_MIN_MINOR_<CCY> | threshold for one currency (e.g. `_JPY=150000`) | - |
| ARRECON_ALERT_SHORT_PAY_IGNORE | reason codes not counted | processor_fee,marketplace_fee |
| ARRECON_ALERT_UNAPPLIED_MAX_AGE_HOURS | age after which unapplied cash alerts | 48 |

Exception tree:
    AlertConfigError (ValueError)   a variable that cannot be understood; raised at startup
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeAlias

import orjson

from arrecon.state.money import MoneyError, exponent
from arrecon.state.outcomes import (
    Applied,
    Chargeback,
    CreditLimitExceeded,
    FeeAnomaly,
    Outcome,
    Reversed,
    ShortPaid,
    Unapplied,
)

__all__ = [
    "ALL_KINDS",
    "Alert",
    "AlertConfigError",
    "AlertRules",
    "Detail",
    "UnappliedWatch",
    "alert_json",
    "alerts_for",
    "sign_payload",
    "verify_signature",
]

SHORT_PAY = "short_pay"
UNEXPLAINED_SHORT_PAY = "unexplained_short_pay"
INVALID_DEDUCTION = "invalid_deduction"
FEE_ANOMALY = "fee_anomaly"
CHARGEBACK = "chargeback"
CREDIT_LIMIT = "credit_limit"
UNAPPLIED_AGE = "unapplied_age"
ALL_KINDS = frozenset(
    {
        SHORT_PAY,
        UNEXPLAINED_SHORT_PAY,
        INVALID_DEDUCTION,
        FEE_ANOMALY,
        CHARGEBACK,
        CREDIT_LIMIT,
        UNAPPLIED_AGE,
    }
)

INFO, WARNING, CRITICAL = "info", "warning", "critical"
DEFAULT_SHORT_PAY_MIN_MINOR = 100_000
DEFAULT_UNAPPLIED_MAX_AGE_HOURS = 48.0
EXPECTED_FEE_REASONS = frozenset({"processor_fee", "marketplace_fee"})
ALERTING_CHARGEBACK_STATUSES = frozenset({"opened", "lost"})
_ENV = "ARRECON_ALERT_"
_CURRENCY_PREFIX = _ENV + "SHORT_PAY_MIN_MINOR_"

Detail: TypeAlias = str | int | bool | list[str]


class AlertConfigError(ValueError):
    """An alert setting that cannot be understood (bad number, unknown kind)."""


def _render_time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Alert:
    """One thing to tell a person, with an id stable across replays.

    `customer_id` is "" when no customer is known (unresolved cash, processor
    fees); `processor` names the processor for fee alerts. `at` is the outcome's
    event time, or the detection time for age alerts.
    """

    alert_id: str
    kind: str
    severity: str
    customer_id: str
    subject: str
    amount_minor: int
    currency: str
    at: datetime
    details: Mapping[str, Detail] = field(default_factory=dict)
    processor: str = ""

    @property
    def key(self) -> str:
        """The partition key: the customer, else the processor, else the subject."""
        return self.customer_id or self.processor or self.subject

    def to_record(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "kind": self.kind,
            "severity": self.severity,
            "customer_id": self.customer_id,
            "processor": self.processor,
            "subject": self.subject,
            "amount_minor": self.amount_minor,
            "currency": self.currency,
            "at": _render_time(self.at),
            "details": dict(self.details),
        }


def alert_json(alert: Alert) -> bytes:
    """The wire form of an alert (Kafka value, webhook body)."""
    return orjson.dumps(alert.to_record())


@dataclass(frozen=True, slots=True)
class AlertRules:
    """Which kinds are on and their thresholds; read once with `from_env`."""

    enabled: frozenset[str] = ALL_KINDS
    short_pay_min_minor: int = DEFAULT_SHORT_PAY_MIN_MINOR
    short_pay_min_minor_by_currency: Mapping[str, int] = field(default_factory=dict)
    short_pay_ignore: frozenset[str] = EXPECTED_FEE_REASONS
    unapplied_max_age_hours: float = DEFAULT_UNAPPLIED_MAX_AGE_HOURS

    def __post_init__(self) -> None:
        unknown = self.enabled - ALL_KINDS
        if unknown:
            raise AlertConfigError(f"unknown alert kinds: {sorted(unknown)}")
        if self.unapplied_max_age_hours <= 0:
            raise AlertConfigError("unapplied_max_age_hours must be positive")

    def on(self, kind: str) -> bool:
        return kind in self.enabled

    def short_pay_threshold(self, currency: str) -> int:
        return self.short_pay_min_minor_by_currency.get(currency, self.short_pay_min_minor)

    @property
    def unapplied_max_age(self) -> timedelta:
        return timedelta(hours=self.unapplied_max_age_hours)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlertRules:
        env = os.environ if environ is None else environ
        return cls(
            enabled=_kinds(env.get(_ENV + "KINDS", "all")),
            short_pay_min_minor=_minor(
                env, _ENV + "SHORT_PAY_MIN_MINOR", DEFAULT_SHORT_PAY_MIN_MINOR
            ),
            short_pay_min_minor_by_currency=_per_currency(env),
            short_pay_ignore=_codes(env.get(_ENV + "SHORT_PAY_IGNORE"), EXPECTED_FEE_REASONS),
            unapplied_max_age_hours=_hours(env),
        )


def _split(text: str) -> frozenset[str]:
    return frozenset(part.strip() for part in text.split(",") if part.strip())


def _kinds(text: str) -> frozenset[str]:
    value = text.strip().lower()
    if value == "all":
        return ALL_KINDS
    if value in ("none", ""):
        return frozenset()
    return _split(value)


def _codes(text: str | None, default: frozenset[str]) -> frozenset[str]:
    return default if text is None else _split(text)


def _number(env: Mapping[str, str], name: str) -> float | None:
    """A non-negative number from `env[name]`; None when unset."""
    text = env.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise AlertConfigError(f"{name}={text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise AlertConfigError(f"{name} must be a finite, non-negative number")
    return value


def _minor(env: Mapping[str, str], name: str, default: int) -> int:
    """Whole minor units (money is never fractional, never a float)."""
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise AlertConfigError(f"{name}={text!r} is not whole minor units") from None
    if value < 0:
        raise AlertConfigError(f"{name} must not be negative")
    return value


def _hours(env: Mapping[str, str]) -> float:
    value = _number(env, _ENV + "UNAPPLIED_MAX_AGE_HOURS")
    return DEFAULT_UNAPPLIED_MAX_AGE_HOURS if value is None else value


def _per_currency(env: Mapping[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name in env:
        if not name.startswith(_CURRENCY_PREFIX):
            continue
        currency = name.removeprefix(_CURRENCY_PREFIX).upper()
        try:
            exponent(currency)
        except MoneyError as error:
            raise AlertConfigError(f"{name}: {error}") from None
        out[currency] = _minor(env, name, DEFAULT_SHORT_PAY_MIN_MINOR)
    return out


def alerts_for(outcome: Outcome, rules: AlertRules) -> list[Alert]:
    """The alerts one outcome raises under `rules` (age alerts: `UnappliedWatch`)."""
    if isinstance(outcome, ShortPaid):
        return _short_paid(outcome, rules)
    if isinstance(outcome, FeeAnomaly) and rules.on(FEE_ANOMALY):
        return [_fee_anomaly(outcome)]
    if isinstance(outcome, Chargeback) and rules.on(CHARGEBACK):
        return _chargeback(outcome)
    if isinstance(outcome, CreditLimitExceeded) and rules.on(CREDIT_LIMIT):
        return [_credit_limit(outcome)]
    return []


def _short_paid(outcome: ShortPaid, rules: AlertRules) -> list[Alert]:
    code = outcome.reason_code
    out: list[Alert] = []
    threshold = rules.short_pay_threshold(outcome.currency)
    if (
        rules.on(SHORT_PAY)
        and code not in rules.short_pay_ignore
        and outcome.shortfall_minor >= threshold
    ):
        out.append(_short_alert(outcome, SHORT_PAY, WARNING, threshold_minor=threshold))
    if rules.on(UNEXPLAINED_SHORT_PAY) and code == "unexplained":
        out.append(
            _short_alert(outcome, UNEXPLAINED_SHORT_PAY, WARNING if not outcome.valid else INFO)
        )
    if rules.on(INVALID_DEDUCTION) and code.startswith("deduction:") and not outcome.valid:
        deduction = code.removeprefix("deduction:")
        out.append(_short_alert(outcome, INVALID_DEDUCTION, WARNING, deduction_code=deduction))
    return out


def _short_alert(outcome: ShortPaid, kind: str, severity: str, **extra: Detail) -> Alert:
    details: dict[str, Detail] = {
        "payment_id": outcome.payment_id,
        "invoice_number": outcome.invoice_number,
        "reason_code": outcome.reason_code,
        "valid": outcome.valid,
        **extra,
    }
    return Alert(
        alert_id=f"{outcome.outcome_id}:{kind}",
        kind=kind,
        severity=severity,
        customer_id=outcome.customer_id,
        subject=outcome.invoice_number,
        amount_minor=outcome.shortfall_minor,
        currency=outcome.currency,
        at=outcome.at,
        details=details,
    )


def _fee_anomaly(outcome: FeeAnomaly) -> Alert:
    details: dict[str, Detail] = {
        "scope": outcome.scope,
        "reason": outcome.reason,
        "expected_bps": outcome.expected_bps,
        "observed_bps": outcome.observed_bps,
        "payment_method": outcome.payment_method,
        "fee_type": outcome.fee_type,
    }
    return Alert(
        alert_id=f"{outcome.outcome_id}:{FEE_ANOMALY}",
        kind=FEE_ANOMALY,
        severity=WARNING,
        customer_id="",
        subject=outcome.scope,
        amount_minor=0,
        currency="",
        at=outcome.at,
        details=details,
        processor=outcome.processor,
    )


def _chargeback(outcome: Chargeback) -> list[Alert]:
    if outcome.status not in ALERTING_CHARGEBACK_STATUSES:
        return []
    details: dict[str, Detail] = {
        "payment_id": outcome.payment_id,
        "invoice_number": outcome.invoice_number,
        "status": outcome.status,
        "dispute_id": outcome.dispute_id,
        "fee_minor": outcome.fee_minor,
    }
    alert = Alert(
        alert_id=f"{outcome.outcome_id}:{CHARGEBACK}",
        kind=CHARGEBACK,
        severity=CRITICAL,
        customer_id=outcome.customer_id,
        subject=outcome.dispute_id or outcome.payment_id,
        amount_minor=outcome.amount_minor,
        currency=outcome.currency,
        at=outcome.at,
        details=details,
    )
    return [alert]


def _credit_limit(outcome: CreditLimitExceeded) -> Alert:
    details: dict[str, Detail] = {
        "invoice_number": outcome.invoice_number,
        "limit_minor": outcome.limit_minor,
        "exposure_minor": outcome.exposure_minor,
    }
    return Alert(
        alert_id=f"{outcome.outcome_id}:{CREDIT_LIMIT}",
        kind=CREDIT_LIMIT,
        severity=CRITICAL,
        customer_id=outcome.customer_id,
        subject=outcome.invoice_number,
        amount_minor=outcome.exposure_minor - outcome.limit_minor,
        currency=outcome.currency,
        at=outcome.at,
        details=details,
    )


@dataclass(frozen=True, slots=True)
class _Waiting:
    since: datetime
    outcome: Unapplied


# How many alerted payment ids are remembered to keep age alerts one per payment.
ALERTED_MEMORY = 100_000


@dataclass
class UnappliedWatch:
    """Unapplied payments by id, each alerted once when older than `max_age`.

    A payment is forgotten when an `applied` (or `reversed`) outcome for it
    arrives. Its age counts from the first `unapplied` outcome seen, since
    retries re-emit `unapplied` with later times. A heap ordered by that time
    keeps `check` proportional to the alerts it yields, not to the cash waiting.
    """

    max_age: timedelta
    waiting: dict[str, _Waiting] = field(default_factory=dict)
    _due: list[tuple[datetime, str]] = field(default_factory=list)
    _alerted: dict[str, None] = field(default_factory=dict)

    def observe(self, outcome: Outcome) -> None:
        if isinstance(outcome, Unapplied):
            self._remember(outcome)
        elif isinstance(outcome, Applied | Reversed):
            self.waiting.pop(outcome.payment_id, None)

    def observe_all(self, outcomes: Iterable[Outcome]) -> None:
        for outcome in outcomes:
            self.observe(outcome)

    def _remember(self, outcome: Unapplied) -> None:
        payment_id = outcome.payment_id
        if payment_id in self._alerted:
            return
        known = self.waiting.get(payment_id)
        if known is not None and known.since <= outcome.at:
            return
        self.waiting[payment_id] = _Waiting(outcome.at, outcome)
        heapq.heappush(self._due, (outcome.at, payment_id))

    def check(self, now: datetime) -> list[Alert]:
        """Age alerts for payments unapplied since before `now - max_age`."""
        assert now.tzinfo is not None, "now must be timezone-aware"
        cutoff = now - self.max_age
        out: list[Alert] = []
        while self._due and self._due[0][0] <= cutoff:
            since, payment_id = heapq.heappop(self._due)
            known = self.waiting.get(payment_id)
            if known is None or known.since != since:
                continue  # applied since, or superseded by an earlier sighting
            del self.waiting[payment_id]
            self._mark_alerted(payment_id)
            out.append(_age_alert(known, now))
        return out

    def _mark_alerted(self, payment_id: str) -> None:
        self._alerted[payment_id] = None
        if len(self._alerted) > ALERTED_MEMORY:
            del self._alerted[next(iter(self._alerted))]


def _age_alert(known: _Waiting, now: datetime) -> Alert:
    outcome = known.outcome
    age_hours = int((now - known.since).total_seconds() // 3600)
    details: dict[str, Detail] = {
        "payment_id": outcome.payment_id,
        "reason": outcome.reason,
        "unapplied_since": _render_time(known.since),
        "age_hours": age_hours,
        "candidates": list(outcome.candidates),
    }
    return Alert(
        alert_id=f"{outcome.outcome_id}:{UNAPPLIED_AGE}",
        kind=UNAPPLIED_AGE,
        severity=WARNING,
        customer_id=outcome.customer_id or "",
        subject=outcome.payment_id,
        amount_minor=outcome.amount_minor,
        currency=outcome.currency,
        at=now,
        details=details,
    )


def sign_payload(body: bytes, secret: str, timestamp_s: int) -> str:
    """`X-Arrecon-Signature` value: `t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.

    Why the timestamp inside the MAC: a receiver that checks its age refuses
    replays of an old, captured request.
    """
    mac = hmac.new(secret.encode(), f"{timestamp_s}.".encode() + body, hashlib.sha256)
    return f"t={timestamp_s},v1={mac.hexdigest()}"


def verify_signature(
    header: str, body: bytes, secret: str, now_s: int, tolerance_s: int = 300
) -> bool:
    """What a webhook receiver does: recompute the MAC, compare in constant time."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp_s = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs(now_s - timestamp_s) > tolerance_s:
        return False
    expected = sign_payload(body, secret, timestamp_s).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)
