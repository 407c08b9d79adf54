"""What the ops dashboard reads: the sinks' views plus a few paged lists.

Why one class with a lock: chDB admits one client per folder per process, and
that client is shared with the flow's writer; it is not known to be thread
safe, so every dashboard query runs under one lock. Every list is paged with a
hard cap (`MAX_LIMIT`) and every group-by has a bounded key set, so a ledger of
a million invoices never ships a million rows to the browser.

The numbers come from `sinks/views/*.sql` unchanged (run directly, or wrapped
in `SELECT ... FROM (<view>)` to filter and page); the lists the views do not
have live beside this module as `*.sql`, each stating which view rules it
repeats (the exception list and counts run the exception queue view itself).

Exception tree:
    DashboardError (Exception)
        BadParameterError   a request parameter is invalid (HTTP 400)
        NotReadyError       the schema does not exist yet (HTTP 503)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from arrecon.sinks.clickhouse import acquire_client, view_sql
from arrecon.state.fees import DEFAULT_RATE_CARDS, RateCard, rate_bps
from arrecon.state.money import MoneyError, exponent

__all__ = [
    "BUCKETS",
    "DIMENSIONS",
    "EXCEPTION_KINDS",
    "MAX_LIMIT",
    "BadParameterError",
    "DashboardError",
    "DashboardQueries",
    "NotReadyError",
    "Page",
    "parse_as_of",
]

SQL_DIR = Path(__file__).resolve().parent
MAX_LIMIT = 500
MAX_PERIOD_DAYS = 366
_INT32 = 2**31 - 1

# Aging buckets as inclusive day-past-due bounds, named like the view's columns.
BUCKETS: Mapping[str, tuple[int, int]] = {
    "current": (-_INT32, 0),
    "d1_30": (1, 30),
    "d31_60": (31, 60),
    "d61_90": (61, 90),
    "d90_plus": (91, _INT32),
}
DIMENSIONS = ("channel", "currency", "segment", "customer_id")
EXCEPTION_KINDS = (
    "unapplied",
    "short_paid",
    "deduction",
    "invalid_deduction",
    "overpaid",
    "dead_letter",
    "credit_limit_exceeded",
)
_SORTS = ("age", "amount")
# ClickHouse codes meaning "the flow has not created the schema yet".
_NOT_READY_CODES = frozenset({60, 81})  # UNKNOWN_TABLE, UNKNOWN_DATABASE


class DashboardError(Exception):
    """Base of the dashboard's errors."""


class BadParameterError(DashboardError):
    """A request parameter is out of range or unknown."""


class NotReadyError(DashboardError):
    """The tables are not there yet (the flow migrates them on its first write)."""


@dataclass(frozen=True, slots=True)
class Page:
    """A bounded window of a list: at most `MAX_LIMIT` rows."""

    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise BadParameterError(f"limit must be 1..{MAX_LIMIT}")
        if not 0 <= self.offset <= _INT32:
            raise BadParameterError("offset must be >= 0")


def parse_as_of(
    text: str | None, now: datetime, stream_at: Callable[[], datetime | None]
) -> datetime:
    """`now` (default), `latest` (the stream's newest invoice time) or an ISO moment.

    `latest` lets a replayed or demo stream be read at its own clock; it falls
    back to `now` before any invoice arrived. Naive moments are refused.
    """
    if text in (None, "", "now"):
        return _ms(now)
    if text == "latest":
        return _ms(stream_at() or now)
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise BadParameterError("as_of must be 'now', 'latest' or an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise BadParameterError("as_of needs a timezone (e.g. ...Z)")
    return _ms(moment.astimezone(UTC))


def _ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _sql(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


_PAGING = "LIMIT {limit:UInt32} OFFSET {offset:UInt32}"
_OPEN_EXCEPTIONS = "{open_exceptions}"


def _on_open_exceptions(name: str) -> str:
    """`name`.sql with the exception queue view, unpaged, in place of its marker.

    Why: which exceptions are open is decided once, in the view; the list and the
    counts only filter, sort and page what it returns.
    """
    queue = view_sql("exception_queue").rstrip()
    if not queue.endswith(_PAGING):
        raise AssertionError("views/exception_queue.sql must end with its paging line")
    sql = _sql(name)
    if sql.count(_OPEN_EXCEPTIONS) != 1:
        raise AssertionError(f"{name}.sql must hold one {_OPEN_EXCEPTIONS} marker")
    return sql.replace(_OPEN_EXCEPTIONS, queue.removesuffix(_PAGING))


def _choice(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise BadParameterError(f"{name} must be one of {', '.join(allowed)}")
    return value


def _days(value: int) -> int:
    if not 1 <= value <= MAX_PERIOD_DAYS:
        raise BadParameterError(f"days must be 1..{MAX_PERIOD_DAYS}")
    return value


def _exponents(currencies: set[str]) -> dict[str, int]:
    """Minor-unit digits per currency, so the page formats integers without floats."""
    found: dict[str, int] = {}
    for currency in sorted(currencies):
        try:
            found[currency] = exponent(currency)
        except MoneyError:
            found[currency] = 2
    return found


def _wrap(name: str, where: str, order: str) -> str:
    """A view as a subquery, filtered and paged; `where`/`order` are code constants."""
    return (
        f"SELECT *, count() OVER () AS total_rows FROM (\n{view_sql(name)}\n) AS v\n"
        f"WHERE {where}\nORDER BY {order}\nLIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}}"
    )


class DashboardQueries:
    """Typed reads for the dashboard; give a `client` (tests) or a `dsn` (shared client)."""

    def __init__(self, dsn: str | None = None, *, client: Any = None) -> None:
        if (dsn is None) == (client is None):
            raise ValueError("give exactly one of dsn or client")
        self.dsn = dsn
        self._client = client
        self._lock = threading.Lock()

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """Run `sql` with server-side parameters under the lock; rows as dicts."""
        with self._lock:
            if self._client is None and self.dsn is not None:
                self._client = acquire_client(self.dsn)
            try:
                result = self._client.query(sql, parameters=params)
            except Exception as error:
                if getattr(error, "code", None) in _NOT_READY_CODES or "UNKNOWN_TABLE" in str(
                    error
                ):
                    raise NotReadyError("no data yet: the flow has not written any rows") from None
                raise
        names = result.column_names
        return [dict(zip(names, row, strict=True)) for row in result.result_rows]

    def view(self, name: str, **params: Any) -> list[dict[str, Any]]:
        return self.rows(view_sql(name), **params)

    # -- clock --------------------------------------------------------------------------

    def clock(self) -> dict[str, Any]:
        """The stream's newest invoice time and the number of deliveries stored."""
        return self.rows(_sql("clock"))[0]

    def stream_at(self) -> datetime | None:
        found = self.clock()["stream_at"]
        return found if isinstance(found, datetime) else None

    # -- header KPIs --------------------------------------------------------------------

    def summary(self, as_of: datetime, period_days: int = 90) -> dict[str, Any]:
        """KPIs and cash KPIs per currency (from the views) plus today's match rate."""
        period_days = _days(period_days)
        kpis = {
            row["currency"]: row for row in self.view("kpis", as_of=as_of, period_days=period_days)
        }
        cash = self.view("cash_kpis", as_of=as_of, period_days=period_days)
        for row in cash:
            kpis.setdefault(row["currency"], {"currency": row["currency"]}).update(row)
        currencies = sorted(kpis, key=lambda c: (-int(kpis[c].get("ar_minor") or 0), c))
        return {
            "as_of": as_of,
            "period_days": period_days,
            "currencies": [kpis[currency] for currency in currencies],
            "match_rate": self.rows(_sql("match_rate"), as_of=as_of)[0],
            "exponents": _exponents(set(kpis)),
        }

    # -- aging --------------------------------------------------------------------------

    def aging(
        self, as_of: datetime, dimension: str, currency: str = "", page: Page = Page(100)
    ) -> dict[str, Any]:
        """The aging view for one dimension, optionally one currency, paged by key."""
        _choice(dimension, DIMENSIONS, "dimension")
        sql = _wrap(
            "aging",
            "{currency:String} = '' OR currency = {currency:String}",
            "total_open_minor DESC, key, currency",
        )
        rows = self.rows(sql, as_of=as_of, dimension=dimension, currency=currency, **_page(page))
        return _paged(rows, page, "total_rows", as_of=as_of, dimension=dimension, currency=currency)

    def bucket_invoices(
        self,
        as_of: datetime,
        *,
        dimension: str,
        key: str,
        currency: str,
        bucket: str,
        page: Page = Page(),
    ) -> dict[str, Any]:
        """The open invoices behind one bar of the aging chart, most overdue first."""
        _choice(dimension, DIMENSIONS, "dimension")
        _choice(bucket, tuple(BUCKETS), "bucket")
        low, high = BUCKETS[bucket]
        rows = self.rows(
            _sql("bucket_invoices"),
            as_of=as_of,
            dimension=dimension,
            key=key,
            currency=currency,
            min_days=low,
            max_days=high,
            **_page(page),
        )
        total_open = int(rows[0]["total_open_minor"]) if rows else None
        for row in rows:
            del row["total_open_minor"]
        result = _paged(rows, page, "total", as_of=as_of, bucket=bucket, key=key)
        result["total_open_minor"] = total_open
        return result

    # -- exceptions ---------------------------------------------------------------------

    def exceptions(
        self,
        as_of: datetime,
        *,
        kind: str = "",
        currency: str = "",
        sort: str = "age",
        descending: bool = True,
        page: Page = Page(),
    ) -> dict[str, Any]:
        """Open exceptions with candidates and evidence; age-descending means oldest first."""
        if kind:
            _choice(kind, EXCEPTION_KINDS, "kind")
        _choice(sort, _SORTS, "sort")
        # age descending = opened earliest first = ascending opened_at.
        ascending_key = (sort == "age") == descending
        rows = self.rows(
            _on_open_exceptions("exceptions"),
            as_of=as_of,
            kind=kind,
            currency=currency,
            sort=sort,
            sign=1 if ascending_key else -1,
            **_page(page),
        )
        counts = {
            row["kind"]: row["open_count"]
            for row in self.rows(_on_open_exceptions("exception_counts"), as_of=as_of)
        }
        result = _paged(rows, page, "total_open", as_of=as_of, kind=kind, sort=sort)
        result["counts"] = counts
        return result

    def disputes(self, as_of: datetime, page: Page = Page()) -> dict[str, Any]:
        """Open chargebacks, oldest first."""
        rows = self.rows(_sql("disputes"), as_of=as_of, **_page(page))
        return _paged(rows, page, "total_open", as_of=as_of)

    # -- customers ----------------------------------------------------------------------

    def customers(self, as_of: datetime, query: str = "", page: Page = Page()) -> dict[str, Any]:
        """Credit exposure per (customer, currency), largest open balance first."""
        sql = _wrap(
            "credit_exposure",
            "{q:String} = '' OR positionCaseInsensitive("
            "concat(customer_id, ' ', ifNull(name, '')), {q:String}) > 0",
            "open_minor DESC, customer_id, currency",
        )
        rows = self.rows(sql, as_of=as_of, q=query[:100], **_page(page))
        return _paged(rows, page, "total_rows", as_of=as_of, q=query)

    def customer(self, as_of: datetime, customer_id: str, page: Page = Page()) -> dict[str, Any]:
        """One customer: exposure, open invoices (paged), applications and reminders."""
        sql = _wrap("credit_exposure", "customer_id = {customer_id:String}", "currency")
        exposure = self.rows(sql, as_of=as_of, customer_id=customer_id, limit=MAX_LIMIT, offset=0)
        for row in exposure:
            del row["total_rows"]
        params = {"as_of": as_of, "customer_id": customer_id}
        invoices = self.rows(_sql("customer_invoices"), **params, **_page(page))
        applications = self.rows(_sql("customer_applications"), **params, limit=page.limit)
        reminders = self.rows(_sql("customer_reminders"), **params, limit=page.limit)
        currencies = {row["currency"] for row in (*exposure, *invoices, *applications)}
        return {
            "as_of": as_of,
            "customer_id": customer_id,
            "exposure": exposure,
            "invoices": _paged(invoices, page, "total"),
            "applications": applications,
            "reminders": reminders,
            "overdue_invoices": sum(1 for row in invoices if row["days_past_due"] > 0),
            "exponents": _exponents(currencies),
        }

    # -- fees ---------------------------------------------------------------------------

    def fees(
        self,
        as_of: datetime,
        days: int = 90,
        rate_cards: Mapping[str, RateCard] = DEFAULT_RATE_CARDS,
    ) -> dict[str, Any]:
        """Effective fee rate per processor and day against the rate card, with anomalies."""
        days = _days(days)
        series: dict[str, dict[str, Any]] = {}
        for row in self.rows(_sql("fee_rates"), as_of=as_of, days=days):
            name = f"{row['processor']} {row['currency']}"
            line = series.setdefault(
                name, {"processor": row["processor"], "currency": row["currency"], "points": []}
            )
            line["points"].append(_fee_point(row, rate_cards.get(row["processor"])))
        anomalies = self.rows(_sql("fee_anomalies"), as_of=as_of, days=days, limit=MAX_LIMIT)
        return {
            "as_of": as_of,
            "days": days,
            "series": list(series.values()),
            "anomalies": anomalies,
            "rate_cards": {
                name: {"percent_bps": card.percent_bps, "fixed_minor": card.fixed_minor}
                for name, card in rate_cards.items()
            },
        }


def _fee_point(row: Mapping[str, Any], card: RateCard | None) -> dict[str, Any]:
    """One day: observed bps, and what the card would have charged for the same lines."""
    gross, fee, charges = int(row["gross_minor"]), int(row["fee_minor"]), int(row["charges"])
    expected = None
    if card is not None and gross > 0:
        # The day's gross at the card's percentage, plus the fixed part once per charge.
        expected_fee = card.fee_minor(gross) + card.fixed_minor * (charges - 1)
        expected = rate_bps(expected_fee, gross)
    return {
        "day": row["day"],
        "charges": charges,
        "gross_minor": gross,
        "fee_minor": fee,
        "observed_bps": rate_bps(fee, gross) if gross > 0 else None,
        "expected_bps": expected,
    }


def _page(page: Page) -> dict[str, int]:
    return {"limit": page.limit, "offset": page.offset}


def _paged(
    rows: list[dict[str, Any]], page: Page, total_column: str, **extra: Any
) -> dict[str, Any]:
    """A page envelope; the total comes from the query's window count (0 past the end)."""
    total = int(rows[0][total_column]) if rows else 0
    for row in rows:
        row.pop(total_column, None)
    return {**extra, "limit": page.limit, "offset": page.offset, "total": total, "rows": rows}
