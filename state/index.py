"""Resolution index: which customer does a payload belong to?

Why a store protocol: the same cascade runs over a dict (embedded mode) and over
Redis (cluster). Every look-up of a batch is gathered into ONE `get_many` (Redis
MGET) and every lesson of a batch into ONE `set_many` (a pipeline), so the cost
is one round trip per batch, never one per event.

Keys are `<kind>:<normalised token>` with kind one of `ext` (external customer
ids, emails), `ref` (invoice, PO and provider invoice ids, keyed like the
matcher's `normalize_reference`), `core` (a ref's numeric core, for payers who
drop the prefix), `pay` (payment, reversal and dispute ids), `acct` (payer bank
accounts). Names and aliases are written as `name:<normalised alias>|<customer
id>` so two customers may share an alias; `names()` lists them for the fuzzy
pass.

Cascade, first decisive tier wins: explicit customer id, payment id, external
ids, explicit invoice/PO refs, refs mined from free text, numeric cores of
either, learned payer account, payer name (rapidfuzz, unique best above a
threshold with a margin). Two customers within one tier make the payload
ambiguous: unresolved, with evidence. A store holds one customer per key, so
the last fact written for a key wins.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any, Protocol, overload

from mypy_extensions import mypyc_attr
from rapidfuzz import fuzz, process

from arrecon.state.events import (
    CustomerHints,
    CustomerUpserted,
    DisputeUpdated,
    Event,
    InvoiceAdjusted,
    InvoiceIssued,
    PaymentReceived,
    PaymentReversed,
)
from arrecon.state.pickling import by_constructor
from arrecon.state.references import core_key, extract_references, normalize_reference

__all__ = [
    "CORE_PREFIX",
    "NAME_PREFIX",
    "CustomerIndex",
    "DictStore",
    "Fact",
    "FactKind",
    "IndexPolicy",
    "IndexStore",
    "NameList",
    "Resolution",
    "ResolveQuery",
    "normalize_account",
    "normalize_external_id",
    "normalize_name",
]


class IndexStore(Protocol):
    """A string key-value store; one call per batch in each direction."""

    def get_many(self, keys: Sequence[str]) -> list[str | None]: ...

    def set_many(self, items: Mapping[str, str]) -> None: ...

    def names(self) -> Sequence[tuple[str, str]]: ...


class FactKind(StrEnum):
    EXTERNAL_ID = "ext"
    REF = "ref"
    PAYMENT = "pay"
    ACCOUNT = "acct"
    NAME = "name"


NAME_PREFIX = f"{FactKind.NAME}:"
_NAME_SEPARATOR = "|"


class NameList(Sequence[tuple[str, str]]):
    """An append-only list of `(alias, customer id)` with the aliases kept apart.

    Why: the fuzzy pass scores a payer name against every alias. A store that
    returns a `NameList` lets the index reuse the alias list and, because it only
    grows, score just the aliases added since it last looked at a name.
    """

    __slots__ = ("_pairs", "aliases")

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._pairs: list[tuple[str, str]] = list(pairs)
        self.aliases: list[str] = [alias for alias, _ in self._pairs]

    def append(self, alias: str, customer_id: str) -> None:
        self._pairs.append((alias, customer_id))
        self.aliases.append(alias)

    @overload
    def __getitem__(self, index: int) -> tuple[str, str]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[tuple[str, str]]: ...

    def __getitem__(self, index: int | slice) -> tuple[str, str] | Sequence[tuple[str, str]]:
        return self._pairs[index]

    def __len__(self) -> int:
        return len(self._pairs)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, NameList):
            return self._pairs == other._pairs
        return isinstance(other, list) and self._pairs == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"NameList({self._pairs!r})"


@mypyc_attr(allow_interpreted_subclasses=True)  # a store may be extended (tests count look-ups)
class DictStore:
    """In-memory backend; `names()` is kept up to date on every write."""

    __slots__ = ("_data", "_name_list", "_names")

    def __init__(self) -> None:
        self._data: dict[str, str] = {}
        self._names: dict[str, tuple[str, str]] = {}
        self._name_list = NameList()

    def get_many(self, keys: Sequence[str]) -> list[str | None]:
        return [self._data.get(key) for key in keys]

    def set_many(self, items: Mapping[str, str]) -> None:
        for key, value in items.items():
            self._data[key] = value
            if key.startswith(NAME_PREFIX):
                self._set_name(key, value)

    def _set_name(self, key: str, value: str) -> None:
        alias = key[len(NAME_PREFIX) :].rpartition(_NAME_SEPARATOR)[0]
        previous = self._names.get(key)
        self._names[key] = (alias, value)
        if previous is None:
            self._name_list.append(alias, value)
        elif previous[1] != value:  # not append-only any more: a new list, new identity
            self._name_list = NameList(self._names.values())

    def names(self) -> Sequence[tuple[str, str]]:
        return self._name_list

    def __getstate__(self) -> tuple[None, dict[str, object]]:
        return (None, {"_data": self._data, "_names": self._names})

    def __setstate__(self, state: tuple[None, dict[str, object]]) -> None:
        slots = state[1]
        self._data = slots["_data"]  # type: ignore[assignment]
        self._names = slots["_names"]  # type: ignore[assignment]
        self._name_list = NameList(self._names.values())

    def __len__(self) -> int:
        return len(self._data)


# --- normalisation -------------------------------------------------------------

_LEGAL_FORMS = frozenset(
    (
        "ab", "ag", "as", "asa", "bv", "bvba", "co", "company", "corp", "corporation",
        "cv", "eg", "ek", "gbr", "gmbh", "inc", "incorporated", "kg", "kgaa", "limited",
        "llc", "llp", "lp", "ltd", "mbh", "nv", "oy", "oyj", "ohg", "plc", "pte", "pty",
        "sa", "sarl", "sas", "se", "spa", "sp", "srl", "ug", "the",
    )
)  # fmt: skip
_PUNCT = re.compile(r"[^\w\s]")
# Payer names recur on every payment of a customer and every re-check while parked.
_NAME_CACHE_SIZE = 1 << 15
_SPACES = re.compile(r"\s+")


def _fold(text: str) -> str:
    """Casefold and strip accents so "Müller" and "MULLER" compare equal."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@lru_cache(maxsize=_NAME_CACHE_SIZE)
def normalize_name(text: str) -> str:
    """A payer or customer name without case, punctuation and legal forms.

    Dots are dropped (so "L.L.C." reads "llc"), other punctuation splits words,
    "&" reads "and". A name made only of legal forms is kept as it is.
    """
    folded = _fold(text).replace("&", " and ").replace(".", "")
    words = _SPACES.sub(" ", _PUNCT.sub(" ", folded).replace("_", " ")).split()
    kept = [word for word in words if word not in _LEGAL_FORMS]
    while kept and kept[-1] == "and":  # "Müller GmbH & Co. KG"
        kept.pop()
    while kept and kept[0] == "and":
        kept.pop(0)
    return " ".join(kept or words)


def normalize_external_id(text: str) -> str:
    """Provider ids are case-sensitive; emails are not."""
    stripped = text.strip()
    return stripped.casefold() if "@" in stripped else stripped


_NOT_ACCOUNT_CHAR = re.compile(r"[^0-9A-Za-z]")


def normalize_account(text: str) -> str:
    """IBANs and account numbers without spaces, dashes or case."""
    return _NOT_ACCOUNT_CHAR.sub("", text).upper()


def _normalize_ref(text: str) -> str:
    """Invoice and PO numbers share the matcher's key: "INV-004711" -> "INV4711"."""
    return normalize_reference(text)


def _core(ref_key: str) -> str | None:
    """The numeric core of a ref key ("INV4711" -> "4711"), when long enough to trust.

    Why: payers drop prefixes ("Rechnung 4711"); the core is looked up only
    after exact keys, with a lower confidence.
    """
    core = core_key(ref_key)
    return core if len(core) >= _MIN_CORE_LENGTH else None


_MIN_CORE_LENGTH = 4
CORE_PREFIX = "core:"


def _text_refs(text: str) -> list[str]:
    """Reference keys mined from free text by the shared extractor."""
    return [token.key for token in extract_references(text)]


# --- queries, facts, answers -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResolveQuery:
    """The hints of one payload, raw as the source gave them."""

    customer_id: str | None = None
    external_ids: tuple[str, ...] = ()
    invoice_refs: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    payer_name: str | None = None
    payer_account: str | None = None
    payment_id: str | None = None

    def __reduce__(self) -> tuple[type[Any], tuple[Any, ...]]:
        return by_constructor(self)  # see `state.pickling`


@dataclass(frozen=True, slots=True)
class Resolution:
    """A customer (or None) with the rule that decided and why."""

    customer_id: str | None
    method: str
    confidence: float
    evidence: tuple[str, ...] = ()

    @property
    def resolved(self) -> bool:
        return self.customer_id is not None


@dataclass(frozen=True, slots=True)
class Fact:
    """One lesson: `value` (raw) belongs to `customer_id`."""

    kind: FactKind
    value: str
    customer_id: str

    def store_keys(self) -> tuple[str, ...]:
        """The store keys (none when the value normalises to nothing).

        A ref is also written under its numeric core, so "4711" finds "INV-4711".
        """
        if self.kind is not FactKind.NAME:
            return _fact_keys(self.kind, self.value)
        token = _normalize(self.kind, self.value)
        if not token:
            return ()
        return (f"{NAME_PREFIX}{token}{_NAME_SEPARATOR}{self.customer_id}",)


@lru_cache(maxsize=1 << 16)
def _fact_keys(kind: FactKind, value: str) -> tuple[str, ...]:
    """Store keys of a fact other than a name; memoised (a fact is written, then
    looked up by the parked items it may place)."""
    token = _normalize(kind, value)
    if not token:
        return ()
    core = _core(token) if kind is FactKind.REF else None
    return (f"{kind}:{token}",) + ((f"{CORE_PREFIX}{core}",) if core else ())


# Memo sizes: the same ids and refs recur across events (tokens). A plan is
# reused only by the batch that made it (a shared store's re-checks) and by
# re-resolves of parked items; each entry holds its query, so the plan memo is
# kept small: at 1 << 16 it held some 50 MiB of queries nobody asks again.
_TOKEN_CACHE_SIZE = 1 << 17
_PLAN_CACHE_SIZE = 1 << 12


@lru_cache(maxsize=_TOKEN_CACHE_SIZE)
def _normalize(kind: FactKind, value: str) -> str:
    if kind is FactKind.EXTERNAL_ID:
        return normalize_external_id(value)
    if kind is FactKind.REF:
        return _normalize_ref(value)
    if kind is FactKind.ACCOUNT:
        return normalize_account(value)
    if kind is FactKind.NAME:
        return normalize_name(value)
    return value.strip()


def _key(kind: FactKind, value: str) -> str | None:
    token = _normalize(kind, value)
    return f"{kind}:{token}" if token else None


@dataclass(frozen=True, slots=True)
class IndexPolicy:
    """Confidences per tier and the fuzzy-name thresholds (rapidfuzz 0..100)."""

    name_threshold: float = 88.0
    name_margin: float = 6.0
    name_candidates: int = 20
    confidence_customer_id: float = 1.0
    confidence_payment: float = 1.0
    confidence_external: float = 0.99
    confidence_invoice_ref: float = 0.98
    confidence_text_ref: float = 0.92
    confidence_ref_core: float = 0.8
    confidence_account: float = 0.9
    # A fuzzy name match scores at most this (times score / 100).
    confidence_name: float = 0.85


# --- the index -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    """The keys one query needs, grouped by tier, in cascade order."""

    payment: tuple[str, ...]
    external: tuple[str, ...]
    explicit_refs: tuple[str, ...]
    text_refs: tuple[str, ...]
    core_refs: tuple[str, ...]
    account: tuple[str, ...]

    # Derived once per plan: every key, deduplicated in cascade order, and the
    # non-empty tiers as (method, keys, tier number), so a look-up skips empty tiers.
    keys: tuple[str, ...] = ()
    tiers: tuple[tuple[str, tuple[str, ...], int], ...] = ()

    def all_keys(self) -> Iterable[str]:
        yield from self.payment
        yield from self.external
        yield from self.explicit_refs
        yield from self.text_refs
        yield from self.core_refs
        yield from self.account


# Key tiers of the cascade, in order; confidences come from `IndexPolicy` in the same order.
_TIER_METHODS = (
    "payment_id",
    "external_id",
    "invoice_ref",
    "text_ref",
    "ref_core",
    "payer_account",
)


def _planned(
    *,
    payment: tuple[str, ...],
    external: tuple[str, ...],
    explicit_refs: tuple[str, ...],
    text_refs: tuple[str, ...],
    core_refs: tuple[str, ...],
    account: tuple[str, ...],
) -> _Plan:
    groups = (payment, external, explicit_refs, text_refs, core_refs, account)
    tiers = tuple(
        (method, keys, tier)
        for tier, (method, keys) in enumerate(zip(_TIER_METHODS, groups, strict=True))
        if keys
    )
    keys = tuple(dict.fromkeys(key for _, group, _ in tiers for key in group))
    return _Plan(payment, external, explicit_refs, text_refs, core_refs, account, keys, tiers)


def _keys(kind: FactKind, values: Iterable[str]) -> tuple[str, ...]:
    keys = (_key(kind, value) for value in values)
    return tuple(dict.fromkeys(key for key in keys if key))


_NAMESPACED_ID = re.compile(r"^[a-z_]+:(\S+)$")


def _with_bare_ids(external_ids: Sequence[str]) -> list[str]:
    """Namespaced ids ("shopify_customer:600...") also as the bare id an ERP stores."""
    expanded = list(external_ids)
    for external_id in external_ids:
        match = _NAMESPACED_ID.match(external_id)
        if match:
            expanded.append(match.group(1))
    return expanded


_REF_KEY_PREFIX = f"{FactKind.REF}:"


def _ref_keys(values: Iterable[str]) -> dict[str, None]:
    """`ref:` keys of raw references, deduplicated in order (an ordered set)."""
    keys: dict[str, None] = {}
    for value in values:
        token = normalize_reference(value)
        if token:
            keys[_REF_KEY_PREFIX + token] = None
    return keys


def _core_keys(ref_keys: Iterable[str]) -> tuple[str, ...]:
    cores = (_core(key[len(_REF_KEY_PREFIX) :]) for key in ref_keys)
    return tuple(dict.fromkeys(CORE_PREFIX + core for core in cores if core))


@lru_cache(maxsize=_PLAN_CACHE_SIZE)
def _plan(query: ResolveQuery) -> _Plan:
    """The keys of one query; memoised (queries and plans are immutable)."""
    explicit = _ref_keys(query.invoice_refs)
    mined = _ref_keys(key for text in query.references for key in _text_refs(text))
    text_refs = tuple(key for key in mined if key not in explicit)
    explicit_refs = tuple(explicit)
    return _planned(
        payment=_keys(FactKind.PAYMENT, (query.payment_id,)) if query.payment_id else (),
        external=(
            _keys(FactKind.EXTERNAL_ID, _with_bare_ids(query.external_ids))
            if query.external_ids
            else ()
        ),
        explicit_refs=explicit_refs,
        text_refs=text_refs,
        core_refs=_core_keys(explicit_refs + text_refs),
        account=_keys(FactKind.ACCOUNT, (query.payer_account,)) if query.payer_account else (),
    )


class CustomerIndex:
    """The resolver over an `IndexStore`: batched look-ups and lessons."""

    __slots__ = ("_confidences", "_names", "_policy", "_sees_all_writes", "_store")

    def __init__(self, store: IndexStore, policy: IndexPolicy | None = None) -> None:
        self._store = store
        self._policy = policy = policy or IndexPolicy()
        self._names = _NameMatcher(policy)
        self._sees_all_writes = isinstance(store, DictStore)
        self._confidences = (
            policy.confidence_payment,
            policy.confidence_external,
            policy.confidence_invoice_ref,
            policy.confidence_text_ref,
            policy.confidence_ref_core,
            policy.confidence_account,
        )

    def resolve(self, query: ResolveQuery) -> Resolution:
        """One query against the store as it is now: `resolve_many([query])[0]`.

        Why a path of its own: a resolver over an in-memory store resolves every
        event at its turn, so this runs once per event.
        """
        if query.customer_id:
            return self._given(query.customer_id)
        plan = _plan(query)
        keys = plan.keys
        known: dict[str, str] = {}
        if keys:
            for key, value in zip(keys, self._store.get_many(keys), strict=True):
                if value:
                    known[key] = value
        answer = self._by_plan(plan, known) if known else None
        if answer is None and query.payer_name:
            answer = self._by_name(query.payer_name, self._store.names())
        return answer or _unresolved(query)

    def resolve_many(self, queries: Sequence[ResolveQuery]) -> list[Resolution]:
        """Resolve a batch with at most one `get_many` and one `names()` call.

        A query naming its customer needs no look-up, so its keys are not fetched.
        """
        plans = [None if query.customer_id else _plan(query) for query in queries]
        keys = list(dict.fromkeys(key for plan in plans if plan is not None for key in plan.keys))
        values = self._store.get_many(keys) if keys else []
        known = {key: value for key, value in zip(keys, values, strict=True) if value}
        pairs = list(zip(queries, plans, strict=True))
        answers = [self._by_keys(query, plan, known) for query, plan in pairs]
        if any(
            answer is None and query.payer_name
            for query, answer in zip(queries, answers, strict=True)
        ):
            names = self._store.names()
            answers = [
                answer or self._by_name(query.payer_name, names)
                for query, answer in zip(queries, answers, strict=True)
            ]
        return [
            answer or _unresolved(query) for query, answer in zip(queries, answers, strict=True)
        ]

    def learn(self, facts: Sequence[Fact]) -> None:
        """Write a batch of lessons with one `set_many` (nothing when empty)."""
        items: dict[str, str] = {}
        for fact in facts:
            if fact.customer_id:
                items.update(dict.fromkeys(fact.store_keys(), fact.customer_id))
        self.write(items)

    def write(self, items: Mapping[str, str]) -> None:
        """Write store items already keyed (`Fact.store_keys`) with one `set_many`.

        Why: a caller that needs the keys of its facts anyway (to wake what waits
        on them) computes them once and writes through here.
        """
        if items:
            self._store.set_many(items)

    def _given(self, customer_id: str) -> Resolution:
        return Resolution(
            customer_id,
            "customer_id",
            self._policy.confidence_customer_id,
            (f"customer_id={customer_id}",),
        )

    def _by_keys(
        self, query: ResolveQuery, plan: _Plan | None, known: Mapping[str, str]
    ) -> Resolution | None:
        if query.customer_id:
            return self._given(query.customer_id)
        assert plan is not None
        return self._by_plan(plan, known) if known else None

    def _by_plan(self, plan: _Plan, known: Mapping[str, str]) -> Resolution | None:
        """The first tier with a known key decides (empty tiers are skipped)."""
        confidences = self._confidences
        for method, keys, tier in plan.tiers:
            decided = _decide(method, keys, known, confidences[tier])
            if decided is not None:
                return decided
        return None

    @property
    def sees_all_writes(self) -> bool:
        """Whether every write to the store goes through this index (in-memory store).

        Then a caller that tracks what it wrote knows when an answer can change;
        a shared store (Redis) may change under it at any time.
        """
        return self._sees_all_writes

    def name_answer(self, payer_name: str) -> Resolution | None:
        """The fuzzy-name tier alone for `payer_name` against the current names."""
        return self._by_name(payer_name, self._store.names())

    def _by_name(
        self, payer_name: str | None, names: Sequence[tuple[str, str]]
    ) -> Resolution | None:
        if not payer_name:
            return None
        return self._names.match(payer_name, names)

    @staticmethod
    def wanted_keys(query: ResolveQuery) -> frozenset[str]:
        """The store keys a query looks up (not names): what new facts could answer it."""
        return frozenset(_plan(query).keys)

    # --- what events say -------------------------------------------------------

    @staticmethod
    def query_for(event: Event) -> ResolveQuery | None:
        """The query for a customer-keyed event; None for processor events."""
        if isinstance(event, CustomerUpserted):
            return ResolveQuery(customer_id=event.customer_id)
        if isinstance(event, PaymentReceived):
            remitted = tuple(line.invoice_ref for line in event.remittance)
            return _hinted(
                event.hints,
                invoice_refs=event.invoice_refs + remitted,
                references=event.references,
                payment_id=event.payment_id,
            )
        if isinstance(event, PaymentReversed | DisputeUpdated):
            return _hinted(event.hints, payment_id=event.payment_id)
        if isinstance(event, InvoiceIssued):
            refs = (event.invoice_number, *event.external_ids)
            return _hinted(event.hints, invoice_refs=refs)
        if isinstance(event, InvoiceAdjusted):
            return _hinted(event.hints, invoice_refs=(event.invoice_number,))
        return None

    @staticmethod
    def facts_for(event: Event, customer_id: str, *, teach_account: bool = True) -> list[Fact]:
        """What an event teaches once it is known to belong to `customer_id`.

        `teach_account=False` keeps a payer account from being learned when the
        match was not confirmed (e.g. only a fuzzy name).
        """
        facts = _facts(event, customer_id)
        if not teach_account:
            facts = [fact for fact in facts if fact.kind is not FactKind.ACCOUNT]
        return facts


def _hinted(
    hints: CustomerHints,
    *,
    invoice_refs: tuple[str, ...] = (),
    references: tuple[str, ...] = (),
    payment_id: str | None = None,
) -> ResolveQuery:
    external = hints.external_ids + ((hints.email,) if hints.email else ())
    return ResolveQuery(
        customer_id=hints.customer_id,
        external_ids=external,
        invoice_refs=invoice_refs,
        references=references,
        payer_name=hints.payer_name,
        payer_account=hints.payer_account,
        payment_id=payment_id,
    )


def _hint_facts(hints: CustomerHints, customer_id: str) -> list[Fact]:
    external = hints.external_ids + ((hints.email,) if hints.email else ())
    facts = [Fact(FactKind.EXTERNAL_ID, value, customer_id) for value in external]
    if hints.payer_account:
        facts.append(Fact(FactKind.ACCOUNT, hints.payer_account, customer_id))
    return facts


def _facts(event: Event, customer_id: str) -> list[Fact]:
    if isinstance(event, CustomerUpserted):
        names = (event.name, *event.aliases)
        return [
            *(Fact(FactKind.NAME, name, customer_id) for name in names),
            *(Fact(FactKind.EXTERNAL_ID, value, customer_id) for value in event.external_ids),
            *(Fact(FactKind.ACCOUNT, value, customer_id) for value in event.bank_accounts),
        ]
    if isinstance(event, InvoiceIssued):
        refs = (event.invoice_number, event.po_number or "", *event.external_ids)
        own = [Fact(FactKind.REF, ref, customer_id) for ref in refs if ref]
        return own + _hint_facts(event.hints, customer_id)
    if isinstance(event, InvoiceAdjusted):
        memo = [Fact(FactKind.REF, event.memo_number, customer_id)] if event.memo_number else []
        return memo + _hint_facts(event.hints, customer_id)
    if isinstance(event, PaymentReceived):
        # Provider handles among the refs ("shopify_order:<id>") are how later
        # disputes and refunds name this payment, so they are learned as payments.
        handles = [ref for ref in event.invoice_refs if _NAMESPACED_ID.match(ref)]
        paid = [
            Fact(FactKind.PAYMENT, value, customer_id) for value in (event.payment_id, *handles)
        ]
        return [*paid, *_hint_facts(event.hints, customer_id)]
    if isinstance(event, PaymentReversed):
        ids = (event.payment_id, event.reversal_id)
        return [Fact(FactKind.PAYMENT, value, customer_id) for value in ids]
    if isinstance(event, DisputeUpdated):
        ids = (event.payment_id, event.dispute_id)
        return [Fact(FactKind.PAYMENT, value, customer_id) for value in ids]
    return []


# --- decisions -----------------------------------------------------------------


def _decide(
    method: str, keys: Sequence[str], known: Mapping[str, str], confidence: float
) -> Resolution | None:
    """One tier: nothing known -> None; one customer -> resolved; two -> ambiguous."""
    hits = [(key, known[key]) for key in keys if key in known]
    if not hits:
        return None
    evidence = tuple(f"{key}->{customer}" for key, customer in hits)
    customers = {customer for _, customer in hits}
    if len(customers) > 1:
        return Resolution(None, f"ambiguous_{method}", 0.0, evidence)
    return Resolution(hits[0][1], method, confidence, evidence)


_NameMatch = tuple[str, float, int]  # alias, score, position in the name list


def _top_aliases(
    query: str, aliases: Sequence[str], offset: int, policy: IndexPolicy
) -> list[_NameMatch]:
    """The best aliases by score, ties by position (rapidfuzz's documented order)."""
    matches = process.extract(
        query, aliases, scorer=fuzz.token_sort_ratio, limit=policy.name_candidates
    )
    return [(alias, score, position + offset) for alias, score, position in matches]


def _merge_top(
    old: list[_NameMatch], new: list[_NameMatch], policy: IndexPolicy
) -> list[_NameMatch]:
    """Top of old + new aliases: the global top is within the union of both tops."""
    merged = sorted(old + new, key=lambda match: (-match[1], match[2]))
    return merged[: policy.name_candidates]


def _rank_names(
    query: str,
    matches: Sequence[_NameMatch],
    names: Sequence[tuple[str, str]],
    policy: IndexPolicy,
) -> Resolution:
    """Best customer among the top aliases; it must clear the threshold and the margin."""
    best: dict[str, tuple[float, str]] = {}
    for alias, score, position in matches:
        customer = names[position][1]
        if customer not in best or score > best[customer][0]:
            best[customer] = (score, alias)
    ranked = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))
    top_customer, (top_score, top_alias) = ranked[0]
    runner_up = ranked[1][1][0] if len(ranked) > 1 else 0.0
    evidence = (f"name:{query}~{top_alias}={top_score:.0f}", f"runner_up={runner_up:.0f}")
    if top_score < policy.name_threshold:
        return Resolution(None, "no_match", 0.0, evidence)
    if top_score - runner_up < policy.name_margin:
        return Resolution(None, "ambiguous_name", 0.0, evidence)
    confidence = round(policy.confidence_name * top_score / 100.0, 4)
    return Resolution(top_customer, "payer_name", confidence, evidence)


def _fuzzy_name(
    payer_name: str, names: Sequence[tuple[str, str]], policy: IndexPolicy
) -> Resolution | None:
    """Best customer by name; it must clear the threshold and beat the runner-up."""
    query = normalize_name(payer_name)
    if not query or not names:
        return None
    aliases = names.aliases if isinstance(names, NameList) else [alias for alias, _ in names]
    return _rank_names(query, _top_aliases(query, aliases, 0, policy), names, policy)


@dataclass(slots=True)
class _NameMemo:
    """A payer name's top aliases over the first `seen` entries of `names`."""

    names: NameList
    seen: int
    top: list[_NameMatch]
    answer: Resolution


class _NameMatcher:
    """`_fuzzy_name` with a memo per normalised payer name over a `NameList`.

    Why: parked payments are re-checked whenever a customer record arrives, and
    most payer names recur; over an append-only `NameList` an answer is reused
    while no alias was added, and only new aliases are scored when some were.
    """

    __slots__ = ("_memo", "_policy")

    def __init__(self, policy: IndexPolicy) -> None:
        self._policy = policy
        self._memo: dict[str, _NameMemo] = {}

    def match(self, payer_name: str, names: Sequence[tuple[str, str]]) -> Resolution | None:
        if not isinstance(names, NameList):
            return _fuzzy_name(payer_name, names, self._policy)
        query = normalize_name(payer_name)
        if not query or not names:
            return None
        memo = self._memo.get(query)
        if memo is not None and memo.names is names:
            if memo.seen == len(names):
                return memo.answer
            new = _top_aliases(query, names.aliases[memo.seen :], memo.seen, self._policy)
            top = _merge_top(memo.top, new, self._policy)
        else:
            top = _top_aliases(query, names.aliases, 0, self._policy)
        answer = _rank_names(query, top, names, self._policy)
        self._remember(query, _NameMemo(names, len(names), top, answer))
        return answer

    def _remember(self, query: str, memo: _NameMemo) -> None:
        if query not in self._memo and len(self._memo) >= _NAME_MEMO_SIZE:
            del self._memo[next(iter(self._memo))]  # oldest first: a bound, not a policy
        self._memo[query] = memo


_NAME_MEMO_SIZE = 4096


def _unresolved(query: ResolveQuery) -> Resolution:
    """Nothing decided: say which hints were tried, so the reason is visible."""
    tried = [
        label
        for label, present in (
            ("payment_id", query.payment_id),
            ("external_ids", query.external_ids),
            ("invoice_refs", query.invoice_refs),
            ("references", query.references),
            ("payer_account", query.payer_account),
            ("payer_name", query.payer_name),
        )
        if present
    ]
    reason = "no_hints" if not tried else "no_match"
    return Resolution(None, reason, 0.0, tuple(f"tried:{label}" for label in tried))
