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

Cost: `OpenBook` keeps dict indexes (normalised number, external ids, PO, open
amount), so reference and amount steps are a few dict hits at any book size.
The fuzzy step scans a cached key list with rapidfuzz (C speed); the subset
step looks at no more than `max_subset_candidates` invoices and
`max_subset_steps` search nodes.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from arrecon.state.events import PaymentReceived
from arrecon.state.references import (
    compact_key,
    core_key,
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


@dataclass(frozen=True, slots=True)
class OpenInvoice:
    invoice_number: str
    currency: str
    amount_minor: int  # original amount
    open_minor: int  # what is still open (> 0 while in the book)
    due_at: datetime
    po_number: str | None = None
    # Other ids a payer may quote: provider invoice id (in_...), order id or name (#1001).
    external_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MatchPolicy:
    fuzzy_threshold: float = 88.0  # rapidfuzz score 0..100 for a fuzzy reference
    fuzzy_margin: float = 6.0  # best must beat runner-up by this much
    fee_tolerance_bps: int = 400  # a gap up to this share (+ fee_fixed_minor) may be a fee
    fee_fixed_minor: int = 30
    max_subset_size: int = 6  # subset-sum: at most this many invoices ...
    max_subset_candidates: int = 24  # ... chosen among this many (documented bound)
    max_subset_steps: int = 20000  # hard cap on search steps

    def fee_tolerance_minor(self, expected_minor: int) -> int:
        """Largest gap on `expected_minor` that may be a processor fee."""
        return max(0, expected_minor) * self.fee_tolerance_bps // 10_000 + self.fee_fixed_minor


@dataclass(frozen=True, slots=True)
class Allocation:
    invoice_number: str
    applied_minor: int  # cash applied to this invoice (> 0)
    gap_minor: int = 0  # the rest of the invoice the payer did not pay, if coded
    # processor_fee | marketplace_fee | return | promotion | deduction:<code> | unexplained
    gap_code: str | None = None


@dataclass(frozen=True, slots=True)
class Match:
    # remittance | invoice_number | external_id | po_number | fuzzy_reference
    # | exact_amount | subset_sum | none
    method: str
    confidence: float  # 0..1
    evidence: tuple[str, ...]
    allocations: tuple[Allocation, ...]  # empty when method == "none"
    candidates: tuple[str, ...] = ()  # ranked invoice numbers when nothing decided (<= 5)

    @property
    def applied_minor(self) -> int:
        return sum(allocation.applied_minor for allocation in self.allocations)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A reference resolved to one invoice: which field hit and by which rule."""

    invoice: OpenInvoice
    field: str  # number | external_id | po
    rule: str  # exact_number | compact_number | number_without_prefix | number_tail


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


class _MultiIndex:
    """key -> invoice numbers (insertion order), with exact removal."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: dict[str, list[str]] = {}

    def add(self, key: str, number: str) -> None:
        if not key:
            return
        numbers = self._items.setdefault(key, [])
        if number not in numbers:
            numbers.append(number)

    def discard(self, key: str, number: str) -> None:
        numbers = self._items.get(key)
        if numbers and number in numbers:
            numbers.remove(number)
            if not numbers:
                del self._items[key]

    def get(self, key: str) -> list[str]:
        return self._items.get(key, []) if key else []


class OpenBook:
    """One customer's open invoices with the indexes the cascade needs (by
    normalised number, by PO, by external id, by open amount). All look-ups are
    dict hits; nothing scans the book except the fuzzy and subset steps, which
    are bounded. Iteration order is insertion order, so results are
    deterministic.

    An invoice whose open amount drops to 0 stays until `remove` but is never
    matched (allocations are always > 0).
    """

    def __init__(self, invoices: tuple[OpenInvoice, ...] | list[OpenInvoice] = ()) -> None:
        self._invoices: dict[str, OpenInvoice] = {}
        self._seq: dict[str, int] = {}
        self._next_seq = 0
        self._numbers = _MultiIndex()  # number: key, compact, core
        self._external = _MultiIndex()  # external ids: key, compact, core
        self._tails = _MultiIndex()  # last numeric run of numbers and external ids
        self._pos = _MultiIndex()  # PO: key, compact, core
        self._amounts: dict[tuple[str, int], list[str]] = {}
        self._sorted_amounts: dict[str, list[tuple[int, int]]] = {}  # currency -> (open, seq)
        self._by_seq: dict[int, str] = {}
        self.version = 0  # bumps when the set of numbers/ids changes (fuzzy cache key)
        for invoice in invoices:
            self.add(invoice)

    # --- mutation -----------------------------------------------------------

    def add(self, invoice: OpenInvoice) -> None:
        """Add (or replace) an invoice; indexes follow."""
        if invoice.invoice_number in self._invoices:
            self.remove(invoice.invoice_number)
        number = invoice.invoice_number
        seq = self._next_seq
        self._next_seq += 1
        self._invoices[number] = invoice
        self._seq[number] = seq
        self._by_seq[seq] = number
        self._index_ids(invoice, add=True)
        self._index_amount(invoice, seq, add=True)
        self.version += 1

    def set_open(self, invoice_number: str, open_minor: int) -> None:
        """Change what is still open; the amount indexes follow."""
        invoice = self._invoices.get(invoice_number)
        if invoice is None:
            raise KeyError(invoice_number)
        seq = self._seq[invoice_number]
        self._index_amount(invoice, seq, add=False)
        updated = OpenInvoice(
            invoice.invoice_number,
            invoice.currency,
            invoice.amount_minor,
            open_minor,
            invoice.due_at,
            invoice.po_number,
            invoice.external_ids,
        )
        self._invoices[invoice_number] = updated
        self._index_amount(updated, seq, add=True)

    def remove(self, invoice_number: str) -> None:
        """Drop an invoice (paid, voided, written off); unknown numbers are ignored."""
        invoice = self._invoices.pop(invoice_number, None)
        if invoice is None:
            return
        seq = self._seq.pop(invoice_number)
        del self._by_seq[seq]
        self._index_ids(invoice, add=False)
        self._index_amount(invoice, seq, add=False)
        self.version += 1

    def _index_ids(self, invoice: OpenInvoice, *, add: bool) -> None:
        number = invoice.invoice_number
        ids = [(self._numbers, invoice.invoice_number)]
        ids.extend((self._external, external) for external in invoice.external_ids)
        for index, identifier in ids:
            key, compact, core = _keys(identifier)
            tail = tail_key(key)
            for value in {key, compact, core}:
                _apply(index, value, number, add)
            if len(tail) >= MIN_TAIL_DIGITS:
                _apply(self._tails, tail, number, add)
        if invoice.po_number:
            for value in set(_keys(invoice.po_number)):
                _apply(self._pos, value, number, add)

    def _index_amount(self, invoice: OpenInvoice, seq: int, *, add: bool) -> None:
        if invoice.open_minor <= 0:
            return
        bucket_key = (invoice.currency, invoice.open_minor)
        ordered = self._sorted_amounts.setdefault(invoice.currency, [])
        entry = (invoice.open_minor, seq)
        if add:
            self._amounts.setdefault(bucket_key, []).append(invoice.invoice_number)
            bisect.insort(ordered, entry)
            return
        bucket = self._amounts.get(bucket_key, [])
        if invoice.invoice_number in bucket:
            bucket.remove(invoice.invoice_number)
            if not bucket:
                del self._amounts[bucket_key]
        position = bisect.bisect_left(ordered, entry)
        if position < len(ordered) and ordered[position] == entry:
            del ordered[position]

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
        return self.resolve_keys(key, compact, core, allow_tail=allow_tail, allow_po=True)

    def resolve_keys(
        self, key: str, compact: str, core: str, *, allow_tail: bool, allow_po: bool
    ) -> Resolved | None:
        """Resolve pre-computed key forms; a hit must name exactly one invoice."""
        attempts: list[tuple[_MultiIndex, str, str, str]] = [
            (self._numbers, key, "number", "exact_number"),
            (self._external, key, "external_id", "exact_number"),
            (self._numbers, compact, "number", "compact_number"),
            (self._external, compact, "external_id", "compact_number"),
        ]
        if core and core != key:
            attempts.append((self._numbers, core, "number", "number_without_prefix"))
            attempts.append((self._external, core, "external_id", "number_without_prefix"))
        for index, value, field, rule in attempts:
            numbers = index.get(value)
            if len(numbers) == 1:
                return Resolved(self._invoices[numbers[0]], field, rule)
        if allow_po:
            for value in (key, compact, core):
                numbers = self._pos.get(value)
                if len(numbers) == 1:
                    return Resolved(self._invoices[numbers[0]], "po", "exact_number")
        tail = tail_key(key)
        if allow_tail and len(tail) >= MIN_TAIL_DIGITS and tail == core:
            numbers = self._tails.get(tail)
            if len(numbers) == 1:
                return Resolved(self._invoices[numbers[0]], "number", "number_tail")
        return None

    def by_po(self, key: str, compact: str, core: str) -> list[OpenInvoice]:
        """Invoices carrying a PO (several invoices may share one)."""
        for value in (key, compact, core):
            numbers = self._pos.get(value)
            if numbers:
                return [self._invoices[number] for number in numbers]
        return []

    def with_open(self, currency: str, open_minor: int) -> list[OpenInvoice]:
        """Invoices in `currency` with exactly this open amount (insertion order)."""
        numbers = self._amounts.get((currency, open_minor), [])
        return [self._invoices[number] for number in numbers]

    def open_between(self, currency: str, low_minor: int, high_minor: int) -> list[OpenInvoice]:
        """Invoices with low <= open <= high, ascending by open amount."""
        ordered = self._sorted_amounts.get(currency, [])
        start = bisect.bisect_left(ordered, (low_minor, -1))
        stop = bisect.bisect_right(ordered, (high_minor, self._next_seq))
        return [self._invoices[self._by_seq[seq]] for _, seq in ordered[start:stop]]

    def nearest_open(self, currency: str, amount_minor: int, limit: int) -> list[OpenInvoice]:
        """Up to `limit` invoices whose open amount is closest to `amount_minor`."""
        ordered = self._sorted_amounts.get(currency, [])
        right = bisect.bisect_left(ordered, (amount_minor, -1))
        left = right - 1
        picked: list[OpenInvoice] = []
        while len(picked) < limit and (left >= 0 or right < len(ordered)):
            take_left = right >= len(ordered) or (
                left >= 0 and amount_minor - ordered[left][0] <= ordered[right][0] - amount_minor
            )
            if take_left:
                picked.append(self._invoices[self._by_seq[ordered[left][1]]])
                left -= 1
            else:
                picked.append(self._invoices[self._by_seq[ordered[right][1]]])
                right += 1
        return picked

    def sequence(self, invoice_number: str) -> int:
        """Insertion rank: the deterministic tie-breaker."""
        return self._seq[invoice_number]

    def __len__(self) -> int:
        return len(self._invoices)

    def __iter__(self) -> Iterator[OpenInvoice]:
        return iter(list(self._invoices.values()))

    def __contains__(self, invoice_number: object) -> bool:
        return invoice_number in self._invoices


def _apply(index: _MultiIndex, key: str, number: str, add: bool) -> None:
    if add:
        index.add(key, number)
    else:
        index.discard(key, number)


def match_payment(book: OpenBook, payment: PaymentReceived, policy: MatchPolicy) -> Match:
    """Run the cascade for one payment (first version: no decision yet)."""
    del book, policy
    return Match("none", 0.0, (f"payment {payment.payment_id}: cascade not decided",), ())
