"""Prometheus metrics of the flow and the sinks, as module constants.

Labels are bounded: source and kind come from the fixed decoder table, outcome
types and methods from the engine, rejection reasons are cut at their first
`:` (the stable code, never the detail), tables are the schema's. Never a
customer, invoice or payment id.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "EVENTS_IN",
    "EVENT_TO_OUTCOME_SECONDS",
    "INPUT_POSITION",
    "OUTCOMES",
    "REJECTIONS",
    "SINK_BATCH_ROWS",
    "SINK_ROWS",
    "SINK_WRITE_SECONDS",
    "reason_code",
]

EVENTS_IN = Counter(
    "arrecon_events_in_total", "Raw envelopes read by the flow.", ["source", "kind"]
)
OUTCOMES = Counter("arrecon_outcomes_total", "Outcomes emitted by the engine.", ["type", "method"])
REJECTIONS = Counter(
    "arrecon_rejections_total", "Inputs or entries rejected (dead-lettered).", ["reason"]
)
EVENT_TO_OUTCOME_SECONDS = Histogram(
    "arrecon_event_to_outcome_seconds",
    "From an envelope's receipt to its outcome rows being written.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SINK_ROWS = Counter("arrecon_sink_rows_total", "Rows written to ClickHouse.", ["table"])
SINK_BATCH_ROWS = Histogram(
    "arrecon_sink_batch_rows",
    "Rows per ClickHouse insert.",
    buckets=(1, 10, 100, 1_000, 10_000, 100_000),
)
SINK_WRITE_SECONDS = Histogram(
    "arrecon_sink_write_seconds",
    "Duration of one ClickHouse insert, retries included.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
INPUT_POSITION = Gauge(
    "arrecon_input_position", "Highest input position (journal offset) written out."
)
UNAPPLIED_CASH = Gauge(
    "arrecon_unapplied_cash_minor", "Unapplied cash in minor units.", ["currency"]
)

_MAX_REASON = 64


def reason_code(reason: str) -> str:
    """The stable code of a rejection reason, for a bounded label."""
    return reason.split(":", 1)[0].strip()[:_MAX_REASON] or "unknown"
