"""The Bytewax dataflow: wiring only; the logic lives in `steps.py` and `state/`.

    input (envelopes) -> decode -> resolve (one key: ordered, parks unknowns)
        -> customer ledgers (keyed by customer id)      \
        -> fee monitors    (keyed by processor)          > outcomes -> sink
    decode rejections ----------------------------------/

Recovery: the resolver's parked items, every ledger and every fee monitor are
Bytewax state, snapshotted as pickled bytes (immutable, as Bytewax requires).
The in-memory index is part of the resolver's snapshot; with Redis the index
lives in Redis and its writes are idempotent, so replays after a crash are safe.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeGuard, cast

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import FixedPartitionedSink, Sink

from arrecon.connectors.envelope import RawEnvelope
from arrecon.flows.steps import (
    PROCESSOR_PREFIX,
    CustomerStep,
    InputError,
    ProcessorStep,
    Resolver,
    Routed,
    Stamped,
    Tagged,
    decode_stamped,
)
from arrecon.state import fees, ledger
from arrecon.state.events import CustomerUpserted, PayoutSettled
from arrecon.state.index import CustomerIndex, DictStore, IndexStore

__all__ = ["FlowConfig", "build_flow"]

RESOLVER_KEY = "resolver"


@dataclass(frozen=True)
class FlowConfig:
    """What a flow needs beyond its input and output."""

    ledger_policy: ledger.LedgerPolicy = field(default_factory=ledger.LedgerPolicy)
    fee_policy: fees.FeePolicy = field(default_factory=fees.FeePolicy)
    # None: in-memory index kept in the resolver's snapshot. Else a factory for a
    # shared store (Redis) that each worker calls once.
    index_store: Callable[[], IndexStore] | None = None
    # Live runs fire dunning/overdue timers from the wall clock; replays only
    # from event time, so they stay deterministic.
    wall_clock_timers: bool = False
    # Replays run without recovery: skip the cost of pickling state each epoch.
    snapshots: bool = True


_NO_SNAPSHOT = b""


def _restore(snapshot: bytes | None) -> Any:
    """Our own recovery snapshots (pickled by `_dump`); empty means none."""
    return pickle.loads(snapshot) if snapshot else None


def _dump(value: Any, enabled: bool) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL) if enabled else _NO_SNAPSHOT


class _ResolverLogic(StatefulBatchLogic[Stamped, Routed | Tagged, bytes]):
    def __init__(
        self, resolver: Resolver, store: IndexStore, keep_index: bool, snapshots: bool
    ) -> None:
        self.resolver = resolver
        self.snapshots = snapshots
        self.store = store
        self.keep_index = keep_index

    def on_batch(self, values: list[Stamped]) -> tuple[Iterable[Routed | Tagged], bool]:
        return self.resolver.on_batch(values), StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        store = self.store if self.keep_index else None
        return _dump((self.resolver.parked, store), self.snapshots)


class _CustomerLogic(StatefulBatchLogic[Routed, Tagged, bytes]):
    def __init__(self, step: CustomerStep | None, config: FlowConfig) -> None:
        self.step = step
        self.config = config

    def on_batch(self, values: list[Routed]) -> tuple[Iterable[Tagged], bool]:
        if self.step is None:
            self.step = CustomerStep(values[0].key, self.config.ledger_policy)
        out = self.step.on_items(routed.item for routed in values)
        return out, self._discard()

    def on_notify(self) -> tuple[Iterable[Tagged], bool]:
        assert self.step is not None
        return self.step.on_clock(datetime.now(UTC)), self._discard()

    def notify_at(self) -> datetime | None:
        if not self.config.wall_clock_timers or self.step is None:
            return None
        return self.step.next_wakeup()

    def _discard(self) -> bool:
        return self.step is not None and self.step.state is None

    def snapshot(self) -> bytes:
        assert self.step is not None
        return _dump(self.step, self.config.snapshots)


class _ProcessorLogic(StatefulBatchLogic[Routed, Tagged, bytes]):
    def __init__(self, step: ProcessorStep, snapshots: bool) -> None:
        self.step = step
        self.snapshots = snapshots

    def on_batch(self, values: list[Routed]) -> tuple[Iterable[Tagged], bool]:
        return self.step.on_items(routed.item for routed in values), StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        return _dump(self.step, self.snapshots)


def _processor_builder(config: FlowConfig) -> Callable[[bytes | None], _ProcessorLogic]:
    def build(snapshot: bytes | None) -> _ProcessorLogic:
        step = _restore(snapshot) or ProcessorStep(config.fee_policy)
        return _ProcessorLogic(step, config.snapshots)

    return build


def _customer_builder(config: FlowConfig) -> Callable[[bytes | None], _CustomerLogic]:
    def build(snapshot: bytes | None) -> _CustomerLogic:
        return _CustomerLogic(_restore(snapshot), config)

    return build


def _resolver_builder(config: FlowConfig) -> Callable[[bytes | None], _ResolverLogic]:
    def build(snapshot: bytes | None) -> _ResolverLogic:
        parked, saved_store = _restore(snapshot) or ([], None)
        if config.index_store is not None:
            store: IndexStore = config.index_store()
        else:
            store = saved_store if saved_store is not None else DictStore()
        resolver = Resolver(CustomerIndex(store), parked)
        keep_index = config.index_store is None
        return _ResolverLogic(resolver, store, keep_index, config.snapshots)

    return build


def _is_stamped(item: Stamped | Tagged) -> TypeGuard[Stamped]:
    return isinstance(item, Stamped)


def _is_routed(item: Routed | Tagged) -> TypeGuard[Routed]:
    return isinstance(item, Routed)


def _sink_key(_item: Any) -> str:
    return "rows"


def _is_processor(pair: tuple[str, Routed]) -> bool:
    return pair[0].startswith(PROCESSOR_PREFIX)


Envelopes = Stream[RawEnvelope | InputError]
InputSpec = Source[RawEnvelope | InputError] | Callable[[Dataflow], Envelopes]


def _is_customer_or_payout(item: Stamped) -> bool:
    return isinstance(item.event, CustomerUpserted | PayoutSettled)


def _is_envelope(item: RawEnvelope | InputError) -> TypeGuard[RawEnvelope]:
    return isinstance(item, RawEnvelope)


def build_flow(
    source: InputSpec,
    sink: Sink[Any],
    config: FlowConfig | None = None,
    *,
    flow_id: str = "arrecon",
    record_events: bool = False,
    alert_sink: Sink[Any] | None = None,
) -> Dataflow:
    """The reconciliation dataflow from `source` envelopes to `sink` outcomes.

    `source` is a Bytewax source or a function adding the input steps (Kafka).
    With `record_events`, the sink also receives raw envelopes and the
    customer/payout events that have rows of their own (ClickHouse).
    `alert_sink` receives the same items and raises alerts from outcomes.
    """
    config = config or FlowConfig()
    flow = Dataflow(flow_id)
    if isinstance(source, Source):
        envelopes: Envelopes = op.input("envelopes", flow, source)
    else:
        envelopes = source(flow)
    decoded = op.flat_map("decode", envelopes, decode_stamped)
    split = op.branch("split_rejects", decoded, _is_stamped)
    rejected = cast(Stream[Tagged], split.falses)
    to_resolver = op.key_on("one_resolver", split.trues, lambda _item: RESOLVER_KEY)
    resolved = op.key_rm(
        "resolved", op.stateful_batch("resolve", to_resolver, _resolver_builder(config))
    )
    placed = op.branch("split_parked", resolved, _is_routed)
    parked = cast(Stream[Tagged], placed.falses)
    routed = op.key_on("route", placed.trues, lambda item: item.key)
    by_kind = op.branch("split_processors", routed, _is_processor)
    fee_outcomes = op.stateful_batch("fees", by_kind.trues, _processor_builder(config))
    customer_outcomes = op.stateful_batch("ledgers", by_kind.falses, _customer_builder(config))
    outputs: list[Stream[Any]] = [
        rejected,
        parked,
        op.key_rm("fee_outcomes", fee_outcomes),
        op.key_rm("customer_outcomes", customer_outcomes),
    ]
    if record_events:
        outputs.append(op.filter("record_events", split.trues, _is_customer_or_payout))
        outputs.append(op.filter("raw_envelopes", envelopes, _is_envelope))
    merged = op.merge("outputs", *outputs)
    if isinstance(sink, FixedPartitionedSink):  # e.g. ClickHouse: one keyed partition
        op.output("sink", op.key_on("sink_key", merged, _sink_key), sink)
    else:
        op.output("sink", merged, sink)
    if alert_sink is not None:
        op.output("alerts", merged, alert_sink)
    return flow
