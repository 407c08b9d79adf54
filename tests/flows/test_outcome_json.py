"""Replay's outcome lines: the contract's JSON shape, for every outcome type and field,
on whichever core runs (orjson misreads compiled dataclasses; this would show it); and
every outcome survives pickling."""

from __future__ import annotations

import importlib.util
import pickle
import sys
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any, Final, get_args, get_origin, get_type_hints

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from arrecon.flows.replay import ordered_records, outcome_json
from arrecon.flows.steps import Tagged
from arrecon.state import outcomes
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


def _outcomes_source() -> ModuleType:
    """The outcomes module run from its source: the compiled core's classes carry
    no usable annotations (mypyc keeps `Final` and drops what it wraps)."""
    name = "outcomes_source"
    spec = importlib.util.spec_from_file_location(
        name, Path(outcomes.__file__).with_name("outcomes.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through it
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def _field_types(cls: type, source: ModuleType) -> dict[str, Any]:
    hints = get_type_hints(getattr(source, cls.__name__), globalns=vars(source))
    return {
        name: get_args(hint)[0] if get_origin(hint) is Final else hint
        for name, hint in hints.items()
    }


def _outcomes() -> st.SearchStrategy[Outcome]:
    """Every outcome type with every field drawn (no global strategy registration)."""
    source = _outcomes_source()
    per_class = []
    for cls in OUTCOME_TYPES:
        types = _field_types(cls, source)
        drawn = {field.name: BY_TYPE[types[field.name]] for field in fields(cls)}
        per_class.append(st.builds(cls, **drawn))
    return st.one_of(*per_class)


def test_every_outcome_type_is_covered() -> None:
    assert len(OUTCOME_TYPES) >= 10
    assert Applied in OUTCOME_TYPES
    assert Rejected in OUTCOME_TYPES


def _expected(value: Any) -> Any:
    """A field as the contract writes it: UTC times with Z, tuples as lists."""
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, tuple):
        return list(value)
    return value


@settings(max_examples=300, deadline=None)
@given(_outcomes())
def test_outcome_line_is_the_contract_record(outcome: Outcome) -> None:
    line = outcome_json(outcome)
    assert line == orjson.dumps(outcome.to_record())
    loaded = orjson.loads(line)
    names = [field.name for field in fields(outcome)]
    assert list(loaded) == ["type", *names]
    assert loaded["type"] == outcome.type
    for name in names:
        assert loaded[name] == _expected(getattr(outcome, name)), name


@settings(max_examples=300, deadline=None)
@given(_outcomes())
def test_outcomes_cross_processes_whole(outcome: Outcome) -> None:
    """Bytewax pickles outcomes between worker processes."""
    back = pickle.loads(pickle.dumps(outcome))
    assert type(back) is type(outcome)
    assert back == outcome


def test_ordered_records_sort_by_input_position_then_sub_then_seq() -> None:
    at = datetime(2026, 3, 2, tzinfo=UTC)

    def tagged(position: int, sub: int, seq: int) -> Tagged:
        outcome = Rejected(f"{position}.{sub}.{seq}", at, position, "erp", "r")
        return Tagged(position, sub, seq, outcome)

    items = [tagged(2, 0, 0), tagged(1, 1, 0), tagged(1, 0, 1), tagged(1, 0, -1)]
    ids = [orjson.loads(line)["outcome_id"] for line in ordered_records(items)]
    assert ids == ["1.0.-1", "1.0.1", "1.1.0", "2.0.0"]
