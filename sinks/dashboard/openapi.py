"""The dashboard API's OpenAPI 3.1 description, written by hand.

Why by hand: the API is small and stable, and a literal document is easier to
review than one generated from handler signatures. `tests/sinks/test_dashboard_api.py`
checks that every route is described and every described path is served.
"""

from __future__ import annotations

from typing import Any

from arrecon.sinks.dashboard.queries import BUCKETS, DIMENSIONS, EXCEPTION_KINDS, MAX_LIMIT

__all__ = ["openapi"]


def _query(
    name: str, schema: dict[str, Any], description: str, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


_AS_OF = _query(
    "as_of",
    {"type": "string", "default": "now"},
    "'now', 'latest' (the stream's newest invoice time) or an ISO-8601 time with zone.",
)
_LIMIT = _query(
    "limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50}, "Page size."
)
_OFFSET = _query("offset", {"type": "integer", "minimum": 0, "default": 0}, "Rows to skip.")
_PERIOD = _query(
    "period_days",
    {"type": "integer", "minimum": 1, "maximum": 366, "default": 90},
    "Trailing period.",
)
_CURRENCY = _query("currency", {"type": "string"}, "Only this ISO-4217 currency ('' = all).")
_DIMENSION = _query(
    "dimension", {"type": "string", "enum": list(DIMENSIONS), "default": "channel"}, "Grouping."
)


def _page_of(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["limit", "offset", "total", "rows"],
        "properties": {
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
            "total": {"type": "integer", "description": "Rows in the whole list (0 past its end)."},
            "rows": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
        },
    }


def _get(summary: str, parameters: list[dict[str, Any]], schema: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": parameters,
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {
                        "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}
                    },
                },
                "400": {"$ref": "#/components/responses/BadParameter"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "503": {"$ref": "#/components/responses/NotReady"},
            },
        }
    }


def _row(**properties: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: {"type": kind} for name, kind in properties.items()},
    }


_MONEY_NOTE = "Amounts are integer minor units (`*_minor`) of the row's `currency`."

_SCHEMAS: dict[str, Any] = {
    "Error": _row(error="string"),
    "Summary": {
        "type": "object",
        "description": "Header KPIs per currency (views kpis + cash_kpis) and today's match rate. "
        + _MONEY_NOTE,
        "properties": {
            "as_of": {"type": "string", "format": "date-time"},
            "period_days": {"type": "integer"},
            "currencies": {"type": "array", "items": {"type": "object"}},
            "match_rate": _row(
                auto="integer",
                auto_weak="integer",
                manual="integer",
                open="integer",
                payments="integer",
            ),
            "exponents": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    },
    "AgingRow": _row(
        key="string",
        currency="string",
        open_invoices="integer",
        current_minor="integer",
        d1_30_minor="integer",
        d31_60_minor="integer",
        d61_90_minor="integer",
        d90_plus_minor="integer",
        total_open_minor="integer",
    ),
    "Aging": _page_of("AgingRow"),
    "Invoice": _row(
        invoice_number="string",
        customer_id="string",
        channel="string",
        currency="string",
        segment="string",
        status="string",
        amount_minor="integer",
        open_minor="integer",
        issued_at="string",
        due_at="string",
        days_past_due="integer",
    ),
    "BucketInvoices": _page_of("Invoice"),
    "Exception": _row(
        exception_id="string",
        kind="string",
        status="string",
        owner="string",
        payment_id="string",
        invoice_number="string",
        customer_id="string",
        amount_minor="integer",
        currency="string",
        reason="string",
        source="string",
        ref="string",
        candidates="array",
        evidence="array",
        opened_at="string",
        age_hours="integer",
        age_days="integer",
    ),
    "Exceptions": _page_of("Exception"),
    "Dispute": _row(
        dispute_key="string",
        payment_id="string",
        invoice_number="string",
        customer_id="string",
        amount_minor="integer",
        currency="string",
        opened_at="string",
        age_days="integer",
    ),
    "Disputes": _page_of("Dispute"),
    "Exposure": _row(
        customer_id="string",
        name="string",
        segment="string",
        currency="string",
        limit_minor="integer",
        open_minor="integer",
        open_invoices="integer",
        open_disputes="integer",
        disputed_minor="integer",
        available_minor="integer",
    ),
    "Customers": _page_of("Exposure"),
    "Customer": {
        "type": "object",
        "properties": {
            "customer_id": {"type": "string"},
            "exposure": {"type": "array", "items": {"$ref": "#/components/schemas/Exposure"}},
            "invoices": _page_of("Invoice"),
            "applications": {"type": "array", "items": {"type": "object"}},
            "reminders": {"type": "array", "items": {"type": "object"}},
            "overdue_invoices": {"type": "integer"},
        },
    },
    "Fees": {
        "type": "object",
        "description": "Effective fee rate (bps) per processor, currency and day, the rate "
        "card's expectation for the same charges, and fee anomaly alerts.",
        "properties": {
            "series": {"type": "array", "items": {"type": "object"}},
            "anomalies": {"type": "array", "items": {"type": "object"}},
            "rate_cards": {"type": "object"},
        },
    },
    "Clock": _row(now="string", stream_at="string", deliveries="integer"),
}

_PATHS: dict[str, Any] = {
    "/api/summary": _get("Header KPIs", [_AS_OF, _PERIOD], "Summary"),
    "/api/aging": _get(
        "Aging buckets (view aging)", [_AS_OF, _DIMENSION, _CURRENCY, _LIMIT, _OFFSET], "Aging"
    ),
    "/api/aging/invoices": _get(
        "Open invoices of one aging bucket",
        [
            _AS_OF,
            _DIMENSION,
            _query("key", {"type": "string"}, "The aging row's key.", required=True),
            _query("currency", {"type": "string"}, "The aging row's currency.", required=True),
            _query("bucket", {"type": "string", "enum": list(BUCKETS)}, "Bucket.", required=True),
            _LIMIT,
            _OFFSET,
        ],
        "BucketInvoices",
    ),
    "/api/exceptions": _get(
        "Exception queue with evidence",
        [
            _AS_OF,
            _query("kind", {"type": "string", "enum": ["", *EXCEPTION_KINDS]}, "One kind."),
            _CURRENCY,
            _query(
                "sort", {"type": "string", "enum": ["age", "amount"], "default": "age"}, "Sort key."
            ),
            _query(
                "order", {"type": "string", "enum": ["desc", "asc"], "default": "desc"}, "Order."
            ),
            _LIMIT,
            _OFFSET,
        ],
        "Exceptions",
    ),
    "/api/disputes": _get("Open chargebacks", [_AS_OF, _LIMIT, _OFFSET], "Disputes"),
    "/api/customers": _get(
        "Credit exposure per customer",
        [_AS_OF, _query("q", {"type": "string"}, "Search id or name."), _LIMIT, _OFFSET],
        "Customers",
    ),
    "/api/customers/{customer_id}": _get(
        "One customer",
        [
            _AS_OF,
            {"name": "customer_id", "in": "path", "required": True, "schema": {"type": "string"}},
            _LIMIT,
            _OFFSET,
        ],
        "Customer",
    ),
    "/api/fees": _get(
        "Processor fee rates",
        [
            _AS_OF,
            _query(
                "days", {"type": "integer", "minimum": 1, "maximum": 366, "default": 90}, "Window."
            ),
        ],
        "Fees",
    ),
    "/api/clock": _get("Server time, stream time, deliveries stored", [], "Clock"),
}


def openapi(server_url: str = "/dashboard") -> dict[str, Any]:
    """The description, with `server_url` as the base the paths are relative to."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "arrecon dashboard API",
            "version": "1",
            "description": "Read-only AR data for the ops dashboard. " + _MONEY_NOTE,
        },
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}, {"cookie": []}],
        "paths": _PATHS,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "arrecon_dashboard"},
            },
            "responses": {
                "BadParameter": {"description": "Invalid parameter", "content": error},
                "Unauthorized": {"description": "Missing or wrong token", "content": error},
                "NotReady": {"description": "No tables yet", "content": error},
            },
        },
    }
