"""The ledger ends in the same state whatever order a customer's deliveries take.

Each table row is a set of events and the orders to try: the first order is
the reference (the order a single replay saw), the others are what several
processes reading partitions at different speeds may deliver. Final open
amounts, unapplied cash and customer credit must agree.
"""

from __future__ import annotations

import pytest

from arrecon.state.events import DisputePhase, PaymentReceived, RemittanceLine
from arrecon.state.ledger import CustomerEvent, Ledger
from arrecon.state.matching import MatchPolicy, OpenBook, OpenInvoice, match_payment
from arrecon.state.outcomes import Applied, Outcome, Overpaid, Reversed, ShortPaid, Unapplied
from tests.state.test_ledger import (
    customer,
    day,
    dispute,
    invoice,
    journal,
    payment,
    refund,
    run,
)

OPENED, WON, LOST = DisputePhase.OPENED, DisputePhase.WON, DisputePhase.LOST
WITHDRAWN, REINSTATED = DisputePhase.FUNDS_WITHDRAWN, DisputePhase.FUNDS_REINSTATED

Balances = tuple[dict[str, int], int, int]


def balances(ledger: Ledger | None) -> Balances:
    """Open amount per invoice, unapplied cash and credit (USD)."""
    assert ledger is not None
    opens = {view.invoice_number: view.open_minor for view in ledger.all_invoices()}
    return opens, ledger.unapplied_minor("USD"), ledger.credit_minor("USD")


def remittance(
    pid: str, *lines: tuple[str, int, int, str | None], on: float = 1
) -> PaymentReceived:
    total = sum(paid for _, paid, _, _ in lines)
    return payment(pid, total, on=on, remittance=tuple(RemittanceLine(*line) for line in lines))


A = invoice("INV-100108", 10_000)
B = invoice("INV-100134", 5_000, on=2)
PAY_AB = payment("E2E-1", 15_000, references=("INV-100134 / INV-100108",))
PAY_AB_REFS = payment("E2E-2", 15_000, "INV-100108", "INV-100134")
CARD = payment("ch_1", 10_000, "INV-100108")
PART_CARD = payment("ch_2", 6_000, "INV-100108")
PARTIAL = payment("P-part", 4_000, references=("INV-100108 PARTIAL PAYMENT",), on=3)
SUBSET = payment("P-sub", 11_000, on=4)  # no reference: A's rest (6,000) + B (5,000)
DEDUCTING = remittance(
    "R-1", ("INV-100108", 9_500, 500, "DMG"), ("INV-100134", 4_900, 100, "RTV"), on=3
)
ALLOWANCE = customer(allowance_bps=600)

ORDERS: list[tuple[str, list[list[CustomerEvent]]]] = [
    (
        "payment names two invoices, one issued after it",
        [[A, B, PAY_AB], [A, PAY_AB, B], [PAY_AB, A, B], [PAY_AB, B, A], [B, PAY_AB, A]],
    ),
    ("two explicit refs, one issued after it", [[A, B, PAY_AB_REFS], [A, PAY_AB_REFS, B]]),
    (
        "chargeback on cash still waiting for its invoice, won",
        [
            [A, CARD, dispute("D", "ch_1", OPENED, 10_000), dispute("D", "ch_1", WON, 10_000)],
            [CARD, dispute("D", "ch_1", OPENED, 10_000), A, dispute("D", "ch_1", WON, 10_000)],
            [CARD, dispute("D", "ch_1", OPENED, 10_000), dispute("D", "ch_1", WON, 10_000), A],
        ],
    ),
    (
        "chargeback on part of waiting cash, invoice issued before the win",
        [
            [A, PART_CARD, dispute("D", "ch_2", OPENED, 2_000), dispute("D", "ch_2", WON, 2_000)],
            [PART_CARD, dispute("D", "ch_2", OPENED, 2_000), A, dispute("D", "ch_2", WON, 2_000)],
        ],
    ),
    (
        "chargeback on cash still waiting for its invoice, lost",
        [
            [A, CARD, dispute("D", "ch_1", OPENED, 10_000), dispute("D", "ch_1", LOST, 10_000)],
            [CARD, dispute("D", "ch_1", OPENED, 10_000), A, dispute("D", "ch_1", LOST, 10_000)],
        ],
    ),
    (
        "dispute steps out of order, won",
        [
            [A, CARD, dispute("D", "ch_1", OPENED, 10_000), dispute("D", "ch_1", WON, 10_000)],
            [A, CARD, dispute("D", "ch_1", WON, 10_000), dispute("D", "ch_1", OPENED, 10_000)],
            [
                A,
                CARD,
                dispute("D", "ch_1", OPENED, 10_000),
                dispute("D", "ch_1", REINSTATED, 10_000),
                dispute("D", "ch_1", WITHDRAWN, 10_000),
            ],
        ],
    ),
    (
        "dispute steps out of order, lost",
        [
            [A, CARD, dispute("D", "ch_1", OPENED, 10_000), dispute("D", "ch_1", LOST, 10_000)],
            [A, CARD, dispute("D", "ch_1", LOST, 10_000), dispute("D", "ch_1", OPENED, 10_000)],
        ],
    ),
    (
        "refund delivered before its payment",
        [
            [A, CARD, refund("ch_1", 6_000)],
            [refund("ch_1", 6_000), A, CARD],
            [A, refund("ch_1", 6_000), CARD],
            [CARD, refund("ch_1", 6_000), A],
        ],
    ),
    (
        "waiting cash fits only after another payment's partial",
        [[A, B, PARTIAL, SUBSET], [A, B, SUBSET, PARTIAL], [SUBSET, A, B, PARTIAL]],
    ),
    (
        "allowance arrives after the deduction",
        [[ALLOWANCE, A, B, DEDUCTING], [A, B, DEDUCTING, ALLOWANCE], [A, DEDUCTING, ALLOWANCE, B]],
    ),
]


@pytest.mark.parametrize("orders", [pytest.param(orders, id=case) for case, orders in ORDERS])
def test_every_order_reaches_the_reference_balances(orders: list[list[CustomerEvent]]) -> None:
    reference = balances(run(*orders[0]).ledger)
    assert reference[1:] == (0, 0), "the reference order settles everything"
    assert reference[0], "the reference order holds invoices"
    for events in orders[1:]:
        assert balances(run(*events).ledger) == reference, [e.event_id for e in events]


def test_rest_of_a_payment_waits_for_the_invoice_it_names() -> None:
    driver = run(A, PAY_AB)
    assert [(o.invoice_number, o.amount_minor) for o in driver.of(Applied)] == [
        ("INV-100108", 10_000)
    ]
    assert driver.of(Overpaid) == []
    (waiting,) = driver.of(Unapplied)
    assert (waiting.amount_minor, waiting.reason) == (5_000, "awaiting_invoice")
    assert waiting.candidates == ("INV-100134",)
    assert driver.ledger is not None
    assert driver.ledger.unapplied_minor("USD") == 5_000
    out = driver.feed(B)
    assert [(o.invoice_number, o.amount_minor) for o in out if isinstance(o, Applied)] == [
        ("INV-100134", 5_000)
    ]
    assert driver.ledger.unapplied_minor("USD") == 0


@pytest.mark.parametrize(
    ("events", "credit", "unapplied"),
    [
        # both named invoices held: what is left over is credit, as before
        ([A, B, payment("P", 16_000, "INV-100108", "INV-100134")], 1_000, 0),
        # a named invoice already settled is known: no reason to wait for it
        (
            [
                A,
                B,
                payment("P0", 5_000, "INV-100134"),
                payment("P", 12_000, "INV-100108", "INV-100134"),
            ],
            2_000,
            0,
        ),
        # a named number we have never seen: the rest waits for it
        ([A, payment("P", 12_000, "INV-100108", "INV-100999")], 0, 2_000),
        # an order handle is not an invoice number
        ([A, payment("P", 12_000, "INV-100108", "shopify_order:77")], 2_000, 0),
    ],
)
def test_only_invoices_never_seen_keep_the_rest_waiting(
    events: list[CustomerEvent], credit: int, unapplied: int
) -> None:
    driver = run(*events)
    assert driver.ledger is not None
    assert driver.ledger.credit_minor("USD") == credit
    assert driver.ledger.unapplied_minor("USD") == unapplied


def test_rest_of_a_payment_is_not_paid_again_to_an_invoice_it_paid() -> None:
    """A refused deduction leaves INV-100108 open; the rest must not fill it."""
    driver = run(A, DEDUCTING)
    applied = [(o.invoice_number, o.amount_minor) for o in driver.of(Applied)]
    assert applied == [("INV-100108", 9_500)]
    assert driver.state("INV-100108") == ("partially_paid", 500)
    assert driver.ledger is not None
    assert driver.ledger.unapplied_minor("USD") == 4_900


def test_deduction_refused_then_accepted_when_the_allowance_arrives() -> None:
    driver = run(A, remittance("R", ("INV-100108", 9_500, 500, "DMG")))
    (refused,) = driver.of(ShortPaid)
    assert (refused.valid, refused.shortfall_minor) == (False, 500)
    out = driver.feed(ALLOWANCE)
    (accepted,) = [o for o in out if isinstance(o, ShortPaid)]
    assert (accepted.valid, accepted.reason_code, accepted.payment_id) == (
        True,
        "deduction:DMG",
        "R",
    )
    assert driver.state("INV-100108") == ("paid", 0)
    assert driver.ledger is not None
    assert driver.ledger.deductions == {}


def test_deduction_beyond_the_new_allowance_stays_refused() -> None:
    driver = run(A, remittance("R", ("INV-100108", 9_000, 1_000, "DMG")))
    out = driver.feed(ALLOWANCE)  # 600 bps of 10,000 = 600 < 1,000
    assert [o for o in out if isinstance(o, ShortPaid)] == []
    assert driver.state("INV-100108") == ("partially_paid", 1_000)
    assert driver.ledger is not None
    assert list(driver.ledger.deductions) == ["INV-100108"]


def test_a_decided_dispute_ignores_a_late_opening() -> None:
    driver = run(A, CARD, dispute("D", "ch_1", WON, 10_000))
    out = driver.feed(dispute("D", "ch_1", OPENED, 10_000, on=7))
    assert out == []
    assert driver.state("INV-100108") == ("paid", 0)


def open_invoice(number: str, open_minor: int) -> OpenInvoice:
    return OpenInvoice(number, "USD", open_minor, open_minor, day(30))


@pytest.mark.parametrize(
    ("pay", "exclude", "method", "numbers"),
    [
        (payment("P", 500, "INV-1"), frozenset(), "invoice_number", ["INV-1"]),
        # the named invoice is out: the amount alone finds the other one (the
        # ledger holds such a weak match, see _hold_reason)
        (payment("P", 500, "INV-1"), frozenset({"INV-1"}), "exact_amount", ["INV-2"]),
        (payment("P", 500), frozenset(), "none", []),  # two invoices open for 500
        (payment("P", 500), frozenset({"INV-1"}), "exact_amount", ["INV-2"]),
        (payment("P", 1_000), frozenset({"INV-2"}), "none", []),  # no subset left
    ],
)
def test_match_payment_never_picks_an_excluded_invoice(
    pay: PaymentReceived, exclude: frozenset[str], method: str, numbers: list[str]
) -> None:
    book = OpenBook([open_invoice("INV-1", 500), open_invoice("INV-2", 500)])
    match = match_payment(book, pay, MatchPolicy(), exclude)
    assert match.method == method
    assert [alloc.invoice_number for alloc in match.allocations] == numbers
    assert not set(match.candidates) & exclude


def money_out(outcomes: list[Outcome]) -> int:
    return sum(row.amount_minor for row in outcomes if isinstance(row, Reversed))


def test_a_refund_before_its_payment_counts_once_in_the_journal() -> None:
    in_order = run(A, CARD, refund("ch_1", 6_000))
    early = run(refund("ch_1", 6_000), A, CARD)
    (orphan,) = early.of(Reversed)[:1]
    assert (orphan.invoice_number, orphan.amount_minor) == ("", 6_000)
    assert "nothing left to reverse" in orphan.reason
    assert money_out(early.outcomes) == money_out(in_order.outcomes) == 6_000
    net = {key: amount for key, amount in journal(early.outcomes).items() if key[1]}
    assert net == journal(in_order.outcomes) == {("ch_1", "INV-100108"): 4_000}
    assert early.state("INV-100108") == ("reopened", 6_000)
    assert early.ledger is not None
    assert early.ledger.orphans == {}


def test_a_refund_whose_payment_never_comes_is_reported_and_kept() -> None:
    driver = run(A, refund("ch_9", 500))
    assert [(r.invoice_number, r.amount_minor) for r in driver.of(Reversed)] == [("", 500)]
    assert driver.ledger is not None
    assert list(driver.ledger.orphans) == ["ch_9"]
    assert driver.state("INV-100108") == ("open", 10_000)
