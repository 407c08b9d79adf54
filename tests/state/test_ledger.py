"""Ledger scenarios: one small table per rule, driven through the public API."""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from arrecon.state.aging import AgingSummary
from arrecon.state.events import (
    AdjustmentKind,
    CustomerUpserted,
    DisputePhase,
    DisputeUpdated,
    InvoiceAdjusted,
    InvoiceIssued,
    PaymentReceived,
    PaymentReversed,
    Rail,
    RemittanceLine,
    ReversalKind,
)
from arrecon.state.ledger import (
    CustomerEvent,
    Ledger,
    LedgerPolicy,
    apply,
    exposure,
    next_wakeup,
    on_timer,
)
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
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CUSTOMER = "C-ACME"
POLICY = LedgerPolicy()


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


# --- event builders (defaults keep the tables short) ---------------------------------


def invoice(
    number: str, amount: int, *, on: float = 0, due: float = 30, cur: str = "USD", **kw: Any
) -> InvoiceIssued:
    return InvoiceIssued(
        event_id=f"inv:{number}",
        occurred_at=day(on),
        invoice_number=number,
        amount=Money(amount, cur),
        issued_at=day(on),
        due_at=day(due),
        **kw,
    )


def payment(
    pid: str,
    amount: int,
    *refs: str,
    on: float = 1,
    cur: str = "USD",
    event_id: str | None = None,
    **kw: Any,
) -> PaymentReceived:
    return PaymentReceived(
        event_id=event_id or f"pay:{pid}",
        occurred_at=day(on),
        payment_id=pid,
        amount=Money(amount, cur),
        source="test",
        invoice_refs=refs,
        **kw,
    )


def remit(pid: str, *lines: tuple[str, int, int, str | None], on: float = 1) -> PaymentReceived:
    total = sum(paid for _, paid, _, _ in lines)
    return payment(pid, total, on=on, remittance=tuple(RemittanceLine(*line) for line in lines))


def adjust(
    number: str, kind: AdjustmentKind, amount: int | None, *, on: float = 2, eid: str = ""
) -> InvoiceAdjusted:
    return InvoiceAdjusted(
        event_id=eid or f"adj:{number}:{kind}:{amount}:{on}",
        occurred_at=day(on),
        invoice_number=number,
        kind=kind,
        amount=None if amount is None else Money(amount, "USD"),
    )


def refund(pid: str, amount: int, *, on: float = 5, rid: str = "") -> PaymentReversed:
    rid = rid or f"re:{pid}:{amount}:{on}"
    return PaymentReversed(
        event_id=rid,
        occurred_at=day(on),
        payment_id=pid,
        reversal_id=rid,
        kind=ReversalKind.REFUND,
        amount=Money(amount, "USD"),
    )


def dispute(
    did: str, pid: str, phase: DisputePhase, amount: int, *, on: float = 6, fee: int = 0
) -> DisputeUpdated:
    return DisputeUpdated(
        event_id=f"dp:{did}:{phase}",
        occurred_at=day(on),
        dispute_id=did,
        payment_id=pid,
        phase=phase,
        amount=Money(amount, "USD"),
        fee_minor=fee,
    )


def customer(**kw: Any) -> CustomerUpserted:
    return CustomerUpserted(
        event_id=f"cust:{sorted(kw.items())}",
        occurred_at=T0 - timedelta(days=1),
        customer_id=CUSTOMER,
        name="Acme",
        **kw,
    )


# --- driver -------------------------------------------------------------------------


@dataclass
class Run:
    """Feeds events (now = event time) and keeps every outcome."""

    policy: LedgerPolicy = POLICY
    ledger: Ledger | None = None
    outcomes: list[Outcome] = field(default_factory=list)

    def feed(self, *events: CustomerEvent) -> list[Outcome]:
        fresh: list[Outcome] = []
        for event in events:
            self.ledger, out = apply(self.ledger, CUSTOMER, event, event.occurred_at, self.policy)
            fresh.extend(out)
        self.outcomes.extend(fresh)
        return fresh

    def tick(self, now: datetime) -> list[Outcome]:
        assert self.ledger is not None
        self.ledger, out = on_timer(self.ledger, CUSTOMER, now, self.policy)
        self.outcomes.extend(out)
        return out

    def state(self, number: str) -> tuple[str, int]:
        assert self.ledger is not None
        view = self.ledger.invoice(number)
        assert view is not None, number
        return view.status, view.open_minor

    def of(self, kind: type[Any]) -> list[Any]:
        return [outcome for outcome in self.outcomes if isinstance(outcome, kind)]


def run(*events: CustomerEvent, policy: LedgerPolicy = POLICY) -> Run:
    driver = Run(policy)
    driver.feed(*events)
    return driver


def last_status(outcomes: Iterable[Outcome], number: str) -> InvoiceStatus:
    rows = [o for o in outcomes if isinstance(o, InvoiceStatus) and o.invoice_number == number]
    return rows[-1]


OPENED, WON, LOST = DisputePhase.OPENED, DisputePhase.WON, DisputePhase.LOST
MEMO, VOID, WRITE_OFF = AdjustmentKind.CREDIT_MEMO, AdjustmentKind.VOID, AdjustmentKind.WRITE_OFF

# --- lifecycle ----------------------------------------------------------------------

LIFECYCLE = [
    # (case, events after issuing A=10000 due day 30, status, open)
    ("issued", [], "open", 10_000),
    ("paid in full", [payment("P1", 10_000, "A")], "paid", 0),
    ("partial payment", [payment("P1", 4_000, "A")], "partially_paid", 6_000),
    ("partial after due", [payment("P1", 4_000, "A", on=31)], "overdue", 6_000),
    ("two partials", [payment("P1", 4_000, "A"), payment("P2", 6_000, "A")], "paid", 0),
    ("credit memo in full", [adjust("A", MEMO, 10_000)], "credited", 0),
    ("part credit memo", [adjust("A", MEMO, 3_000)], "partially_paid", 7_000),
    ("memo beyond open", [adjust("A", MEMO, 12_000)], "credited", -2_000),
    ("void", [adjust("A", VOID, None)], "void", 0),
    ("write-off", [payment("P1", 9_000, "A"), adjust("A", WRITE_OFF, None)], "written_off", 0),
    ("refund reopens", [payment("P1", 10_000, "A"), refund("P1", 10_000)], "reopened", 10_000),
    ("partial refund", [payment("P1", 10_000, "A"), refund("P1", 2_500)], "reopened", 2_500),
    (
        "chargeback opened",
        [payment("P1", 10_000, "A"), dispute("D1", "P1", OPENED, 10_000)],
        "disputed",
        10_000,
    ),
    (
        "chargeback won",
        [
            payment("P1", 10_000, "A"),
            dispute("D1", "P1", OPENED, 10_000),
            dispute("D1", "P1", WON, 10_000, on=40),
        ],
        "paid",
        0,
    ),
    (
        "chargeback lost",
        [
            payment("P1", 10_000, "A"),
            dispute("D1", "P1", OPENED, 10_000),
            dispute("D1", "P1", LOST, 10_000, on=20),
        ],
        "reopened",
        10_000,
    ),
    (
        "repaid after refund",
        [payment("P1", 10_000, "A"), refund("P1", 10_000), payment("P2", 10_000, "A", on=7)],
        "paid",
        0,
    ),
]


@pytest.mark.parametrize(
    ("events", "status", "open_minor"),
    [
        pytest.param(events, status, open_minor, id=case)
        for case, events, status, open_minor in LIFECYCLE
    ],
)
def test_lifecycle(events: list[CustomerEvent], status: str, open_minor: int) -> None:
    driver = run(invoice("A", 10_000), *events)
    assert driver.state("A") == (status, open_minor)
    final = last_status(driver.outcomes, "A")
    assert (final.status, final.open_minor) == (status, open_minor)
    assert final.at == events[-1].occurred_at if events else day(0)
    assert final.step_at == step_times([invoice("A", 10_000), *events])[-1]


def test_every_change_emits_a_status_with_the_event_time() -> None:
    driver = run(invoice("A", 10_000, po_number="PO-7"))
    out = driver.feed(payment("P1", 4_000, "A", on=3))
    statuses = [o for o in out if isinstance(o, InvoiceStatus)]
    assert [(s.status, s.open_minor, s.at) for s in statuses] == [("partially_paid", 6_000, day(3))]
    assert statuses[0].due_at == day(30)
    assert statuses[0].customer_id == CUSTOMER


# --- cash application: matching methods and evidence ---------------------------------

APPLICATION = [
    # (case, payment, expected applications [(invoice, amount, method)])
    ("quoted number", payment("P", 10_000, "A"), [("A", 10_000, "invoice_number")]),
    (
        "two quoted numbers",
        payment("P", 15_000, "A", "B"),
        [("A", 10_000, "invoice_number"), ("B", 5_000, "invoice_number")],
    ),
    ("exact amount", payment("P", 5_000), [("B", 5_000, "exact_amount")]),
    (
        "remittance lines",
        remit("P", ("A", 10_000, 0, None), ("B", 5_000, 0, None)),
        [("A", 10_000, "remittance"), ("B", 5_000, "remittance")],
    ),
    ("reference in text", payment("P", 5_000, references=("pay inv B thx",)), None),
]


@pytest.mark.parametrize(
    ("pay", "expected"),
    [pytest.param(p, e, id=case) for case, p, e in APPLICATION if e is not None],
)
def test_application_by_method(pay: PaymentReceived, expected: list[tuple[str, int, str]]) -> None:
    driver = run(invoice("A", 10_000), invoice("B", 5_000, po_number="PO-9"))
    out = driver.feed(pay)
    applied = [(o.invoice_number, o.amount_minor, o.method) for o in out if isinstance(o, Applied)]
    assert applied == expected
    for row in out:
        if isinstance(row, Applied):
            assert 0 < row.confidence <= 1
            assert row.evidence, "every decision names its evidence"
            assert row.payment_id == "P"
            assert row.at == pay.occurred_at


# --- gaps ----------------------------------------------------------------------------

GAPS = [
    # (case, allowance_bps, tolerance, payment, reason_code, valid, final status, open)
    (
        "deduction within allowance",
        500,
        0,
        remit("P", ("A", 9_500, 500, "DMG")),
        "deduction:DMG",
        True,
        "paid",
        0,
    ),
    (
        "deduction beyond allowance",
        100,
        0,
        remit("P", ("A", 9_500, 500, "DMG")),
        "deduction:DMG",
        False,
        "partially_paid",
        500,
    ),
    (
        "deduction without code",
        500,
        0,
        remit("P", ("A", 9_500, 500, None)),
        "unexplained",
        False,
        "partially_paid",
        500,
    ),
    (
        "processor fee",
        0,
        0,
        payment("P", 9_680, "A", rail=Rail.CARD),
        "processor_fee",
        True,
        "paid",
        0,
    ),
    (  # a transfer passes no processor: the same gap is a short-pay
        "fee-sized gap on a transfer",
        0,
        0,
        payment("P", 9_680, "A", rail=Rail.SEPA),
        "unexplained",
        False,
        "partially_paid",
        320,
    ),
    (
        "unexplained short-pay",
        0,
        0,
        payment("P", 9_000, "A"),
        "unexplained",
        False,
        "partially_paid",
        1_000,
    ),
    ("within tolerance", 0, 1_000, payment("P", 9_000, "A"), "unexplained", True, "paid", 0),
]


@pytest.mark.parametrize(
    ("allowance_bps", "tolerance", "pay", "expected"),
    [pytest.param(row[1], row[2], row[3], row[4:], id=row[0]) for row in GAPS],
)
def test_gap_coding(
    allowance_bps: int,
    tolerance: int,
    pay: PaymentReceived,
    expected: tuple[str, bool, str, int],
) -> None:
    code, valid, status, open_minor = expected
    policy = LedgerPolicy(short_pay_tolerance_minor=tolerance)
    driver = run(customer(allowance_bps=allowance_bps), invoice("A", 10_000), pay, policy=policy)
    (short,) = driver.of(ShortPaid)
    assert (short.reason_code, short.valid, short.invoice_number) == (code, valid, "A")
    assert short.shortfall_minor == 10_000 - pay.amount.amount_minor
    assert driver.state("A") == (status, open_minor)
    assert driver.ledger is not None
    view = driver.ledger.invoice("A")
    assert view is not None
    assert view.flagged_minor == (0 if valid else open_minor)


# --- overpayment and customer credit ----------------------------------------------------


def test_overpayment_stays_on_account_and_is_not_spent_on_the_next_invoice() -> None:
    driver = run(invoice("A", 10_000), payment("P1", 15_000, "A"))
    (over,) = driver.of(Overpaid)
    assert (over.payment_id, over.excess_minor) == ("P1", 5_000)
    assert driver.ledger is not None
    assert driver.ledger.credit_minor("USD") == 5_000
    out = driver.feed(invoice("B", 8_000, on=3))
    assert [o for o in out if isinstance(o, Applied)] == []
    assert driver.state("B") == ("open", 8_000)
    assert driver.ledger.credit_minor("USD") == 5_000
    # The buyer pays B in full as usual: no second overpayment is manufactured.
    driver.feed(payment("P2", 8_000, "B", on=4))
    assert driver.state("B") == ("paid", 0)
    assert driver.ledger.credit_minor("USD") == 5_000


def test_credit_in_another_currency_is_not_used() -> None:
    driver = run(invoice("A", 10_000), payment("P1", 15_000, "A"), invoice("E", 3_000, cur="EUR"))
    assert driver.state("E") == ("open", 3_000)
    assert driver.ledger is not None
    assert driver.ledger.credit_minor("USD") == 5_000


# --- unapplied cash and retries -------------------------------------------------------

RETRIES = [
    # (case, events, payment's final applications [(invoice, amount)], first reason)
    (
        "cash before its invoice",
        [payment("P", 10_000, "B", on=0), invoice("B", 10_000, on=2)],
        [("B", 10_000)],
        "awaiting_invoice",
    ),
    (
        "not guessed onto another invoice by amount",
        [invoice("A", 10_000), payment("P", 10_000, "B"), invoice("B", 10_000, on=2)],
        [("B", 10_000)],
        "awaiting_invoice",
    ),
    (
        "no clue, then an invoice of that amount",
        [invoice("A", 10_000), payment("P", 7_777), invoice("C", 7_777, on=2)],
        [("C", 7_777)],
        "no_match",
    ),
    (
        "credit memo makes the amount match",
        [invoice("A", 10_000), payment("P", 7_000), adjust("A", MEMO, 3_000, on=3)],
        [("A", 7_000)],
        "no_match",
    ),
]


@pytest.mark.parametrize(
    ("events", "applications", "reason"),
    [pytest.param(*row[1:], id=row[0]) for row in RETRIES],
)
def test_unapplied_is_retried(
    events: list[CustomerEvent], applications: list[tuple[str, int]], reason: str
) -> None:
    driver = run(*events)
    (unapplied,) = driver.of(Unapplied)
    assert unapplied.reason == reason
    assert [(o.invoice_number, o.amount_minor) for o in driver.of(Applied)] == applications
    assert driver.ledger is not None
    assert driver.ledger.unapplied_minor("USD") == 0


TYPOS = [
    # (case, open invoices, payment, applied [(invoice, amount, method)])
    (
        "one digit doubled, amount agrees",
        [invoice("INV-100052", 12_199)],
        payment("P", 12_199, references=("INV-1000052",)),
        [("INV-100052", 12_199, "fuzzy_reference")],
    ),
    (
        "near two invoices, the amount picks one",
        [invoice("INV-100251", 11_999), invoice("INV-102510", 5_000)],
        payment("P", 11_999, references=("INV-10251",)),
        [("INV-100251", 11_999, "exact_amount")],
    ),
    (  # a different number of the same shape may be an invoice not issued yet
        "look-alike reference, amount disagrees",
        [invoice("INV-102115", 40_998)],
        payment("P", 39_494, references=("INV-102811",)),
        [],
    ),
    (  # the amount alone does not beat a named invoice we do not hold
        "amount agrees, reference unlike",
        [invoice("INV-100052", 12_199)],
        payment("P", 12_199, references=("INV-777999",)),
        [],
    ),
]


@pytest.mark.parametrize(
    ("invoices", "pay", "applied"),
    [pytest.param(*row[1:], id=row[0]) for row in TYPOS],
)
def test_mistyped_reference_applies_only_when_the_amount_agrees(
    invoices: list[InvoiceIssued], pay: PaymentReceived, applied: list[tuple[str, int, str]]
) -> None:
    driver = run(*invoices, pay)
    got = [(o.invoice_number, o.amount_minor, o.method) for o in driver.of(Applied)]
    assert got == applied
    reasons = [u.reason for u in driver.of(Unapplied)]
    assert reasons == ([] if applied else ["awaiting_invoice"])


@pytest.mark.parametrize(
    ("text", "short_paid"),
    [
        ("INV-1001 PARTIAL PAYMENT", []),
        ("INV-1001 INSTALLMENT 1", []),
        ("INV-1001", [("INV-1001", 6_000, "unexplained")]),
    ],
)
def test_announced_partial_payment_is_not_a_short_pay(
    text: str, short_paid: list[tuple[str, int, str]]
) -> None:
    driver = run(invoice("INV-1001", 10_000), payment("P", 4_000, references=(text,)))
    got = [(o.invoice_number, o.shortfall_minor, o.reason_code) for o in driver.of(ShortPaid)]
    assert got == short_paid
    assert driver.state("INV-1001") == ("partially_paid", 6_000)


@pytest.mark.parametrize(
    ("text", "applied"),
    [
        ("AP RUN 0412", [("INV-100295", 12_736)]),  # batch label, not one of our numbers
        ("SUPPLIER PAYMENT", [("INV-100295", 12_736)]),
        ("INV-100999", []),  # our prefix: an invoice not issued yet, wait for it
        ("Invoice #100999", []),  # keyword-labelled number: named
    ],
)
def test_only_references_shaped_like_our_numbers_hold_cash(
    text: str, applied: list[tuple[str, int]]
) -> None:
    driver = run(invoice("INV-100295", 12_736), payment("P", 12_736, references=(text,)))
    assert [(o.invoice_number, o.amount_minor) for o in driver.of(Applied)] == applied
    assert [u.reason for u in driver.of(Unapplied)] == ([] if applied else ["awaiting_invoice"])


def test_unapplied_names_ranked_candidates() -> None:
    driver = run(invoice("A", 10_000), invoice("B", 20_000), payment("P", 15_000))
    (unapplied,) = driver.of(Unapplied)
    assert unapplied.amount_minor == 15_000
    assert unapplied.candidates
    assert set(unapplied.candidates) <= {"A", "B"}
    assert driver.ledger is not None
    assert driver.ledger.unapplied_minor("USD") == 15_000


def test_payment_naming_a_settled_invoice_is_held() -> None:
    driver = run(
        invoice("A", 10_000),
        invoice("B", 10_000),
        payment("P1", 10_000, "A"),
        payment("P2", 10_000, "A", on=2),
    )
    assert [u.reason for u in driver.of(Unapplied)] == ["invoice_settled"]
    assert driver.state("B") == ("open", 10_000)


# --- duplicates -----------------------------------------------------------------------

DUPLICATES = [
    ("same event again", payment("P1", 10_000, "A"), payment("P1", 10_000, "A"), "P1"),
    (
        "same payment id, new event id",
        payment("P1", 10_000, "A"),
        payment("P1", 10_000, "A", event_id="retry-2"),
        "P1",
    ),
    ("same invoice number", invoice("A", 10_000), invoice("A", 10_000, on=1), "A"),
    ("same refund", refund("P0", 100), refund("P0", 100), "P0"),
]


@pytest.mark.parametrize(
    ("first", "again", "subject"), [pytest.param(*row[1:], id=row[0]) for row in DUPLICATES]
)
def test_duplicates_change_nothing(
    first: CustomerEvent, again: CustomerEvent, subject: str
) -> None:
    driver = run(invoice("A", 10_000), payment("P0", 1_000, "A", on=0.5), first)
    before = pickle.dumps(driver.ledger)
    out = driver.feed(again)
    assert [type(o) for o in out] == [Duplicate]
    assert out[0].payment_id == subject
    assert pickle.dumps(driver.ledger) == before


def test_seen_id_memory_is_bounded_and_held_payments_stay_recognised() -> None:
    policy = LedgerPolicy(seen_ids_max=10)
    driver = run(invoice("A", 10_000_000), policy=policy)
    driver.feed(*[payment(f"P{n}", 100 + n, "A", on=1 + n / 100) for n in range(30)])
    assert driver.ledger is not None
    assert len(driver.ledger.seen) == 10
    assert "pay:P0" not in driver.ledger.seen  # evicted, yet its record still knows it
    assert [type(o) for o in driver.feed(payment("P0", 100, "A"))] == [Duplicate]


# --- reversals --------------------------------------------------------------------------

REVERSALS = [
    # (case, refund amount, open A, open B, credit left, reversed hits [(invoice, amount)])
    ("newest application first", 3_000, 0, 3_000, 0, [("B", 3_000)]),
    ("spills into the older one", 7_000, 2_000, 5_000, 0, [("B", 5_000), ("A", 2_000)]),
    ("everything", 15_000, 10_000, 5_000, 0, [("B", 5_000), ("A", 10_000)]),
]


@pytest.mark.parametrize(
    ("amount", "open_a", "open_b", "credit", "hits"),
    [pytest.param(*row[1:], id=row[0]) for row in REVERSALS],
)
def test_reversal_hits_newest_first(
    amount: int, open_a: int, open_b: int, credit: int, hits: list[tuple[str, int]]
) -> None:
    driver = run(invoice("A", 10_000), invoice("B", 5_000), payment("P", 15_000, "A", "B"))
    out = driver.feed(refund("P", amount))
    assert [(o.invoice_number, o.amount_minor) for o in out if isinstance(o, Reversed)] == hits
    assert driver.state("A")[1] == open_a
    assert driver.state("B")[1] == open_b
    for number, _ in hits:
        assert driver.state(number)[0] == "reopened"


def test_refund_takes_unused_credit_before_reopening_invoices() -> None:
    driver = run(invoice("A", 10_000), payment("P", 12_000, "A"))
    out = driver.feed(refund("P", 2_000))
    assert [(o.invoice_number, o.amount_minor) for o in out if isinstance(o, Reversed)] == [
        ("", 2_000)
    ]
    assert driver.state("A") == ("paid", 0)
    assert driver.ledger is not None
    assert driver.ledger.credit_minor("USD") == 0


def test_refund_of_an_unknown_payment_is_reported_not_invented() -> None:
    out = run(invoice("A", 10_000)).feed(refund("nope", 500))
    (reversed_,) = [o for o in out if isinstance(o, Reversed)]
    assert reversed_.invoice_number == ""
    assert "nothing left to reverse" in reversed_.reason


# --- chargebacks ---------------------------------------------------------------------------


def test_chargeback_opened_won_lost_outcomes() -> None:
    base = [invoice("A", 10_000), invoice("B", 5_000), payment("P", 15_000, "A", "B")]
    driver = run(*base)
    opened = driver.feed(dispute("D", "P", OPENED, 15_000, fee=1_500))
    cbs = [o for o in opened if isinstance(o, Chargeback)]
    assert [(c.invoice_number, c.amount_minor, c.status, c.fee_minor) for c in cbs] == [
        ("B", 5_000, "opened", 1_500),
        ("A", 10_000, "opened", 0),
    ]
    assert driver.state("A") == ("disputed", 10_000)
    assert driver.ledger is not None
    assert exposure(driver.ledger) == {"USD": 15_000}
    won = driver.feed(dispute("D", "P", WON, 15_000, on=50))
    assert {(c.invoice_number, c.status) for c in won if isinstance(c, Chargeback)} == {
        ("A", "won"),
        ("B", "won"),
    }
    assert [(a.invoice_number, a.method) for a in won if isinstance(a, Applied)] == [
        ("B", "chargeback_won"),
        ("A", "chargeback_won"),
    ]
    assert driver.state("A") == ("paid", 0)
    assert exposure(driver.ledger) == {}


def journal(outcomes: Iterable[Outcome]) -> dict[tuple[str, str], int]:
    """Net applied per (payment, invoice), as the applications table sums it."""
    net: dict[tuple[str, str], int] = {}
    for row in outcomes:
        if isinstance(row, Applied | Reversed) and row.invoice_number:
            sign = 1 if isinstance(row, Applied) else -1
            key = (row.payment_id, row.invoice_number)
            net[key] = net.get(key, 0) + sign * row.amount_minor
    return net


@pytest.mark.parametrize(
    ("close", "after"),
    [
        (WON, {("P", "A"): 10_000, ("P", "B"): 5_000}),
        (LOST, {("P", "A"): 0, ("P", "B"): 0}),
    ],
)
def test_chargeback_reverses_in_the_journal_and_a_win_nets_to_the_original(
    close: DisputePhase, after: dict[tuple[str, str], int]
) -> None:
    driver = run(invoice("A", 10_000), invoice("B", 5_000), payment("P", 15_000, "A", "B"))
    opened = driver.feed(dispute("D", "P", OPENED, 15_000))
    assert [(o.invoice_number, o.amount_minor) for o in opened if isinstance(o, Reversed)] == [
        ("B", 5_000),
        ("A", 10_000),
    ]
    assert journal(driver.outcomes) == {("P", "A"): 0, ("P", "B"): 0}
    driver.feed(dispute("D", "P", close, 15_000, on=50))
    assert journal(driver.outcomes) == after


def test_chargeback_lost_keeps_invoice_open_and_codes_fee() -> None:
    driver = run(invoice("A", 10_000), payment("P", 10_000, "A"))
    driver.feed(dispute("D", "P", OPENED, 10_000))
    out = driver.feed(dispute("D", "P", LOST, 10_000, on=60, fee=1_500))
    (lost,) = [o for o in out if isinstance(o, Chargeback)]
    assert (lost.status, lost.fee_minor, lost.amount_minor) == ("lost", 1_500, 10_000)
    assert driver.state("A") == ("reopened", 10_000)


@pytest.mark.parametrize(
    ("phase", "status", "state"), [(LOST, "lost", ("reopened", 10_000)), (WON, "won", ("paid", 0))]
)
def test_dispute_naming_the_order_handle_hits_the_payment(
    phase: DisputePhase, status: str, state: tuple[str, int]
) -> None:
    """Shopify disputes name the order; the sale listed that handle in invoice_refs."""
    handle = "shopify_order:5100037592"
    driver = run(invoice("#1016", 10_000), payment("7200000143", 10_000, "#1016", handle))
    opened = driver.feed(dispute("D", handle, OPENED, 10_000))
    got = [
        (c.payment_id, c.invoice_number, c.amount_minor)
        for c in opened
        if isinstance(c, Chargeback)
    ]
    assert got == [("7200000143", "#1016", 10_000)]
    assert driver.state("#1016") == ("disputed", 10_000)
    closed = driver.feed(dispute("D", handle, phase, 10_000, on=40))
    assert [(c.payment_id, c.status) for c in closed if isinstance(c, Chargeback)] == [
        ("7200000143", status)
    ]
    assert driver.state("#1016") == state


def test_refund_naming_the_order_handle_reopens_the_invoice() -> None:
    handle = "shopify_order:51"
    driver = run(invoice("#1001", 10_000), payment("S1", 10_000, "#1001", handle))
    out = driver.feed(refund(handle, 4_000))
    assert [(o.invoice_number, o.amount_minor) for o in out if isinstance(o, Reversed)] == [
        ("#1001", 4_000)
    ]
    assert driver.state("#1001") == ("reopened", 4_000)


def test_handles_leave_with_their_payment() -> None:
    handle = "shopify_order:51"
    driver = run(customer(), invoice("#1001", 10_000), payment("S1", 10_000, "#1001", handle))
    assert driver.ledger is not None
    assert driver.ledger.handles == {handle: "S1"}
    driver.tick(day(POLICY.settled_retention_days + 3))
    assert driver.ledger is not None  # the profile keeps the ledger
    assert (driver.ledger.payments, driver.ledger.handles) == ({}, {})


def test_won_dispute_after_invoice_was_paid_again_leaves_credit() -> None:
    driver = run(invoice("A", 10_000), payment("P", 10_000, "A"))
    driver.feed(dispute("D", "P", OPENED, 10_000), payment("P2", 10_000, "A", on=8))
    out = driver.feed(dispute("D", "P", WON, 10_000, on=50))
    assert [o.excess_minor for o in out if isinstance(o, Overpaid)] == [10_000]
    assert driver.state("A") == ("paid", 0)


def test_funds_withdrawn_without_opened_opens_once() -> None:
    driver = run(invoice("A", 10_000), payment("P", 10_000, "A"))
    driver.feed(
        dispute("D", "P", DisputePhase.FUNDS_WITHDRAWN, 10_000),
        dispute("D", "P", OPENED, 10_000, on=7),
    )
    assert len(driver.of(Chargeback)) == 1
    driver.feed(dispute("D", "P", DisputePhase.FUNDS_REINSTATED, 10_000, on=30))
    driver.feed(dispute("D", "P", WON, 10_000, on=31))
    assert [c.status for c in driver.of(Chargeback)] == ["opened", "won"]
    assert driver.state("A") == ("paid", 0)


# --- credit limit and exposure ---------------------------------------------------------------

LIMITS = [
    # (case, limit, invoices, flagged invoices)
    ("within limit", 20_000, [10_000, 8_000], []),
    ("second crosses", 15_000, [10_000, 8_000], ["I1"]),
    ("every order beyond", 5_000, [10_000, 8_000], ["I0", "I1"]),
    ("other currency limit", None, [10_000, 8_000], []),
]


@pytest.mark.parametrize(
    ("limit", "amounts", "flagged"), [pytest.param(*row[1:], id=row[0]) for row in LIMITS]
)
def test_credit_limit(limit: int | None, amounts: list[int], flagged: list[str]) -> None:
    credit_limit = Money(limit, "USD") if limit is not None else Money(1, "EUR")
    events = [invoice(f"I{n}", amount, on=n) for n, amount in enumerate(amounts)]
    driver = run(customer(credit_limit=credit_limit), *events)
    rows = driver.of(CreditLimitExceeded)
    assert [r.invoice_number for r in rows] == flagged
    for row in rows:
        assert row.exposure_minor > row.limit_minor


def test_exposure_is_net_of_payments_per_currency() -> None:
    driver = run(
        invoice("A", 10_000),
        invoice("E", 3_000, cur="EUR"),
        payment("P", 4_000, "A"),
    )
    assert driver.ledger is not None
    assert exposure(driver.ledger) == {"USD": 6_000, "EUR": 3_000}


# --- timers: overdue, reminders, retention ----------------------------------------------------


def test_timer_emits_overdue_and_reminders_once() -> None:
    driver = run(invoice("A", 10_000, due=30), invoice("B", 5_000, due=30))
    driver.feed(payment("P", 5_000, "B", on=2))
    assert driver.ledger is not None
    assert next_wakeup(driver.ledger, POLICY) == day(27)  # pre_due step, 3 days before
    out = driver.tick(day(27))
    assert [(r.invoice_number, r.step) for r in out if isinstance(r, ReminderDue)] == [
        ("A", "pre_due")
    ]
    out = driver.tick(day(31))  # due step and the overdue transition
    assert [(r.invoice_number, r.step) for r in out if isinstance(r, ReminderDue)] == [("A", "due")]
    assert [(s.invoice_number, s.status, s.at) for s in out if isinstance(s, InvoiceStatus)] == [
        ("A", "overdue", day(31))
    ]
    assert driver.tick(day(31)) == []
    out = driver.tick(day(200))
    assert [r.step for r in out if isinstance(r, ReminderDue)] == ["escalation"]


def test_no_reminder_for_disputed_invoice() -> None:
    driver = run(invoice("A", 10_000), payment("P", 10_000, "A"))
    driver.feed(dispute("D", "P", OPENED, 10_000, on=3))
    out = driver.tick(day(35))
    assert not [r for r in out if isinstance(r, ReminderDue)]


def test_segment_cadence_applies() -> None:
    driver = run(customer(segment="key_account"), invoice("A", 10_000))
    out = driver.tick(day(29))
    assert not [r for r in out if isinstance(r, ReminderDue)]
    out = driver.tick(day(30))
    assert [r.step for r in out if isinstance(r, ReminderDue)] == ["due"]


def test_settled_invoices_leave_after_retention_and_empty_ledger_is_dropped() -> None:
    policy = LedgerPolicy(settled_retention_days=10)
    driver = run(invoice("A", 10_000), payment("P", 10_000, "A"), policy=policy)
    assert driver.ledger is not None
    wake = next_wakeup(driver.ledger, policy)
    assert wake is not None
    driver.tick(day(5))
    assert driver.ledger is not None
    assert driver.ledger.invoice("A") is not None
    driver.tick(day(13))
    assert driver.ledger is None


def test_refund_within_retention_still_finds_the_application() -> None:
    policy = LedgerPolicy(settled_retention_days=10)
    driver = run(invoice("A", 10_000), payment("P", 10_000, "A"), policy=policy)
    driver.tick(day(8))
    driver.feed(refund("P", 10_000, on=9))
    assert driver.state("A") == ("reopened", 10_000)


def test_profile_keeps_the_ledger() -> None:
    driver = run(customer(terms_days=45))
    assert driver.ledger is not None
    assert driver.ledger.profile is not None


def test_ledger_pickles() -> None:
    driver = run(
        customer(allowance_bps=200),
        invoice("A", 10_000),
        invoice("B", 5_000),
        payment("P", 12_000, "A"),
        payment("Q", 999),
    )
    clone = pickle.loads(pickle.dumps(driver.ledger))
    other = Run(ledger=clone)
    assert other.feed(invoice("C", 3_000, on=3)) == driver.feed(invoice("C", 3_000, on=3))
    # B never took cash (its rarely-set fields are defaults): paying it in the
    # clone must touch B alone, as in the original.
    later = payment("R", 5_000, "B", on=4)
    assert other.feed(later) == driver.feed(later)
    assert [other.state(n) for n in "ABC"] == [driver.state(n) for n in "ABC"]
    assert other.state("B") == ("paid", 0)
    assert other.state("C") == ("open", 3_000)


def test_memo_before_its_invoice_is_applied_on_arrival() -> None:
    driver = run(adjust("A", MEMO, 4_000, on=0), invoice("A", 10_000, on=1))
    assert driver.state("A") == ("partially_paid", 6_000)


def test_aging_over_a_ledger_as_of_two_dates() -> None:
    driver = run(
        invoice("A", 10_000, due=10),
        invoice("B", 5_000, due=40),
        invoice("C", 2_000, due=-50, on=-80),
        payment("P", 4_000, "A"),
    )
    assert driver.ledger is not None
    now = AgingSummary.of(driver.ledger, day(20))
    assert list(now.row("USD").values()) == [5_000, 6_000, 0, 2_000, 0]
    later = AgingSummary.of(driver.ledger, day(120))
    assert list(later.row("USD").values()) == [0, 0, 0, 5_000, 8_000]


STREAM = [
    customer(allowance_bps=300, credit_limit=Money(12_000, "USD")),
    invoice("A", 10_000),
    invoice("B", 5_000),
    payment("P1", 9_700, "A"),
    payment("P2", 7_000, "B"),
    remit("P3", ("A", 100, 0, None)),
    refund("P2", 1_000),
    payment("P4", 3_333),
    dispute("D", "P1", OPENED, 9_700),
    invoice("C", 3_333, on=7),
    dispute("D", "P1", WON, 9_700, on=9),
    adjust("B", MEMO, 500, on=10),
]


def test_outcome_ids_are_unique_and_replays_are_identical() -> None:
    first = run(*STREAM).outcomes
    second = run(*STREAM).outcomes
    assert [o.to_record() for o in first] == [o.to_record() for o in second]
    ids = [o.outcome_id for o in first]
    assert len(set(ids)) == len(ids)
    kinds = {o.type for o in first}
    assert {"applied", "overpaid", "short_paid", "reversed", "chargeback"} <= kinds
    assert {"invoice_status", "credit_limit_exceeded", "unapplied"} <= kinds


def step_times(events: Iterable[CustomerEvent]) -> list[datetime]:
    """Each event's time, or one microsecond past the previous step when not later."""
    times: list[datetime] = []
    for event in events:
        at = event.occurred_at
        times.append(at if not times or at > times[-1] else times[-1] + timedelta(microseconds=1))
    return times


def test_every_event_outcome_carries_the_event_time_and_its_step_time() -> None:
    driver = Run()
    for event, step_at in zip(STREAM, step_times(STREAM), strict=True):
        for outcome in driver.feed(event):
            assert outcome.at == event.occurred_at
            assert getattr(outcome, "step_at", None) == step_at


STEP_TIME_CASES = [
    # (case, events, expected `at` of each event's outcomes)
    ("in time order", [invoice("A", 100, on=1), payment("P1", 100, "A", on=2)], [day(1), day(2)]),
    ("same instant", [invoice("A", 100, on=1), payment("P1", 100, "A", on=1)],
     [day(1), day(1) + timedelta(microseconds=1)]),
    ("dated before the invoice", [invoice("A", 100, on=1), payment("P1", 100, "A", on=0)],
     [day(1), day(1) + timedelta(microseconds=1)]),
    ("later again after one moved", [invoice("A", 100, on=1), payment("P1", 40, "A", on=0),
                                     payment("P2", 60, "A", on=2)],
     [day(1), day(1) + timedelta(microseconds=1), day(2)]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("events", "expected"),
    [case[1:] for case in STEP_TIME_CASES],
    ids=[case[0] for case in STEP_TIME_CASES],
)
def test_a_customers_steps_are_strictly_ordered(
    events: list[CustomerEvent], expected: list[datetime]
) -> None:
    driver = Run()
    for event, step_at in zip(events, expected, strict=True):
        outcomes = driver.feed(event)
        assert {outcome.at for outcome in outcomes} == {event.occurred_at}
        assert {getattr(outcome, "step_at", None) for outcome in outcomes} == {step_at}


def test_a_backdated_payment_still_writes_the_invoices_latest_status() -> None:
    driver = run(invoice("A", 100, on=1), payment("P1", 100, "A", on=0))
    statuses = [o for o in driver.outcomes if isinstance(o, InvoiceStatus)]
    assert [(s.status, s.open_minor) for s in statuses] == [("open", 100), ("paid", 0)]
    assert statuses[0].at > statuses[1].at  # the credit is dated before the invoice ...
    assert statuses[0].step_at < statuses[1].step_at  # ... yet decided after it


def test_a_duplicate_does_not_move_the_clock() -> None:
    driver = run(invoice("A", 100, on=1), payment("P1", 40, "A", on=2))
    (duplicate,) = driver.feed(payment("P1", 40, "A", on=2))
    assert isinstance(duplicate, Duplicate)
    assert duplicate.step_at == duplicate.at == day(2)
    assert {getattr(o, "step_at", None) for o in driver.feed(payment("P2", 60, "A", on=2))} == {
        day(2) + timedelta(microseconds=1)
    }


def test_naive_times_are_refused() -> None:
    naive = datetime(2026, 3, 2, 9, 0)
    with pytest.raises(ValueError, match="naive"):
        apply(None, CUSTOMER, invoice("A", 100), naive, POLICY)
