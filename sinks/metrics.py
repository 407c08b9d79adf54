"""Prometheus metrics of the flow and the sinks, as module constants.

Labels are bounded: source and kind come from the fixed decoder table, outcome
types and methods from the engine, rejection reasons are cut at their first
`:` (the stable code, never the detail), tables are the schema's, currencies
ISO-4217 codes. Never a customer, invoice or payment id.

`arrecon_unapplied_cash_minor` and `arrecon_open_ar_minor` are read back from
ClickHouse (`TableGauge`) rather than summed from outcomes in memory: the tables
are the truth that survives restarts and sees every worker's rows.
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
    "OPEN_AR",
    "UNAPPLIED_CASH",
    "TableGauge",
    "EVENTS_IN",
    "EVENT_TO_OUTCOME_SECONDS",
    "INPUT_POSITION",
    "OUTCOMES",
    "REJECTIONS",
    "SINK_BATCH_ROWS",
    "SINK_ROWS",
    "SINK_WRITE_SECONDS",
    "open_receivables",
    "reason_code",
    "unapplied_cash",
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
OPEN_AR = Gauge(
    "arrecon_open_ar_minor", "Open receivables (aging rules) in minor units.", ["currency"]
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


# Open receivables per currency: the aging view's open items, every bucket.
OPEN_AR_SQL = f"""
SELECT currency, toInt64(sum(total_open_minor)) AS open_minor
FROM (
{view_sql("aging")}
) AS aging
GROUP BY currency
ORDER BY currency
"""


def open_receivables(client: Any) -> dict[str, int]:
    """Open receivables per currency, in minor units, over every row written."""
    parameters = {"as_of": _LATEST, "dimension": "currency"}
    result = client.query(OPEN_AR_SQL, parameters=parameters)
    return {str(currency): int(minor) for currency, minor in result.result_rows}


class TableGauge:
    """Keeps a per-currency gauge in step with ClickHouse, querying at most every `interval_s`.

    `read(client)` gives minor units per currency (`unapplied_cash`,
    `open_receivables`). Why a bounded rate: the queries read a whole view; the
    sink calls `maybe_refresh` after each flush, and a busy flow flushes many
    times a second. A currency that drops out is set to 0, not left at its last
    value. A failed query is logged and retried at the next interval; it never
    stops the flow.
    """

    def __init__(
        self,
        client: Callable[[], Any],
        read: Callable[[Any], dict[str, int]],
        gauge: Gauge,
        *,
        interval_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.read = read
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
            self.set(self.read(self.client()))
        except Exception:
            self._stale = True
            _log.warning("gauge from %s not refreshed", self.read.__name__, exc_info=True)
            return False
        return True

    def set(self, minor_by_currency: dict[str, int]) -> None:
        for currency in self._currencies - minor_by_currency.keys():
            self.gauge.labels(currency).set(0)
        for currency, minor in minor_by_currency.items():
            self.gauge.labels(currency).set(minor)
        self._currencies |= minor_by_currency.keys()
