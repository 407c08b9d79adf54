"""One customer's receivables: invoices, cash, credits and disputes, as stream state.

Why one mutable object per customer: Bytewax keys state by customer and
snapshots it with pickle; mutating in place keeps a payment's cost independent
of the book size (a few dict hits plus the matcher's bounded work). `apply` and
`on_timer` are the only entry points; both are deterministic functions of the
state, the event and the `now` passed in (nothing here reads a clock).

Money model, per currency (the invariant the tests check):

    received = applied (net of reversals) + unapplied + customer credit + reversed out

Cash enters with `PaymentReceived`. A match spreads it over invoices
(`Applied`); what the match leaves is customer credit (`Overpaid`) and stays on
account. It is not spent on the next invoice issued: buyers who overpay almost
always pay their next invoice in full too, so auto-applying the excess would
turn one overpayment into a second one and push cash onto an invoice the payer
never named. A person (or a later refund, which takes credit back first)
decides where it goes. An unmatched payment waits as unapplied cash and is
retried on every new invoice, credit memo and customer upsert, so
cash-before-invoice ends where invoice-before-cash does.
Refunds, ACH returns and chargebacks take money back in a fixed order:
unapplied cash first, then the payment's unused credit, then its applications
newest first (those invoices reopen).

Idempotency: an event id or payment id seen again yields `Duplicate` and
changes nothing; an invoice is keyed by its number, which the ledger holds
while it is open and for the retention window after. The seen-id memory is a
bounded FIFO (`seen_ids_max`). That is safe because (1) provider retries and
crash replays arrive within days, far inside a window of 50,000 ids per
customer, and (2) a payment id is also recognised for as long as the payment's
own record is in state, which is until every invoice it touched has left the
settled-retention window.

Retention: settled invoices stay `settled_retention_days` (chargebacks and
refunds need their applications), then leave together with the payment records
that only pointed at them. An empty ledger is returned as None so Bytewax drops
the key; a customer profile alone keeps the ledger (terms and limits matter).
"""

from __future__ import annotations

import heapq
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Any, TypeAlias

from arrecon.state.dunning import DunningPolicy, latest_step, next_step_at
from arrecon.state.events import (
    AdjustmentKind,
    CustomerUpserted,
    DisputePhase,
    DisputeUpdated,
    InvoiceAdjusted,
    InvoiceIssued,
    PaymentReceived,
    PaymentReversed,
    ensure_utc,
)
from arrecon.state.matching import (
    Allocation,
    Footprint,
    Match,
    MatchPolicy,
    OpenBook,
    OpenInvoice,
)
from arrecon.state.matching import match_payment as _match_payment
from arrecon.state.money import Money
from arrecon.state.outcomes import (
    Applied,
    Chargeback,
    CreditLimitExceeded,
    Duplicate,
    InvoiceStatus,
    Outcome,
    Overpaid,
    ReminderDue,
    Reversed,
    ShortPaid,
    Unapplied,
    make_outcome_id,
)
from arrecon.state.pickling import by_constructor, restore, state_of
from arrecon.state.references import RefKind, core_key, extract_references, normalize_reference

__all__ = [
    "CustomerEvent",
    "InvoiceView",
    "Ledger",
    "LedgerPolicy",
    "apply",
    "exposure",
    "next_wakeup",
    "on_timer",
]

CustomerEvent: TypeAlias = (
    CustomerUpserted
    | InvoiceIssued
    | InvoiceAdjusted
    | PaymentReceived
    | PaymentReversed
    | DisputeUpdated
)

OPEN = "open"
PARTIALLY_PAID = "partially_paid"
PAID = "paid"
OVERDUE = "overdue"
DISPUTED = "disputed"
REOPENED = "reopened"
CREDITED = "credited"
WRITTEN_OFF = "written_off"
VOID = "void"

# How an invoice reached zero: cash (incl. valid gaps), credit memo/return/promotion,
# void, write-off. Decides the closed status.
_CLOSED_STATUS = {"cash": PAID, "credit": CREDITED, "void": VOID, "write_off": WRITTEN_OFF}
# Gap codes that close the gap when the matcher names them.
_CLOSING_GAPS = frozenset({"processor_fee", "marketplace_fee", "return", "promotion"})
# Methods too weak to override a payment that names an invoice we do not hold.
_WEAK_METHODS = frozenset({"fuzzy_reference", "exact_amount", "subset_sum"})
# Connectors name a payment by a namespaced handle ("shopify_order:<id>") when the
# provider's later messages (disputes) name only the order; such handles ride in
# the payment's `invoice_refs`.
_HANDLE_MARK = ":"
_MICROSECOND = timedelta(microseconds=1)
_JUST_AFTER = _MICROSECOND
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIDNIGHT = time()
_DROP_DAY_CACHE_SIZE = 256  # settlement days x zones x policies
_TIMER_DUE = 0
_TIMER_DROP = 1
_DEFAULT_MATCH = MatchPolicy()
_DEFAULT_DUNNING = DunningPolicy()


@dataclass(frozen=True, slots=True)
class LedgerPolicy:
    """Thresholds and windows of the ledger.

    `settled_retention_days`: settled invoices and their applications are kept
    this long so late chargebacks (card networks allow ~120 days) still find what
    to reverse. `seen_ids_max`: bound of the idempotency FIFO per customer (see
    the module docstring for why it is safe). `short_pay_tolerance_minor`: an
    unexplained short-pay up to this amount is accepted and closes the invoice.
    """

    match: MatchPolicy = _DEFAULT_MATCH
    settled_retention_days: int = 180
    seen_ids_max: int = 50_000
    short_pay_tolerance_minor: int = 0
    dunning: DunningPolicy = _DEFAULT_DUNNING

    def __reduce__(self) -> tuple[type[Any], tuple[Any, ...]]:
        return by_constructor(self)  # see `state.pickling`


@dataclass(frozen=True, slots=True)
class InvoiceView:
    """A read-only snapshot of one invoice (for tests, aging and the demo)."""

    invoice_number: str
    currency: str
    amount_minor: int
    open_minor: int
    due_at: datetime
    issued_at: datetime
    status: str
    flagged_minor: int
    disputed: bool


class _Rare:
    """The invoice fields that most open invoices never move off their defaults.

    Created on an invoice's first write of a value other than the default. Why:
    an open invoice that was never disputed, flagged, paid or reopened carries
    one empty slot instead of six (the memory target is per open invoice).
    """

    __slots__ = ("closed_by", "disputes", "flagged_minor", "payers", "reopened", "settled_at")

    def __init__(self) -> None:
        self.closed_by = "cash"  # why the open amount reached 0 (see _CLOSED_STATUS)
        self.disputes = 0
        self.flagged_minor = 0
        # Ids of payments that applied cash here (may repeat or outlive the payment):
        # lets retention find their applications without scanning every payment.
        self.payers: list[str] | None = None
        self.reopened = False
        self.settled_at: datetime | None = None

    def __getstate__(self) -> _RareState:
        return (
            self.closed_by,
            self.disputes,
            self.flagged_minor,
            self.payers,
            self.reopened,
            self.settled_at,
        )

    def __setstate__(self, state: _RareState) -> None:
        (
            self.closed_by,
            self.disputes,
            self.flagged_minor,
            self.payers,
            self.reopened,
            self.settled_at,
        ) = state


_RareState: TypeAlias = tuple[str, int, int, list[str] | None, bool, datetime | None]
_RARE_DEFAULTS = _Rare()  # read, never written


class _Invoice(OpenInvoice):
    """One record per invoice: the book's entry while open, plus the ledger's fields."""

    __slots__ = ("channel", "issued_us", "rare", "status")

    def __init__(  # noqa: PLR0917 - unpickling passes the flat state positionally
        self,
        invoice_number: str,
        currency: str,
        amount_minor: int,
        open_minor: int,
        due_at: datetime,
        po_number: str | None,
        external_ids: tuple[str, ...],
        channel: str,
        issued_us: int,
        rare: _Rare | None,
        status: str,
    ) -> None:
        super().__init__(
            invoice_number, currency, amount_minor, open_minor, due_at, po_number, external_ids
        )
        self.channel = channel
        self.issued_us = issued_us  # microseconds since the epoch (see `_new_invoice`)
        self.rare = rare
        self.status = status

    @property
    def issued_at(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.issued_us)

    # The fields kept in `rare`: read from the shared defaults until first written.
    # Plain properties (not a descriptor class) so the compiled core can build them.

    def _rare_part(self) -> _Rare:
        rare = self.rare
        if rare is None:
            rare = self.rare = _Rare()
        return rare

    @property
    def closed_by(self) -> str:
        return (self.rare or _RARE_DEFAULTS).closed_by

    @closed_by.setter
    def closed_by(self, value: str) -> None:
        if self.rare is not None or value != _RARE_DEFAULTS.closed_by:
            self._rare_part().closed_by = value

    @property
    def disputes(self) -> int:
        return (self.rare or _RARE_DEFAULTS).disputes

    @disputes.setter
    def disputes(self, value: int) -> None:
        if self.rare is not None or value != _RARE_DEFAULTS.disputes:
            self._rare_part().disputes = value

    @property
    def flagged_minor(self) -> int:
        return (self.rare or _RARE_DEFAULTS).flagged_minor

    @flagged_minor.setter
    def flagged_minor(self, value: int) -> None:
        if self.rare is not None or value != _RARE_DEFAULTS.flagged_minor:
            self._rare_part().flagged_minor = value

    @property
    def payers(self) -> list[str] | None:
        return (self.rare or _RARE_DEFAULTS).payers

    @payers.setter
    def payers(self, value: list[str] | None) -> None:
        if self.rare is not None or value is not None:
            self._rare_part().payers = value

    @property
    def reopened(self) -> bool:
        return (self.rare or _RARE_DEFAULTS).reopened

    @reopened.setter
    def reopened(self, value: bool) -> None:
        if self.rare is not None or value:
            self._rare_part().reopened = value

    @property
    def settled_at(self) -> datetime | None:
        return (self.rare or _RARE_DEFAULTS).settled_at

    @settled_at.setter
    def settled_at(self, value: datetime | None) -> None:
        if self.rare is not None or value is not None:
            self._rare_part().settled_at = value

    def __reduce__(self) -> tuple[type[_Invoice], _InvoiceState]:
        """Pickled as its constructor's arguments, one flat tuple (see `state.pickling`)."""
        return _Invoice, (
            self.invoice_number,
            self.currency,
            self.amount_minor,
            self.open_minor,
            self.due_at,
            self.po_number,
            self.external_ids,
            self.channel,
            self.issued_us,
            self.rare,
            self.status,
        )


_InvoiceState: TypeAlias = tuple[
    str, str, int, int, datetime, str | None, tuple[str, ...], str, int, _Rare | None, str
]


def _new_invoice(event: InvoiceIssued, due_at: datetime) -> _Invoice:
    """The record of a newly issued invoice; `_set_open` opens it (and books it)."""
    amount = event.amount
    return _Invoice(
        event.invoice_number,
        amount.currency,
        amount.amount_minor,
        0,
        due_at,
        event.po_number,
        event.external_ids,
        sys.intern(event.channel),  # a handful of names: share one string each
        # An int is 16 bytes smaller than a datetime, and unlike the due date
        # (shared per day) every issue time is its own.
        (ensure_utc(event.issued_at) - _EPOCH) // _MICROSECOND,
        None,
        OPEN,
    )


class _Payment:
    """Where one payment's cash is: applications, unapplied remainder, unused credit."""

    __slots__ = (
        "amount_minor",
        "apps",
        "credit_minor",
        "currency",
        "handles",
        "payment_id",
        "pending",
        "stuck",
        "unapplied_minor",
    )

    def __init__(self, payment_id: str, currency: str, amount_minor: int) -> None:
        self.payment_id = payment_id
        self.currency = currency
        self.amount_minor = amount_minor
        self.apps: list[tuple[str, int]] = []  # (invoice_number, amount_minor), oldest first
        self.unapplied_minor = 0
        self.credit_minor = 0
        self.pending: PaymentReceived | None = None  # kept while unapplied, for retries
        self.handles: tuple[str, ...] = ()  # other ids disputes may name (see _HANDLE_MARK)
        self.stuck: _Stuck | None = None  # what its last failed match looked at

    def is_spent(self) -> bool:
        return not self.apps and not self.unapplied_minor and not self.credit_minor

    def __reduce__(self) -> tuple[type[_Payment], tuple[str, str, int], tuple[Any, ...]]:
        """Constructor arguments, then the rest as one tuple (see `state.pickling`)."""
        state = (
            self.apps,
            self.unapplied_minor,
            self.credit_minor,
            self.pending,
            self.handles,
            self.stuck,
        )
        return _Payment, (self.payment_id, self.currency, self.amount_minor), state

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        (
            self.apps,
            self.unapplied_minor,
            self.credit_minor,
            self.pending,
            self.handles,
            self.stuck,
        ) = state


@dataclass(slots=True)
class _Stuck:
    """A failed match of waiting cash: what it looked at, from which change of the
    book on, and for which cash and policy. Valid while all of these hold."""

    footprint: Footprint
    mark: int
    cash_minor: int
    event: PaymentReceived
    policy: MatchPolicy

    def __reduce__(self) -> tuple[type[Any], tuple[Any, ...]]:
        return by_constructor(self)  # see `state.pickling`


# Book changes kept for waiting cash before the log is dropped (all retry then).
_MAX_LOGGED_CHANGES = 512


@dataclass(slots=True)
class _Dispute:
    payment_id: str
    currency: str
    hits: list[tuple[str, int]] = field(default_factory=list)  # "" = unapplied/credit cash
    # Of the "" cash, what was still waiting for an invoice, and the payment it
    # waited with: a won dispute puts it back to wait (and retries it).
    unapplied_minor: int = 0
    pending: PaymentReceived | None = None

    def __reduce__(self) -> tuple[type[Any], tuple[Any, ...]]:
        return by_constructor(self)  # see `state.pickling`


class _DueGroup:
    """Invoices sharing a due date share their dunning checkpoints (and the datetime)."""

    __slots__ = ("done_until", "due_at", "numbers")

    def __init__(self, due_at: datetime, done_until: datetime) -> None:
        self.due_at = due_at
        self.done_until = done_until
        self.numbers: list[str] = []

    def __reduce__(self) -> tuple[type[_DueGroup], tuple[datetime, datetime], list[str]]:
        return _DueGroup, (self.due_at, self.done_until), self.numbers

    def __setstate__(self, numbers: list[str]) -> None:
        self.numbers = numbers


class Ledger:
    """One customer's state. Picklable; mutated in place by `apply` and `on_timer`."""

    __slots__ = (
        "book",
        "clock",
        "credit",
        "customer_id",
        "deductions",
        "disputes",
        "drop_days",
        "due_groups",
        "handles",
        "invoices",
        "open_totals",
        "orphans",
        "payments",
        "pending_adjustments",
        "prefixes",
        "profile",
        "seen",
        "seen_order",
        "timers",
        "unapplied",
    )

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        self.profile: CustomerUpserted | None = None
        self.book = OpenBook()
        self.book.changes = []  # waiting cash skips retries no change can help
        self.invoices: dict[str, _Invoice] = {}
        self.payments: dict[str, _Payment] = {}
        self.handles: dict[str, str] = {}  # namespaced handle -> payment id
        self.prefixes: set[str] = set()  # letter prefixes of invoice numbers seen ("INV")
        self.unapplied: list[str] = []  # payment ids, arrival order
        self.credit: dict[str, list[str]] = {}  # currency -> payment ids with credit, FIFO
        self.disputes: dict[str, _Dispute] = {}
        # invoice -> deductions refused for want of allowance: (payment id, gap, code)
        self.deductions: dict[str, list[tuple[str, int, str]]] = {}
        self.pending_adjustments: dict[str, list[InvoiceAdjusted]] = {}
        # payment id (or handle) -> refunds that came before their payment: (event, minor)
        self.orphans: dict[str, list[tuple[PaymentReversed, int]]] = {}
        self.open_totals: dict[str, int] = {}  # currency -> sum of positive open amounts
        self.seen: set[str] = set()  # ids remembered for idempotency ...
        self.seen_order: deque[str] = deque()  # ... and their arrival order (FIFO bound)
        self.due_groups: dict[datetime, _DueGroup] = {}
        self.drop_days: dict[datetime, list[tuple[bool, str]]] = {}  # (is_invoice, key)
        self.timers: list[tuple[datetime, int, datetime]] = []  # heap (fire_at, kind, key)
        self.clock: datetime | None = None  # `at` of the last step (see `_step_time`)

    def __reduce__(self) -> tuple[type[Ledger], tuple[str], tuple[object, ...]]:
        """Built empty for its customer, then filled (see `state.pickling`)."""
        return Ledger, (self.customer_id,), state_of(self, _LEDGER_FIELDS)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        restore(self, _LEDGER_FIELDS, state)

    # --- read-only views ----------------------------------------------------

    def invoice(self, invoice_number: str) -> InvoiceView | None:
        inv = self.invoices.get(invoice_number)
        return None if inv is None else _view(inv)

    def open_items(self) -> Iterator[InvoiceView]:
        """Invoices with a positive open amount (aging, demo)."""
        return (_view(inv) for inv in self.invoices.values() if inv.open_minor > 0)

    def all_invoices(self) -> Iterator[InvoiceView]:
        return (_view(inv) for inv in self.invoices.values())

    def unapplied_minor(self, currency: str) -> int:
        return sum(
            self.payments[pid].unapplied_minor
            for pid in self.unapplied
            if self.payments[pid].currency == currency
        )

    def credit_minor(self, currency: str) -> int:
        return sum(self.payments[pid].credit_minor for pid in self.credit.get(currency, ()))

    def is_empty(self) -> bool:
        return not (
            self.invoices
            or self.payments
            or self.pending_adjustments
            or self.orphans
            or self.disputes
            or self.profile is not None
        )


# Ledger state after its customer id, in `__reduce__` order (a test checks every slot).
_LEDGER_FIELDS = (
    "profile",
    "book",
    "invoices",
    "payments",
    "handles",
    "prefixes",
    "unapplied",
    "credit",
    "disputes",
    "deductions",
    "pending_adjustments",
    "orphans",
    "open_totals",
    "seen",
    "seen_order",
    "due_groups",
    "drop_days",
    "timers",
    "clock",
)


def _view(inv: _Invoice) -> InvoiceView:
    return InvoiceView(
        inv.invoice_number,
        inv.currency,
        inv.amount_minor,
        inv.open_minor,
        inv.due_at,
        inv.issued_at,
        inv.status,
        inv.flagged_minor,
        inv.disputes > 0,
    )


def _status(inv: _Invoice, at: datetime) -> str:
    """Derived status: overdue comes from the due date and `at`, never stored as truth."""
    rare = inv.rare or _RARE_DEFAULTS  # read once: this runs for every status row
    if rare.disputes:
        return DISPUTED
    if inv.open_minor <= 0:
        return _CLOSED_STATUS[rare.closed_by]
    if rare.reopened:
        return REOPENED
    if at > inv.due_at:
        return OVERDUE
    if inv.open_minor < inv.amount_minor:
        return PARTIALLY_PAID
    return OPEN


class _Run:
    """One step of work (an event or a timer): outcome ids, times, touched invoices.

    `now` (also `at`, the outcomes' time) is the step's own time: statuses,
    schedules and retention are judged at it. `step_at` orders the outcomes:
    `now`, or just past the customer's previous step (see `_step_time`).
    """

    __slots__ = ("at", "key", "ledger", "now", "out", "policy", "step_at", "touched")

    def __init__(
        self, ledger: Ledger, policy: LedgerPolicy, key: str, now: datetime, step_at: datetime
    ) -> None:
        self.ledger = ledger
        self.policy = policy
        self.key = key
        self.now = now
        self.at = now
        self.step_at = step_at
        self.out: list[Outcome] = []
        self.touched: dict[str, None] = {}

    def oid(self, kind: str, *parts: object) -> str:
        """Deterministic id: the event, the parts, and the position in this run's output."""
        return make_outcome_id(kind, self.key, *parts, len(self.out))

    @property
    def customer_id(self) -> str:
        return self.ledger.customer_id


# --- public API --------------------------------------------------------------


def apply(
    ledger: Ledger | None,
    customer_id: str,
    event: CustomerEvent,
    now: datetime,
    policy: LedgerPolicy,
) -> tuple[Ledger | None, list[Outcome]]:
    """Apply one customer event; returns the ledger (None when empty) and outcomes.

    Outcomes carry `at = event.occurred_at` (statuses are derived at that time
    too) and `step_at`, their place in the customer's order of steps (see
    `_step_time`), so a replay is byte-identical whatever the processing time;
    `now` is only checked. Timers are the caller's to fire
    with `on_timer` before the event when `next_wakeup` has passed.
    """
    ensure_utc(now)
    state = ledger if ledger is not None else Ledger(customer_id)
    at = ensure_utc(event.occurred_at)
    if _is_duplicate(state, event):  # changes nothing, the clock included
        run = _Run(state, policy, event.event_id, at, at)
        run.out.append(
            Duplicate(
                run.oid("duplicate"), run.at, _subject(event), event.event_id, step_at=run.step_at
            )
        )
    else:
        run = _Run(state, policy, event.event_id, at, _step_time(state, at))
        if not isinstance(event, InvoiceIssued):  # keyed by its number while held
            _remember(state, event.event_id, policy)
        _dispatch(run, event)
        _emit_statuses(run)
    _trim_changes(state)
    return (None if state.is_empty() else state), run.out


def on_timer(
    ledger: Ledger, customer_id: str, now: datetime, policy: LedgerPolicy
) -> tuple[Ledger | None, list[Outcome]]:
    """Fire what is due by `now`: overdue transitions, reminders, retention clean-up."""
    now = ensure_utc(now)
    run = _Run(ledger, policy, f"timer:{customer_id}", now, _step_time(ledger, now))
    while ledger.timers and ledger.timers[0][0] <= now:
        _, kind, key = heapq.heappop(ledger.timers)
        if kind == _TIMER_DUE:
            _fire_due_group(run, key)
        else:
            _fire_drop_day(run, key)
    _trim_changes(ledger)
    return (None if ledger.is_empty() else ledger), run.out


def _step_time(ledger: Ledger, at: datetime) -> datetime:
    """The `step_at` of this step: its own time, or one microsecond past the last step.

    Why: rows downstream keep the latest state of an invoice, payment or
    exception by the `step_at` of the outcome that wrote it. Events reach a customer
    out of time order (a bank credit dated midnight pays an invoice issued at
    09:00), and a state written by a later step must never lose to an earlier
    one, so a customer's steps carry strictly increasing times.
    """
    last = ledger.clock
    if last is not None and at <= last:
        at = last + _JUST_AFTER
    ledger.clock = at
    return at


def _trim_changes(ledger: Ledger) -> None:
    """The book's change log serves waiting cash only; it is bounded."""
    changes = ledger.book.changes
    if changes and (not ledger.unapplied or len(changes) > _MAX_LOGGED_CHANGES):
        ledger.book.forget_changes()


def next_wakeup(ledger: Ledger, policy: LedgerPolicy) -> datetime | None:
    """The earliest moment `on_timer` has work (may be early, never late)."""
    del policy
    return ledger.timers[0][0] if ledger.timers else None


def exposure(ledger: Ledger) -> dict[str, int]:
    """Credit exposure per currency: open balance including disputed (reopened) amounts."""
    return {cur: total for cur, total in ledger.open_totals.items() if total}


# --- dispatch ------------------------------------------------------------------


def _subject(event: CustomerEvent) -> str:
    """The id a `Duplicate` names: payment, invoice, dispute or customer."""
    if isinstance(event, (PaymentReceived, PaymentReversed, DisputeUpdated)):
        return event.payment_id
    if isinstance(event, (InvoiceIssued, InvoiceAdjusted)):
        return event.invoice_number
    return event.customer_id


def _is_duplicate(ledger: Ledger, event: CustomerEvent) -> bool:
    """Seen event id, seen payment id, or an invoice number already held."""
    if event.event_id in ledger.seen:
        return True
    if isinstance(event, PaymentReceived):
        pid = event.payment_id
        return f"payment:{pid}" in ledger.seen or pid in ledger.payments
    if isinstance(event, InvoiceIssued):
        return event.invoice_number in ledger.invoices
    return False


def _remember(ledger: Ledger, key: str, policy: LedgerPolicy) -> None:
    ledger.seen.add(key)
    ledger.seen_order.append(key)
    while len(ledger.seen_order) > policy.seen_ids_max:
        ledger.seen.discard(ledger.seen_order.popleft())


def _dispatch(run: _Run, event: CustomerEvent) -> None:
    if isinstance(event, InvoiceIssued):
        _on_invoice(run, event)
    elif isinstance(event, InvoiceAdjusted):
        _on_adjustment(run, event)
    elif isinstance(event, CustomerUpserted):
        _on_profile(run, event)
    else:
        if isinstance(event, PaymentReceived):
            _on_payment(run, event)
        elif isinstance(event, PaymentReversed):
            _on_reversal(run, event)
        else:
            _on_dispute(run, event)
        _retry_touched(run)


def _retry_touched(run: _Run) -> None:
    """Cash moved on some invoices: waiting payments in those currencies get
    another chance (an open amount they need may exist only now)."""
    ledger = run.ledger
    if not ledger.unapplied or not run.touched:
        return
    currencies = {
        ledger.invoices[number].currency for number in run.touched if number in ledger.invoices
    }
    for currency in sorted(currencies):
        _retry_unapplied(run, currency)


def _on_profile(run: _Run, event: CustomerUpserted) -> None:
    """A new profile may accept deductions it did not before, and its aliases
    and terms matter to waiting cash."""
    run.ledger.profile = event
    _recheck_deductions(run)
    _retry_unapplied(run)


def _emit_statuses(run: _Run) -> None:
    """One `invoice_status` per touched invoice, after the event's last change."""
    ledger = run.ledger
    for number in run.touched:
        inv = ledger.invoices.get(number)
        if inv is None:
            continue
        inv.status = _status(inv, run.now)
        _track_settlement(run, inv)
        run.out.append(_status_outcome(run, inv, run.oid("invoice_status", number)))


def _status_outcome(run: _Run, inv: _Invoice, outcome_id: str) -> InvoiceStatus:
    return InvoiceStatus(
        outcome_id,
        run.at,
        inv.invoice_number,
        run.customer_id,
        inv.status,
        inv.open_minor,
        inv.amount_minor,
        inv.currency,
        inv.due_at,
        inv.issued_at,
        inv.channel,
        step_at=run.step_at,
    )


# --- invoices --------------------------------------------------------------------


def _on_invoice(run: _Run, event: InvoiceIssued) -> None:
    ledger = run.ledger
    number = event.invoice_number
    amount = event.amount
    due_at = ensure_utc(event.due_at)
    group = ledger.due_groups.get(due_at)
    inv = _new_invoice(
        event, due_at if group is None else group.due_at
    )  # one datetime per due date
    ledger.invoices[number] = inv
    prefix = _prefix(normalize_reference(number))
    if prefix not in ledger.prefixes:
        ledger.prefixes.add(prefix)
        ledger.book.note_global_change()  # which texts name invoices may change
    _set_open(ledger, inv, amount.amount_minor, "cash")
    _schedule_due(run, inv)
    run.touched[number] = None
    for adjustment in ledger.pending_adjustments.pop(number, ()):
        _adjust(run, inv, adjustment)
    _retry_unapplied(run, amount.currency)
    _check_credit_limit(run, inv)


def _check_credit_limit(run: _Run, inv: _Invoice) -> None:
    profile = run.ledger.profile
    limit = profile.credit_limit if profile is not None else None
    currency = inv.currency
    if limit is None or limit.currency != currency:
        return
    exposure_minor = run.ledger.open_totals.get(currency, 0)
    if exposure_minor > limit.amount_minor:
        number = inv.invoice_number
        run.out.append(
            CreditLimitExceeded(
                run.oid("credit_limit_exceeded", number),
                run.at,
                run.customer_id,
                number,
                limit.amount_minor,
                exposure_minor,
                currency,
                step_at=run.step_at,
            )
        )


def _on_adjustment(run: _Run, event: InvoiceAdjusted) -> None:
    inv = run.ledger.invoices.get(event.invoice_number)
    if inv is None:
        # A memo may overtake its invoice; it is applied when the invoice arrives.
        run.ledger.pending_adjustments.setdefault(event.invoice_number, []).append(event)
        return
    _adjust(run, inv, event)
    _retry_unapplied(run, inv.currency)


def _adjust(run: _Run, inv: _Invoice, event: InvoiceAdjusted) -> None:
    """Credit memo, return, promotion (may go below zero: an explicit credit), void, write-off."""
    if event.amount is not None and event.amount.currency != inv.currency:
        return
    kind = event.kind
    whole = max(inv.open_minor, 0)
    amount = whole if event.amount is None else event.amount.amount_minor
    if kind is AdjustmentKind.VOID:
        _set_open(run.ledger, inv, min(inv.open_minor, 0), "void")
    elif kind is AdjustmentKind.WRITE_OFF:
        _set_open(run.ledger, inv, inv.open_minor - min(amount, whole), "write_off")
    else:
        _set_open(run.ledger, inv, inv.open_minor - amount, "credit")
    run.touched[inv.invoice_number] = None


def _set_open(ledger: Ledger, inv: _Invoice, open_minor: int, closing: str) -> None:
    """The one place open amounts change: totals and book follow; `closing` names why at 0."""
    old = inv.open_minor
    inv.flagged_minor = min(inv.flagged_minor, max(open_minor, 0))
    totals = ledger.open_totals
    totals[inv.currency] = totals.get(inv.currency, 0) + max(open_minor, 0) - max(old, 0)
    if open_minor > 0:
        if old > 0:
            ledger.book.set_open(inv.invoice_number, open_minor)
        else:
            inv.open_minor = open_minor
            ledger.book.add(inv)
        return
    if old > 0:
        ledger.book.remove(inv.invoice_number)
    inv.open_minor = open_minor
    inv.reopened = False
    inv.closed_by = closing


def _reopen(run: _Run, inv: _Invoice, amount_minor: int) -> None:
    was_closed = inv.open_minor <= 0
    _set_open(run.ledger, inv, inv.open_minor + amount_minor, "cash")
    inv.reopened = True
    if was_closed and inv.open_minor > 0:
        _schedule_due(run, inv)
    run.touched[inv.invoice_number] = None


# --- payments ----------------------------------------------------------------------


def _on_payment(run: _Run, event: PaymentReceived) -> None:
    ledger = run.ledger
    pid = event.payment_id
    _remember(ledger, f"payment:{pid}", run.policy)
    amount = event.amount
    pay = _Payment(pid, amount.currency, amount.amount_minor)
    if amount.amount_minor <= 0:
        run.out.append(_unapplied(run, pay, amount.amount_minor, "non_positive_amount", None))
        return
    ledger.payments[pid] = pay
    _learn_handles(ledger, pay, event)
    held_minor = _settle_cash(run, pay, event, amount.amount_minor, retry=False)
    if held_minor:
        _hold(ledger, pay, event, held_minor)
    for name in (pid, *pay.handles):
        for reversal, amount_minor in ledger.orphans.pop(name, ()):
            _reverse_late(run, pay, reversal, amount_minor)


def _learn_handles(ledger: Ledger, pay: _Payment, event: PaymentReceived) -> None:
    """Remember the handles a later dispute or refund may name instead of the id
    (the first payment of an order keeps the handle)."""
    handles = tuple(
        ref
        for ref in event.invoice_refs
        if _HANDLE_MARK in ref and ref != pay.payment_id and ref not in ledger.handles
    )
    for handle in handles:
        ledger.handles[handle] = pay.payment_id
    pay.handles = handles


def _payment_named(ledger: Ledger, payment_id: str) -> _Payment | None:
    """The payment an id names: its own id, else a handle it listed."""
    pay = ledger.payments.get(payment_id)
    if pay is None:
        real = ledger.handles.get(payment_id)
        pay = ledger.payments.get(real) if real is not None else None
    return pay


def _forget_payment(ledger: Ledger, pay: _Payment) -> None:
    del ledger.payments[pay.payment_id]
    for handle in pay.handles:
        if ledger.handles.get(handle) == pay.payment_id:
            del ledger.handles[handle]


def _settle_cash(
    run: _Run, pay: _Payment, event: PaymentReceived, cash_minor: int, *, retry: bool
) -> int:
    """Match `cash_minor` of a payment and apply it; returns the cash still held.

    Held cash is reported with `Unapplied` when it first waits and whenever part
    of it was applied (so the exception shows what is left). What a match leaves
    over is held too while the payer names invoices we have never seen (they
    may still come); otherwise it is customer credit.
    """
    ledger = run.ledger
    original = event
    if cash_minor != event.amount.amount_minor:
        event = replace(event, amount=Money(cash_minor, pay.currency))
    book = ledger.book
    mark = book.change_mark()
    footprint = book.footprint = Footprint() if retry else None  # first tries never skip
    try:
        served = _served(ledger, pay, event)
        match = _match_payment(book, event, run.policy.match, served)
        held = _hold_reason(ledger, event, match, served)
    finally:
        book.footprint = None
    if held is not None:
        if footprint is not None:
            pay.stuck = _Stuck(footprint, mark, cash_minor, original, run.policy.match)
        if not retry:
            run.out.append(_unapplied(run, pay, cash_minor, held, match))
        return cash_minor
    pay.stuck = None
    applied_minor = sum(_apply_allocation(run, pay, alloc, match) for alloc in match.allocations)
    excess_minor = cash_minor - applied_minor
    if excess_minor <= 0:
        return 0
    awaited = _awaited_invoices(ledger, event)
    if not awaited:
        _add_credit(run, pay, excess_minor)
        return 0
    if applied_minor or not retry:
        unapplied = _unapplied(run, pay, excess_minor, "awaiting_invoice", None)
        note = f"named, not issued yet: {', '.join(awaited)}"
        run.out.append(replace(unapplied, candidates=awaited, evidence=(note,)))
    return excess_minor


def _served(ledger: Ledger, pay: _Payment, event: PaymentReceived) -> frozenset[str]:
    """Open invoices whose remittance lines this payment has already paid in full.

    Why: the rest of the payment is not for them. An invoice kept open by a
    refused deduction would otherwise take the share of an invoice not issued
    yet. Cash that pays by reference has no such bound: when it comes back
    (a won dispute) it may go where it went before.
    """
    if not event.remittance or not pay.apps:
        return frozenset()
    asked: dict[str, int] = {}
    for line in event.remittance:
        hit = ledger.book.find(line.invoice_ref)
        if hit is not None:
            asked[hit.invoice_number] = asked.get(hit.invoice_number, 0) + line.paid_minor
    applied: dict[str, int] = {}
    for number, amount_minor in pay.apps:
        applied[number] = applied.get(number, 0) + amount_minor
    return frozenset(number for number, want in asked.items() if applied.get(number, 0) >= want)


def _hold(ledger: Ledger, pay: _Payment, event: PaymentReceived, held_minor: int) -> None:
    """Keep `held_minor` of a payment waiting for a retry (arrival order kept)."""
    if not pay.unapplied_minor:
        ledger.unapplied.append(pay.payment_id)
    pay.unapplied_minor = held_minor
    pay.pending = event


def _awaited_invoices(ledger: Ledger, event: PaymentReceived) -> tuple[str, ...]:
    """Invoices the payer names that we have never held (not open, not settled).

    Why: a payment quoting "INV-1 / INV-2" that meets only INV-1 here must not
    turn INV-2's share into credit, or cash-before-invoice would end elsewhere
    than invoice-before-cash. Only references shaped like our numbers count
    (see `_named_invoices`); handles are not invoice numbers.
    """
    named = [ref for ref in _named_invoices(ledger, event) if _HANDLE_MARK not in ref]
    missing = [ref for ref in named if ref not in ledger.invoices and ledger.book.find(ref) is None]
    if not missing:
        return ()
    known = _known_keys(ledger)
    awaited = (ref for ref in missing if normalize_reference(ref) not in known)
    return tuple(dict.fromkeys(awaited))


def _known_keys(ledger: Ledger) -> set[str]:
    """Normalised numbers and external ids of every invoice held (rare path: built
    only when a payment leaves cash over and names something not open)."""
    return {
        normalize_reference(identifier)
        for inv in ledger.invoices.values()
        for identifier in (inv.invoice_number, *inv.external_ids)
    }


def _hold_reason(
    ledger: Ledger, event: PaymentReceived, match: Match, served: frozenset[str]
) -> str | None:
    """Why cash waits instead of being applied; None when the match is usable.

    A payment that names invoices we do not hold waits for them rather than being
    guessed onto another invoice by amount: that is what makes cash-before-invoice
    end where invoice-before-cash does. The exception is a mistyped reference:
    a fuzzy hit whose open amount the payment meets (`corroborated`) is applied,
    since a future invoice that both looks like an open one and costs the same
    is far less likely than a keying error. Naming an invoice already settled is held
    too (a likely double payment, for a person to decide). Invoices whose share
    this payment already paid (`served`) count as settled for it.
    """
    weak = (
        match.method == "none"
        or not match.allocations
        or (match.method in _WEAK_METHODS and not match.corroborated)
    )
    if not weak:
        return None
    named = _named_invoices(ledger, event)
    unresolved = bool(named) and all(_not_open(ledger, ref, served) for ref in named)
    if unresolved:
        settled = any(ref in ledger.invoices for ref in named)
        return "invoice_settled" if settled else "awaiting_invoice"
    return "no_match" if match.method == "none" or not match.allocations else None


def _not_open(ledger: Ledger, ref: str, served: frozenset[str]) -> bool:
    """Whether `ref` names no open invoice this payment may still pay."""
    found = ledger.book.find(ref)
    return found is None or found.invoice_number in served


def _named_invoices(ledger: Ledger, event: PaymentReceived) -> tuple[str, ...]:
    """Invoices the payer named: explicit refs, remittance lines, labelled refs in texts.

    A text token labelled only by its letter prefix ("AP RUN 0412") names one of
    our invoices only when our numbers use that prefix; keyword-labelled numbers
    ("Invoice #4711") always do. Until an invoice is seen, every label counts.
    """
    prefixes = ledger.prefixes
    texts = tuple(
        token.text
        for text in event.references
        for token in extract_references(text)
        if token.labelled
        and token.kind is RefKind.INVOICE
        and (not prefixes or _prefix(token.key) in prefixes or token.key.isdigit())
    )
    return event.invoice_refs + tuple(line.invoice_ref for line in event.remittance) + texts


def _prefix(key: str) -> str:
    """Leading letters of a normalised reference key ("INV100793" -> "INV")."""
    return key[: len(key) - len(core_key(key))]


def _unapplied(
    run: _Run, pay: _Payment, amount_minor: int, reason: str, match: Match | None
) -> Unapplied:
    return Unapplied(
        run.oid("unapplied", pay.payment_id),
        run.at,
        pay.payment_id,
        run.customer_id,
        amount_minor,
        pay.currency,
        reason,
        match.candidates if match else (),
        match.evidence if match else (),
        step_at=run.step_at,
    )


def _apply_allocation(run: _Run, pay: _Payment, alloc: Allocation, match: Match) -> int:
    """Apply one allocation and code its gap; returns the cash applied."""
    inv = run.ledger.invoices.get(alloc.invoice_number)
    if inv is None or inv.currency != pay.currency:
        return 0
    amount = min(alloc.applied_minor, max(inv.open_minor, 0))
    if amount > 0:
        _apply_cash(
            run,
            pay,
            inv,
            amount,
            method=match.method,
            confidence=match.confidence,
            evidence=match.evidence,
        )
    if alloc.gap_minor > 0 and alloc.gap_code:
        _code_gap(run, pay, inv, alloc.gap_minor, alloc.gap_code)
    return amount


def _apply_cash(
    run: _Run,
    pay: _Payment,
    inv: _Invoice,
    amount_minor: int,
    *,
    method: str,
    confidence: float,
    evidence: tuple[str, ...],
) -> None:
    number = inv.invoice_number
    _set_open(run.ledger, inv, inv.open_minor - amount_minor, "cash")
    pay.apps.append((number, amount_minor))
    pay.stuck = None
    if inv.payers is None:
        inv.payers = [pay.payment_id]
    elif inv.payers[-1] != pay.payment_id:
        inv.payers.append(pay.payment_id)
    run.touched[number] = None
    run.out.append(
        Applied(
            run.oid("applied", number, pay.payment_id),
            run.at,
            pay.payment_id,
            number,
            run.customer_id,
            amount_minor,
            pay.currency,
            method,
            confidence,
            evidence,
            step_at=run.step_at,
        )
    )


def _code_gap(run: _Run, pay: _Payment, inv: _Invoice, gap_minor: int, code: str) -> None:
    """Valid gaps close that part of the invoice; invalid ones stay open and are flagged."""
    valid = _gap_is_valid(run, inv, gap_minor, code)
    number = inv.invoice_number
    if valid:
        _set_open(run.ledger, inv, inv.open_minor - min(gap_minor, max(inv.open_minor, 0)), "cash")
    else:
        inv.flagged_minor = min(inv.flagged_minor + gap_minor, max(inv.open_minor, 0))
        if code.startswith("deduction:"):
            run.ledger.deductions.setdefault(number, []).append((pay.payment_id, gap_minor, code))
    run.touched[number] = None
    run.out.append(
        ShortPaid(
            run.oid("short_paid", number, pay.payment_id),
            run.at,
            pay.payment_id,
            number,
            run.customer_id,
            gap_minor,
            pay.currency,
            code,
            valid,
            step_at=run.step_at,
        )
    )


def _recheck_deductions(run: _Run) -> None:
    """Deductions refused for want of allowance are judged again under a new profile.

    Why: the customer master may reach us after the remittance; a deduction the
    allowance covers must end accepted whichever came first. Accepted ones
    close their part of the invoice and are reported again as valid.
    """
    ledger = run.ledger
    for number, items in list(ledger.deductions.items()):
        inv = ledger.invoices.get(number)
        if inv is None or inv.open_minor <= 0:
            del ledger.deductions[number]
            continue
        refused = [item for item in items if not _accept_deduction(run, inv, *item)]
        if refused:
            ledger.deductions[number] = refused
        else:
            del ledger.deductions[number]


def _accept_deduction(run: _Run, inv: _Invoice, payment_id: str, gap_minor: int, code: str) -> bool:
    """Close a formerly refused deduction when it is valid now; False when not."""
    if not _gap_is_valid(run, inv, gap_minor, code):
        return False
    number = inv.invoice_number
    closed_minor = min(gap_minor, max(inv.open_minor, 0))
    inv.flagged_minor = max(inv.flagged_minor - closed_minor, 0)
    _set_open(run.ledger, inv, inv.open_minor - closed_minor, "cash")
    run.touched[number] = None
    run.out.append(
        ShortPaid(
            run.oid("short_paid", number, payment_id),
            run.at,
            payment_id,
            number,
            run.customer_id,
            gap_minor,
            inv.currency,
            code,
            True,
            step_at=run.step_at,
        )
    )
    return True


def _gap_is_valid(run: _Run, inv: _Invoice, gap_minor: int, code: str) -> bool:
    if code in _CLOSING_GAPS:
        return True
    if code.startswith("deduction:"):
        profile = run.ledger.profile
        allowance_bps = profile.allowance_bps if profile is not None else 0
        return gap_minor * 10_000 <= inv.amount_minor * allowance_bps
    if code == "unexplained":
        return gap_minor <= run.policy.short_pay_tolerance_minor
    return False


def _add_credit(run: _Run, pay: _Payment, excess_minor: int) -> None:
    ledger = run.ledger
    if not pay.credit_minor:
        ledger.credit.setdefault(pay.currency, []).append(pay.payment_id)
    pay.credit_minor += excess_minor
    run.out.append(
        Overpaid(
            run.oid("overpaid", pay.payment_id),
            run.at,
            pay.payment_id,
            run.customer_id,
            excess_minor,
            pay.currency,
            step_at=run.step_at,
        )
    )


def _retry_unapplied(run: _Run, currency: str | None = None) -> None:
    """Give waiting payments another chance, in arrival order, until none moves.

    Why repeat: cash applied in one pass changes open amounts, which may be
    what an earlier waiting payment needed; the same events in another order
    would have met that book. Cost: at most one `match_payment` per waiting
    payment in `currency` per pass (the matcher never crosses currencies); a
    pass that applies nothing ends the loop, so passes <= waiting payments + 1.
    A payment whose last failed match no book change since can reach (see
    `_still_stuck`) is not matched again: that retry would fail the same way.
    """
    ledger = run.ledger
    moved = True
    while moved and ledger.unapplied:
        moved = False
        for pid in list(ledger.unapplied):
            pay = ledger.payments.get(pid)
            if pay is None or (currency is not None and pay.currency != currency):
                continue
            if pay.pending is None or not pay.unapplied_minor:
                continue
            if _still_stuck(ledger, pay, run.policy.match):
                continue
            before = pay.unapplied_minor
            held_minor = _settle_cash(run, pay, pay.pending, before, retry=True)
            if held_minor == before:
                continue
            moved = True
            pay.unapplied_minor = held_minor
            if not held_minor:
                pay.pending = None
                ledger.unapplied.remove(pid)


def _still_stuck(ledger: Ledger, pay: _Payment, policy: MatchPolicy) -> bool:
    """Whether matching this waiting cash again must fail as it did last time:
    same cash, event and policy, and no book change since reaches a look-up of
    that match (its `Footprint`). A failed retry changes nothing, so skipping
    it is exact. The mark moves on, so a later check looks only at newer changes."""
    stuck = pay.stuck
    if stuck is None or stuck.cash_minor != pay.unapplied_minor or stuck.policy != policy:
        return False
    if stuck.event is not pay.pending:
        return False
    changes = ledger.book.changes_since(stuck.mark)
    if changes is None:
        return False
    if any(stuck.footprint.sees(inv, old, new) for inv, old, new in changes):
        return False
    stuck.mark = ledger.book.change_mark()
    return True


# --- money going back ----------------------------------------------------------------


def _take_back(run: _Run, pay: _Payment, amount_minor: int) -> tuple[list[tuple[str, int]], int]:
    """Take cash back from a payment: unapplied, then credit, then applications newest
    first (reopening them). Returns the hits ("" = not on an invoice) and the rest
    that found nothing."""
    ledger = run.ledger
    pay.stuck = None
    hits: list[tuple[str, int]] = []
    rest = amount_minor
    take = min(pay.unapplied_minor, rest)
    if take:
        pay.unapplied_minor -= take
        rest -= take
        hits.append(("", take))
        if not pay.unapplied_minor:
            pay.pending = None
            ledger.unapplied.remove(pay.payment_id)
    take = min(pay.credit_minor, rest)
    if take:
        _drop_credit(ledger, pay, take)
        rest -= take
        hits.append(("", take))
    while rest > 0 and pay.apps:
        number, applied = pay.apps[-1]
        take = min(applied, rest)
        rest -= take
        if take == applied:
            pay.apps.pop()
        else:
            pay.apps[-1] = (number, applied - take)
        inv = ledger.invoices.get(number)
        if inv is not None:
            _reopen(run, inv, take)
        hits.append((number, take))
    return hits, rest


def _drop_credit(ledger: Ledger, pay: _Payment, amount_minor: int) -> None:
    pay.credit_minor -= amount_minor
    if not pay.credit_minor:
        queue = ledger.credit[pay.currency]
        queue.remove(pay.payment_id)
        if not queue:
            del ledger.credit[pay.currency]


# Refunds waiting for a payment not seen yet, per customer (oldest leave first).
MAX_ORPHAN_REVERSALS = 1_000


def _on_reversal(run: _Run, event: PaymentReversed) -> None:
    pay = _payment_named(run.ledger, event.payment_id)
    total = event.amount.amount_minor
    hits, rest = _take_back(run, pay, total) if pay is not None else ([], total)
    currency = event.amount.currency
    _emit_reversed(run, event.payment_id, currency, hits, rest=rest, reason=_why(event))
    if pay is not None:
        _forget_if_spent(run, pay)
    elif total > 0:
        _keep_orphan(run.ledger, event, total)


def _why(event: PaymentReversed) -> str:
    return f"{event.kind.value}: {event.reason}" if event.reason else event.kind.value


def _keep_orphan(ledger: Ledger, event: PaymentReversed, amount_minor: int) -> None:
    """A refund of a payment not seen yet is reported at once ("nothing left to
    reverse") and kept: deliveries travel apart, and its payment may still come."""
    ledger.orphans.setdefault(event.payment_id, []).append((event, amount_minor))
    while sum(map(len, ledger.orphans.values())) > MAX_ORPHAN_REVERSALS:
        oldest = next(iter(ledger.orphans))
        waiting = ledger.orphans[oldest]
        waiting.pop(0)
        if not waiting:
            del ledger.orphans[oldest]


def _reverse_late(run: _Run, pay: _Payment, event: PaymentReversed, amount_minor: int) -> None:
    """The payment of an earlier refund arrived: take the refund back from it now,
    as if it had come first, and withdraw the earlier "nothing left" row (a
    negative `reversed` on no invoice) so the journal counts the money out once."""
    if pay.currency != event.amount.currency:
        return
    hits, rest = _take_back(run, pay, amount_minor)
    reason = f"{_why(event)} (its payment arrived after it)"
    _emit_reversed(run, event.payment_id, pay.currency, hits, rest=0, reason=reason)
    taken_minor = amount_minor - rest
    if taken_minor:
        withdrawn = [("", -taken_minor)]
        _emit_reversed(run, event.payment_id, pay.currency, withdrawn, rest=0, reason=reason)
    _forget_if_spent(run, pay)


def _emit_reversed(
    run: _Run,
    payment_id: str,
    currency: str,
    hits: list[tuple[str, int]],
    *,
    rest: int,
    reason: str,
) -> None:
    """One `reversed` per hit, so the applications journal nets to what stays
    applied; a part that found nothing to take is reported, not invented."""
    rows = [*hits, ("", rest)] if rest else hits
    for index, (number, amount) in enumerate(rows):
        unmatched = rest and index == len(rows) - 1
        run.out.append(
            Reversed(
                run.oid("reversed", number, payment_id),
                run.at,
                payment_id,
                number,
                run.customer_id,
                amount,
                currency,
                f"{reason} (nothing left to reverse)" if unmatched else reason,
                step_at=run.step_at,
            )
        )


def _forget_if_spent(run: _Run, pay: _Payment) -> None:
    """A payment with nothing left stays until the retention window passes (idempotency)."""
    if pay.is_spent():
        _schedule_drop(run, is_invoice=False, key=pay.payment_id, settled_at=run.now)


# --- disputes ---------------------------------------------------------------------------


def _on_dispute(run: _Run, event: DisputeUpdated) -> None:
    """One step of a dispute. Steps may arrive out of order (a provider's webhooks
    for one dispute can travel apart), so a decided dispute is remembered and a
    step of it arriving late changes nothing: a won dispute stays won whether
    its "opened" came first or last."""
    closed_key = f"dispute-closed:{event.dispute_id}"
    if closed_key in run.ledger.seen:
        return
    phase = event.phase
    dispute = run.ledger.disputes.get(event.dispute_id)
    if phase not in (DisputePhase.OPENED, DisputePhase.FUNDS_WITHDRAWN):
        _remember(run.ledger, closed_key, run.policy)
    if phase in (DisputePhase.OPENED, DisputePhase.FUNDS_WITHDRAWN):
        if dispute is None:
            _open_dispute(run, event)
    elif phase in (DisputePhase.WON, DisputePhase.FUNDS_REINSTATED):
        if dispute is not None:
            _win_dispute(run, event, dispute)
    else:
        if dispute is None:
            dispute = _open_dispute(run, event)
        _lose_dispute(run, event, dispute)


def _open_dispute(run: _Run, event: DisputeUpdated) -> _Dispute:
    """Reverse the applications the disputed cash hit (`reversed`, like a refund, so
    a won dispute's re-application does not count twice); those invoices become
    disputed."""
    ledger = run.ledger
    pay = _payment_named(ledger, event.payment_id)
    dispute = _Dispute(pay.payment_id if pay else event.payment_id, event.amount.currency)
    ledger.disputes[event.dispute_id] = dispute
    total = event.amount.amount_minor
    if pay is not None and pay.unapplied_minor:
        dispute.unapplied_minor = min(pay.unapplied_minor, total)
        dispute.pending = pay.pending
    hits, rest = _take_back(run, pay, total) if pay is not None else ([], total)
    for number, _ in hits:
        inv = ledger.invoices.get(number) if number else None
        if inv is not None:
            inv.disputes += 1
    dispute.hits = hits + ([("", rest)] if rest else [])
    _chargebacks(run, event, dispute, "opened")
    reason = f"chargeback: {event.reason}" if event.reason else "chargeback"
    _emit_reversed(run, dispute.payment_id, dispute.currency, hits, rest=rest, reason=reason)
    return dispute


def _win_dispute(run: _Run, event: DisputeUpdated, dispute: _Dispute) -> None:
    """Re-apply what the dispute took. Cash that was waiting for an invoice waits
    again (and is retried: the invoice may have come meanwhile); other cash not
    on an invoice returns as credit."""
    ledger = run.ledger
    del ledger.disputes[event.dispute_id]
    pay = ledger.payments.get(dispute.payment_id)
    _chargebacks(run, event, dispute, "won")
    if pay is None:
        return
    evidence = (f"dispute {event.dispute_id} won", "rule: chargeback_won")
    pending = dispute.pending
    waiting_minor = dispute.unapplied_minor if pending is not None else 0
    for number, amount in dispute.hits:
        inv = ledger.invoices.get(number) if number else None
        applied = 0
        if pending is not None and not number and waiting_minor:
            applied = min(amount, waiting_minor)
            waiting_minor -= applied
            _hold(ledger, pay, pending, pay.unapplied_minor + applied)
        if inv is not None:
            inv.disputes -= 1
            run.touched[number] = None
            applied = min(amount, max(inv.open_minor, 0))
            if applied:
                _apply_cash(
                    run,
                    pay,
                    inv,
                    applied,
                    method="chargeback_won",
                    confidence=1.0,
                    evidence=evidence,
                )
        if amount - applied:
            _add_credit(run, pay, amount - applied)
    if pay.unapplied_minor:
        _retry_unapplied(run, pay.currency)


def _lose_dispute(run: _Run, event: DisputeUpdated, dispute: _Dispute) -> None:
    """The money stays out; disputed invoices stay open as reopened."""
    ledger = run.ledger
    ledger.disputes.pop(event.dispute_id, None)
    for number, _ in dispute.hits:
        inv = ledger.invoices.get(number) if number else None
        if inv is not None:
            inv.disputes -= 1
            inv.reopened = inv.open_minor > 0
            run.touched[number] = None
    if event.phase is DisputePhase.LOST:
        _chargebacks(run, event, dispute, "lost")
    pay = ledger.payments.get(dispute.payment_id)
    if pay is not None:
        _forget_if_spent(run, pay)


def _chargebacks(run: _Run, event: DisputeUpdated, dispute: _Dispute, status: str) -> None:
    """One `chargeback` per hit; the dispute fee is coded once, on the first.
    Each names the payment the dispute hit (a handle is resolved to it)."""
    fee_minor = event.fee_minor
    payment_id = dispute.payment_id
    for number, amount in dispute.hits or [("", 0)]:
        run.out.append(
            Chargeback(
                run.oid("chargeback", number, event.payment_id, status),
                run.at,
                payment_id,
                number,
                run.customer_id,
                amount,
                event.amount.currency,
                status,
                event.dispute_id,
                fee_minor,
                step_at=run.step_at,
            )
        )
        fee_minor = 0


# --- timers ------------------------------------------------------------------------------


def _schedule_due(run: _Run, inv: _Invoice) -> None:
    """Put an open invoice in its due-date group; the group owns one timer."""
    ledger = run.ledger
    due_at = inv.due_at
    group = ledger.due_groups.get(due_at)
    if group is None:
        fire_at = _next_checkpoint(run, due_at, run.now)
        if fire_at is None:
            return
        group = ledger.due_groups[due_at] = _DueGroup(due_at, run.now)
        heapq.heappush(ledger.timers, (fire_at, _TIMER_DUE, due_at))
    group.numbers.append(inv.invoice_number)


def _next_checkpoint(run: _Run, due_at: datetime, after: datetime) -> datetime | None:
    steps = run.policy.dunning.steps_for(_segment(run.ledger))
    candidates = [moment for moment in (next_step_at(due_at, steps, after),) if moment]
    if after <= due_at:
        candidates.append(due_at + _JUST_AFTER)  # the overdue transition
    return min(candidates) if candidates else None


def _segment(ledger: Ledger) -> str:
    return ledger.profile.segment if ledger.profile is not None else "standard"


def _fire_due_group(run: _Run, due_at: datetime) -> None:
    ledger = run.ledger
    group = ledger.due_groups.get(due_at)
    if group is None:
        return
    now = run.now
    steps = run.policy.dunning.steps_for(_segment(ledger))
    step = latest_step(due_at, steps, group.done_until, now)
    crossing = group.done_until <= due_at < now
    alive: dict[str, None] = {}
    for number in group.numbers:
        inv = ledger.invoices.get(number)
        if inv is None or inv.open_minor <= 0 or number in alive:
            continue
        alive[number] = None
        if crossing:
            _timer_status(run, inv)
        if step is not None and not inv.disputes:
            run.out.append(
                ReminderDue(
                    make_outcome_id("reminder_due", run.customer_id, number, step.name, due_at),
                    now,
                    number,
                    run.customer_id,
                    step.name,
                    inv.open_minor,
                    inv.currency,
                    step_at=run.step_at,
                )
            )
    group.numbers = list(alive)
    group.done_until = max(group.done_until, now)
    fire_at = _next_checkpoint(run, due_at, now)
    if fire_at is None or not alive:
        del ledger.due_groups[due_at]
        return
    heapq.heappush(ledger.timers, (fire_at, _TIMER_DUE, due_at))


def _timer_status(run: _Run, inv: _Invoice) -> None:
    status = _status(inv, run.now)
    if status == inv.status:
        return
    inv.status = status
    number = inv.invoice_number
    outcome_id = make_outcome_id("invoice_status", run.customer_id, number, status, inv.due_at)
    run.out.append(_status_outcome(run, inv, outcome_id))


def _track_settlement(run: _Run, inv: _Invoice) -> None:
    """Settled invoices (nothing open, no dispute) are scheduled to leave the state."""
    settled = inv.open_minor <= 0 and not inv.disputes
    if not settled:
        inv.settled_at = None
    elif inv.settled_at is None:
        inv.settled_at = run.now
        _schedule_drop(run, is_invoice=True, key=inv.invoice_number, settled_at=run.now)


def _schedule_drop(run: _Run, *, is_invoice: bool, key: str, settled_at: datetime) -> None:
    """Retention is swept per day: one timer per day however many items settle."""
    ledger = run.ledger
    day = _drop_day(settled_at.date(), settled_at.tzinfo, run.policy.settled_retention_days)
    bucket = ledger.drop_days.get(day)
    if bucket is None:
        bucket = ledger.drop_days[day] = []
        heapq.heappush(ledger.timers, (day, _TIMER_DROP, day))
    bucket.append((is_invoice, key))


@lru_cache(maxsize=_DROP_DAY_CACHE_SIZE)
def _drop_day(settled_on: date, zone: tzinfo | None, retention_days: int) -> datetime:
    """The sweep after `retention_days` whole days. Memoised: payments settle
    on few distinct days, and the one datetime per day hashes once."""
    return datetime.combine(settled_on, _MIDNIGHT, zone) + timedelta(days=retention_days + 1)


def _fire_drop_day(run: _Run, day: datetime) -> None:
    ledger = run.ledger
    retention = timedelta(days=run.policy.settled_retention_days)
    dropped: dict[str, _Invoice] = {}
    for is_invoice, key in ledger.drop_days.pop(day, ()):
        if is_invoice:
            inv = ledger.invoices.get(key)
            if inv is not None and inv.settled_at and inv.settled_at + retention <= run.now:
                del ledger.invoices[key]
                ledger.deductions.pop(key, None)
                dropped[key] = inv
        else:
            pay = ledger.payments.get(key)
            if pay is not None and pay.is_spent() and not _in_dispute(ledger, key):
                _forget_payment(ledger, pay)
    if dropped:
        _prune_payments(ledger, dropped)


def _prune_payments(ledger: Ledger, dropped: dict[str, _Invoice]) -> None:
    """Applications to dropped invoices go with them; spent payments leave too.

    Only the payments the dropped invoices name as payers are visited, so a
    day's sweep costs what it drops, not the number of payments held.
    """
    payer_ids = (pid for inv in dropped.values() for pid in inv.payers or ())
    for pid in dict.fromkeys(payer_ids):
        pay = ledger.payments.get(pid)
        if pay is not None and any(number in dropped for number, _ in pay.apps):
            pay.apps = [app for app in pay.apps if app[0] not in dropped]
            pay.stuck = None
            if pay.is_spent() and not _in_dispute(ledger, pid):
                _forget_payment(ledger, pay)


def _in_dispute(ledger: Ledger, payment_id: str) -> bool:
    return any(d.payment_id == payment_id for d in ledger.disputes.values())
