"""The index over real Redis behaves like the in-memory one, one round trip per batch."""

from __future__ import annotations

import uuid

import pytest
import redis

from arrecon.flows.redis_store import RedisStore
from arrecon.state.index import CustomerIndex, DictStore, Fact, FactKind, ResolveQuery

pytestmark = pytest.mark.integration


def _facts() -> list[Fact]:
    return [
        Fact(FactKind.REF, "INV-2026-004711", "C-1"),
        Fact(FactKind.REF, "INV-2026-004712", "C-2"),
        Fact(FactKind.EXTERNAL_ID, "cus_ABC123", "C-1"),
        Fact(FactKind.NAME, "Acme Corporation", "C-1"),
        Fact(FactKind.NAME, "Globex GmbH", "C-2"),
    ]


QUERIES = [
    ResolveQuery(references=("Payment for INV-2026-004711",)),
    ResolveQuery(external_ids=("cus_ABC123",)),
    ResolveQuery(payer_name="GLOBEX GMBH"),
    ResolveQuery(payer_name="Nobody Known Ltd"),
    ResolveQuery(invoice_refs=("inv-2026-004712",)),
]


def test_redis_index_answers_like_the_dict_index_in_one_round_trip(redis_url: str) -> None:
    store = RedisStore(redis.Redis.from_url(redis_url), prefix=f"t{uuid.uuid4().hex[:6]}:")
    in_redis, in_memory = CustomerIndex(store), CustomerIndex(DictStore())
    in_redis.learn(_facts())
    in_memory.learn(_facts())
    store.names()  # warm the alias cache so the batch below is the only round trip
    before = store.round_trips
    answers = in_redis.resolve_many(QUERIES)
    assert store.round_trips - before == 1
    assert [a.customer_id for a in answers] == [
        a.customer_id for a in in_memory.resolve_many(QUERIES)
    ]
    assert [a.customer_id for a in answers] == ["C-1", "C-1", "C-2", None, "C-2"]


def test_names_written_by_another_process_are_seen_after_refresh(redis_url: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:6]}:"
    clock = [0.0]
    reader = RedisStore(redis.Redis.from_url(redis_url), prefix=prefix, clock=lambda: clock[0])
    writer = RedisStore(redis.Redis.from_url(redis_url), prefix=prefix)
    assert reader.names() == []
    CustomerIndex(writer).learn([Fact(FactKind.NAME, "Initech LLC", "C-9")])
    assert reader.names() == []  # cached
    clock[0] += 10
    assert [customer for _, customer in reader.names()] == ["C-9"]
