"""Prometheus metrics of the flow and the sinks, as module constants.

Labels are bounded: source and kind come from the fixed decoder table, outcome
types and methods from the engine, rejection reasons are cut at their first
`:` (the stable code, never the detail), tables are the schema's, currencies
ISO-4217 codes. Never a customer, invoice or payment id.

`arrecon_unapplied_cash_minor` is read back from ClickHouse (`UnappliedCash`)
rather than summed from outcomes in memory: the table is the truth that
survives restarts and sees every worker's rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from arrecon.sinks.clickhouse import view_sql

__all__ = [
    "UNAPPLIED_CASH",
    "UnappliedCash",
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


_log = logging.getLogger(__name__)

# The last day DateTime64(3) holds: "as of" it, every row written counts.
_LATEST = datetime(2299, 12, 31, tzinfo=UTC)
_ALL_ROWS = 2**32 - 1

# Open unapplied cash per currency: the exception queue's own rules (an unapplied
# exception leaves it once its payment has cash applied after it, or a newer one
# supersedes it), summed.
UNAPPLIED_CASH_SQL = f"""
SELECT currency, toInt64(sum(amount_minor)) AS unapplied_minor
FROM (
{view_sql("exception_queue")}
) AS open_exceptions
WHERE kind = 'unapplied'
GROUP BY currency
ORDER BY currency
"""


def unapplied_cash(client: Any) -> dict[str, int]:
    """Open unapplied cash per currency, in minor units, over every row written."""
    parameters = {"as_of": _LATEST, "limit": _ALL_ROWS, "offset": 0}
    result = client.query(UNAPPLIED_CASH_SQL, parameters=parameters)
    return {str(currency): int(minor) for currency, minor in result.result_rows}


class UnappliedCash:
    """Keeps `UNAPPLIED_CASH` in step with ClickHouse, querying at most every `interval_s`.

    Why a bounded rate: the query reads the whole exception queue; the sink calls
    `maybe_refresh` after each flush, and a busy flow flushes many times a second.
    A currency that drops out is set to 0, not left at its last value. A failed
    query is logged and retried at the next interval; it never stops the flow.
    """

    def __init__(
        self,
        client: Callable[[], Any],
        *,
        interval_s: float = 15.0,
        gauge: Gauge = UNAPPLIED_CASH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.interval_s = interval_s
        self.gauge = gauge
        self._clock = clock
        self._last_at: float | None = None
        self._stale = True  # nothing read yet: the first call refreshes
        self._currencies: set[str] = set()

    def written(self) -> None:
        """Rows were written: the next due refresh has something to read."""
        self._stale = True

    def maybe_refresh(self) -> bool:
        """Refresh when rows were written and `interval_s` has passed; True if it ran."""
        now = self._clock()
        if not self._stale or (self._last_at is not None and now - self._last_at < self.interval_s):
            return False
        self._last_at = now
        self._stale = False
        try:
            self.set(unapplied_cash(self.client()))
        except Exception:
            self._stale = True
            _log.warning("unapplied cash gauge not refreshed", exc_info=True)
            return False
        return True

    def set(self, minor_by_currency: dict[str, int]) -> None:
        for currency in self._currencies - minor_by_currency.keys():
            self.gauge.labels(currency).set(0)
        for currency, minor in minor_by_currency.items():
            self.gauge.labels(currency).set(minor)
        self._currencies |= minor_by_currency.keys()
