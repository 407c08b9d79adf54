"""Dunning cadence: when an open invoice deserves a reminder.

Why a policy per segment: a key account gets a courteous, late first nudge, a
high-risk customer an early and dense one. A cadence is a list of steps placed
relative to the due date (negative offsets fall before it). The ledger asks two
questions from its timers: which step became due in a time window, and when the
next step falls. Both are pure functions of the due date, so reminders are
deterministic and can be replayed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from arrecon.state.pickling import by_constructor

__all__ = [
    "DEFAULT_CADENCES",
    "DunningPolicy",
    "DunningStep",
    "latest_step",
    "next_step_at",
    "step_at",
]


@dataclass(frozen=True, slots=True)
class DunningStep:
    """One reminder: `name` is what the outcome carries, `offset_days` is from due date."""

    name: str
    offset_days: int

    def __reduce__(self) -> tuple[type[Any], tuple[Any, ...]]:
        return by_constructor(self)  # see `state.pickling`


_STANDARD = (
    DunningStep("pre_due", -3),
    DunningStep("due", 0),
    DunningStep("overdue_7", 7),
    DunningStep("overdue_21", 21),
    DunningStep("escalation", 45),
)
_KEY_ACCOUNT = (
    DunningStep("due", 0),
    DunningStep("overdue_14", 14),
    DunningStep("escalation", 60),
)
_HIGH_RISK = (
    DunningStep("pre_due", -7),
    DunningStep("pre_due_1", -1),
    DunningStep("due", 0),
    DunningStep("overdue_3", 3),
    DunningStep("overdue_10", 10),
    DunningStep("escalation", 20),
)

DEFAULT_CADENCES: tuple[tuple[str, tuple[DunningStep, ...]], ...] = (
    ("standard", _STANDARD),
    ("key_account", _KEY_ACCOUNT),
    ("high_risk", _HIGH_RISK),
)


@dataclass(frozen=True, slots=True)
class DunningPolicy:
    """Cadences by customer segment; unknown segments use `default_segment`.

    Pairs rather than a dict keep the policy immutable and hashable.
    Steps must be sorted by offset (checked when built).
    """

    cadences: tuple[tuple[str, tuple[DunningStep, ...]], ...] = DEFAULT_CADENCES
    default_segment: str = "standard"

    def __post_init__(self) -> None:
        for segment, steps in self.cadences:
            offsets = [step.offset_days for step in steps]
            if offsets != sorted(offsets) or len(set(offsets)) != len(offsets):
                raise ValueError(f"cadence {segment!r}: offsets must be strictly increasing")

    def __reduce__(self) -> tuple[type[Any], tuple[Any, ...]]:
        return by_constructor(self)  # see `state.pickling`

    def steps_for(self, segment: str) -> tuple[DunningStep, ...]:
        """The cadence of `segment`, else the default one, else no reminders."""
        fallback: tuple[DunningStep, ...] = ()
        for name, steps in self.cadences:
            if name == segment:
                return steps
            if name == self.default_segment:
                fallback = steps
        return fallback


def step_at(due_at: datetime, step: DunningStep) -> datetime:
    """The moment `step` falls for an invoice due at `due_at`."""
    return due_at + timedelta(days=step.offset_days)


def latest_step(
    due_at: datetime, steps: tuple[DunningStep, ...], after: datetime, until: datetime
) -> DunningStep | None:
    """The last step in (after, until]: a late timer sends one reminder, not a burst."""
    found = None
    for step in steps:
        moment = step_at(due_at, step)
        if moment > until:
            break
        if moment > after:
            found = step
    return found


def next_step_at(
    due_at: datetime, steps: tuple[DunningStep, ...], after: datetime
) -> datetime | None:
    """When the first step strictly after `after` falls; None when the cadence is over."""
    for step in steps:
        moment = step_at(due_at, step)
        if moment > after:
            return moment
    return None
