"""Ledger invariants under random event streams (hypothesis).

- money is conserved per currency:
  received = applied (net of reversals) + unapplied + customer credit + reversed out
- no invoice goes below zero open except through an explicit credit (memo)
- applying any event twice equals applying it once
- the interleaving of cash and invoices does not change the final balances
"""

from __future__ import annotations

import pickle
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from unittest.mock import patch

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arrecon.state import ledger as ledger_module
from arrecon.state.events import (
    AdjustmentKind,
    DisputePhase,
    DisputeUpdated,
    InvoiceAdjusted,
    InvoiceIssued,
    PaymentReceived,
    PaymentReversed,
    ReversalKind,
)
from arrecon.state.ledger import CustomerEvent, Ledger, LedgerPolicy, apply, next_wakeup, on_timer
from arrecon.state.money import Money
from arrecon.state.outcomes import (
    Applied,
    Chargeback,
    Duplicate,
    Outcome,
    Reversed,
)

T0 = datetime(2026, 3, 2, tzinfo=UTC)
POLICY = LedgerPolicy()
NUMBERS = [f"INV-2026-{n:04d}" for n in (1001, 2002, 3003, 4004, 5005, 6006)]
CURRENCIES = ["USD", "EUR"]
FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def feed(events: list[CustomerEvent]) -> tuple[Ledger | None, list[Outcome]]:
    ledger: Ledger | None = None
    outcomes: list[Outcome] = []
    for event in events:
        ledger, out = apply(ledger, "C1", event, event.occurred_at, POLICY)
        outcomes.extend(out)
    return ledger, outcomes


@dataclass
class Model:
    """What the test knows independently of the ledger: cash in, cash still reversible."""

    events: list[CustomerEvent] = field(default_factory=list)
    invoices: dict[str, str] = field(default_factory=dict)  # number -> currency
    payments: dict[str, tuple[str, int]] = field(default_factory=dict)  # pid -> (cur, left)
    disputes: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (pid, amount)
    memo_numbers: set[str] = field(default_factory=set)
    received: Counter[str] = field(default_factory=Counter)

    def at(self) -> datetime:
        return T0 + timedelta(hours=6 * len(self.events))

    def add(self, event: CustomerEvent) -> None:
        self.events.append(event)


def _issue(data: st.DataObject, model: Model) -> None:
    number = data.draw(st.sampled_from([n for n in NUMBERS if n not in model.invoices]))
    currency = data.draw(st.sampled_from(CURRENCIES))
    amount = data.draw(st.integers(1, 50_000))
    at = model.at()
    model.invoices[number] = currency
    model.add(
        InvoiceIssued(f"i:{number}", at, number, Money(amount, currency), at, at + timedelta(10))
    )


def _pay(data: st.DataObject, model: Model) -> None:
    pid = f"P{len(model.events)}"
    currency = data.draw(st.sampled_from(CURRENCIES))
    amount = data.draw(st.integers(1, 60_000))
    refs = tuple(data.draw(st.lists(st.sampled_from(NUMBERS), max_size=2, unique=True)))
    model.payments[pid] = (currency, amount)
    model.received[currency] += amount
    model.add(
        PaymentReceived(
            f"p:{pid}", model.at(), pid, Money(amount, currency), "t", invoice_refs=refs
        )
    )


def _refund(data: st.DataObject, model: Model) -> None:
    pid = data.draw(st.sampled_from([p for p, (_, left) in model.payments.items() if left]))
    currency, left = model.payments[pid]
    amount = data.draw(st.integers(1, left))
    model.payments[pid] = (currency, left - amount)
    kind = data.draw(st.sampled_from(list(ReversalKind)))
    rid = f"R{len(model.events)}"
    model.add(PaymentReversed(rid, model.at(), pid, rid, kind, Money(amount, currency)))


def _dispute_open(data: st.DataObject, model: Model) -> None:
    pid = data.draw(st.sampled_from([p for p, (_, left) in model.payments.items() if left]))
    currency, left = model.payments[pid]
    amount = data.draw(st.integers(1, left))
    model.payments[pid] = (currency, left - amount)
    did = f"D{len(model.events)}"
    model.disputes[did] = (pid, amount)
    phase = data.draw(st.sampled_from([DisputePhase.OPENED, DisputePhase.FUNDS_WITHDRAWN]))
    model.add(DisputeUpdated(f"{did}:o", model.at(), did, pid, phase, Money(amount, currency)))


def _dispute_close(data: st.DataObject, model: Model) -> None:
    did = data.draw(st.sampled_from(sorted(model.disputes)))
    pid, amount = model.disputes.pop(did)
    currency, left = model.payments[pid]
    won = data.draw(st.booleans())
    if won:
        model.payments[pid] = (currency, left + amount)
    phase = DisputePhase.WON if won else DisputePhase.LOST
    model.add(
        DisputeUpdated(
            f"{did}:c", model.at(), did, pid, phase, Money(amount, currency), fee_minor=1500
        )
    )


def _memo(data: st.DataObject, model: Model) -> None:
    number = data.draw(st.sampled_from(sorted(model.invoices)))
    kind = data.draw(st.sampled_from(list(AdjustmentKind)))
    amount = data.draw(st.integers(1, 20_000))
    if kind in (AdjustmentKind.CREDIT_MEMO, AdjustmentKind.RETURN, AdjustmentKind.PROMOTION):
        model.memo_numbers.add(number)
    eid = f"a{len(model.events)}"
    money = Money(amount, model.invoices[number])
    model.add(InvoiceAdjusted(eid, model.at(), number, kind, money))


def draw_stream(data: st.DataObject, size: int) -> Model:
    """A random but coherent stream: refunds and disputes never exceed what is left."""
    model = Model()
    for _ in range(size):
        choices = [_pay]
        if len(model.invoices) < len(NUMBERS):
            choices.append(_issue)
        if any(left for _, left in model.payments.values()):
            choices += [_refund, _dispute_open]
        if model.disputes:
            choices.append(_dispute_close)
        if model.invoices:
            choices.append(_memo)
        data.draw(st.sampled_from(choices))(data, model)
    return model


def conserved(ledger: Ledger | None, outcomes: list[Outcome], currency: str) -> int:
    """applied (net) + unapplied + credit + reversed out, from outcomes and state."""
    applied = out = 0
    for row in outcomes:
        if getattr(row, "currency", currency) != currency:
            continue
        if isinstance(row, Applied):
            applied += row.amount_minor
        elif isinstance(row, Reversed):  # refunds and opened chargebacks alike
            out += row.amount_minor
            applied -= row.amount_minor if row.invoice_number else 0
        elif isinstance(row, Chargeback) and row.status == "won":
            out -= row.amount_minor
    held = ledger.unapplied_minor(currency) + ledger.credit_minor(currency) if ledger else 0
    return applied + held + out


@FAST
@given(st.data(), st.integers(1, 30))
def test_money_is_conserved(data: st.DataObject, size: int) -> None:
    model = draw_stream(data, size)
    ledger, outcomes = feed(model.events)
    for currency in CURRENCIES:
        assert conserved(ledger, outcomes, currency) == model.received[currency]


@FAST
@given(st.data(), st.integers(1, 30))
def test_no_invoice_below_zero_without_explicit_credit(data: st.DataObject, size: int) -> None:
    model = draw_stream(data, size)
    ledger, _ = feed(model.events)
    for view in ledger.all_invoices() if ledger else ():
        assert view.open_minor >= 0 or view.invoice_number in model.memo_numbers
        assert 0 <= view.flagged_minor <= max(view.open_minor, 0)


@FAST
@given(st.data(), st.integers(1, 25))
def test_applying_any_event_twice_equals_once(data: st.DataObject, size: int) -> None:
    model = draw_stream(data, size)
    doubled = list(model.events)
    for index in data.draw(st.lists(st.integers(0, len(model.events) - 1), max_size=8)):
        event = model.events[index]
        position = data.draw(st.integers(doubled.index(event) + 1, len(doubled)))
        doubled.insert(position, event)
    once, once_out = feed(model.events)
    twice, twice_out = feed(doubled)
    assert pickle.dumps(twice) == pickle.dumps(once)
    decisions = [row for row in twice_out if not isinstance(row, Duplicate)]
    assert decisions == once_out
    assert len(twice_out) - len(decisions) == len(doubled) - len(model.events)


Invoice = tuple[str, int]  # number, amount
Cash = tuple[str, tuple[str, ...], int]  # payment id, invoices it quotes, amount
Chargeback_ = tuple[str, int, DisputePhase]  # payment id, amount, final phase


@dataclass
class Book:
    """Invoices, payments that never pay more than asked, and chargebacks on them."""

    invoices: list[Invoice]
    payments: list[Cash]
    other_order: list[Cash]  # the same payments in another order
    chargebacks: list[Chargeback_]


@st.composite
def invoices_and_cash(draw: st.DrawFn) -> Book:
    """Invoices; payments quoting one of them, or one payment quoting two and
    paying both in full (they get no other payment); chargebacks on single-invoice
    payments, won or lost."""
    count = draw(st.integers(1, len(NUMBERS)))
    invoices = [(NUMBERS[n], draw(st.integers(100, 50_000))) for n in range(count)]
    payments: list[Cash] = []
    paired: set[str] = set()
    if count >= 2 and draw(st.booleans()):
        (first, first_minor), (second, second_minor) = draw(
            st.lists(st.sampled_from(invoices), min_size=2, max_size=2, unique=True)
        )
        paired = {first, second}
        payments.append(("P0", (first, second), first_minor + second_minor))
    for number, amount in invoices:
        left = 0 if number in paired else amount
        for _ in range(draw(st.integers(0, 3))):
            if left <= 0:
                break
            paid = draw(st.integers(1, left))
            left -= paid
            payments.append((f"P{len(payments)}", (number,), paid))
    singles = [(pid, paid) for pid, numbers, paid in payments if len(numbers) == 1]
    chargebacks: list[Chargeback_] = []
    picked = draw(st.lists(st.sampled_from(singles), unique=True, max_size=2)) if singles else []
    for pid, paid in picked:
        phase = draw(st.sampled_from([DisputePhase.WON, DisputePhase.LOST]))
        chargebacks.append((pid, draw(st.integers(1, paid)), phase))
    return Book(
        invoices, draw(st.permutations(payments)), draw(st.permutations(payments)), chargebacks
    )


def _cash_event(pid: str, numbers: tuple[str, ...], paid: int, at: datetime) -> CustomerEvent:
    """Every other payment quotes its invoices in free text, the rest as explicit ids."""
    money = Money(paid, "USD")
    narrative = int(pid[1:]) % 2 == 1
    refs = () if narrative else numbers
    texts = (f"Zahlung Rechnung {' / '.join(numbers)} danke",) if narrative else ()
    return PaymentReceived(f"p:{pid}", at, pid, money, "t", invoice_refs=refs, references=texts)


def _chargeback_steps(chargebacks: list[Chargeback_], swapped: list[bool]) -> list[Chargeback_]:
    """Opening and decision of each chargeback; `swapped` delivers the decision first."""
    steps: list[Chargeback_] = []
    for index, (pid, amount, phase) in enumerate(chargebacks):
        pair = [(pid, amount, DisputePhase.OPENED), (pid, amount, phase)]
        steps.extend(reversed(pair) if index < len(swapped) and swapped[index] else pair)
    return steps


def interleave(
    invoices: list[Invoice],
    cash: list[Cash | Chargeback_],
    order: list[bool],
) -> list[CustomerEvent]:
    """Invoices and cash each in their own order, merged by `order` (True = invoice)."""
    inv_iter, cash_iter = iter(invoices), iter(cash)
    merged: list[Invoice | Cash | Chargeback_] = []
    for pick_invoice in order:
        item = next(inv_iter if pick_invoice else cash_iter, None)
        if item is not None:
            merged.append(item)
    merged.extend(inv_iter)
    merged.extend(cash_iter)
    events: list[CustomerEvent] = []
    for step, item in enumerate(merged):
        at = T0 + timedelta(hours=step)
        if len(item) == 2:
            number, amount = item
            due = T0 + timedelta(days=60)
            events.append(InvoiceIssued(f"i:{number}", at, number, Money(amount, "USD"), at, due))
        elif isinstance(item[2], DisputePhase):
            pid, amount, phase = item
            money = Money(amount, "USD")
            events.append(DisputeUpdated(f"d:{pid}:{phase}", at, f"D{pid}", pid, phase, money))
        else:
            pid, numbers, paid = item
            events.append(_cash_event(pid, numbers, paid, at))
    return events


def balances(ledger: Ledger | None) -> tuple[dict[str, int], int, int]:
    assert ledger is not None
    opens = {view.invoice_number: view.open_minor for view in ledger.all_invoices()}
    return opens, ledger.unapplied_minor("USD"), ledger.credit_minor("USD")


@FAST
@given(invoices_and_cash(), st.lists(st.booleans(), max_size=40), st.lists(st.booleans()))
def test_cash_before_invoice_reaches_the_same_balances(
    book: Book, order: list[bool], swapped: list[bool]
) -> None:
    """Any interleaving of invoices with cash, payments in any order, a chargeback's
    decision before or after its opening: the same final balances."""
    reference_cash: list[Cash | Chargeback_] = [
        *book.payments,
        *_chargeback_steps(book.chargebacks, []),
    ]
    invoice_first, _ = feed(interleave(book.invoices, reference_cash, [True] * len(NUMBERS)))
    other_cash: list[Cash | Chargeback_] = [
        *book.other_order,
        *_chargeback_steps(book.chargebacks, swapped),
    ]
    shuffled, _ = feed(interleave(book.invoices, other_cash, order))
    assert balances(shuffled) == balances(invoice_first)
    assert balances(invoice_first)[1:] == (0, 0)


SHORT_MEMORY = LedgerPolicy(settled_retention_days=1)


@FAST
@given(st.data(), st.integers(1, 30))
def test_timers_interleaved_keep_the_book_sound(data: st.DataObject, size: int) -> None:
    """Reminders, overdue transitions and retention clean-up at random moments."""
    model = draw_stream(data, size)
    ledger: Ledger | None = None
    outcomes: list[Outcome] = []
    for event in model.events:
        if ledger is not None and data.draw(st.booleans()):
            moment = event.occurred_at - timedelta(hours=data.draw(st.integers(0, 5)))
            wake = next_wakeup(ledger, SHORT_MEMORY)
            ledger, fired = on_timer(ledger, "C1", moment, SHORT_MEMORY)
            assert all(row.at == moment for row in fired)
            assert fired == [] or (wake is not None and wake <= moment)
            outcomes.extend(fired)
        ledger, out = apply(ledger, "C1", event, event.occurred_at, SHORT_MEMORY)
        outcomes.extend(out)
    for view in ledger.all_invoices() if ledger else ():
        assert view.open_minor >= 0 or view.invoice_number in model.memo_numbers
    ids = [row.outcome_id for row in outcomes if not isinstance(row, Duplicate)]
    assert len(ids) == len(set(ids))


@FAST
@given(st.data(), st.integers(1, 30))
def test_skipping_hopeless_retries_changes_no_outcome(data: st.DataObject, size: int) -> None:
    """Waiting cash skips a retry when no book change since its last failed match
    reaches what that match looked at; retrying every time must give the same
    outcomes and the same balances."""
    model = draw_stream(data, size)
    skipping, skipped_outcomes = feed(model.events)
    with patch.object(ledger_module, "_still_stuck", return_value=False):
        always, always_outcomes = feed(model.events)
    assert skipped_outcomes == always_outcomes
    assert balances(skipping) == balances(always)
