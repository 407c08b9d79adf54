"""The resolution index: every evidence tier, ambiguity, names, learning, batching."""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrecon.state.events import (
    AdjustmentKind,
    CustomerHints,
    CustomerUpserted,
    DisputePhase,
    DisputeUpdated,
    InvoiceAdjusted,
    InvoiceIssued,
    PaymentReceived,
    PaymentReversed,
    PayoutSettled,
    Rail,
    RemittanceLine,
    ReversalKind,
)
from arrecon.state.index import (
    NAME_PREFIX,
    CustomerIndex,
    DictStore,
    Fact,
    FactKind,
    IndexPolicy,
    ResolveQuery,
    _fuzzy_name,
    normalize_account,
    normalize_name,
)
from arrecon.state.money import Money
from arrecon.state.references import _extract, extract_references, normalize_reference

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
USD = "USD"


class CountingStore:
    """A DictStore that counts calls, to prove the batching promise."""

    def __init__(self) -> None:
        self.inner = DictStore()
        self.get_calls: list[int] = []
        self.set_calls = 0
        self.names_calls = 0

    def get_many(self, keys: Sequence[str]) -> list[str | None]:
        self.get_calls.append(len(keys))
        return self.inner.get_many(keys)

    def set_many(self, items: Mapping[str, str]) -> None:
        self.set_calls += 1
        self.inner.set_many(items)

    def names(self) -> Sequence[tuple[str, str]]:
        self.names_calls += 1
        return self.inner.names()


def customer(customer_id: str, name: str, **fields: object) -> CustomerUpserted:
    return CustomerUpserted(
        event_id=f"cu-{customer_id}",
        occurred_at=T0,
        customer_id=customer_id,
        name=name,
        **fields,  # type: ignore[arg-type]
    )


def invoice(number: str, customer_id: str, po: str | None = None, *ext: str) -> InvoiceIssued:
    return InvoiceIssued(
        event_id=f"inv-{number}",
        occurred_at=T0,
        invoice_number=number,
        amount=Money(10_000, USD),
        issued_at=T0,
        due_at=T0,
        hints=CustomerHints(customer_id=customer_id),
        po_number=po,
        external_ids=ext,
    )


def payment(payment_id: str, **fields: object) -> PaymentReceived:
    return PaymentReceived(
        event_id=f"pay-{payment_id}",
        occurred_at=T0,
        payment_id=payment_id,
        amount=Money(10_000, USD),
        source="bank",
        rail=Rail.ACH,
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


@pytest.fixture
def index(store: CountingStore) -> CustomerIndex:
    """Three customers taught the way the flow teaches them: from events."""
    idx = CustomerIndex(store)
    events: list[tuple[object, str]] = [
        (
            customer(
                "C-ACME",
                "ACME Corp.",
                aliases=("Acme Corporation",),
                external_ids=("cus_Acme123", "7890001"),
                bank_accounts=("DE89 3704 0044 0532 0130 00",),
            ),
            "C-ACME",
        ),
        (customer("C-HOLD", "Acme Corp Holdings", external_ids=("cus_Hold9",)), "C-HOLD"),
        (
            customer("C-GLOBEX", "Globex GmbH & Co. KG", external_ids=("ap@globex.example",)),
            "C-GLOBEX",
        ),
        (invoice("INV-4711", "C-ACME", "PO-88812", "in_1Acme"), "C-ACME"),
        (invoice("INV-4712", "C-HOLD", "PO-55501"), "C-HOLD"),
        (invoice("INV-5000", "C-GLOBEX"), "C-GLOBEX"),
    ]
    facts = [fact for event, cid in events for fact in CustomerIndex.facts_for(event, cid)]  # type: ignore[arg-type]
    idx.learn(facts)
    return idx


TIER_CASES = [
    pytest.param(ResolveQuery(customer_id="C-X"), "C-X", "customer_id", id="explicit-customer"),
    pytest.param(
        ResolveQuery(external_ids=("cus_Acme123",)), "C-ACME", "external_id", id="stripe-cus"
    ),
    pytest.param(ResolveQuery(external_ids=("7890001",)), "C-ACME", "external_id", id="shopify-id"),
    pytest.param(
        ResolveQuery(external_ids=("AP@Globex.Example ",)),
        "C-GLOBEX",
        "external_id",
        id="email-case",
    ),
    pytest.param(ResolveQuery(invoice_refs=("INV-4711",)), "C-ACME", "invoice_ref", id="invoice"),
    pytest.param(
        ResolveQuery(invoice_refs=("inv 4712",)), "C-HOLD", "invoice_ref", id="invoice-fmt"
    ),
    pytest.param(ResolveQuery(invoice_refs=("PO-88812",)), "C-ACME", "invoice_ref", id="po"),
    pytest.param(
        ResolveQuery(invoice_refs=("in_1Acme",)), "C-ACME", "invoice_ref", id="provider-inv"
    ),
    pytest.param(
        ResolveQuery(references=("Payment for invoice INV-5000, thanks",)),
        "C-GLOBEX",
        "text_ref",
        id="text-ref",
    ),
    pytest.param(
        ResolveQuery(references=("/RFB/INV 4711 PO 88812",)), "C-ACME", "text_ref", id="text-split"
    ),
    pytest.param(
        ResolveQuery(invoice_refs=("INV-004711",)), "C-ACME", "invoice_ref", id="leading-zeros"
    ),
    pytest.param(
        ResolveQuery(references=("Rechnung 4711 vom 02.03.",)), "C-ACME", "ref_core", id="no-prefix"
    ),
    pytest.param(ResolveQuery(invoice_refs=("88812",)), "C-ACME", "ref_core", id="po-digits"),
    pytest.param(
        ResolveQuery(payer_account="de89370400440532013000"),
        "C-ACME",
        "payer_account",
        id="account",
    ),
    pytest.param(
        ResolveQuery(payer_name="ACME CORPORATION"), "C-ACME", "payer_name", id="name-upper"
    ),
    pytest.param(
        ResolveQuery(payer_name="Acme Corp, Inc."), "C-ACME", "payer_name", id="name-form"
    ),
    pytest.param(
        ResolveQuery(payer_name="ACME CORP HOLDINGS LLC"), "C-HOLD", "payer_name", id="look-alike"
    ),
    pytest.param(ResolveQuery(payer_name="Globex"), "C-GLOBEX", "payer_name", id="name-gmbh-co-kg"),
    pytest.param(ResolveQuery(payer_name="Globx GmbH"), "C-GLOBEX", "payer_name", id="name-typo"),
]


@pytest.mark.parametrize(("query", "expected", "method"), TIER_CASES)
def test_each_evidence_kind_resolves(
    index: CustomerIndex, query: ResolveQuery, expected: str, method: str
) -> None:
    answer = index.resolve(query)
    assert (answer.customer_id, answer.method) == (expected, method)
    assert 0.0 < answer.confidence <= 1.0
    assert answer.evidence


def test_cascade_order_first_decisive_tier_wins(index: CustomerIndex) -> None:
    # The account says ACME, the invoice ref says HOLD: refs rank above accounts.
    answer = index.resolve(
        ResolveQuery(
            invoice_refs=("INV-4712",),
            payer_account="DE89370400440532013000",
            payer_name="Globex",
        )
    )
    assert (answer.customer_id, answer.method) == ("C-HOLD", "invoice_ref")
    # The external id outranks the ref; explicit refs outrank refs mined from text.
    assert index.resolve(
        ResolveQuery(external_ids=("cus_Hold9",), invoice_refs=("INV-4711",))
    ).customer_id == ("C-HOLD")
    explicit_first = index.resolve(
        ResolveQuery(invoice_refs=("INV-5000",), references=("INV-4711",))
    )
    assert (explicit_first.customer_id, explicit_first.method) == ("C-GLOBEX", "invoice_ref")


def test_refs_of_two_customers_are_ambiguous(index: CustomerIndex) -> None:
    answer = index.resolve(
        ResolveQuery(invoice_refs=("INV-4711", "INV-4712"), payer_name="Acme Corp Holdings")
    )
    assert answer.customer_id is None
    assert answer.method == "ambiguous_invoice_ref"
    assert any("C-ACME" in item for item in answer.evidence)
    assert any("C-HOLD" in item for item in answer.evidence)


def test_text_refs_of_two_customers_are_ambiguous(index: CustomerIndex) -> None:
    answer = index.resolve(ResolveQuery(references=("INV-4711 INV-5000",)))
    assert (answer.customer_id, answer.method) == (None, "ambiguous_text_ref")


def test_core_match_ranks_below_exact_refs(index: CustomerIndex) -> None:
    exact = index.resolve(ResolveQuery(invoice_refs=("INV-4711",)))
    core = index.resolve(ResolveQuery(invoice_refs=("4711",)))
    assert exact.customer_id == core.customer_id == "C-ACME"
    assert core.confidence < exact.confidence
    # An exact hit elsewhere wins over a core hit.
    mixed = index.resolve(ResolveQuery(invoice_refs=("4711", "INV-5000")))
    assert (mixed.customer_id, mixed.method) == ("C-GLOBEX", "invoice_ref")


def test_refs_agreeing_on_one_customer_resolve(index: CustomerIndex) -> None:
    answer = index.resolve(ResolveQuery(invoice_refs=("INV-4711", "PO-88812")))
    assert answer.customer_id == "C-ACME"
    assert len(answer.evidence) == 2


@pytest.mark.parametrize(
    ("query", "method"),
    [
        (ResolveQuery(), "no_hints"),
        (ResolveQuery(invoice_refs=("INV-9999",), payer_account="GB00XXXX"), "no_match"),
        (ResolveQuery(payer_name="Initech Industries"), "no_match"),
        (ResolveQuery(references=("thank you",)), "no_match"),
    ],
)
def test_unresolved_carries_a_reason(
    index: CustomerIndex, query: ResolveQuery, method: str
) -> None:
    answer = index.resolve(query)
    assert (answer.customer_id, answer.method, answer.confidence) == (None, method, 0.0)
    assert not answer.resolved


def test_two_customers_sharing_a_name_is_ambiguous() -> None:
    idx = CustomerIndex(DictStore())
    idx.learn([Fact(FactKind.NAME, "Acme Inc.", "C1"), Fact(FactKind.NAME, "ACME LLC", "C2")])
    answer = idx.resolve(ResolveQuery(payer_name="Acme"))
    assert (answer.customer_id, answer.method) == (None, "ambiguous_name")


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("ACME Corp.", "acme"),
        ("Acme Corporation", "acme"),
        ("A.C.M.E. Inc.", "acme"),
        ("Acme Corp Holdings", "acme holdings"),
        ("Müller GmbH & Co. KG", "muller"),
        ("Smith & Sons Ltd", "smith and sons"),
        ("The Company", "the company"),
        ("  globex,   LLC ", "globex"),
    ],
)
def test_normalize_name(raw: str, normal: str) -> None:
    assert normalize_name(raw) == normal


def test_learned_account_resolves_by_account_alone() -> None:
    idx = CustomerIndex(DictStore())
    idx.learn([Fact(FactKind.REF, "INV-100", "C7")])
    first = payment(
        "bank-1",
        hints=CustomerHints(payer_name="Unknown Payer", payer_account="NL91 ABNA 0417 1643 00"),
        references=("INV-100",),
    )
    query = CustomerIndex.query_for(first)
    assert query is not None
    resolved = idx.resolve(query)
    assert (resolved.customer_id, resolved.method) == ("C7", "text_ref")
    # Before the lesson, the account alone means nothing.
    account_only = ResolveQuery(payer_account="NL91ABNA0417164300")
    assert idx.resolve(account_only).customer_id is None
    idx.learn(CustomerIndex.facts_for(first, "C7"))
    later = idx.resolve(account_only)
    assert (later.customer_id, later.method) == ("C7", "payer_account")


def test_unconfirmed_match_does_not_teach_account() -> None:
    idx = CustomerIndex(DictStore())
    event = payment("bank-2", hints=CustomerHints(payer_account="GB29NWBK60161331926819"))
    idx.learn(CustomerIndex.facts_for(event, "C9", teach_account=False))
    assert idx.resolve(ResolveQuery(payer_account="GB29NWBK60161331926819")).customer_id is None
    assert idx.resolve(ResolveQuery(payment_id="bank-2")).customer_id == "C9"


def test_reversals_and_disputes_follow_the_applied_payment(index: CustomerIndex) -> None:
    paid = payment("ch_1", invoice_refs=("INV-4712",))
    query = CustomerIndex.query_for(paid)
    assert query is not None
    assert index.resolve(query).customer_id == "C-HOLD"
    index.learn(CustomerIndex.facts_for(paid, "C-HOLD"))
    refund = PaymentReversed(
        event_id="re_1",
        occurred_at=T0,
        payment_id="ch_1",
        reversal_id="re_1",
        kind=ReversalKind.REFUND,
        amount=Money(500, USD),
    )
    dispute = DisputeUpdated(
        event_id="dp_1",
        occurred_at=T0,
        dispute_id="dp_1",
        payment_id="ch_1",
        phase=DisputePhase.OPENED,
        amount=Money(10_000, USD),
    )
    queries = [CustomerIndex.query_for(refund), CustomerIndex.query_for(dispute)]
    answers = index.resolve_many([q for q in queries if q is not None])
    assert [(a.customer_id, a.method) for a in answers] == [("C-HOLD", "payment_id")] * 2


def test_query_for_reads_every_hint() -> None:
    event = payment(
        "ch_9",
        hints=CustomerHints(
            external_ids=("cus_1",), payer_name="Acme", payer_account="X1", email="a@b.example"
        ),
        invoice_refs=("INV-1",),
        references=("memo",),
        remittance=(RemittanceLine("INV-2", 5_000),),
    )
    assert CustomerIndex.query_for(event) == ResolveQuery(
        external_ids=("cus_1", "a@b.example"),
        invoice_refs=("INV-1", "INV-2"),
        references=("memo",),
        payer_name="Acme",
        payer_account="X1",
        payment_id="ch_9",
    )
    adjusted = InvoiceAdjusted(
        event_id="cm-1",
        occurred_at=T0,
        invoice_number="INV-4711",
        kind=AdjustmentKind.RETURN,
        amount=None,
        memo_number="CM-1",
    )
    assert CustomerIndex.query_for(adjusted) == ResolveQuery(invoice_refs=("INV-4711",))
    payout = PayoutSettled(
        event_id="po",
        occurred_at=T0,
        processor="stripe",
        payout_id="po_1",
        currency=USD,
        net_minor=0,
    )
    assert CustomerIndex.query_for(payout) is None
    assert CustomerIndex.facts_for(payout, "C1") == []


def test_credit_memo_adjustment_reaches_the_invoice_owner(index: CustomerIndex) -> None:
    adjusted = InvoiceAdjusted(
        event_id="cm-2",
        occurred_at=T0,
        invoice_number="INV-5000",
        kind=AdjustmentKind.CREDIT_MEMO,
        amount=Money(100, USD),
        memo_number="CM-77",
    )
    query = CustomerIndex.query_for(adjusted)
    assert query is not None
    assert index.resolve(query).customer_id == "C-GLOBEX"
    index.learn(CustomerIndex.facts_for(adjusted, "C-GLOBEX"))
    assert index.resolve(ResolveQuery(references=("credit CM-77",))).customer_id == "C-GLOBEX"


def test_one_get_many_per_batch(index: CustomerIndex, store: CountingStore) -> None:
    store.get_calls.clear()
    store.names_calls = 0
    queries = [
        ResolveQuery(invoice_refs=(f"INV-{4711 + n % 2}",), payer_account=f"ACCT{n}")
        for n in range(200)
    ] + [ResolveQuery(payer_name="Globex"), ResolveQuery(payer_name="ACME corp")]
    answers = index.resolve_many(queries)
    assert len(store.get_calls) == 1
    assert store.names_calls == 1
    # 2 refs, their 2 numeric cores, 200 accounts: deduplicated, one round trip.
    assert store.get_calls[0] == 204
    assert [a.customer_id for a in answers[:2]] == ["C-ACME", "C-HOLD"]
    assert [a.customer_id for a in answers[-2:]] == ["C-GLOBEX", "C-ACME"]


def test_batch_needing_no_names_never_lists_them(
    index: CustomerIndex, store: CountingStore
) -> None:
    store.names_calls = 0
    index.resolve_many([ResolveQuery(invoice_refs=("INV-4711",), payer_name="whoever")])
    assert store.names_calls == 0


def test_one_set_many_per_learn(store: CountingStore) -> None:
    idx = CustomerIndex(store)
    facts = [Fact(FactKind.REF, f"INV-{n}", f"C{n % 7}") for n in range(500)]
    idx.learn(facts)
    idx.learn([])
    assert store.set_calls == 1
    assert len(store.inner) == 500


def test_facts_of_an_invoice() -> None:
    event = InvoiceIssued(
        event_id="inv-1",
        occurred_at=T0,
        invoice_number="INV-1",
        amount=Money(100, USD),
        issued_at=T0,
        due_at=T0,
        hints=CustomerHints(customer_id="C1", email="ap@x.example", payer_account="AT61 1904"),
        po_number="PO-9",
        external_ids=("in_abc",),
    )
    facts = CustomerIndex.facts_for(event, "C1")
    assert {(f.kind, f.value) for f in facts} == {
        (FactKind.REF, "INV-1"),
        (FactKind.REF, "PO-9"),
        (FactKind.REF, "in_abc"),
        (FactKind.EXTERNAL_ID, "ap@x.example"),
        (FactKind.ACCOUNT, "AT61 1904"),
    }
    assert {f.customer_id for f in facts} == {"C1"}


@pytest.mark.parametrize(
    ("raw", "normal"),
    [("DE89 3704 0044 0532 0130 00", "DE89370400440532013000"), ("12-345/678", "12345678")],
)
def test_normalize_account(raw: str, normal: str) -> None:
    assert normalize_account(raw) == normal


ids = st.text(alphabet="ABCDEFGHJK0123456789-", min_size=4, max_size=12).filter(
    lambda s: sum(ch.isalnum() for ch in s) >= 4
)


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(ids, st.sampled_from(["C1", "C2", "C3"]), min_size=1, max_size=30))
def test_every_learned_ref_resolves_to_its_last_writer(refs: dict[str, str]) -> None:
    """Refs with one matching key ("INV-0047" and "inv47") are one ref: the last wins."""
    idx = CustomerIndex(DictStore())
    idx.learn([Fact(FactKind.REF, ref, cid) for ref, cid in refs.items()])
    owners = {normalize_reference(ref): cid for ref, cid in refs.items()}
    answers = idx.resolve_many([ResolveQuery(invoice_refs=(ref,)) for ref in refs])
    for ref, answer in zip(refs, answers, strict=True):
        assert (answer.customer_id, answer.method) == (
            owners[normalize_reference(ref)],
            "invoice_ref",
        )


class RedisIndexStore:
    """The protocol over real Redis: MGET for look-ups, one pipeline for lessons.

    Names live in a hash (field = store key, value = customer) read with HGETALL.
    """

    def __init__(self, client: Any, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self.round_trips = 0

    def get_many(self, keys: Sequence[str]) -> list[str | None]:
        self.round_trips += 1
        values = self.client.mget([f"{self.namespace}{key}" for key in keys])
        return [value.decode() if value is not None else None for value in values]

    def set_many(self, items: Mapping[str, str]) -> None:
        self.round_trips += 1
        pipe = self.client.pipeline(transaction=False)
        names = {key: value for key, value in items.items() if key.startswith(NAME_PREFIX)}
        pipe.mset({f"{self.namespace}{key}": value for key, value in items.items()})
        if names:
            pipe.hset(f"{self.namespace}names", mapping=names)
        pipe.execute()

    def names(self) -> Sequence[tuple[str, str]]:
        self.round_trips += 1
        raw = self.client.hgetall(f"{self.namespace}names")
        return [
            (key.decode()[len(NAME_PREFIX) :].rpartition("|")[0], value.decode())
            for key, value in raw.items()
        ]


@pytest.mark.integration
def test_same_answers_over_redis_in_one_round_trip_per_batch(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    remote = RedisIndexStore(client, "test-index:")
    local = DictStore()
    facts = [
        *CustomerIndex.facts_for(customer("C1", "ACME Corp.", bank_accounts=("DE44 5001",)), "C1"),
        *CustomerIndex.facts_for(customer("C2", "Acme Corp Holdings"), "C2"),
        *CustomerIndex.facts_for(invoice("INV-4711", "C1", "PO-1234"), "C1"),
        *CustomerIndex.facts_for(invoice("INV-4712", "C2"), "C2"),
    ]
    for store in (remote, local):
        CustomerIndex(store).learn(facts)
    queries = [
        ResolveQuery(invoice_refs=("inv 4711",)),
        ResolveQuery(references=("PO 1234 and INV-4712",)),
        ResolveQuery(payer_account="de445001"),
        ResolveQuery(payer_name="ACME CORP HOLDINGS"),
        ResolveQuery(payer_name="Nobody Ltd"),
    ]
    remote.round_trips = 0
    over_redis = CustomerIndex(remote).resolve_many(queries)
    assert remote.round_trips == 2  # MGET + the (cacheable) names read
    assert over_redis == CustomerIndex(local).resolve_many(queries)
    assert [a.customer_id for a in over_redis] == ["C1", None, "C1", "C2", None]
    client.close()


def test_namespaced_provider_id_finds_the_bare_id_an_erp_stores() -> None:
    index = CustomerIndex(DictStore())
    index.learn([Fact(FactKind.EXTERNAL_ID, "6000880740", "CUST-112")])
    answer = index.resolve(ResolveQuery(external_ids=("shopify_customer:6000880740",)))
    assert answer.customer_id == "CUST-112"
    assert answer.method == "external_id"


# --- memoised fuzzy names ------------------------------------------------------

NAME_WORDS = ["acme", "acne", "north", "nord", "star", "stark", "tools", "tool", "and", "gmbh"]
name_texts = st.lists(st.sampled_from(NAME_WORDS), min_size=1, max_size=3).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(
    writes=st.lists(
        st.lists(st.tuples(name_texts, st.sampled_from(["C1", "C2", "C3", "C4"])), max_size=8),
        min_size=1,
        max_size=6,
    ),
    payer=name_texts,
    candidates=st.integers(min_value=1, max_value=4),
)
def test_memoised_name_match_equals_a_fresh_scan_as_names_grow(
    writes: list[list[tuple[str, str]]], payer: str, candidates: int
) -> None:
    """Scoring only new aliases and merging tops gives the full scan's answer."""
    policy = IndexPolicy(name_candidates=candidates, name_threshold=70.0, name_margin=5.0)
    store = DictStore()
    memoised = CustomerIndex(store, policy)
    for batch in writes:
        store.set_many({f"{NAME_PREFIX}{normalize_name(a)}|{c}": c for a, c in batch if a})
        names = store.names()
        fresh = _fuzzy_name(payer, list(names), policy)
        assert memoised._by_name(payer, names) == fresh
        assert memoised._by_name(payer, names) == fresh  # answered from the memo


def test_name_list_is_append_only_and_survives_pickling() -> None:
    store = DictStore()
    store.set_many({f"{NAME_PREFIX}acme|C1": "C1", "ref:INV1": "C1"})
    first = store.names()
    store.set_many({f"{NAME_PREFIX}acme|C1": "C1", f"{NAME_PREFIX}nord|C2": "C2"})
    assert store.names() is first
    assert list(first) == [("acme", "C1"), ("nord", "C2")]
    restored = pickle.loads(pickle.dumps(store))
    assert list(restored.names()) == list(first)
    assert restored.get_many(["ref:INV1"]) == ["C1"]
    restored.set_many({f"{NAME_PREFIX}star|C3": "C3"})
    assert [customer for _, customer in restored.names()] == ["C1", "C2", "C3"]


def test_memo_is_refreshed_when_a_name_changes_owner() -> None:
    """A rewritten name key breaks append-only: a new list, so no stale memo."""
    store = DictStore()
    index = CustomerIndex(store)
    store.set_many({f"{NAME_PREFIX}acme tools|C1": "C1"})
    assert index._by_name("Acme Tools", store.names()) == _fuzzy_name(
        "Acme Tools", list(store.names()), IndexPolicy()
    )
    store.set_many({f"{NAME_PREFIX}acme tools|C1": "C2"})
    answer = index._by_name("Acme Tools", store.names())
    assert answer is not None
    assert answer.customer_id == "C2"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_memoised_reference_functions_equal_their_plain_forms(text: str) -> None:
    assert normalize_reference(text) == normalize_reference.__wrapped__(text)
    assert normalize_name(text) == normalize_name.__wrapped__(text)
    if text:
        assert extract_references(text) == _extract.__wrapped__(text)


def test_a_dispute_naming_the_order_handle_reaches_the_customer_of_the_sale() -> None:
    index = CustomerIndex(DictStore())
    sale = PaymentReceived(
        event_id="shopify:txn:1",
        occurred_at=datetime(2026, 3, 2, tzinfo=UTC),
        payment_id="7200000013",
        amount=Money(1000, "USD"),
        source="shopify",
        invoice_refs=("shopify_order:5100037074", "#1002"),
    )
    index.learn(CustomerIndex.facts_for(sale, "CUST-135"))
    answer = index.resolve(ResolveQuery(payment_id="shopify_order:5100037074"))
    assert answer.customer_id == "CUST-135"
    assert answer.method == "payment_id"


def test_a_query_naming_its_customer_looks_nothing_up(
    index: CustomerIndex, store: CountingStore
) -> None:
    store.get_calls.clear()
    named = ResolveQuery(customer_id="C-GLOBEX", invoice_refs=("INV-4711",), payer_name="Acme")
    assert index.resolve(named).customer_id == "C-GLOBEX"
    assert index.resolve(named).method == "customer_id"
    both = index.resolve_many([named, ResolveQuery(invoice_refs=("INV-4712",))])
    assert [answer.customer_id for answer in both] == ["C-GLOBEX", "C-HOLD"]
    assert store.get_calls == [2]  # only the second query's ref and its numeric core


def test_resolve_gives_the_batch_answer_for_every_tier(index: CustomerIndex) -> None:
    """`resolve` has a path of its own; it must agree with `resolve_many`."""
    queries = [
        ResolveQuery(invoice_refs=("inv 4711",)),
        ResolveQuery(references=("PO 55501 and INV-5000",)),
        ResolveQuery(references=("paid 4712",)),
        ResolveQuery(payer_account="de89370400440532013000"),
        ResolveQuery(external_ids=("cus_Hold9",), invoice_refs=("INV-4711",)),
        ResolveQuery(invoice_refs=("INV-4711", "INV-4712")),
        ResolveQuery(payer_name="Globex GmbH"),
        ResolveQuery(payer_name="Nobody Ltd", invoice_refs=("INV-9999",)),
        ResolveQuery(),
    ]
    assert [index.resolve(query) for query in queries] == index.resolve_many(queries)
    assert {index.resolve(query).method for query in queries} >= {
        "invoice_ref",
        "external_id",
        "payer_account",
        "payer_name",
        "ambiguous_invoice_ref",
    }
