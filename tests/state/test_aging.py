"""Aging buckets and the as-of summary."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arrecon.state.aging import BUCKETS, AgingSummary, bucket, days_past_due

DUE = datetime(2026, 4, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (-5, "current"),
        (0, "current"),
        (1, "1-30"),
        (30, "1-30"),
        (31, "31-60"),
        (60, "31-60"),
        (61, "61-90"),
        (90, "61-90"),
        (91, "90+"),
        (4000, "90+"),
    ],
)
def test_bucket(days: int, expected: str) -> None:
    assert bucket(days) == expected


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        (DUE - timedelta(days=3), 0),
        (DUE, 0),
        (DUE + timedelta(hours=1), 1),  # one hour late is already one day past due
        (DUE + timedelta(days=1), 1),
        (DUE + timedelta(days=1, seconds=1), 2),
        (DUE + timedelta(days=45), 45),
    ],
)
def test_days_past_due_rounds_up(as_of: datetime, expected: int) -> None:
    assert days_past_due(DUE, as_of) == expected


@dataclass(frozen=True)
class Item:
    currency: str
    open_minor: int
    due_at: datetime


@dataclass
class Book:
    items: list[Item]

    def open_items(self) -> list[Item]:
        return self.items


def test_summary_as_of_two_dates() -> None:
    book = Book(
        [
            Item("USD", 10_000, DUE),
            Item("USD", 2_500, DUE - timedelta(days=40)),
            Item("USD", 700, DUE - timedelta(days=100)),
            Item("EUR", 900, DUE),
            Item("USD", 0, DUE - timedelta(days=100)),  # settled: not aged
        ]
    )
    early = AgingSummary.of(book, DUE)
    assert early.row("USD") == {
        "current": 10_000,
        "1-30": 0,
        "31-60": 2_500,
        "61-90": 0,
        "90+": 700,
    }
    assert early.row("EUR")["current"] == 900
    late = AgingSummary.of(book, DUE + timedelta(days=31))
    assert list(late.row("USD").values()) == [0, 0, 10_000, 2_500, 700]
    assert late.invoice_count[("USD", "90+")] == 1
    assert late.total_minor("USD") == early.total_minor("USD") == 13_200


@given(st.lists(st.tuples(st.integers(1, 10**9), st.integers(-200, 200)), max_size=30))
def test_summary_keeps_every_open_minor(rows: list[tuple[int, int]]) -> None:
    book = Book([Item("USD", amount, DUE + timedelta(days=d)) for amount, d in rows])
    summary = AgingSummary.of(book, DUE)
    assert summary.total_minor("USD") == sum(amount for amount, _ in rows)
    assert set(summary.row("USD")) == set(BUCKETS)
