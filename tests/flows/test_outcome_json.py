"""Replay's direct outcome rendering equals `orjson.dumps(outcome.to_record())`."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, get_args, get_type_hints

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from arrecon.flows.replay import ordered_records, outcome_json
from arrecon.flows.steps import Tagged
from arrecon.state.outcomes import Applied, Outcome, Rejected

OUTCOME_TYPES: tuple[type, ...] = get_args(Outcome)

moments = st.datetimes(
    min_value=datetime(1990, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5))]),
)
texts = st.text(max_size=12)
BY_TYPE: dict[Any, st.SearchStrategy[Any]] = {
    str: texts,
    int: st.integers(min_value=-(2**53), max_value=2**53),
    float: st.floats(allow_nan=False, allow_infinity=False),
    bool: st.booleans(),
    datetime: moments,
    datetime | None: st.none() | moments,
    tuple[str, ...]: st.lists(texts, max_size=3).map(tuple),
    str | None: st.none() | texts,
}


def _outcomes() -> st.SearchStrategy[Outcome]:
    """Every outcome type with every field drawn (no global strategy registration)."""
    per_class = []
    for cls in OUTCOME_TYPES:
        hints = get_type_hints(cls)
        drawn = {field.name: BY_TYPE[hints[field.name]] for field in fields(cls)}
        per_class.append(st.builds(cls, **drawn))
    return st.one_of(*per_class)


def test_every_outcome_type_is_covered() -> None:
    assert len(OUTCOME_TYPES) >= 10
    assert Applied in OUTCOME_TYPES
    assert Rejected in OUTCOME_TYPES


@settings(max_examples=300, deadline=None)
@given(_outcomes())
def test_outcome_json_is_byte_identical_to_the_record(outcome: Outcome) -> None:
    assert outcome_json(outcome) == orjson.dumps(outcome.to_record())


def test_ordered_records_sort_by_input_position_then_sub_then_seq() -> None:
    at = datetime(2026, 3, 2, tzinfo=UTC)

    def tagged(position: int, sub: int, seq: int) -> Tagged:
        outcome = Rejected(f"{position}.{sub}.{seq}", at, position, "erp", "r")
        return Tagged(position, sub, seq, outcome)

    items = [tagged(2, 0, 0), tagged(1, 1, 0), tagged(1, 0, 1), tagged(1, 0, -1)]
    ids = [orjson.loads(line)["outcome_id"] for line in ordered_records(items)]
    assert ids == ["1.0.-1", "1.0.1", "1.1.0", "2.0.0"]
