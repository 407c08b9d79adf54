"""The matching cascade: which open invoices a payment pays, and why.

Why a cascade: the strongest evidence decides. Remittance lines beat quoted
invoice numbers, which beat PO numbers, fuzzy references, a unique amount and
finally a bounded subset-sum search. The first confident step wins; every
answer carries its method, a confidence (0..1) and evidence strings. When
nothing is confident the answer is `none` with ranked candidates.

Money rules (checked by property tests): only invoices in the payment's
currency are touched; sum(applied_minor) <= payment amount; each applied_minor
<= the invoice's open amount. Matching never invents money: an excess is simply
`payment.amount - sum(applied)`, for the ledger to handle.

Cost: `OpenBook` keeps an index of identifier buckets (numbers, external ids,
POs), one of numeric tails (both sorted int arrays, see `_BucketIndex`), and
sorted lists by open amount and due date, so reference and amount steps are a
few bisections at any book size. The fuzzy step scans a cached key list with
rapidfuzz (C speed); the subset step looks at no more than
`max_subset_candidates` invoices and its work is fixed before it starts (see
`_SubsetSearch`): no more than `max_subset_steps` subset sums, whatever the
amounts.
"""

from __future__ import annotations

import bisect
import re
from array import array
from collections.abc import Callable, Iterator, MutableSequence, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from itertools import combinations, compress, islice, repeat
from math import comb
from operator import attrgetter, lt
from typing import Any, Final, TypeAlias

from rapidfuzz import fuzz, process

from arrecon.state.events import PaymentReceived, Rail
from arrecon.state.pickling import by_constructor, restore, state_of
from arrecon.state.references import (
    RefKind,
    RefToken,
    compact_key,
    core_key,
    extract_references,
    normalize_reference,
    tail_key,
)

__all__ = [
    "Allocation",
    "Match",
    "MatchPolicy",
    "OpenBook",
    "OpenInvoice",
    "Resolved",
    "match_payment",
]

# Tail matches ("4711" for INV-2026-004711) need at least this many digits.
MIN_TAIL_DIGITS = 3
# Key forms whose buckets are memoised (a bound, not a policy).
_BUCKET_CACHE_SIZE = 1 << 14
# Digit-only buckets up to this length are ints (< 2**60: one machine word).
_INT_BUCKET_DIGITS = 18


@dataclass(slots=True, eq=False)
class OpenInvoice:
    """An open invoice as the matcher sees it: one mutable record per invoice.

    Why mutable: the ledger's own invoice record is this object (a subclass), so
    an open invoice costs one object, not a record plus a copy for the book.
    Only the book that holds a record changes it, and only `open_minor`
    (through `OpenBook.set_open`). The cascade only reads. A record belongs to
    one book at a time; equality is identity. Ties are broken by invoice
    number (unique in a book), so no rank is stored.
    """

    invoice_number: str
    currency: str
    amount_minor: int  # original amount
    open_minor: int  # what is still open (> 0 while in the book)
    due_at: datetime
    po_number: str | None = None
    # Other ids a payer may quote: provider invoice id (in_...), order id or name (#1001).
    external_ids: tuple[str, ...] = ()

    def __reduce__(self) -> tuple[type[Any], tuple[Any, ...]]:
        return by_constructor(self)  # see `state.pickling`


@dataclass(frozen=True, slots=True)
class MatchPolicy:
    fuzzy_threshold: float = 88.0  # rapidfuzz score 0..100 for a fuzzy reference
    fuzzy_margin: float = 6.0  # best must beat runner-up by this much
    fee_tolerance_bps: int = 400  # a gap up to this share (+ fee_fixed_minor) may be a fee
    fee_fixed_minor: int = 30
    max_subset_size: int = 6  # subset-sum: at most this many invoices ...
    max_subset_candidates: int = 24  # ... chosen among this many (documented bound)
    max_subset_steps: int = 20000  # hard cap on subset sums enumerated (else refused)

    def fee_tolerance_minor(self, expected_minor: int) -> int:
        """Largest gap on `expected_minor` that may be a processor fee."""
        return max(0, expected_minor) * self.fee_tolerance_bps // 10_000 + self.fee_fixed_minor

    def __reduce__(self) -> tuple[type[Any], tuple[Any, ...]]:
        return by_constructor(self)  # see `state.pickling`


@dataclass(init=False, slots=True)
class Allocation:
    """Read-only, with a compiled `__init__` (see `arrecon.state`), like the records below."""

    invoice_number: Final[str]
    applied_minor: Final[int]  # cash applied to this invoice (> 0)
    gap_minor: Final[int]  # the rest of the invoice the payer did not pay, if coded
    # processor_fee | marketplace_fee | return | promotion | deduction:<code> | unexplained
    gap_code: Final[str | None]

    def __init__(
        self,
        invoice_number: str,
        applied_minor: int,
        gap_minor: int = 0,
        gap_code: str | None = None,
    ) -> None:
        self.invoice_number = invoice_number
        self.applied_minor = applied_minor
        self.gap_minor = gap_minor
        self.gap_code = gap_code


@dataclass(init=False, slots=True)
class Match:
    # remittance | invoice_number | external_id | po_number | fuzzy_reference
    # | exact_amount | subset_sum | none
    method: Final[str]
    confidence: Final[float]  # 0..1
    evidence: Final[tuple[str, ...]]
    allocations: Final[tuple[Allocation, ...]]  # empty when method == "none"
    candidates: Final[tuple[str, ...]]  # ranked invoice numbers when nothing decided (<= 5)
    # A weak reference (fuzzy) whose invoices' open total the payment meets exactly
    # or net of the expected fee: two independent signals agree.
    corroborated: Final[bool]

    def __init__(  # noqa: PLR0917 - the record's fields, positional as before
        self,
        method: str,
        confidence: float,
        evidence: tuple[str, ...],
        allocations: tuple[Allocation, ...],
        candidates: tuple[str, ...] = (),
        corroborated: bool = False,
    ) -> None:
        self.method = method
        self.confidence = confidence
        self.evidence = evidence
        self.allocations = allocations
        self.candidates = candidates
        self.corroborated = corroborated

    @property
    def applied_minor(self) -> int:
        return sum(allocation.applied_minor for allocation in self.allocations)


@dataclass(init=False, slots=True)
class Resolved:
    """A reference resolved to one invoice: which field hit and by which rule."""

    invoice: Final[OpenInvoice]
    field: Final[str]  # number | external_id | po
    rule: Final[str]  # exact_number | compact_number | number_without_prefix | number_tail

    def __init__(self, invoice: OpenInvoice, field: str, rule: str) -> None:
        self.invoice = invoice
        self.field = field
        self.rule = rule


# Confidence of a reference hit by the rule that found it.
RULE_CONFIDENCE = {
    "exact_number": 1.0,
    "compact_number": 1.0,
    "number_without_prefix": 0.97,
    "number_tail": 0.9,
}


def _keys(identifier: str) -> tuple[str, str, str]:
    key = normalize_reference(identifier)
    return key, compact_key(identifier), core_key(key)


def _is_form(identifier: str, value: str) -> bool:
    """Whether non-empty `value` is one of the identifier's key forms (key,
    compact, core); the key, memoised by `normalize_reference`, is tried first."""
    key = normalize_reference(identifier)
    if value == key or value == core_key(key):
        return True
    # The compact form keeps every character the key drops a zero from: never shorter.
    return len(value) > len(key) and value == compact_key(identifier)


_Bucket: TypeAlias = int | str


@lru_cache(maxsize=_BUCKET_CACHE_SIZE)
def _bucket(form: str) -> _Bucket:
    """The bucket of a key form: without its leading letters and without zeros.

    Why this shape: an identifier's three forms (key, compact, core) differ only
    by leading letters and by zeros (leading zeros of numeric runs), so all
    three fall in one bucket and the book stores one entry per identifier
    instead of three strings. A bucket may hold other invoices too; look-ups
    keep only those with the exact form. Digits become an int (smaller than a
    string, and exact: no zero is left to lose).
    """
    rest = core_key(form).replace("0", "")
    if not rest:
        return 0
    if len(rest) <= _INT_BUCKET_DIGITS and rest.isdigit():
        return int(rest)
    return rest


def _tail_bucket(tail: str) -> _Bucket:
    """Tails have no leading zero, so digits map to ints one to one."""
    if len(tail) <= _INT_BUCKET_DIGITS and tail.isdigit() and tail[0] != "0":
        return int(tail)
    return tail


_Held: TypeAlias = OpenInvoice | list[OpenInvoice]
_SortKey: TypeAlias = Callable[[OpenInvoice], tuple[Any, ...]]


def _put(index: dict[str, _Held], key: str, invoice: OpenInvoice) -> None:
    """Add `invoice` under `key` once; a list appears only on a collision."""
    held = index.get(key)
    if held is None:
        index[key] = invoice
    elif isinstance(held, list):
        if not any(item is invoice for item in held):
            held.append(invoice)
    elif held is not invoice:
        index[key] = [held, invoice]


def _drop(index: dict[str, _Held], key: str, invoice: OpenInvoice) -> None:
    held = index.get(key)
    if held is invoice:
        del index[key]
    elif isinstance(held, list):
        for position, item in enumerate(held):
            if item is invoice:
                del held[position]
                break
        if len(held) == 1:
            index[key] = held[0]


def _held(index: dict[str, _Held], key: str) -> Sequence[OpenInvoice]:
    held = index.get(key)
    if held is None:
        return ()
    return held if isinstance(held, list) else (held,)


class _BucketIndex:
    """Records by bucket, several per bucket in insertion order.

    Int buckets (almost all) live in a sorted int64 array beside a parallel
    list of records; the rare string buckets in a dict. Why not one dict: an
    int key is a 32-byte object plus a ~30-byte hash-table entry, while here an
    entry is one array word and one list slot (~17 bytes), which is what keeps
    an open invoice under its memory budget. The price: a look-up bisects
    (O(log n), ~0.5 us) and a change moves the tails of the array and the list
    (memmoves: ~0.5 us per change at 1k entries, ~2 us at 10k, ~14 us at
    100k), the same kind of cost the sorted lists below already pay.
    """

    __slots__ = ("_keys", "_named", "_records")

    def __init__(self) -> None:
        self._keys = array("q")
        self._records: list[OpenInvoice] = []
        self._named: dict[str, _Held] = {}

    def put(self, key: _Bucket, invoice: OpenInvoice) -> None:
        """Add `invoice` under `key` once, after the records already there."""
        if isinstance(key, str):
            _put(self._named, key, invoice)
            return
        keys, records = self._keys, self._records
        position, end = bisect.bisect_left(keys, key), len(keys)
        while position < end and keys[position] == key:  # a bucket holds one or a few
            if records[position] is invoice:
                return
            position += 1
        keys.insert(position, key)
        records.insert(position, invoice)

    def drop(self, key: _Bucket, invoice: OpenInvoice) -> None:
        if isinstance(key, str):
            _drop(self._named, key, invoice)
            return
        keys, records = self._keys, self._records
        position, end = bisect.bisect_left(keys, key), len(keys)
        while position < end and keys[position] == key:
            if records[position] is invoice:
                del keys[position]
                del records[position]
                return
            position += 1

    def held(self, key: _Bucket) -> Sequence[OpenInvoice]:
        if isinstance(key, str):
            return _held(self._named, key)
        keys = self._keys
        start = stop = bisect.bisect_left(keys, key)
        end = len(keys)
        while stop < end and keys[stop] == key:
            stop += 1
        return self._records[start:stop] if start < stop else ()

    def __getstate__(self) -> tuple[array[int], list[OpenInvoice], dict[str, _Held]]:
        return (self._keys, self._records, self._named)

    def __setstate__(self, state: tuple[array[int], list[OpenInvoice], dict[str, _Held]]) -> None:
        self._keys, self._records, self._named = state


_by_due: _SortKey = attrgetter("due_at", "invoice_number")
_number_of = attrgetter("invoice_number")


class _Sorted:
    """Records ordered by (key, invoice number), their keys in a list beside them.

    Why the second list: a bisection then compares keys (ints, datetimes)
    directly, where over the records it would call a key getter and build a
    tuple at every probe (~3x slower). A key costs 8 bytes per record: due
    dates are the records' own objects, open amounts int64 words (a compiled
    record keeps its int unboxed, so a list would hold a new 32-byte int per
    key). Only the records are pickled; the keys are read from them again.
    """

    __slots__ = ("keys", "records")

    def __init__(self, records: list[OpenInvoice] | None = None) -> None:
        self.records: list[OpenInvoice] = records if records is not None else []
        self.keys: MutableSequence[Any] = self.new_keys([self.key(r) for r in self.records])

    def key(self, invoice: OpenInvoice) -> Any:
        raise NotImplementedError

    def new_keys(self, keys: list[Any]) -> MutableSequence[Any]:
        return keys

    def __reduce__(self) -> tuple[type[_Sorted], tuple[list[OpenInvoice]]]:
        return type(self), (self.records,)

    def insert(self, invoice: OpenInvoice) -> None:
        key = self.key(invoice)
        position = self._place(key, invoice.invoice_number)
        self.keys.insert(position, key)
        self.records.insert(position, invoice)

    def remove(self, invoice: OpenInvoice) -> None:
        """Take `invoice` out; its key must be what it was when inserted."""
        position = self._place(self.key(invoice), invoice.invoice_number)
        if position < len(self.records) and self.records[position] is invoice:
            del self.keys[position]
            del self.records[position]

    def between(self, low: Any, high: Any) -> list[OpenInvoice]:
        """Records with low <= key <= high, in order."""
        start = bisect.bisect_left(self.keys, low)
        return self.records[start : bisect.bisect_right(self.keys, high, start)]

    def _place(self, key: Any, number: str) -> int:
        """Where (key, number) sorts: among equal keys, by invoice number."""
        keys, records = self.keys, self.records
        start, end = bisect.bisect_left(keys, key), len(keys)
        if start == end or keys[start] != key:
            return start
        if start + 1 == end or keys[start + 1] != key:  # one record with this key
            return start if records[start].invoice_number >= number else start + 1
        stop = bisect.bisect_right(keys, key, start)
        return bisect.bisect_left(records, number, start, stop, key=_number_of)


class _ByOpen(_Sorted):
    __slots__ = ()

    def key(self, invoice: OpenInvoice) -> int:
        return invoice.open_minor

    def new_keys(self, keys: list[Any]) -> MutableSequence[Any]:
        return array("q", keys)  # |amounts| <= 10**18 (`Money`)


class _ByDue(_Sorted):
    __slots__ = ()

    def key(self, invoice: OpenInvoice) -> datetime:
        return invoice.due_at


@dataclass(slots=True)
class _DueScan:
    """One `due_nearest` scan: entries within `reach` of `moment` were looked at
    (None: the whole index); `slack` more could be looked at before the scan
    limit; only entries with 0 < open <= `high_minor` were picked."""

    currency: str
    moment: datetime
    reach: timedelta | None
    high_minor: int
    slack: int

    def __reduce__(self) -> tuple[type[Any], tuple[Any, ...]]:
        return by_constructor(self)  # see `state.pickling`


@dataclass(slots=True)
class Footprint:
    """What one match looked at in a book: bucket and tail keys probed, open
    amount ranges, due-date scans, texts scored by fuzzy matching.

    Why: a payment waiting for an invoice is matched again after every change
    to its customer's book. A change to an invoice none of these look-ups can
    see cannot alter that match (it takes the same path and gets the same
    answers), so the retry can be skipped without changing any outcome. Not
    covered: the ranked `candidates` of an undecided match (nearest open
    amounts), which only a first, reported attempt shows.
    """

    buckets: set[_Bucket] = field(default_factory=set)
    tails: set[_Bucket] = field(default_factory=set)
    amounts: list[tuple[str, int, int]] = field(default_factory=list)
    dues: list[_DueScan] = field(default_factory=list)
    fuzzy: list[tuple[str, float]] = field(default_factory=list)  # (text key, score cut-off)

    def __getstate__(self) -> tuple[object, ...]:
        return state_of(self, _FOOTPRINT_FIELDS)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        restore(self, _FOOTPRINT_FIELDS, state)

    def sees(self, invoice: OpenInvoice, old_open: int | None, new_open: int | None) -> bool:
        """Whether a change of `invoice` reaches a look-up: added (old None),
        removed (new None) or its open amount moved from old to new.

        Not pure: an added invoice a due scan would only pass over uses one
        unit of that scan's slack (the book now holds it for later checks).
        """
        return (
            self._sees_ids(invoice)
            or self._sees_amounts(invoice.currency, old_open, new_open)
            or self._sees_fuzzy(invoice)
            or self._sees_due(invoice, old_open, new_open)
        )

    def _sees_ids(self, invoice: OpenInvoice) -> bool:
        for identifier in (invoice.invoice_number, *invoice.external_ids):
            key = normalize_reference(identifier)
            if key and _bucket(key) in self.buckets:
                return True
            tail = tail_key(identifier)
            if tail and _tail_bucket(tail) in self.tails:
                return True
        po = normalize_reference(invoice.po_number) if invoice.po_number else ""
        return bool(po) and _bucket(po) in self.buckets

    def _sees_amounts(self, currency: str, *open_minors: int | None) -> bool:
        return any(
            seen_currency == currency and low <= open_minor <= high
            for seen_currency, low, high in self.amounts
            for open_minor in open_minors
            if open_minor is not None and open_minor > 0
        )

    def _sees_due(self, invoice: OpenInvoice, old_open: int | None, new_open: int | None) -> bool:
        for scan in self.dues:
            if scan.currency != invoice.currency:
                continue
            if scan.reach is not None and abs(invoice.due_at - scan.moment) > scan.reach:
                continue
            if any(
                open_minor is not None and 0 < open_minor <= scan.high_minor
                for open_minor in (old_open, new_open)
            ):
                return True  # it is, or was, a pick
            if old_open is None:  # passed over: one more entry scanned
                if not scan.slack:
                    return True
                scan.slack -= 1
            elif new_open is None and not scan.slack:
                return True  # one entry fewer: a scan stopped by its limit goes further
        return False

    def _sees_fuzzy(self, invoice: OpenInvoice) -> bool:
        if not self.fuzzy:
            return False
        keys = [normalize_reference(i) for i in (invoice.invoice_number, *invoice.external_ids)]
        return any(
            fuzz.ratio(text, key, processor=None, score_cutoff=cutoff) >= cutoff
            for text, cutoff in self.fuzzy
            for key in keys
        )


_FOOTPRINT_FIELDS = ("buckets", "tails", "amounts", "dues", "fuzzy")


class OpenBook:
    """One customer's open invoices with the indexes the cascade needs (by
    number, external id and PO forms, by numeric tail, by open amount, by due
    date). All look-ups are dict hits or bisections; nothing scans the book
    except the fuzzy and subset steps, which are bounded. Iteration order is
    insertion order, so results are deterministic.

    Memory: the indexes hold the records themselves, never copies of strings:
    one entry per identifier (see `_bucket`) and per numeric tail, and one list
    slot per invoice in each sorted index.

    An invoice whose open amount drops to 0 stays until `remove` but is never
    matched (allocations are always > 0).
    """

    def __init__(self, invoices: tuple[OpenInvoice, ...] | list[OpenInvoice] = ()) -> None:
        self._invoices: dict[str, OpenInvoice] = {}
        self._ids = _BucketIndex()  # numbers, external ids and POs by bucket
        self._tails = _BucketIndex()  # last numeric run of numbers and external ids
        self._sorted_amounts: dict[str, _ByOpen] = {}  # currency -> by (open, number)
        self._sorted_due: dict[str, _ByDue] = {}  # currency -> by (due, number)
        self._fuzzy_version = -1
        self._fuzzy_keys: list[str] = []
        self._fuzzy_owners: list[str] = []
        self.version = 0  # bumps when the set of numbers/ids changes (fuzzy cache key)
        # Set by a caller to record what a match looks at (see `Footprint`).
        self.footprint: Footprint | None = None
        # When a list: every change, (invoice, old open, new open), kept for
        # `changes_since`; `changes_base` is the position of its first entry.
        self.changes: list[tuple[OpenInvoice, int | None, int | None]] | None = None
        self.changes_base = 0
        for invoice in invoices:
            self.add(invoice)

    def __getstate__(self) -> tuple[object, ...]:
        return state_of(self, _OPEN_BOOK_FIELDS)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        restore(self, _OPEN_BOOK_FIELDS, state)

    # --- mutation -----------------------------------------------------------

    def add(self, invoice: OpenInvoice) -> None:
        """Add (or replace) an invoice; the book now owns the record."""
        if invoice.invoice_number in self._invoices:
            self.remove(invoice.invoice_number)
        self._invoices[invoice.invoice_number] = invoice
        self._log(invoice, None, invoice.open_minor)
        self._index_ids(invoice, adding=True)
        if invoice.open_minor > 0:
            self._amounts_in(invoice.currency).insert(invoice)
        self._dues_in(invoice.currency).insert(invoice)
        self.version += 1

    def set_open(self, invoice_number: str, open_minor: int) -> None:
        """Change what is still open; the amount index follows."""
        invoice = self._invoices.get(invoice_number)
        if invoice is None:
            raise KeyError(invoice_number)
        ordered = self._amounts_in(invoice.currency)
        if invoice.open_minor > 0:
            ordered.remove(invoice)
        self._log(invoice, invoice.open_minor, open_minor)
        invoice.open_minor = open_minor
        if open_minor > 0:
            ordered.insert(invoice)

    def remove(self, invoice_number: str) -> None:
        """Drop an invoice (paid, voided, written off); unknown numbers are ignored."""
        invoice = self._invoices.pop(invoice_number, None)
        if invoice is None:
            return
        self._log(invoice, invoice.open_minor, None)
        self._index_ids(invoice, adding=False)
        if invoice.open_minor > 0:
            self._sorted_amounts[invoice.currency].remove(invoice)
        self._sorted_due[invoice.currency].remove(invoice)
        self.version += 1

    def _amounts_in(self, currency: str) -> _ByOpen:
        ordered = self._sorted_amounts.get(currency)
        if ordered is None:
            ordered = self._sorted_amounts[currency] = _ByOpen()
        return ordered

    def _dues_in(self, currency: str) -> _ByDue:
        ordered = self._sorted_due.get(currency)
        if ordered is None:
            ordered = self._sorted_due[currency] = _ByDue()
        return ordered

    def _log(self, invoice: OpenInvoice, old_open: int | None, new_open: int | None) -> None:
        if self.changes is not None:
            self.changes.append((invoice, old_open, new_open))

    def change_mark(self) -> int:
        """Position after the last change logged (see `changes_since`)."""
        return self.changes_base + len(self.changes or ())

    def changes_since(self, mark: int) -> list[tuple[OpenInvoice, int | None, int | None]] | None:
        """Changes logged after `mark`; None when they are no longer all kept."""
        start = mark - self.changes_base
        if self.changes is None or start < 0:
            return None
        return self.changes[start:]

    def forget_changes(self) -> None:
        """Drop the change log (marks taken before now become unusable)."""
        if self.changes:
            self.changes_base += len(self.changes)
            self.changes.clear()

    def note_global_change(self) -> None:
        """Something outside the book that every match depends on changed."""
        self.changes_base += len(self.changes or ()) + 1
        if self.changes is not None:
            self.changes.clear()

    def _index_ids(self, invoice: OpenInvoice, *, adding: bool) -> None:
        ids, tails = self._ids, self._tails
        change_id = ids.put if adding else ids.drop
        change_tail = tails.put if adding else tails.drop
        identifiers = (invoice.invoice_number, *invoice.external_ids)
        for identifier in identifiers:
            key = normalize_reference(identifier)
            if key:
                change_id(_bucket(key), invoice)
            tail = tail_key(identifier)
            if len(tail) >= MIN_TAIL_DIGITS:
                change_tail(_tail_bucket(tail), invoice)
        if invoice.po_number:
            key = normalize_reference(invoice.po_number)
            if key:
                change_id(_bucket(key), invoice)

    # --- look-ups -----------------------------------------------------------

    def get(self, invoice_number: str) -> OpenInvoice | None:
        return self._invoices.get(invoice_number)

    def find(self, reference: str) -> OpenInvoice | None:
        """The one invoice a reference names (number, external id or PO),
        normalised; None when unknown or ambiguous."""
        hit = self.resolve(reference)
        return hit.invoice if hit else None

    def resolve(self, reference: str, *, allow_tail: bool = True) -> Resolved | None:
        """Like `find`, saying which field and rule hit (for evidence)."""
        key, compact, core = _keys(reference)
        tail = tail_key(reference) if allow_tail else ""
        return self.resolve_keys(key, compact, core, tail, allow_po=True)

    def _with_form(self, value: str, field_name: str) -> list[OpenInvoice]:
        """Invoices (insertion order) whose `field_name` has `value` among its forms."""
        if not value:
            return []
        bucket = _bucket(value)
        if self.footprint is not None:
            self.footprint.buckets.add(bucket)
        held = self._ids.held(bucket)
        if len(held) == 1:
            only = held[0]
            if field_name == _NUMBER and value == normalize_reference(only.invoice_number):
                return [only]  # the common hit: a number's own key
        return [invoice for invoice in held if _has_form(invoice, field_name, value)]

    def resolve_keys(
        self, key: str, compact: str, core: str, tail: str = "", *, allow_po: bool = False
    ) -> Resolved | None:
        """Resolve pre-computed key forms; a hit must name exactly one invoice.

        `tail` ("" to skip) is tried last and only when the reference is no more
        than a number (its core is the tail): "4711" may name INV-2026-004711
        when no other open invoice ends in 4711.
        """
        attempts: list[tuple[str, str, str]] = [
            (_NUMBER, key, "exact_number"),
            (_EXTERNAL, key, "exact_number"),
            (_NUMBER, compact, "compact_number"),
            (_EXTERNAL, compact, "compact_number"),
        ]
        if core and core != key:
            attempts.append((_NUMBER, core, "number_without_prefix"))
            attempts.append((_EXTERNAL, core, "number_without_prefix"))
        for field_name, value, rule in attempts:
            found = self._with_form(value, field_name)
            if len(found) == 1:
                invoice = found[0]
                if rule == "number_without_prefix" and not _prefixed_core(invoice, value):
                    continue  # "INVI01674" is not "#1674": the prefix is unexplained
                return Resolved(invoice, field_name, rule)
        if allow_po:
            for value in (key, compact, core):
                found = self._with_form(value, _PO)
                if len(found) == 1:
                    return Resolved(found[0], _PO, "exact_number")
        if len(tail) >= MIN_TAIL_DIGITS and tail == core:
            if self.footprint is not None:
                self.footprint.tails.add(_tail_bucket(tail))
            held = self._tails.held(_tail_bucket(tail))
            if len(held) == 1:
                invoice = held[0]
                if key == core or _has_prefix(invoice):
                    return Resolved(invoice, _NUMBER, "number_tail")
        return None

    def by_po(self, key: str, compact: str, core: str) -> list[OpenInvoice]:
        """Invoices carrying a PO (several invoices may share one)."""
        for value in (key, compact, core):
            found = self._with_form(value, _PO)
            if found:
                return found
        return []

    def with_open(self, currency: str, open_minor: int) -> list[OpenInvoice]:
        """Invoices in `currency` with exactly this open amount (by number)."""
        return self.open_between(currency, open_minor, open_minor)

    def open_between(self, currency: str, low_minor: int, high_minor: int) -> list[OpenInvoice]:
        """Invoices with low <= open <= high, ascending by open amount."""
        if self.footprint is not None:
            self.footprint.amounts.append((currency, low_minor, high_minor))
        ordered = self._sorted_amounts.get(currency)
        return ordered.between(low_minor, high_minor) if ordered is not None else []

    def nearest_open(self, currency: str, amount_minor: int, limit: int) -> list[OpenInvoice]:
        """Up to `limit` invoices whose open amount is closest to `amount_minor`."""
        ordered = self._sorted_amounts.get(currency)
        if ordered is None:
            return []
        opens, records = ordered.keys, ordered.records
        right = bisect.bisect_left(opens, amount_minor)
        left = right - 1
        picked: list[OpenInvoice] = []
        while len(picked) < limit and (left >= 0 or right < len(opens)):
            take_left = right >= len(opens) or (
                left >= 0 and amount_minor - opens[left] <= opens[right] - amount_minor
            )
            if take_left:
                picked.append(records[left])
                left -= 1
            else:
                picked.append(records[right])
                right += 1
        return picked

    def due_nearest(
        self, currency: str, moment: datetime, high_minor: int, limit: int, scan_limit: int
    ) -> list[OpenInvoice]:
        """Up to `limit` invoices with 0 < open <= high, due closest to `moment`,
        looking at no more than `scan_limit` entries of the due-date index."""
        ordered = self._sorted_due.get(currency)
        dues, records = (ordered.keys, ordered.records) if ordered is not None else ([], [])
        right = bisect.bisect_left(dues, moment)
        left = right - 1
        picked: list[OpenInvoice] = []
        scanned = 0
        last: OpenInvoice | None = None
        while len(picked) < limit and scanned < scan_limit and (left >= 0 or right < len(dues)):
            take_left = right >= len(dues) or (
                left >= 0 and moment - dues[left] <= dues[right] - moment
            )
            if take_left:
                invoice = records[left]
                left -= 1
            else:
                invoice = records[right]
                right += 1
            scanned += 1
            last = invoice
            if 0 < invoice.open_minor <= high_minor:
                picked.append(invoice)
        if self.footprint is not None:
            whole = left < 0 and right >= len(dues)  # an added invoice would be scanned too
            self.footprint.dues.append(
                _DueScan(
                    currency,
                    moment,
                    None if whole or last is None else abs(last.due_at - moment),
                    high_minor,
                    scan_limit - scanned,
                )
            )
        return picked

    def fuzzy_choices(self) -> tuple[list[str], list[str]]:
        """(normalised keys, owning invoice numbers) of all numbers and external
        ids; rebuilt lazily when invoices were added or removed."""
        if self._fuzzy_version != self.version:
            keys: list[str] = []
            owners: list[str] = []
            for invoice in self._invoices.values():
                for identifier in (invoice.invoice_number, *invoice.external_ids):
                    keys.append(normalize_reference(identifier))
                    owners.append(invoice.invoice_number)
            self._fuzzy_keys, self._fuzzy_owners = keys, owners
            self._fuzzy_version = self.version
        return self._fuzzy_keys, self._fuzzy_owners

    def __len__(self) -> int:
        return len(self._invoices)

    def __iter__(self) -> Iterator[OpenInvoice]:
        return iter(list(self._invoices.values()))

    def __contains__(self, invoice_number: object) -> bool:
        return invoice_number in self._invoices


# OpenBook state in `__getstate__` order (every attribute: a test checks).
_OPEN_BOOK_FIELDS = (
    "_invoices",
    "_ids",
    "_tails",
    "_sorted_amounts",
    "_sorted_due",
    "_fuzzy_version",
    "_fuzzy_keys",
    "_fuzzy_owners",
    "version",
    "footprint",
    "changes",
    "changes_base",
)


_NUMBER = "number"
_EXTERNAL = "external_id"
_PO = "po"


def _has_form(invoice: OpenInvoice, field_name: str, value: str) -> bool:
    """Whether the invoice's number, one of its external ids or its PO has `value`."""
    if field_name == _NUMBER:
        return _is_form(invoice.invoice_number, value)
    if field_name == _EXTERNAL:
        return any(_is_form(external, value) for external in invoice.external_ids)
    return bool(invoice.po_number) and _is_form(invoice.po_number or "", value)


def _prefixed_core(invoice: OpenInvoice, core: str) -> bool:
    """Whether one of the invoice's own ids is `core` behind a letter prefix: a
    reference's prefix may differ from ours ("RE 100215" for INV-100215), but a
    prefix on a reference to a bare number is a different id."""
    for identifier in (invoice.invoice_number, *invoice.external_ids):
        key = normalize_reference(identifier)
        if key != core and core_key(key) == core:
            return True
    return False


def _has_prefix(invoice: OpenInvoice) -> bool:
    """Whether one of the invoice's ids starts with letters (INV-...): only then
    may a prefixed reference name it by its tail."""
    for identifier in (invoice.invoice_number, *invoice.external_ids):
        key = normalize_reference(identifier)
        if key != core_key(key):
            return True
    return False


# --- the cascade ------------------------------------------------------------

CONFIDENCE_PO_SINGLE = 0.95
CONFIDENCE_PO_CHOSEN = 0.9
CONFIDENCE_PO_OLDEST_FIRST = 0.75
FUZZY_CONFIDENCE_SCALE = 0.9
CONFIDENCE_FUZZY_AMOUNT_AGREES = 0.9
CONFIDENCE_EXACT_AMOUNT = 0.85
CONFIDENCE_AMOUNT_NET_OF_FEE = 0.75
CONFIDENCE_SUBSET_EXACT = 0.7
CONFIDENCE_SUBSET_NET_OF_FEE = 0.6
MAX_CANDIDATES = 5
FUZZY_LIMIT = 8
_PROCESSOR_RAILS = frozenset({Rail.CARD, Rail.WALLET, Rail.MARKETPLACE})
# The due-date index is read at most this many entries per requested candidate.
DUE_SCAN_FACTOR = 8


class _Cascade:
    """Per-payment working state: the payment's view and what was ruled out."""

    __slots__ = ("ambiguous", "book", "excluded", "notes", "payment", "policy", "tokens")

    def __init__(
        self,
        book: OpenBook,
        payment: PaymentReceived,
        policy: MatchPolicy,
        tokens: tuple[RefToken, ...],
        excluded: frozenset[str],
    ) -> None:
        self.book = book
        self.payment = payment
        self.policy = policy
        self.tokens = tokens
        self.ambiguous: list[str] = []
        self.notes: list[str] = []
        # Invoices this payment already paid: the rest of its cash goes elsewhere.
        self.excluded = excluded

    @property
    def amount_minor(self) -> int:
        return self.payment.amount.amount_minor

    @property
    def currency(self) -> str:
        return self.payment.amount.currency

    @property
    def net_of_fee(self) -> bool:
        """Whether a processor may have kept a fee out of this payment.

        Card, wallet and marketplace money passes a processor that nets out its
        fee; a bank transfer arrives as the payer sent it, so a gap there is a
        short-pay to flag, never a fee to absorb.
        """
        payment = self.payment
        return (
            payment.processor is not None
            or payment.fee_minor > 0
            or payment.rail in _PROCESSOR_RAILS
        )

    def allowed(self, invoices: list[OpenInvoice]) -> list[OpenInvoice]:
        """`invoices` without the excluded ones (the same list when none are)."""
        if not self.excluded:
            return invoices
        return [invoice for invoice in invoices if invoice.invoice_number not in self.excluded]

    def fee_tolerance_minor(self, expected_minor: int) -> int:
        """Largest gap on `expected_minor` that may be a processor fee (0 off processors)."""
        return self.policy.fee_tolerance_minor(expected_minor) if self.net_of_fee else 0

    def fee_ceiling(self) -> int:
        """Largest open amount whose expected fee could explain this payment."""
        amount = self.amount_minor
        return _fee_ceiling(self.policy, amount) if self.net_of_fee else amount

    def fee_fits(self, total_minor: int) -> bool:
        """Open total `total_minor` minus this payment is a plausible fee."""
        return 0 < total_minor - self.amount_minor <= self.fee_tolerance_minor(total_minor)

    def usable(self, invoice: OpenInvoice) -> bool:
        """Same currency, something still open, not already paid by this payment."""
        if invoice.invoice_number in self.excluded:
            return False
        if invoice.currency != self.currency:
            self.notes.append(f"{invoice.invoice_number} is in {invoice.currency}, skipped")
            return False
        return invoice.open_minor > 0


def match_payment(
    book: OpenBook,
    payment: PaymentReceived,
    policy: MatchPolicy,
    exclude: frozenset[str] = frozenset(),
) -> Match:
    """Decide which open invoices `payment` pays; first confident step wins.

    Steps: remittance lines, exact reference (invoice number / external id),
    PO number, fuzzy reference, exact amount (also net of the expected fee),
    bounded subset-sum, else `none` with up to 5 ranked candidates.
    `exclude` names invoices no step may pick: when the rest of a payment is
    matched again, the invoices its first part paid (a remittance line still
    open by a refused deduction) are not paid twice.
    """
    tokens = _payment_tokens(payment)
    cascade = _Cascade(book, payment, policy, tokens, exclude)
    if cascade.amount_minor <= 0:
        return Match("none", 0.0, ("payment amount is not positive",), ())
    for step in (_by_remittance, _by_reference, _by_po, _by_fuzzy, _by_amount, _by_subset):
        decided = step(cascade)
        if decided is not None:
            return decided
    return _undecided(cascade)


def _payment_tokens(payment: PaymentReceived) -> tuple[RefToken, ...]:
    """Explicit ids first (labelled invoice refs), then refs mined from texts."""
    found: dict[tuple[RefKind, str], RefToken] = {}
    for ref in payment.invoice_refs:
        key = normalize_reference(ref)
        if key:
            found.setdefault((RefKind.INVOICE, key), RefToken(ref, key, RefKind.INVOICE, True))
    for text in payment.references:
        for token in extract_references(text):
            found.setdefault((token.kind, token.key), token)
    return tuple(found.values())


# --- spreading cash ---------------------------------------------------------


@dataclass(init=False, slots=True)
class _Target:
    invoice: OpenInvoice
    expected_minor: int
    deduction_minor: int
    deduction_code: str | None

    def __init__(
        self,
        invoice: OpenInvoice,
        expected_minor: int,
        deduction_minor: int = 0,
        deduction_code: str | None = None,
    ) -> None:
        self.invoice = invoice
        self.expected_minor = expected_minor
        self.deduction_minor = deduction_minor
        self.deduction_code = deduction_code


def _spread(cascade: _Cascade, targets: list[_Target]) -> tuple[tuple[Allocation, ...], str]:
    """Cash over targets in the order given, each up to min(expected, open).

    A shortfall against the targets' total is coded on the last allocation:
    `processor_fee` when within the fee tolerance, else `unexplained`, unless
    the payer said it pays part ("partial payment", "installment", "on
    account"): then the rest simply stays open, nothing to flag. A coded
    deduction (remittance) takes precedence on its own line.
    """
    remaining = cascade.amount_minor
    rows: list[tuple[_Target, int, int]] = []  # target, expected, applied
    for target in targets:
        expected = min(target.expected_minor, target.invoice.open_minor)
        applied = min(expected, remaining)
        if applied <= 0:
            continue
        remaining -= applied
        rows.append((target, expected, applied))
    expected_total = sum(
        min(target.expected_minor, target.invoice.open_minor) for target in targets
    )
    shortfall = expected_total - (cascade.amount_minor - remaining)
    shortfall_code: str | None = (
        "processor_fee"
        if shortfall <= cascade.fee_tolerance_minor(expected_total)
        else None
        if _says_partial(cascade.payment)
        else "unexplained"
    )
    allocations: list[Allocation] = []
    for position, (target, expected, applied) in enumerate(rows):
        room = target.invoice.open_minor - applied
        gap, code = 0, None
        if target.deduction_minor > 0 and room > 0:
            gap = min(target.deduction_minor, room)
            code = f"deduction:{target.deduction_code}" if target.deduction_code else "unexplained"
        elif position == len(rows) - 1 and shortfall > 0 and expected > applied and shortfall_code:
            gap, code = expected - applied, shortfall_code
        allocations.append(Allocation(target.invoice.invoice_number, applied, gap, code))
    note = f"shortfall {shortfall} ({shortfall_code or 'partial payment'})"
    note = note if shortfall > 0 else "no shortfall"
    return tuple(allocations), note


_PARTIAL_WORDS = re.compile(
    r"\b(?:PARTIAL(?:\s+PAYMENT)?|PART[\s-]+PAYMENT|INSTAL+MENTS?|ON\s+ACCOUNT|"
    r"TEILZAHLUNG|ABSCHLAG(?:SZAHLUNG)?|RATENZAHLUNG|ACOMPTE|PAIEMENT\s+PARTIEL)\b",
    re.IGNORECASE,
)


# Every phrase of `_PARTIAL_WORDS` holds one of these: most texts skip the regex.
_PARTIAL_STEMS = ("PART", "INSTAL", "ACCOUNT", "ZAHLUNG", "ABSCHLAG", "ACOMPTE")


def _says_partial(payment: PaymentReceived) -> bool:
    """The payer's own words say this pays part of the invoice."""
    for text in payment.references:
        upper = text.upper()
        if any(stem in upper for stem in _PARTIAL_STEMS) and _PARTIAL_WORDS.search(text):
            return True
    return False


def _decide(
    cascade: _Cascade,
    method: str,
    confidence: float,
    evidence: list[str],
    targets: list[_Target],
) -> Match | None:
    allocations, note = _spread(cascade, targets)
    if not allocations:
        return None
    return Match(method, round(confidence, 4), (*evidence, note), allocations)


# --- steps ------------------------------------------------------------------


def _by_remittance(cascade: _Cascade) -> Match | None:
    """(1) Remittance lines: each line's invoice_ref through the book."""
    lines = cascade.payment.remittance
    if not lines:
        return None
    targets: dict[str, _Target] = {}
    evidence: list[str] = []
    unresolved = 0
    for line in lines:
        hit = cascade.book.resolve(line.invoice_ref)
        if hit is None or not cascade.usable(hit.invoice) or line.paid_minor <= 0:
            unresolved += 1
            evidence.append(f"remittance {line.invoice_ref!r} not applicable")
            continue
        number = hit.invoice.invoice_number
        evidence.append(f"remittance {line.invoice_ref!r} -> {number} ({hit.rule})")
        if number in targets:
            targets[number].expected_minor += line.paid_minor
            targets[number].deduction_minor += line.deduction_minor
        else:
            targets[number] = _Target(
                hit.invoice, line.paid_minor, line.deduction_minor, line.deduction_code
            )
    if not targets:
        cascade.notes.extend(evidence)
        return None
    confidence = 1.0 if unresolved == 0 else 0.8
    return _decide(
        cascade, "remittance", confidence, [*evidence, "rule: remittance"], list(targets.values())
    )


def _by_reference(cascade: _Cascade) -> Match | None:
    """(2) Explicit refs and refs in texts that hit a number or external id."""
    hits: dict[str, Resolved] = {}
    evidence: list[str] = []
    for token in cascade.tokens:
        if token.kind is RefKind.PO:
            continue
        tail = token.tail if token.labelled else ""
        hit = cascade.book.resolve_keys(token.key, token.compact, token.core, tail)
        if hit is None or not cascade.usable(hit.invoice):
            continue
        number = hit.invoice.invoice_number
        if number not in hits:
            hits[number] = hit
            evidence.append(f"ref {token.text!r} -> {number} ({hit.field}, {hit.rule})")
    if not hits:
        return None
    fields = {hit.field for hit in hits.values()}
    method = "external_id" if fields == {"external_id"} else "invoice_number"
    confidence = min(RULE_CONFIDENCE[hit.rule] for hit in hits.values())
    targets = [_Target(hit.invoice, hit.invoice.open_minor) for hit in hits.values()]
    return _decide(cascade, method, confidence, [*evidence, f"rule: {method}"], targets)


def _by_po(cascade: _Cascade) -> Match | None:
    """(3) PO number; several invoices may share a PO."""
    ordered = sorted(cascade.tokens, key=lambda token: token.kind is not RefKind.PO)
    for token in ordered:
        if token.kind is not RefKind.PO and not token.labelled:
            continue
        invoices = [
            invoice
            for invoice in cascade.book.by_po(token.key, token.compact, token.core)
            if cascade.usable(invoice)
        ]
        if invoices:
            return _po_decision(cascade, token, invoices)
    return None


def _po_decision(cascade: _Cascade, token: RefToken, invoices: list[OpenInvoice]) -> Match | None:
    amount = cascade.amount_minor
    numbers = ", ".join(invoice.invoice_number for invoice in invoices)
    evidence = [f"po {token.text!r} -> {numbers}"]
    if len(invoices) == 1:
        evidence.append("rule: po_number")
        targets = [_Target(invoices[0], invoices[0].open_minor)]
        return _decide(cascade, "po_number", CONFIDENCE_PO_SINGLE, evidence, targets)
    oldest_first = sorted(invoices, key=_by_due)
    exact = [invoice for invoice in oldest_first if invoice.open_minor == amount]
    if len(exact) == 1:
        evidence.append("rule: po_amount_equal")
        targets = [_Target(exact[0], exact[0].open_minor)]
        return _decide(cascade, "po_number", CONFIDENCE_PO_CHOSEN, evidence, targets)
    total = sum(invoice.open_minor for invoice in invoices)
    targets = [_Target(invoice, invoice.open_minor) for invoice in oldest_first]
    if 0 <= total - amount <= cascade.fee_tolerance_minor(total):
        evidence.append("rule: po_all_invoices")
        return _decide(cascade, "po_number", CONFIDENCE_PO_CHOSEN, evidence, targets)
    evidence.append("rule: po_oldest_first")
    return _decide(cascade, "po_number", CONFIDENCE_PO_OLDEST_FIRST, evidence, targets)


def _by_fuzzy(cascade: _Cascade) -> Match | None:
    """(4) Fuzzy reference: unique best above threshold, by a margin."""
    policy = cascade.policy
    tokens = [
        token
        for token in cascade.tokens
        if token.kind is not RefKind.PO and (token.labelled or len(token.key) >= 5)
    ]
    footprint = cascade.book.footprint
    if footprint is not None:
        cutoff = max(0.0, policy.fuzzy_threshold - policy.fuzzy_margin)
        footprint.fuzzy.extend((token.key, cutoff) for token in tokens)
    keys, owners = cascade.book.fuzzy_choices()
    if not keys:
        return None
    winners: dict[str, float] = {}
    evidence: list[str] = []
    for token in tokens:
        ranked = _fuzzy_ranked(cascade, token.key, keys, owners)
        if not ranked or ranked[0][1] < policy.fuzzy_threshold:
            continue
        best_number, best_score = ranked[0]
        runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
        if best_score - runner_up < policy.fuzzy_margin:
            cascade.ambiguous.extend(number for number, _ in ranked[:2])
            cascade.notes.append(f"fuzzy {token.text!r}: {best_score:.1f} vs {runner_up:.1f}")
            continue
        if best_number not in winners:
            winners[best_number] = best_score
            evidence.append(f"ref {token.text!r} ~ {best_number} score {best_score:.1f}")
    if not winners:
        return None
    confidence = min(winners.values()) / 100 * FUZZY_CONFIDENCE_SCALE
    invoices = [cascade.book.get(number) for number in winners]
    targets = [_Target(invoice, invoice.open_minor) for invoice in invoices if invoice]
    total = sum(target.expected_minor for target in targets)
    agrees = total == cascade.amount_minor or cascade.fee_fits(total)
    if agrees:
        confidence = max(confidence, CONFIDENCE_FUZZY_AMOUNT_AGREES)
        evidence.append(f"amount {cascade.amount_minor} agrees with open {total}")
    evidence.append("rule: fuzzy_reference")
    decided = _decide(cascade, "fuzzy_reference", confidence, evidence, targets)
    return replace(decided, corroborated=True) if decided and agrees else decided


def _fuzzy_ranked(
    cascade: _Cascade, key: str, keys: list[str], owners: list[str]
) -> list[tuple[str, float]]:
    """Best score per usable invoice, best first (ties: book order)."""
    policy = cascade.policy
    cutoff = max(0.0, policy.fuzzy_threshold - policy.fuzzy_margin)
    found = process.extract(
        key, keys, scorer=fuzz.ratio, limit=FUZZY_LIMIT, score_cutoff=cutoff, processor=None
    )
    best: dict[str, float] = {}
    for _choice, score, index in found:
        number = owners[index]
        invoice = cascade.book.get(number)
        if invoice is None or invoice.currency != cascade.currency or invoice.open_minor <= 0:
            continue
        if number in cascade.excluded:
            continue
        best[number] = max(best.get(number, 0.0), float(score))
    return sorted(best.items(), key=lambda item: (-item[1], item[0]))


def _similar_reference(cascade: _Cascade, invoice: OpenInvoice) -> str:
    """Evidence that a quoted reference looks like `invoice` ("" when none does).

    Used when the amount alone found the invoice: a quoted number one keying
    error away (above the fuzzy cut-off, no margin needed since the amount
    already singled the invoice out) corroborates it.
    """
    policy = cascade.policy
    cutoff = max(0.0, policy.fuzzy_threshold - policy.fuzzy_margin)
    keys = [normalize_reference(item) for item in (invoice.invoice_number, *invoice.external_ids)]
    for token in cascade.tokens:
        if token.kind is RefKind.PO or not (token.labelled or len(token.key) >= 5):
            continue
        found = process.extractOne(
            token.key, keys, scorer=fuzz.ratio, score_cutoff=cutoff, processor=None
        )
        if found is not None:
            return f"ref {token.text!r} ~ {invoice.invoice_number} score {found[1]:.1f}"
    return ""


def _fee_ceiling(policy: MatchPolicy, amount_minor: int) -> int:
    """Largest open amount whose expected fee could explain paying `amount_minor`."""
    share = max(1, 10_000 - policy.fee_tolerance_bps)
    return (amount_minor + policy.fee_fixed_minor) * 10_000 // share


def _by_amount(cascade: _Cascade) -> Match | None:
    """(5) Exactly one invoice open for the amount (or for amount + fee)."""
    book, amount = cascade.book, cascade.amount_minor
    exact = cascade.allowed(book.with_open(cascade.currency, amount))
    if len(exact) == 1:
        evidence = [f"amount {amount} == open of {exact[0].invoice_number}", "rule: exact_amount"]
        similar = _similar_reference(cascade, exact[0])
        if similar:
            evidence.insert(1, similar)
        targets = [_Target(exact[0], amount)]
        decided = _decide(cascade, "exact_amount", CONFIDENCE_EXACT_AMOUNT, evidence, targets)
        return replace(decided, corroborated=True) if decided and similar else decided
    if len(exact) > 1:
        cascade.ambiguous.extend(invoice.invoice_number for invoice in exact)
        cascade.notes.append(f"{len(exact)} invoices open for exactly {amount}")
        return _undecided(cascade)
    net = [
        invoice
        for invoice in book.open_between(cascade.currency, amount + 1, cascade.fee_ceiling())
        if cascade.fee_fits(invoice.open_minor) and invoice.invoice_number not in cascade.excluded
    ]
    if len(net) == 1:
        invoice = net[0]
        evidence = [
            f"amount {amount} == open {invoice.open_minor} of {invoice.invoice_number} - fee",
            "rule: exact_amount_net_of_fee",
        ]
        targets = [_Target(invoice, invoice.open_minor)]
        return _decide(cascade, "exact_amount", CONFIDENCE_AMOUNT_NET_OF_FEE, evidence, targets)
    if len(net) > 1:
        cascade.ambiguous.extend(invoice.invoice_number for invoice in net)
        cascade.notes.append(f"{len(net)} invoices open for {amount} net of fee")
        return _undecided(cascade)
    return None


# --- subset-sum -------------------------------------------------------------


class _StepCapError(Exception):
    """The subset search used its step budget (uniqueness not proven)."""


@dataclass(slots=True)
class _Half:
    """All subsets (size <= max_size) of some candidates, by size then
    combination order; only sums are stored, subsets are rebuilt on demand.
    Sorted copies and sets of a size's sums are made when first asked for."""

    positions: list[int]
    sums: list[int]
    sizes: list[int]
    offsets: list[int]  # offsets[k]: first index of size-k subsets
    groups: list[list[int]]  # groups[k]: sums of size-k subsets, combination order
    _amounts: list[int] = field(default_factory=list)  # ascending
    _sorted: dict[int, list[int]] = field(default_factory=dict)
    _sets: dict[int, set[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, positions: list[int], values: list[int], max_size: int) -> _Half:
        sums: list[int] = []
        sizes: list[int] = []
        offsets: list[int] = []
        amounts = [values[position] for position in positions]
        groups = _sums_by_size(amounts, max_size)
        for size, part in enumerate(groups):
            offsets.append(len(sums))
            sums += part
            sizes += [size] * len(part)
        return cls(positions, sums, sizes, offsets, groups, sorted(amounts))

    def ordered(self, size: int) -> list[int]:
        """The sums of `size`, ascending."""
        found = self._sorted.get(size)
        if found is None:
            found = self._sorted[size] = sorted(self.groups[size])
        return found

    def as_set(self, size: int) -> set[int]:
        found = self._sets.get(size)
        if found is None:
            found = self._sets[size] = set(self.groups[size])
        return found

    def span(self, size: int) -> tuple[int, int]:
        """Smallest and largest sum of `size`: the `size` smallest / largest amounts."""
        ordered = self._amounts
        return sum(ordered[:size]), sum(ordered[len(ordered) - size :])

    def locate(self, size: int, ordered: list[int], position: int) -> int:
        """Index of the subset behind `ordered[position]` (the sorted sums of
        `size`); equal sums map to distinct subsets by their occurrence."""
        value = ordered[position]
        occurrence = position - bisect.bisect_left(ordered, value)
        index = self.offsets[size] - 1
        for _ in range(occurrence + 1):
            index = self.sums.index(value, index + 1)
        return index

    def subset(self, index: int) -> tuple[int, ...]:
        size = self.sizes[index]
        rank = index - self.offsets[size]
        chosen = next(islice(combinations(self.positions, size), rank, None))
        return tuple(chosen)


def _sums_by_size(amounts: list[int], max_size: int) -> list[list[int]]:
    """Per size k <= max_size: the sums of all k-subsets, in `combinations` order.

    Why not `map(sum, combinations(...))`: that adds up every tuple again. The
    k-subsets starting at element i are that element plus the (k-1)-subsets of
    the elements after it, which are a suffix of the previous size's list; so
    each sum costs one addition inside a C-level `map`.
    """
    count = len(amounts)
    top = min(max_size, count)
    result = [[0], list(amounts)] if top else [[0]]
    previous = amounts  # size 1: the 1-subsets of amounts[i:] are amounts[i:] ...
    starts = list(range(count + 1))  # ... starts[i]: where the subsets of amounts[i:] begin
    for size in range(2, top + 1):
        current: list[int] = []
        next_starts: list[int] = []
        for start in range(count - size + 1):
            next_starts.append(len(current))
            current += map(amounts[start].__add__, previous[starts[start + 1] :])
        next_starts += [len(current)] * (count + 1 - len(next_starts))
        result.append(current)
        previous, starts = current, next_starts
    return result


def _subset_count(count: int, max_size: int) -> int:
    return sum(comb(count, size) for size in range(min(max_size, count) + 1))


@dataclass(slots=True)
class _SubsetSearch:
    """Meet-in-the-middle over at most `max_subset_candidates` open amounts.

    Why not plain DFS: its tree grows with the number of small invoices and
    Python pays about a microsecond per node. Each half's subset sums
    (size <= max_size) are enumerated at C speed (`_sums_by_size`); for each
    (left size, right size) pair, right-half partners are found by bisection.

    Work bound, fixed before starting and independent of the amounts: for the
    default 24 candidates / 6 invoices, 2 * 2,510 subset sums, then for each of
    the 49 size pairs one range test (min/max sums), in the exact window one
    set test, and for pairs that can hit, one bisection per sum of the smaller
    group (at most sum(min(C(12, i), C(12, j))), about 670). When the sums would
    exceed `max_steps` the search is refused (not proven unique). Results do
    not depend on time: the same book and payment always give the same answer.
    """

    values: list[int]
    max_size: int
    max_steps: int
    steps: int = 0

    def find(self, low_minor: int, high_minor: int) -> tuple[list[tuple[int, ...]], bool]:
        """Up to 2 subsets summing to exactly `low` (flag True), else up to 2
        summing into (low, high] (flag False)."""
        middle = len(self.values) // 2
        left_count = _subset_count(middle, self.max_size)
        right_count = _subset_count(len(self.values) - middle, self.max_size)
        self.steps = left_count + right_count
        if self.steps > self.max_steps:
            raise _StepCapError
        left = _Half.of(list(range(middle)), self.values, self.max_size)
        right = _Half.of(list(range(middle, len(self.values))), self.values, self.max_size)
        exact = self._pairs(left, right, (low_minor, low_minor))
        if exact:
            return exact, True
        return self._pairs(left, right, (low_minor + 1, high_minor)), False

    def _pairs(self, left: _Half, right: _Half, window: tuple[int, int]) -> list[tuple[int, ...]]:
        """Up to 2 left+right subsets with sums in the window, in a fixed order:
        size pairs in turn, and within a pair ascending by the walked sums.

        Pairs that cannot hit are skipped without a probe: their sums miss the
        window (min/max test) or, for an exact window, no right sum equals the
        amount minus a left sum (set test at C speed).
        """
        low, high = window
        found: list[tuple[int, ...]] = []
        if low > high:
            return found
        for left_size in range(len(left.groups)):
            left_span = left.span(left_size)
            for right_size in range(min(len(right.groups), self.max_size - left_size + 1)):
                if left_size + right_size == 0:
                    continue
                right_span = right.span(right_size)
                if left_span[0] + right_span[0] > high or left_span[1] + right_span[1] < low:
                    continue
                if low == high and not _any_partner(left, left_size, right, right_size, low):
                    continue
                left_sums, right_sums = left.ordered(left_size), right.ordered(right_size)
                swap = len(left_sums) > len(right_sums)
                walk, probe = (right_sums, left_sums) if swap else (left_sums, right_sums)
                for walk_pos, probe_pos in _window_hits(walk, probe, window):
                    left_pos, right_pos = (probe_pos, walk_pos) if swap else (walk_pos, probe_pos)
                    left_index = left.locate(left_size, left_sums, left_pos)
                    right_index = right.locate(right_size, right_sums, right_pos)
                    found.append(left.subset(left_index) + right.subset(right_index))
                    if len(found) >= 2:
                        return found
        return found


def _any_partner(left: _Half, left_size: int, right: _Half, right_size: int, total: int) -> bool:
    """Whether some left sum plus some right sum is `total`: the smaller group is
    walked against a set of the larger one, at C speed."""
    small, large = (
        (left, right)
        if len(left.groups[left_size]) <= len(right.groups[right_size])
        else (right, left)
    )
    small_size, large_size = (left_size, right_size) if small is left else (right_size, left_size)
    return not large.as_set(large_size).isdisjoint(map(total.__sub__, small.groups[small_size]))


def _window_hits(
    walk: list[int], probe: list[int], window: tuple[int, int]
) -> Iterator[tuple[int, int]]:
    """(walk position, probe position) pairs whose sums lie in the window;
    `probe` is sorted; the bisections run at C speed through `map`."""
    low, high = window
    starts = list(map(bisect.bisect_left, repeat(probe), [low - value for value in walk]))
    stops = list(map(bisect.bisect_right, repeat(probe), [high - value for value in walk]))
    for walk_pos in compress(range(len(walk)), map(lt, starts, stops)):
        for probe_pos in range(starts[walk_pos], stops[walk_pos]):
            yield walk_pos, probe_pos


def _by_subset(cascade: _Cascade) -> Match | None:
    """(6) A unique bounded subset whose open amounts sum to the payment
    (exactly, else within the expected fee). Two fits -> not confident."""
    policy, amount = cascade.policy, cascade.amount_minor
    if policy.max_subset_size <= 0 or policy.max_subset_candidates <= 0:
        return None
    ceiling = cascade.fee_ceiling()
    pool = cascade.allowed(
        cascade.book.due_nearest(
            cascade.currency,
            cascade.payment.occurred_at,
            ceiling,
            policy.max_subset_candidates,
            policy.max_subset_candidates * DUE_SCAN_FACTOR,
        )
    )
    pool.sort(key=lambda invoice: (-invoice.open_minor, invoice.invoice_number))
    search = _SubsetSearch(
        [invoice.open_minor for invoice in pool], policy.max_subset_size, policy.max_subset_steps
    )
    try:
        found, exact = search.find(amount, ceiling)
    except _StepCapError:
        cascade.notes.append(f"subset search refused: over {policy.max_subset_steps} steps")
        return None
    solutions = [
        picked
        for picked in found
        if exact or cascade.fee_fits(sum(pool[index].open_minor for index in picked))
    ]
    if len(solutions) != 1:
        for picked in solutions:
            cascade.ambiguous.extend(pool[index].invoice_number for index in picked)
        if solutions:
            cascade.notes.append("several subsets fit the amount")
        return None
    chosen = [pool[index] for index in solutions[0]]
    return _subset_match(cascade, chosen, exact, search.steps)


def _subset_match(
    cascade: _Cascade, invoices: list[OpenInvoice], exact: bool, steps: int
) -> Match | None:
    """Allocate a found subset: due order, fee (if any) on the largest invoice."""
    total = sum(invoice.open_minor for invoice in invoices)
    largest = max(invoices, key=lambda invoice: invoice.open_minor)
    ordered = sorted(invoices, key=_by_due)
    ordered.remove(largest)
    ordered.append(largest)
    names = ", ".join(invoice.invoice_number for invoice in ordered)
    evidence = [
        f"subset {names} sums to {total} for {cascade.amount_minor} ({steps} steps)",
        "rule: subset_sum" if exact else "rule: subset_sum_net_of_fee",
    ]
    confidence = CONFIDENCE_SUBSET_EXACT if exact else CONFIDENCE_SUBSET_NET_OF_FEE
    targets = [_Target(invoice, invoice.open_minor) for invoice in ordered]
    return _decide(cascade, "subset_sum", confidence, evidence, targets)


# --- nothing confident ------------------------------------------------------


def _undecided(cascade: _Cascade) -> Match:
    """`none`: ambiguous finds first, then invoices closest in open amount."""
    ranked: dict[str, None] = {}
    for number in cascade.ambiguous:
        invoice = cascade.book.get(number)
        if invoice is not None and invoice.currency == cascade.currency:
            ranked.setdefault(number, None)
    nearest = cascade.book.nearest_open(cascade.currency, cascade.amount_minor, MAX_CANDIDATES)
    for invoice in cascade.allowed(nearest):
        ranked.setdefault(invoice.invoice_number, None)
    candidates = tuple(ranked)[:MAX_CANDIDATES]
    evidence = (*dict.fromkeys(cascade.notes), "rule: none")
    return Match("none", 0.0, evidence, (), candidates)
