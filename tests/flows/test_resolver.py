"""The resolver's parking shortcuts give the answers of a full re-check.

With an in-memory index the resolver skips re-checking parked payer-name items
that a new name cannot place; with a shared store it re-checks them all. Both
must place the same events at the same moments.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from arrecon.flows.steps import Resolver, Routed, Stamped, Tagged
from arrecon.state.events import (
    CustomerHints,
    CustomerUpserted,
    DisputePhase,
    DisputeUpdated,
    Event,
    InvoiceIssued,
    PaymentReceived,
    PaymentReversed,
    ReversalKind,
)
from arrecon.state.index import CustomerIndex, DictStore
from arrecon.state.money import Money

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
USD = "USD"
CUSTOMERS = ["C1", "C2", "C3", "C4"]
NAMES = ["Acme Tools", "Acme Tool", "Nord Star", "Northstar GmbH", "Quinn Architects"]
PAYMENTS = ["P1", "P2", "P3"]
INVOICES = ["INV-1001", "INV-1002", "INV-2001", "PO-7001"]
ACCOUNTS = ["DE001", "DE002"]


class SharedStore:
    """A store the index cannot see all writes of (like Redis): names as a plain list."""

    def __init__(self) -> None:
        self.inner = DictStore()

    def get_many(self, keys: Sequence[str]) -> list[str | None]:
        return self.inner.get_many(keys)

    def set_many(self, items: Mapping[str, str]) -> None:
        self.inner.set_many(items)

    def names(self) -> Sequence[tuple[str, str]]:
        return list(self.inner.names())


class CountingStore(DictStore):
    """An in-memory store that counts looked-up keys."""

    def __init__(self) -> None:
        super().__init__()
        self.looked_up = 0

    def get_many(self, keys: Sequence[str]) -> list[str | None]:
        self.looked_up += len(keys)
        return super().get_many(keys)


def customer(number: int, customer_id: str, name: str, account: str | None) -> CustomerUpserted:
    return CustomerUpserted(
        event_id=f"cu-{number}",
        occurred_at=T0,
        customer_id=customer_id,
        name=name,
        bank_accounts=(account,) if account else (),
    )


def invoice(number: int, invoice_number: str, customer_id: str) -> InvoiceIssued:
    return InvoiceIssued(
        event_id=f"inv-{number}",
        occurred_at=T0,
        invoice_number=invoice_number,
        amount=Money(1000, USD),
        issued_at=T0,
        due_at=T0,
        hints=CustomerHints(customer_id=customer_id),
    )


def payment(
    number: int, payment_id: str, payer: str | None, ref: str | None, account: str | None
) -> PaymentReceived:
    return PaymentReceived(
        event_id=f"pay-{number}",
        occurred_at=T0,
        payment_id=payment_id,
        amount=Money(1000, USD),
        source="bank",
        hints=CustomerHints(payer_name=payer, payer_account=account),
        references=(f"Invoice {ref}",) if ref else (),
    )


def reversal(
    number: int, payment_id: str, payer: str | None, customer_id: str | None = None
) -> PaymentReversed:
    return PaymentReversed(
        event_id=f"rev-{number}",
        occurred_at=T0,
        payment_id=payment_id,
        reversal_id=f"re-{number}",
        kind=ReversalKind.REFUND,
        amount=Money(100, USD),
        hints=CustomerHints(customer_id=customer_id, payer_name=payer),
    )


def dispute(number: int, payment_id: str, payer: str | None) -> DisputeUpdated:
    return DisputeUpdated(
        event_id=f"dp-{number}",
        occurred_at=T0,
        dispute_id=f"dp-{number}",
        payment_id=payment_id,
        phase=DisputePhase.OPENED,
        amount=Money(100, USD),
        hints=CustomerHints(payer_name=payer),
    )


def random_specs(rng: random.Random, count: int) -> list[tuple[object, ...]]:
    """A stream over a small vocabulary, so names, ids and refs collide often."""

    def maybe(values: list[str]) -> str | None:
        return rng.choice([None, *values])

    specs: list[tuple[object, ...]] = []
    for _ in range(count):
        kind = rng.choice(["customer", "invoice", "payment", "reversal", "dispute"])
        payment_id = rng.choice(PAYMENTS)
        if kind == "customer":
            specs.append((kind, rng.choice(CUSTOMERS), rng.choice(NAMES), maybe(ACCOUNTS)))
        elif kind == "invoice":
            specs.append((kind, rng.choice(INVOICES), rng.choice(CUSTOMERS)))
        elif kind == "payment":
            specs.append((kind, payment_id, maybe(NAMES), maybe(INVOICES), maybe(ACCOUNTS)))
        elif kind == "reversal":
            specs.append((kind, payment_id, maybe(NAMES), maybe(CUSTOMERS)))
        else:
            specs.append((kind, payment_id, maybe(NAMES)))
    return specs


def build(number: int, spec: tuple[object, ...]) -> Event:
    kind, *args = spec
    makers = {
        "customer": customer,
        "invoice": invoice,
        "payment": payment,
        "reversal": reversal,
        "dispute": dispute,
    }
    return makers[str(kind)](number, *args)  # type: ignore[operator]


def run(resolver: Resolver, events: list[Event], cuts: list[int]) -> list[Routed | Tagged]:
    items = [Stamped(position, 0, T0, event) for position, event in enumerate(events, 1)]
    out: list[Routed | Tagged] = []
    start = 0
    for cut in [*sorted(cuts), len(items)]:
        if cut > start:
            out.extend(resolver.on_batch(items[start:cut]))
            start = cut
    return out


@settings(max_examples=250, deadline=None)
@given(
    rng=st.randoms(use_true_random=False),
    count=st.integers(min_value=1, max_value=30),
    cuts=st.lists(st.integers(min_value=0, max_value=30), max_size=6),
)
def test_skipping_hopeless_rechecks_places_the_same_events_as_a_full_recheck(
    rng: random.Random, count: int, cuts: list[int]
) -> None:
    events = [build(number, spec) for number, spec in enumerate(random_specs(rng, count))]
    local = Resolver(CustomerIndex(DictStore()))
    shared = Resolver(CustomerIndex(SharedStore()))
    assert local.index.sees_all_writes
    assert not shared.index.sees_all_writes
    assert run(local, events, cuts) == run(shared, events, cuts)
    assert local.parked == shared.parked


def test_a_known_customer_upserted_again_rechecks_no_hopeless_payer() -> None:
    store = CountingStore()
    resolver = Resolver(CustomerIndex(store))
    resolver.on_batch([Stamped(1, 0, T0, customer(1, "C1", "Acme Tools", None))])
    strangers = [payment(n, f"P{n}", "Quinn Architects", None, None) for n in range(2, 12)]
    resolver.on_batch([Stamped(n, 0, T0, event) for n, event in enumerate(strangers, 2)])
    assert len(resolver.parked) == 10
    before = store.looked_up
    resolver.on_batch([Stamped(20, 0, T0, customer(20, "C1", "Acme Tools", None))])
    assert store.looked_up == before  # the customer's own id needs no look-up; nothing re-checked
    assert len(resolver.parked) == 10


def test_a_new_name_places_the_parked_payers_it_matches_in_parking_order() -> None:
    resolver = Resolver(CustomerIndex(DictStore()))
    first = payment(1, "P1", "Quinn Architects", None, None)
    other = payment(2, "P2", "Nord Star", None, None)
    second = payment(3, "P3", "Quinn Architects", None, None)
    resolver.on_batch([Stamped(n, 0, T0, event) for n, event in enumerate([first, other, second])])
    out = resolver.on_batch([Stamped(9, 0, T0, customer(9, "C7", "Quinn Architects LLC", None))])
    released = [item for item in out if isinstance(item, Routed) and item.item.sub > 0]
    assert [routed.item.event for routed in released] == [first, second]
    assert [routed.item.sub for routed in released] == [1, 2]
    assert {routed.customer_id for routed in released} == {"C7"}
    assert [parked.item.event for parked in resolver.parked] == [other]


def test_a_payment_id_written_silently_places_a_parked_payer_on_the_next_name() -> None:
    """A reversal teaches `pay:P1` without releasing; the next new name re-checks P1's dispute."""
    resolver = Resolver(CustomerIndex(DictStore()))
    parked_refund = reversal(1, "P1", "Quinn Architects")
    resolver.on_batch([Stamped(1, 0, T0, parked_refund)])
    assert len(resolver.parked) == 1
    known = reversal(2, "P1", None, customer_id="C1")
    resolver.on_batch([Stamped(2, 0, T0, known)])
    assert len(resolver.parked) == 1  # reversals teach, but do not release
    out = resolver.on_batch([Stamped(3, 0, T0, customer(3, "C2", "Nord Star", None))])
    released = [item for item in out if isinstance(item, Routed) and item.item.sub > 0]
    assert [(routed.customer_id, routed.item.event) for routed in released] == [
        ("C1", parked_refund)
    ]
    assert resolver.parked == []
