"""The logic inside each dataflow step, free of Bytewax so it is easy to test.

Why separate: `reconcile.py` only wires these into operators. Each step works
on `Stamped` items (an event with its input position) and returns `Tagged`
outcomes (an outcome with the position that caused it), so a replay can write
its outcomes in a deterministic order however Bytewax interleaves keys.

Steps:
    decode_envelope_stamped   raw envelope -> stamped events | rejected outcomes
    Resolver                  stamped event -> routed to a customer / processor,
                              or parked until the index can place it
    CustomerStep              one customer's ledger (state.ledger)
    ProcessorStep             one processor's fee monitor (state.fees)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from arrecon.connectors.envelope import RawEnvelope
from arrecon.connectors.registry import decode_envelope
from arrecon.state import fees, ledger
from arrecon.state.events import (
    CustomerUpserted,
    Event,
    InvoiceAdjusted,
    InvoiceIssued,
    PaymentReceived,
    PayoutCredited,
    PayoutSettled,
)
from arrecon.state.index import CustomerIndex, Fact, FactKind, Resolution, ResolveQuery
from arrecon.state.outcomes import Outcome, Rejected, Unapplied, make_outcome_id

__all__ = [
    "CustomerStep",
    "InputError",
    "Parked",
    "ProcessorStep",
    "Resolver",
    "Routed",
    "Stamped",
    "Tagged",
    "UNRESOLVED_REASON",
    "decode_stamped",
]

UNRESOLVED_REASON = "customer_unresolved"
PROCESSOR_PREFIX = "processor:"
# Events of one envelope (a bank statement's entries) get `sub` = index * this;
# items they release take the subs just after, so every event has its own slot.
RELEASE_SPAN = 1_000_000


@dataclass(frozen=True, slots=True)
class Stamped:
    """An event, the arrival time used as `now`, and its place in the input.

    `sub` orders the events of one input item (`index * RELEASE_SPAN`) and the
    parked items each of them released (the subs right after it).
    """

    position: int
    sub: int
    received_at: datetime
    event: Event


@dataclass(frozen=True, slots=True)
class Tagged:
    """An outcome with the sort key that makes replay output deterministic."""

    position: int
    sub: int
    seq: int
    outcome: Outcome
    # When the envelope that caused it was received (live latency metrics).
    received_at: datetime | None = None

    @property
    def sort_key(self) -> tuple[int, int, int]:
        return (self.position, self.sub, self.seq)


@dataclass(frozen=True, slots=True)
class InputError:
    """An input record that is not even an envelope (bad JSON line, missing keys)."""

    position: int
    source: str
    reason: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Routed:
    """A stamped event on its way to the keyed step that owns `key`."""

    key: str
    customer_id: str | None
    item: Stamped


def decode_stamped(envelope: RawEnvelope | InputError) -> list[Stamped | Tagged]:
    """Decode one envelope; every rejection becomes a `rejected` outcome."""
    if isinstance(envelope, InputError):
        return [_input_rejected(envelope)]
    decoded = decode_envelope(envelope)
    out: list[Stamped | Tagged] = [
        Stamped(envelope.position, index * RELEASE_SPAN, envelope.received_at, event)
        for index, event in enumerate(decoded.events)
    ]
    for number, rejection in enumerate(decoded.rejections):
        reason = f"{rejection.reason}: {rejection.detail}" if rejection.detail else rejection.reason
        if rejection.ref:
            reason = f"{reason} [{rejection.ref}]"
        outcome = Rejected(
            outcome_id=make_outcome_id("rejected", envelope.position, number, rejection.reason),
            at=envelope.received_at,
            line=envelope.position,
            source=envelope.source,
            reason=reason,
            kind=envelope.kind,
        )
        out.append(Tagged(envelope.position, 0, -1 - number, outcome))
    return out


def _input_rejected(error: InputError) -> Tagged:
    outcome = Rejected(
        outcome_id=make_outcome_id("rejected", error.position, error.reason),
        at=error.received_at,
        line=error.position,
        source=error.source,
        reason=error.reason,
    )
    return Tagged(error.position, 0, -1, outcome)


def _teaches(event: Event) -> bool:
    """Events whose facts may place parked payments (invoices, customers)."""
    return isinstance(event, CustomerUpserted | InvoiceIssued | InvoiceAdjusted | PaymentReceived)


@dataclass(frozen=True, slots=True)
class _Written:
    """The store keys some facts wrote, and whether one of them was a name."""

    keys: Sequence[str]
    names: bool


_NOTHING_WRITTEN = _Written((), False)


@dataclass(frozen=True, slots=True)
class Parked:
    """An event waiting for a customer, with the index keys that could place it."""

    item: Stamped
    query: ResolveQuery
    wanted: frozenset[str]


@dataclass
class Resolver:
    """Places each event with a customer, in input order, parking what it cannot.

    One instance sees the whole stream (a single Bytewax key), so parking and
    releasing are ordered and deterministic. Look-ups are batched: one
    `resolve_many` per batch, plus a re-check only when facts learned earlier in
    the same batch may change an answer. Parked items are re-checked only when a
    new fact names a key they look up (or a new name when they carry a payer name).

    With an in-memory index every write passes through here, so a new name
    re-checks only the parked items it could change: those whose payer name now
    resolves, and those one of whose keys was written since their last check.
    Any other item would get the same unresolved answer again.
    """

    index: CustomerIndex
    parked: list[Parked] = field(default_factory=list)
    # Inverted index over `parked`: store key -> parked items that look it up.
    _waiting: dict[str, list[Parked]] = field(default_factory=dict, repr=False)
    # Parking order by id(parked): hopeful items are listed in order without a scan.
    _order: dict[int, int] = field(default_factory=dict, repr=False)
    _parked_count: int = field(default=0, repr=False)
    # Keys and names written during the current batch (see `_stale`).
    _batch_keys: set[str] = field(default_factory=set, repr=False)
    _batch_names: bool = field(default=False, repr=False)
    # Parked items that carry a payer name, grouped by it.
    _by_payer: dict[str, dict[int, Parked]] = field(default_factory=dict, repr=False)
    # Parked items with a payer name one of whose keys was written since their last check.
    _touched: dict[int, Parked] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for parked in self.parked:
            self._watch(parked)
        # Restored items: their last check is unknown, so assume keys changed.
        self._touched = {id(parked): parked for parked in self.parked if parked.query.payer_name}

    def __getstate__(self) -> dict[str, object]:
        return {"index": self.index, "parked": self.parked}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.index = state["index"]  # type: ignore[assignment]
        self.parked = state["parked"]  # type: ignore[assignment]
        self._waiting, self._order, self._parked_count = {}, {}, 0
        self._by_payer, self._touched = {}, {}
        self.__post_init__()

    def _watch(self, parked: Parked) -> None:
        for key in parked.wanted:
            self._waiting.setdefault(key, []).append(parked)
        self._order[id(parked)] = self._parked_count
        self._parked_count += 1
        payer_name = parked.query.payer_name
        if payer_name:
            self._by_payer.setdefault(payer_name, {})[id(parked)] = parked

    def on_batch(self, items: Sequence[Stamped]) -> list[Routed | Tagged]:
        """Resolve a batch in order, as if one item at a time.

        Over an in-memory index each item is resolved at its turn (a look-up is
        a dict read). Over a shared store the batch is looked up once; an
        answer read at the start of the batch is re-checked when a fact
        learned earlier in the same batch touches one of its keys (or a new
        name when it carries a payer name), so the result never depends on
        where batch boundaries fall.
        """
        queries = [CustomerIndex.query_for(item.event) for item in items]
        if self.index.sees_all_writes:
            return self._each_in_turn(items, queries)
        answers = self.index.resolve_many([query for query in queries if query is not None])
        answer_iter = iter(answers)
        out: list[Routed | Tagged] = []
        self._batch_keys, self._batch_names = set(), False
        for item, query in zip(items, queries, strict=True):
            if query is None:
                out.extend(self._route_processor(item))
                continue
            resolution = next(answer_iter)
            if self._stale(query):
                resolution = self.index.resolve(query)
            self._place(item, query, resolution, out)
        return out

    def _each_in_turn(
        self, items: Sequence[Stamped], queries: Sequence[ResolveQuery | None]
    ) -> list[Routed | Tagged]:
        out: list[Routed | Tagged] = []
        resolve = self.index.resolve
        for item, query in zip(items, queries, strict=True):
            if query is None:
                out.extend(self._route_processor(item))
            else:
                self._place(item, query, resolve(query), out)
        return out

    def _place(
        self,
        item: Stamped,
        query: ResolveQuery,
        resolution: Resolution,
        out: list[Routed | Tagged],
    ) -> None:
        """Route a resolved item and release what its facts place; park the rest."""
        customer_id = resolution.customer_id
        if customer_id is None:
            out.extend(self._park_or_reject(item, query, resolution.evidence))
            return
        event = item.event
        # A payer account is learned only from a confirmed match, never a fuzzy name.
        facts = CustomerIndex.facts_for(
            event, customer_id, teach_account=resolution.method != "payer_name"
        )
        written = self._write(facts)
        out.append(Routed(customer_id, customer_id, item))
        if self.parked and facts and _teaches(event):
            out.extend(self._release(item, written))

    def _stale(self, query: ResolveQuery) -> bool:
        """Whether facts learned in this batch may change the batch-start answer."""
        if query.customer_id:
            return False  # decided by the query itself, whatever the store holds
        if self._batch_names and query.payer_name:
            return True
        return bool(self._batch_keys) and not self._batch_keys.isdisjoint(
            CustomerIndex.wanted_keys(query)
        )

    def _write(self, facts: Sequence[Fact]) -> _Written:
        """Store the facts; mark the parked payer-name items whose keys they wrote.

        Each fact's store keys are computed once here and handed on, since the
        same keys decide which parked items to wake.
        """
        items: dict[str, str] = {}
        keys: list[str] = []
        names = False
        for fact in facts:
            fact_keys = fact.store_keys()
            keys.extend(fact_keys)
            if fact.kind is FactKind.NAME:
                names = True
            if fact.customer_id:
                for key in fact_keys:
                    items[key] = fact.customer_id
        self.index.write(items)
        if not self.index.sees_all_writes:
            self._batch_keys.update(keys)
            self._batch_names = self._batch_names or names
        if self._by_payer:
            waiting = self._waiting
            for key in keys:
                for parked in waiting.get(key, ()):
                    if parked.query.payer_name:
                        self._touched[id(parked)] = parked
        return _Written(keys, names)

    def _route_processor(self, item: Stamped) -> list[Routed | Tagged]:
        event = item.event
        if isinstance(event, PayoutSettled | PayoutCredited):
            return [Routed(PROCESSOR_PREFIX + event.processor, None, item)]
        raise AssertionError(f"no route for {type(event).__name__}")

    def _park_or_reject(
        self, item: Stamped, query: ResolveQuery, evidence: tuple[str, ...]
    ) -> list[Routed | Tagged]:
        event = item.event
        parked = Parked(item, query, CustomerIndex.wanted_keys(query))
        self.parked.append(parked)
        self._watch(parked)
        if isinstance(event, PaymentReceived):
            return [_parked_payment(item, evidence)]
        return []

    def _release(self, trigger: Stamped, written: _Written) -> list[Routed | Tagged]:
        """Re-resolve the parked items the new facts may place; release those placed.

        Released items teach facts of their own (an order released by its
        customer places the payment that quoted the order), so this repeats
        until a round places nothing.
        """
        out: list[Routed | Tagged] = []
        while written.keys or written.names:
            released, written = self._release_round(trigger, written, len(out))
            out.extend(released)
        return out

    def _release_round(
        self, trigger: Stamped, written: _Written, done: int
    ) -> tuple[list[Routed | Tagged], _Written]:
        hopeful = self._hopeful(written)
        if not hopeful:
            return [], _NOTHING_WRITTEN
        answers = self.index.resolve_many([parked.query for parked in hopeful])
        for parked in hopeful:
            self._touched.pop(id(parked), None)
        placed = [
            (parked, answer.customer_id)
            for parked, answer in zip(hopeful, answers, strict=True)
            if answer.customer_id is not None
        ]
        if not placed:
            return [], _NOTHING_WRITTEN
        out: list[Routed | Tagged] = []
        learned_keys: list[str] = []
        learned_names = False
        for parked, customer_id in placed:  # `hopeful` is in parking order
            self._unwatch(parked)
            event = parked.item.event
            sub = trigger.sub + done + len(out) + 1
            new = self._write(CustomerIndex.facts_for(event, customer_id))
            learned_keys.extend(new.keys)
            learned_names = learned_names or new.names
            out.append(
                Routed(
                    customer_id,
                    customer_id,
                    Stamped(trigger.position, sub, trigger.received_at, event),
                )
            )
        gone = {id(parked) for parked, _ in placed}
        self.parked = [parked for parked in self.parked if id(parked) not in gone]
        return out, _Written(learned_keys, learned_names)

    def _hopeful(self, written: _Written) -> list[Parked]:
        """Parked items that look up a key the facts just wrote, in parking order."""
        found: dict[int, Parked] = {}
        waiting = self._waiting
        for key in written.keys:
            for parked in waiting.get(key, ()):
                found[id(parked)] = parked
        if self._by_payer and written.names:
            found.update(self._name_hopeful())
        if not found:
            return []
        order = self._order
        return sorted(found.values(), key=lambda parked: order[id(parked)])

    def _name_hopeful(self) -> dict[int, Parked]:
        """Parked payer-name items a new name may place."""
        if not self.index.sees_all_writes:
            return {id(parked): parked for parked in self.parked if parked.query.payer_name}
        found = dict(self._touched)
        for payer_name, group in self._by_payer.items():
            answer = self.index.name_answer(payer_name)
            if answer is not None and answer.resolved:
                found.update(group)
        return found

    def _unwatch(self, parked: Parked) -> None:
        for key in parked.wanted:
            waiting = self._waiting.get(key)
            if waiting is None:
                continue
            waiting[:] = [other for other in waiting if other is not parked]
            if not waiting:
                del self._waiting[key]
        del self._order[id(parked)]
        self._touched.pop(id(parked), None)
        payer_name = parked.query.payer_name
        if payer_name:
            group = self._by_payer[payer_name]
            del group[id(parked)]
            if not group:
                del self._by_payer[payer_name]


def _parked_payment(item: Stamped, evidence: tuple[str, ...]) -> Tagged:
    event = item.event
    assert isinstance(event, PaymentReceived)
    outcome = Unapplied(
        outcome_id=make_outcome_id("unapplied", event.event_id, UNRESOLVED_REASON),
        at=event.occurred_at,
        payment_id=event.payment_id,
        customer_id=None,
        amount_minor=event.amount.amount_minor,
        currency=event.amount.currency,
        reason=UNRESOLVED_REASON,
        evidence=evidence,
    )
    return Tagged(item.position, item.sub, 0, outcome)


@dataclass
class CustomerStep:
    """One customer's ledger; event time drives overdue and dunning in replays."""

    customer_id: str
    policy: ledger.LedgerPolicy
    state: ledger.Ledger | None = None

    def on_items(self, items: Iterable[Stamped]) -> list[Tagged]:
        out: list[Tagged] = []
        for item in sorted(items, key=lambda stamped: (stamped.position, stamped.sub)):
            outcomes = self._timers(item.received_at)
            _, applied = self._apply(item)
            outcomes.extend(applied)
            out.extend(
                Tagged(item.position, item.sub, n, o, item.received_at)
                for n, o in enumerate(outcomes)
            )
        return out

    def on_clock(self, now: datetime) -> list[Tagged]:
        """Timers fired by the wall clock (live runs only)."""
        return [Tagged(-1, 0, n, o) for n, o in enumerate(self._timers(now))]

    def _timers(self, now: datetime) -> list[Outcome]:
        if self.state is None:
            return []
        wakeup = ledger.next_wakeup(self.state, self.policy)
        if wakeup is None or wakeup > now:
            return []
        self.state, outcomes = ledger.on_timer(self.state, self.customer_id, now, self.policy)
        return list(outcomes)

    def _apply(self, item: Stamped) -> tuple[ledger.Ledger | None, list[Outcome]]:
        event = item.event
        assert not isinstance(event, PayoutSettled | PayoutCredited)
        self.state, outcomes = ledger.apply(
            self.state, self.customer_id, event, item.received_at, self.policy
        )
        return self.state, list(outcomes)

    def next_wakeup(self) -> datetime | None:
        return None if self.state is None else ledger.next_wakeup(self.state, self.policy)


@dataclass
class ProcessorStep:
    """One processor's fee monitor."""

    policy: fees.FeePolicy
    state: fees.FeeMonitor | None = None

    def on_items(self, items: Iterable[Stamped]) -> list[Tagged]:
        out: list[Tagged] = []
        for item in sorted(items, key=lambda stamped: (stamped.position, stamped.sub)):
            event = item.event
            if not isinstance(event, PayoutSettled):
                continue  # bank credits of payouts: tracked by the sinks as in-transit closure
            self.state, outcomes = fees.observe(self.state, event, self.policy)
            out.extend(Tagged(item.position, item.sub, n, o) for n, o in enumerate(outcomes))
        return out
