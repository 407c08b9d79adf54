"""Dunning cadence: which step is due in a window, when the next one falls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arrecon.state.dunning import (
    DunningPolicy,
    DunningStep,
    latest_step,
    next_step_at,
    step_at,
)

DUE = datetime(2026, 4, 1, tzinfo=UTC)
STEPS = DunningPolicy().steps_for("standard")


def days(n: float) -> datetime:
    return DUE + timedelta(days=n)


@pytest.mark.parametrize(
    ("after", "until", "expected"),
    [
        (days(-10), days(-5), None),  # nothing falls in the window
        (days(-10), days(-3), "pre_due"),  # a step exactly at the window end counts
        (days(-3), days(-1), None),  # ... and one at the window start does not
        (days(-10), days(0), "due"),  # two steps passed: only the latest is sent
        (days(-1), days(8), "overdue_7"),
        (days(8), days(100), "escalation"),
        (days(45), days(400), None),  # the cadence is over
    ],
)
def test_latest_step(after: datetime, until: datetime, expected: str | None) -> None:
    step = latest_step(DUE, STEPS, after, until)
    assert (step.name if step else None) == expected


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (days(-30), days(-3)),
        (days(-3), days(0)),
        (days(0.5), days(7)),
        (days(45), None),
    ],
)
def test_next_step_at(after: datetime, expected: datetime | None) -> None:
    assert next_step_at(DUE, STEPS, after) == expected


@pytest.mark.parametrize(
    ("segment", "first_step"),
    [
        ("standard", "pre_due"),
        ("key_account", "due"),
        ("high_risk", "pre_due"),
        ("unknown-segment", "pre_due"),  # falls back to the default segment
    ],
)
def test_segments_have_their_own_cadence(segment: str, first_step: str) -> None:
    assert DunningPolicy().steps_for(segment)[0].name == first_step


def test_key_accounts_are_reminded_later_than_high_risk_ones() -> None:
    policy = DunningPolicy()
    key = policy.steps_for("key_account")
    risky = policy.steps_for("high_risk")
    assert step_at(DUE, key[0]) > step_at(DUE, risky[0])
    assert key[-1].name == risky[-1].name == "escalation"
    assert key[-1].offset_days > risky[-1].offset_days


def test_unsorted_cadence_is_refused() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        DunningPolicy(cadences=(("x", (DunningStep("b", 5), DunningStep("a", 1))),))


@given(
    st.integers(min_value=-60, max_value=120),
    st.integers(min_value=0, max_value=120),
)
def test_windows_partition_the_steps(start_days: int, length_days: int) -> None:
    """Splitting a window in two never loses a step: the later half or the whole agree."""
    after, until = days(start_days), days(start_days + length_days)
    middle = days(start_days + length_days / 2)
    whole = latest_step(DUE, STEPS, after, until)
    later = latest_step(DUE, STEPS, middle, until)
    earlier = latest_step(DUE, STEPS, after, middle)
    assert whole == (later or earlier)
    upcoming = next_step_at(DUE, STEPS, after)
    assert (whole is None) == (upcoming is None or upcoming > until)
