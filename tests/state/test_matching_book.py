"""OpenBook's shared buckets and the subset search's enumeration, against brute force."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import combinations

from hypothesis import given, settings
from hypothesis import strategies as st

from arrecon.state.events import PaymentReceived, Rail
from arrecon.state.matching import (
    Footprint,
    MatchPolicy,
    OpenBook,
    OpenInvoice,
    _keys,
    _SubsetSearch,
    _sums_by_size,
    match_payment,
)
from arrecon.state.money import Money

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _forms(identifier: str) -> set[str]:
    return {form for form in _keys(identifier) if form}


def invoice(number: str, *, po: str | None = None, external: tuple[str, ...] = ()) -> OpenInvoice:
    return OpenInvoice(number, "USD", 1_000, 1_000, T0, po, external)


def test_numbers_differing_only_by_zeros_share_a_bucket_but_resolve_exactly() -> None:
    numbers = ["INV-2026-000100", "INV-2026-001000", "INV-2026-010000"]
    book = OpenBook([invoice(number) for number in [*numbers, "2026-100"]])
    assert book.find("2026-100") is None  # also the core of INV-2026-000100: ambiguous
    for number in numbers:
        found = book.find(number)
        assert found is not None
        assert found.invoice_number == number
    hit = book.find("inv2026 1000")  # the key form of INV-2026-001000
    assert hit is not None
    assert hit.invoice_number == "INV-2026-001000"
    assert book.find("INV-2026-000010") is None


def test_removal_leaves_the_other_invoices_of_a_bucket() -> None:
    book = OpenBook([invoice("A-100"), invoice("A-1000"), invoice("B-100", po="PO-100")])
    book.remove("A-100")
    assert "A-100" not in book
    gone = book.find("A-100")  # now only B-100's core "100" can answer
    assert gone is not None
    assert gone.invoice_number == "B-100"
    assert [i.invoice_number for i in book.by_po("PO100", "PO100", "100")] == ["B-100"]
    found = book.find("A-1000")
    assert found is not None
    assert found.invoice_number == "A-1000"


IDS = st.text(alphabet="AB0-1", min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(IDS, st.one_of(st.none(), IDS), IDS), max_size=8),
    IDS,
    st.sets(st.integers(0, 7)),
)
def test_po_and_form_look_ups_equal_a_scan_of_the_book(
    rows: list[tuple[str, str | None, str]], reference: str, removed: set[int]
) -> None:
    """Also after removals: the bucket index must drop exactly the removed record."""
    invoices = {}
    for index, (number, po, external) in enumerate(rows):
        invoices[f"{number}#{index}"] = invoice(f"{number}#{index}", po=po, external=(external,))
    book = OpenBook(list(invoices.values()))
    for index, (number, _, _) in enumerate(rows):
        if index in removed:
            book.remove(f"{number}#{index}")
            del invoices[f"{number}#{index}"]
    kept = {i for inv in invoices.values() for i in (inv.invoice_number, inv.po_number or "")}
    kept |= {i for inv in invoices.values() for i in inv.external_ids}
    for value in _forms(reference).union(*(_forms(i) for i in kept)):
        scanned = [
            inv for inv in invoices.values() if inv.po_number and value in _forms(inv.po_number)
        ]
        assert book.by_po(value, value, value) == scanned
        for field, ids_of in (
            ("number", lambda inv: (inv.invoice_number,)),
            ("external_id", lambda inv: inv.external_ids),
        ):
            expected = [
                inv for inv in invoices.values() if any(value in _forms(i) for i in ids_of(inv))
            ]
            assert book._with_form(value, field) == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-50, 10_000), max_size=13), st.integers(0, 7))
def test_subset_sums_come_in_combinations_order(amounts: list[int], max_size: int) -> None:
    expected = [
        [sum(chosen) for chosen in combinations(amounts, size)]
        for size in range(min(max_size, len(amounts)) + 1)
    ]
    assert _sums_by_size(amounts, max_size) == expected


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 60), min_size=1, max_size=10), st.integers(1, 200))
def test_subset_search_finds_the_only_exact_subset(values: list[int], target: int) -> None:
    exact = [
        chosen
        for size in range(1, 5)
        for chosen in combinations(range(len(values)), size)
        if sum(values[i] for i in chosen) == target
    ]
    found, is_exact = _SubsetSearch(values, 4, 20_000).find(target, target)
    if not exact:
        assert found == []
        assert not is_exact
        return
    assert is_exact
    assert all(sum(values[i] for i in chosen) == target for chosen in found)
    assert len(found) == min(2, len(exact))
    if len(exact) == 1:
        assert sorted(found[0]) == list(exact[0])


def test_due_dates_order_the_subset_pool_deterministically() -> None:
    book = OpenBook(
        [
            OpenInvoice(f"S-{n}", "USD", 100 + n, 100 + n, T0 + timedelta(days=n % 3))
            for n in range(30)
        ]
    )
    first = book.due_nearest("USD", T0, 10_000, 24, 192)
    assert first == book.due_nearest("USD", T0, 10_000, 24, 192)
    assert [inv.due_at for inv in first] == sorted(inv.due_at for inv in first)


NUMBERS = [f"INV-2026-{n:04d}" for n in range(12)]


@st.composite
def book_payment_and_newcomer(
    draw: st.DrawFn,
) -> tuple[list[OpenInvoice], PaymentReceived, OpenInvoice]:
    count = draw(st.integers(0, 10))
    invoices = [
        OpenInvoice(
            NUMBERS[index],
            draw(st.sampled_from(["USD", "EUR"])),
            amount,
            amount,
            T0 + timedelta(days=draw(st.integers(-30, 30))),
            draw(st.sampled_from([None, "PO-1", "PO-2"])),
        )
        for index, amount in enumerate(
            draw(st.lists(st.integers(1, 900), min_size=count, max_size=count))
        )
    ]
    refs = tuple(draw(st.lists(st.sampled_from([*NUMBERS, "INV-2026-0O11", "PO-2"]), max_size=2)))
    payment = PaymentReceived(
        "e1",
        T0,
        "p1",
        Money(draw(st.integers(1, 2_000)), draw(st.sampled_from(["USD", "EUR"]))),
        "t",
        invoice_refs=refs,
        rail=draw(st.sampled_from([Rail.CARD, Rail.OTHER])),
    )
    amount = draw(st.integers(1, 900))
    newcomer = OpenInvoice(
        NUMBERS[len(invoices)] if len(invoices) < len(NUMBERS) else "X-1",
        draw(st.sampled_from(["USD", "EUR"])),
        amount,
        amount,
        T0 + timedelta(days=draw(st.integers(-30, 30))),
        draw(st.sampled_from([None, "PO-1", "PO-2"])),
    )
    return invoices, payment, newcomer


@settings(max_examples=300, deadline=None)
@given(book_payment_and_newcomer(), st.booleans())
def test_a_change_the_footprint_does_not_see_leaves_the_match_as_it_was(
    case: tuple[list[OpenInvoice], PaymentReceived, OpenInvoice], remove: bool
) -> None:
    invoices, payment, newcomer = case
    policy = MatchPolicy(max_subset_candidates=4)  # small pools: scans stop early
    book = OpenBook(invoices)
    book.footprint = Footprint()
    before = match_payment(book, payment, policy)
    footprint, book.footprint = book.footprint, None
    if remove and invoices:
        gone = invoices[0]
        seen = footprint.sees(gone, gone.open_minor, None)
        book.remove(gone.invoice_number)
    else:
        seen = footprint.sees(newcomer, None, newcomer.open_minor)
        book.add(newcomer)
    if not seen:  # `candidates` (nearest amounts, for people) are not covered
        after = match_payment(book, payment, policy)
        assert replace(after, candidates=()) == replace(before, candidates=())


_BOOK_OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "pay", "remove"]),
        st.integers(min_value=0, max_value=11),  # invoice slot
        st.integers(min_value=0, max_value=3),  # amount (few values: many ties)
        st.integers(min_value=0, max_value=2),  # due day (few values: many ties)
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(_BOOK_OPS)
def test_amount_and_due_indexes_stay_sorted_through_changes(
    ops: list[tuple[str, int, int, int]],
) -> None:
    """Adds, open-amount changes and removals, with many equal amounts and due
    dates, keep both sorted indexes equal to a fresh sort by (value, number)."""
    book = OpenBook()
    for op, slot, amount, due in ops:
        number = f"INV-{slot:03d}"
        held = book.get(number)
        if op == "add":
            open_minor = 100 * (amount + 1)
            book.add(OpenInvoice(number, "USD", open_minor, open_minor, T0 + timedelta(days=due)))
        elif op == "pay" and held is not None:
            book.set_open(number, held.open_minor - 100 * amount)  # may reach 0: unmatched
        elif op == "remove":
            book.remove(number)
    everything = [book.get(f"INV-{slot:03d}") for slot in range(12)]
    held_now = [invoice for invoice in everything if invoice is not None]
    by_open = sorted(
        (i for i in held_now if i.open_minor > 0), key=lambda i: (i.open_minor, i.invoice_number)
    )
    assert book.open_between("USD", 1, 10**9) == by_open
    by_due = sorted(held_now, key=lambda i: (i.due_at, i.invoice_number))
    early = T0 - timedelta(days=1)
    assert book.due_nearest("USD", early, 10**9, 100, 100) == [
        i for i in by_due if i.open_minor > 0
    ]
