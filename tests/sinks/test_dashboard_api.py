"""The dashboard API against chDB holding a small known ledger.

Every number the API shows is checked two ways: against the SQL views it
claims to serve (same `as_of`), and against hand-computed values.

Moment T = 2025-03-31 12:00 UTC ("today" is 03-31).

Invoices           cust cur  amount issued     due        state at T            aging at T
  A1 direct        C1  USD  10000  01-01      01-31      open 10000            59 d -> 31-60
  A2 shopify       C1  USD   4000  03-01      03-31      open 4000             0 d  -> current
  A3 direct        C2  USD   6000  2024-11-01 2024-12-01 open 6000             120 d -> 90+
  A4 direct        C2  USD   3000  02-20      03-20      1000 paid -> 2000     11 d -> 1-30
  A5 amazon        C2  EUR   5000  01-10      02-09      paid today            closed
  A6 direct        C1  USD   2500  01-15      02-14      100 paid -> 2400      45 d -> 31-60
Payments today: P5 (A5, invoice_number), P4 (A4, subset_sum: weak), P9 (A6, manual),
P7 unapplied (candidates A2, A6).  P8 unapplied yesterday.
Customers: C1 Acme enterprise, limit 50000 USD; C2 Bolt smb, no limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from arrecon.sinks.clickhouse import ClickHouseWriter, run_view
from arrecon.sinks.dashboard.openapi import openapi
from arrecon.sinks.dashboard.queries import (
    BUCKETS,
    MAX_LIMIT,
    BadParameterError,
    DashboardQueries,
    NotReadyError,
    Page,
    parse_as_of,
)
from arrecon.sinks.dashboard.web import COOKIE, dashboard_app, dashboard_token
from arrecon.sinks.rows import TableRow, customer_rows, fee_rows, outcome_rows
from arrecon.state.events import CustomerUpserted, PayoutLine, PayoutSettled
from arrecon.state.money import Money
from arrecon.state.outcomes import (
    Applied,
    Chargeback,
    FeeAnomaly,
    InvoiceStatus,
    Outcome,
    Overpaid,
    Rejected,
    ReminderDue,
    ShortPaid,
    Unapplied,
)
from tests.sinks.helpers import ts

TOKEN = "dash-secret"


T = ts("2025-03-31 12:00")

_INVOICES = {
    "A1": ("C1", 10_000, "USD", "2025-01-01 09:00", "2025-01-31", "direct"),
    "A2": ("C1", 4_000, "USD", "2025-03-01 09:00", "2025-03-31", "shopify"),
    "A3": ("C2", 6_000, "USD", "2024-11-01 09:00", "2024-12-01", "direct"),
    "A4": ("C2", 3_000, "USD", "2025-02-20 09:00", "2025-03-20", "direct"),
    "A5": ("C2", 5_000, "EUR", "2025-01-10 09:00", "2025-02-09", "amazon"),
    "A6": ("C1", 2_500, "USD", "2025-01-15 09:00", "2025-02-14", "direct"),
}


def status(number: str, at: str, state: str, open_minor: int) -> InvoiceStatus:
    customer, amount, currency, issued, due, channel = _INVOICES[number]
    return InvoiceStatus(
        f"st-{number}-{at}", ts(at), number, customer, state, open_minor, amount, currency,
        ts(due), ts(issued), channel,
    )  # fmt: skip


OUTCOMES: list[Outcome] = [
    *(status(n, _INVOICES[n][3], "open", _INVOICES[n][1]) for n in _INVOICES),
    Applied("ap-p4", ts("2025-03-25 10:00"), "P4", "A4", "C2", 1_000, "USD", "subset_sum", 0.7),
    status("A4", "2025-03-25 10:00", "partially_paid", 2_000),
    Applied(
        "ap-p5", ts("2025-03-31 10:00"), "P5", "A5", "C2", 5_000, "EUR", "invoice_number", 1.0,
        ("ref A5 in remittance", "rule: invoice_number"),
    ),
    status("A5", "2025-03-31 10:00", "paid", 0),
    Applied("ap-p9", ts("2025-03-31 06:00"), "P9", "A6", "C1", 100, "USD", "manual", 1.0),
    status("A6", "2025-03-31 06:00", "partially_paid", 2_400),
    Unapplied(
        "un-p7", ts("2025-03-31 07:00"), "P7", "C1", 777, "USD", "no_match", ("A2", "A6"),
        ("amount 777 equals no open invoice", "payer Acme Corp -> C1"),
    ),
    Unapplied("un-p8", ts("2025-03-30 07:00"), "P8", None, 12_345, "USD", "no_customer"),
    ShortPaid("sp-a1", ts("2025-03-01 10:00"), "PX", "A1", "C1", 300, "USD", "deduction:DMG"),
    Overpaid("ov-p3", ts("2025-02-10 12:00"), "P3", "C2", 50, "USD"),
    Rejected("rj-1", ts("2025-03-29 00:00"), 3, "bank", "malformed: bad tag", "mt940"),
    Chargeback("cb-1", ts("2025-03-20 09:00"), "P4", "A4", "C2", 1_000, "USD", "opened", "dp_9"),
    ReminderDue("rm-a1", ts("2025-03-05 00:00"), "A1", "C1", "first", 10_000, "USD"),
]  # fmt: skip

CUSTOMERS = [
    CustomerUpserted(
        "cu-1", ts("2024-12-01 00:00"), "C1", "Acme", credit_limit=Money(50_000, "USD"),
        segment="enterprise",
    ),
    CustomerUpserted("cu-2", ts("2024-12-01 00:00"), "C2", "Bolt", segment="smb"),
]  # fmt: skip

PAYOUT = PayoutSettled(
    "po-ev", ts("2025-03-30 12:00"), "stripe", "po_1", "USD", 29_000,
    (PayoutLine("charge", "ch_1", 10_000, 350), PayoutLine("charge", "ch_2", 20_000, 650),
     PayoutLine("payout", "po_1", -29_000)),
)  # fmt: skip


def ledger_rows() -> list[TableRow]:
    rows: list[TableRow] = []
    for seq, outcome in enumerate(OUTCOMES):
        rows.extend(outcome_rows(outcome, seq=seq))
    for event in CUSTOMERS:
        rows.extend(customer_rows(event))
    rows.extend(fee_rows(PAYOUT))
    return rows


@pytest.fixture(scope="module")
def db(module_chdb: Any) -> Any:
    with ClickHouseWriter(client=module_chdb) as writer:
        writer.write(ledger_rows())
        writer.flush()
        writer.write(ledger_rows())  # replayed once: nothing may count twice
    return module_chdb


@pytest.fixture(scope="module")
def queries(db: Any) -> DashboardQueries:
    return DashboardQueries(client=db)


@pytest.fixture(scope="module")
def api(queries: DashboardQueries) -> Iterator[TestClient]:
    app = dashboard_app(queries, TOKEN, clock=lambda: T)
    with TestClient(app, headers={"authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def get(api: TestClient, path: str, **params: Any) -> Any:
    answer = api.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """A view row as the API renders it (times as ISO with Z)."""
    return {
        name: iso(value.replace(microsecond=value.microsecond // 1000 * 1000))
        if isinstance(value, datetime)
        else value
        for name, value in row.items()
    }


# -- header KPIs ---------------------------------------------------------------------------


def test_summary_is_the_kpi_views_merged_per_currency(api: TestClient, db: Any) -> None:
    summary = get(api, "/api/summary", period_days=90)
    assert summary["as_of"] == iso(T)
    kpis = {row["currency"]: row for row in run_view(db, "kpis", as_of=T, period_days=90)}
    cash = {row["currency"]: row for row in run_view(db, "cash_kpis", as_of=T, period_days=90)}
    assert [row["currency"] for row in summary["currencies"]] == ["USD", "EUR"]  # by AR
    for row in summary["currencies"]:
        expected = {**kpis.get(row["currency"], {}), **cash.get(row["currency"], {})}
        assert row == pytest.approx(jsonable(expected))
    usd = summary["currencies"][0]
    assert (usd["ar_minor"], usd["past_due_minor"]) == (24_400, 20_400)
    assert (usd["unapplied_minor"], usd["unapplied_count"]) == (777 + 12_345, 2)
    assert (usd["deductions_minor"], usd["disputed_minor"]) == (300, 1_000)
    assert summary["exponents"] == {"EUR": 2, "USD": 2}


def test_match_rate_today_splits_auto_manual_open(api: TestClient) -> None:
    rate = get(api, "/api/summary")["match_rate"]
    # P5 (invoice_number) auto; P9 manual; P7 open. P4 was applied on 03-25, not today.
    assert rate == {"auto": 1, "auto_weak": 0, "manual": 1, "open": 1, "payments": 3}
    earlier = get(api, "/api/summary", as_of="2025-03-25T23:00:00Z")["match_rate"]
    assert earlier == {"auto": 1, "auto_weak": 1, "manual": 0, "open": 0, "payments": 1}


# -- aging -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dimension", ["channel", "currency", "segment", "customer_id"])
def test_aging_is_the_view(api: TestClient, db: Any, dimension: str) -> None:
    answer = get(api, "/api/aging", dimension=dimension)
    view = run_view(db, "aging", as_of=T, dimension=dimension)
    key = lambda row: (row["key"], row["currency"])  # noqa: E731
    assert sorted(answer["rows"], key=key) == sorted(view, key=key)
    assert answer["total"] == len(view)


def test_aging_hand_numbers_and_currency_filter(api: TestClient) -> None:
    rows = get(api, "/api/aging", dimension="channel", currency="USD")["rows"]
    direct = next(row for row in rows if row["key"] == "direct")
    assert (direct["current_minor"], direct["d1_30_minor"], direct["d31_60_minor"]) == (
        0,
        2_000,
        12_400,
    )
    assert (direct["d90_plus_minor"], direct["open_invoices"]) == (6_000, 4)
    assert {row["currency"] for row in rows} == {"USD"}
    assert [row["key"] for row in rows] == ["direct", "shopify"]  # largest open first


def _bucket_column(bucket: str) -> str:
    return f"{bucket}_minor"


@pytest.mark.parametrize("dimension", ["channel", "segment", "customer_id", "currency"])
def test_bucket_invoices_add_up_to_every_bar(api: TestClient, dimension: str) -> None:
    for row in get(api, "/api/aging", dimension=dimension, as_of="2025-03-10T00:00:00Z")["rows"]:
        for bucket in BUCKETS:
            listed = get(
                api, "/api/aging/invoices", as_of="2025-03-10T00:00:00Z", dimension=dimension,
                key=row["key"], currency=row["currency"], bucket=bucket, limit=MAX_LIMIT,
            )  # fmt: skip
            amounts = [invoice["open_minor"] for invoice in listed["rows"]]
            assert sum(amounts) == row[_bucket_column(bucket)], (row["key"], bucket)
            assert listed["total"] == len(amounts)
            low, high = BUCKETS[bucket]
            assert all(low <= invoice["days_past_due"] <= high for invoice in listed["rows"])


def test_bucket_invoices_hand_list(api: TestClient) -> None:
    listed = get(
        api, "/api/aging/invoices", dimension="channel", key="direct", currency="USD",
        bucket="d31_60",
    )  # fmt: skip
    assert [(row["invoice_number"], row["days_past_due"]) for row in listed["rows"]] == [
        ("A1", 59),
        ("A6", 45),
    ]
    assert (listed["total"], listed["total_open_minor"]) == (2, 12_400)
    assert listed["rows"][0]["customer_id"] == "C1"


def test_bucket_invoices_need_their_parameters(api: TestClient) -> None:
    assert api.get("/api/aging/invoices", params={"key": "direct"}).status_code == 400
    bad = {"key": "direct", "currency": "USD", "bucket": "d5"}
    assert api.get("/api/aging/invoices", params=bad).status_code == 400


# -- exceptions ------------------------------------------------------------------------------


def test_exceptions_by_age_are_the_view_queue(api: TestClient, db: Any) -> None:
    answer = get(api, "/api/exceptions", limit=100)
    view = run_view(db, "exception_queue", as_of=T, limit=100, offset=0)
    assert [row["exception_id"] for row in answer["rows"]] == [row["exception_id"] for row in view]
    assert answer["total"] == view[0]["total_open"] == 5
    assert answer["counts"] == {
        "dead_letter": 1, "deduction": 1, "overpaid": 1, "unapplied": 2,
    }  # fmt: skip


def test_exceptions_sort_by_amount_and_show_evidence(api: TestClient) -> None:
    rows = get(api, "/api/exceptions", sort="amount", order="desc")["rows"]
    assert [row["amount_minor"] for row in rows] == [12_345, 777, 300, 50, 0]
    ascending = get(api, "/api/exceptions", sort="amount", order="asc")["rows"]
    assert [row["amount_minor"] for row in ascending] == [0, 50, 300, 777, 12_345]
    newest = get(api, "/api/exceptions", sort="age", order="asc")["rows"]
    assert newest[0]["exception_id"] == "un-p7"
    p7 = rows[1]
    assert p7["candidates"] == ["A2", "A6"]
    assert p7["evidence"] == ["amount 777 equals no open invoice", "payer Acme Corp -> C1"]
    assert (p7["age_hours"], p7["reason"]) == (5, "no_match")


def test_exceptions_filter_by_kind_and_page(api: TestClient) -> None:
    unapplied = get(api, "/api/exceptions", kind="unapplied")
    assert [row["payment_id"] for row in unapplied["rows"]] == ["P8", "P7"]
    assert unapplied["total"] == 2
    second = get(api, "/api/exceptions", limit=2, offset=2)
    assert len(second["rows"]) == 2
    assert second["total"] == 5
    assert api.get("/api/exceptions", params={"kind": "bogus"}).status_code == 400
    assert api.get("/api/exceptions", params={"sort": "name"}).status_code == 400


def test_disputes_lists_open_chargebacks(api: TestClient) -> None:
    answer = get(api, "/api/disputes")
    assert [
        (row["dispute_key"], row["amount_minor"], row["age_days"]) for row in answer["rows"]
    ] == [("dp_9", 1_000, 11)]


# -- customers and fees ------------------------------------------------------------------------


def test_customers_are_the_exposure_view_paged(api: TestClient, db: Any) -> None:
    answer = get(api, "/api/customers")
    view = run_view(db, "credit_exposure", as_of=T)
    assert sorted(answer["rows"], key=lambda r: (r["customer_id"], r["currency"])) == view
    assert [row["customer_id"] for row in answer["rows"]][:2] == ["C1", "C2"]  # 16400 > 8000
    assert get(api, "/api/customers", q="bolt")["total"] == 1  # C2; its EUR invoice is paid
    assert get(api, "/api/customers", limit=1, offset=1)["rows"][0]["customer_id"] == "C2"


def test_customer_view(api: TestClient) -> None:
    answer = get(api, "/api/customers/C1")
    [usd] = answer["exposure"]
    assert (usd["limit_minor"], usd["open_minor"], usd["available_minor"]) == (
        50_000,
        16_400,
        33_600,
    )
    invoices = answer["invoices"]["rows"]
    assert [row["invoice_number"] for row in invoices] == ["A1", "A6", "A2"]
    assert answer["overdue_invoices"] == 2
    assert [row["payment_id"] for row in answer["applications"]] == ["P9"]
    assert [(row["invoice_number"], row["step"]) for row in answer["reminders"]] == [
        ("A1", "first")
    ]
    assert get(api, "/api/customers/nobody")["exposure"] == []


def test_fees_against_the_rate_card(api: TestClient) -> None:
    fees = get(api, "/api/fees", days=30)
    [series] = fees["series"]
    [point] = series["points"]
    assert (series["processor"], series["currency"], point["day"]) == (
        "stripe",
        "USD",
        "2025-03-30",
    )
    assert (point["charges"], point["gross_minor"], point["fee_minor"]) == (2, 30_000, 1_000)
    assert point["observed_bps"] == 333
    assert point["expected_bps"] == 310  # 2.9 % of 30000 + 2 x 30 fixed = 930
    assert api.get("/api/fees", params={"days": 0}).status_code == 400


def test_fee_anomalies_are_listed_newest_first(api: TestClient, db: Any) -> None:
    # Alerts expire after 400 days (table TTL), so these are dated from today.
    now = datetime.now(UTC).replace(microsecond=0)
    alerts = [
        FeeAnomaly(f"fa-{days}", now - timedelta(days=days), "stripe", f"po_{days}", 310, 350)
        for days in (1, 3, 40)
    ]
    with ClickHouseWriter(client=db, run_migrations=False) as writer:
        writer.write(row for alert in alerts for row in outcome_rows(alert))
    fees = get(api, "/api/fees", as_of=iso(now), days=30)
    assert [row["alert_id"] for row in fees["anomalies"]] == ["fa-1", "fa-3"]
    assert '"observed_bps":350' in fees["anomalies"][0]["details"]


def test_fees_window_excludes_older_payouts(api: TestClient) -> None:
    assert get(api, "/api/fees", as_of="2025-03-29T00:00:00Z", days=30)["series"] == []


# -- as_of, paging, clock ------------------------------------------------------------------


def test_latest_reads_at_the_stream_clock(api: TestClient) -> None:
    summary = get(api, "/api/summary", as_of="latest")
    assert summary["as_of"] == "2025-03-31T10:00:00Z"  # A5 paid: the newest invoice version
    clock = get(api, "/api/clock")
    assert (clock["stream_at"], clock["now"]) == ("2025-03-31T10:00:00Z", iso(T))


AS_OF_CASES = [
    (None, T),
    ("now", T),
    ("latest", ts("2025-01-01 00:00")),
    ("2025-02-01T10:00:00Z", ts("2025-02-01 10:00")),
    ("2025-02-01T12:00:00+02:00", ts("2025-02-01 10:00")),
    ("2025-02-01T10:00:00.123456Z", ts("2025-02-01 10:00:00.123")),
]


@pytest.mark.parametrize(("text", "expected"), AS_OF_CASES)
def test_parse_as_of(text: str | None, expected: datetime) -> None:
    assert parse_as_of(text, T, lambda: ts("2025-01-01 00:00")) == expected


@pytest.mark.parametrize("text", ["yesterday", "2025-02-01T10:00:00", "2025-13-01T00:00:00Z"])
def test_parse_as_of_refuses(text: str) -> None:
    with pytest.raises(BadParameterError):
        parse_as_of(text, T, lambda: None)


def test_latest_without_data_is_now() -> None:
    assert parse_as_of("latest", T, lambda: None) == T


@pytest.mark.parametrize(("limit", "offset"), [(0, 0), (MAX_LIMIT + 1, 0), (10, -1)])
def test_pages_are_bounded(api: TestClient, limit: int, offset: int) -> None:
    with pytest.raises(BadParameterError):
        Page(limit, offset)
    answer = api.get("/api/exceptions", params={"limit": limit, "offset": offset})
    assert answer.status_code == 400
    assert "error" in answer.json()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(limit=st.integers(1, 6), offset=st.integers(0, 7), sort=st.sampled_from(["age", "amount"]))
def test_every_page_is_a_slice_of_the_whole_queue(
    queries: DashboardQueries, limit: int, offset: int, sort: str
) -> None:
    whole = queries.exceptions(T, sort=sort, page=Page(MAX_LIMIT))["rows"]
    page = queries.exceptions(T, sort=sort, page=Page(limit, offset))
    assert page["rows"] == whole[offset : offset + limit]
    assert page["total"] == (len(whole) if offset < len(whole) else 0)


@settings(max_examples=30, deadline=None)
@given(st.datetimes(timezones=st.just(UTC)))
def test_parse_as_of_round_trips_aware_moments(moment: datetime) -> None:
    parsed = parse_as_of(moment.isoformat(), T, lambda: None)
    assert parsed.tzinfo is not None
    assert timedelta(0) <= moment - parsed < timedelta(milliseconds=1)


# -- token gate --------------------------------------------------------------------------------


@pytest.fixture
def anonymous(queries: DashboardQueries) -> Iterator[TestClient]:
    with TestClient(dashboard_app(queries, TOKEN, clock=lambda: T)) as client:
        yield client


@pytest.mark.parametrize("path", ["/", "/api/summary", "/api/openapi.json", "/static/app.js"])
def test_without_or_with_a_wrong_token_everything_is_401(anonymous: TestClient, path: str) -> None:
    assert anonymous.get(path).status_code == 401
    assert anonymous.get(path, headers={"authorization": "Bearer nope"}).status_code == 401
    assert anonymous.get(path, params={"token": "nope"}).status_code == 401
    anonymous.cookies.set(COOKIE, "nope")
    assert anonymous.get(path).status_code == 401


def test_query_token_sets_an_http_only_cookie_and_drops_itself(anonymous: TestClient) -> None:
    answer = anonymous.get("/", params={"token": TOKEN, "tab": "fees"}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/?tab=fees"
    cookie = answer.headers["set-cookie"]
    assert f"{COOKIE}={TOKEN}" in cookie
    assert "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    page = anonymous.get("/")  # the client kept the cookie
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert anonymous.get("/static/vendor/chart.umd.min.js").status_code == 200


def test_bearer_header_works(anonymous: TestClient) -> None:
    answer = anonymous.get("/api/clock", headers={"authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200


TOKEN_ENV_CASES = [
    ({"ARRECON_DASHBOARD_TOKEN": "d", "ARRECON_FEED_TOKENS": "f1,f2"}, "d"),
    ({"ARRECON_FEED_TOKENS": " , f1,f2"}, "f1"),
    ({"ARRECON_DASHBOARD_TOKEN": " "}, None),
    ({}, None),
]


@pytest.mark.parametrize(("environ", "expected"), TOKEN_ENV_CASES)
def test_dashboard_token_from_environment(environ: dict[str, str], expected: str | None) -> None:
    assert dashboard_token(environ) == expected


def test_empty_token_is_refused(queries: DashboardQueries) -> None:
    with pytest.raises(ValueError, match="token"):
        dashboard_app(queries, "")


# -- OpenAPI, errors -------------------------------------------------------------------------


def test_openapi_describes_exactly_the_served_api(api: TestClient) -> None:
    spec = get(api, "/api/openapi.json")
    assert spec["openapi"].startswith("3.1")
    assert spec == openapi("/")  # TestClient mounts at the root
    samples = {"key": "direct", "currency": "USD", "bucket": "current"}
    for path, item in spec["paths"].items():
        concrete = path.replace("{customer_id}", "C1")
        required = {
            p["name"]: samples[p["name"]]
            for p in item["get"]["parameters"]
            if p["required"] and p["in"] == "query"
        }
        assert api.get(concrete, params=required).status_code == 200, path
        assert "200" in item["get"]["responses"]
        for parameter in item["get"]["parameters"]:
            assert parameter["in"] in ("query", "path")
    for ref in _refs(spec):
        section, name = ref.split("/")[-2:]
        assert name in spec["components"][section], ref


def test_every_api_route_is_described(queries: DashboardQueries) -> None:
    gate = dashboard_app(queries, TOKEN)
    served = {
        route.path.replace("{customer_id:path}", "{customer_id}")
        for route in gate.app.routes  # type: ignore[attr-defined]
        if route.path.startswith("/api/") and route.path != "/api/openapi.json"
    }
    assert served == set(openapi()["paths"])


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


class _MissingTables:
    def query(self, _sql: str, parameters: Any = None) -> Any:
        error = RuntimeError("Code: 60. DB::Exception: Unknown table expression identifier")
        error.code = 60  # type: ignore[attr-defined]
        raise error


class _Broken:
    def query(self, _sql: str, parameters: Any = None) -> Any:
        raise RuntimeError("boom")


def test_before_the_first_write_the_api_answers_503() -> None:
    queries = DashboardQueries(client=_MissingTables())
    with pytest.raises(NotReadyError):
        queries.clock()
    app = dashboard_app(queries, TOKEN, clock=lambda: T)
    with TestClient(app, headers={"authorization": f"Bearer {TOKEN}"}) as client:
        assert client.get("/api/summary").status_code == 503
        assert client.get("/api/openapi.json").status_code == 200


def test_a_failing_query_is_a_500_without_details() -> None:
    app = dashboard_app(DashboardQueries(client=_Broken()), TOKEN, clock=lambda: T)
    with TestClient(app, headers={"authorization": f"Bearer {TOKEN}"}) as client:
        answer = client.get("/api/exceptions")
    assert answer.status_code == 500
    assert answer.json() == {"error": "query failed"}
