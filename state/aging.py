"""Accounts-receivable aging: open balances by how far past due they are, as of a moment.

Why "as of": aging is derived from due dates and a moment passed in, never
stored, so the same ledger can be aged at any date (and replays age the same).
Days past due round up: an invoice one hour past due is in "1-30", the same
instant the ledger calls it overdue.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

__all__ = ["BUCKETS", "AgingSummary", "HasOpenItems", "OpenItemLike", "bucket", "days_past_due"]

BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")

_DAY = timedelta(days=1)


def days_past_due(due_at: datetime, as_of: datetime) -> int:
    """Whole days past due, rounded up; 0 when not yet past due."""
    if as_of <= due_at:
        return 0
    return -((due_at - as_of) // _DAY)


def bucket(days_past_due: int) -> str:
    """The aging bucket for a number of days past due (0 or less is "current")."""
    if days_past_due <= 0:
        return "current"
    if days_past_due <= 30:
        return "1-30"
    if days_past_due <= 60:
        return "31-60"
    if days_past_due <= 90:
        return "61-90"
    return "90+"


class OpenItemLike(Protocol):
    @property
    def currency(self) -> str: ...
    @property
    def open_minor(self) -> int: ...
    @property
    def due_at(self) -> datetime: ...


class HasOpenItems(Protocol):
    def open_items(self) -> Iterable[OpenItemLike]: ...


@dataclass(frozen=True, slots=True)
class AgingSummary:
    """Open minor units and invoice counts per (currency, bucket), as of `as_of`."""

    as_of: datetime
    open_minor: dict[tuple[str, str], int]
    invoice_count: dict[tuple[str, str], int]

    def total_minor(self, currency: str) -> int:
        return sum(v for (cur, _), v in self.open_minor.items() if cur == currency)

    def row(self, currency: str) -> dict[str, int]:
        """One currency's buckets in report order, zeros included."""
        return {name: self.open_minor.get((currency, name), 0) for name in BUCKETS}

    @classmethod
    def of(cls, ledger: HasOpenItems, as_of: datetime) -> AgingSummary:
        """Age every invoice with a positive open amount."""
        amounts: dict[tuple[str, str], int] = {}
        counts: dict[tuple[str, str], int] = {}
        for item in ledger.open_items():
            if item.open_minor <= 0:
                continue
            key = (item.currency, bucket(days_past_due(item.due_at, as_of)))
            amounts[key] = amounts.get(key, 0) + item.open_minor
            counts[key] = counts.get(key, 0) + 1
        return cls(as_of, amounts, counts)
