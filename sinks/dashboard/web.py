"""The dashboard's ASGI app: static page, JSON API and OpenAPI, behind one token.

Why a token gate in front of everything, static files included: the page
shows customers' balances, so nothing under the mount answers without the
token. The token comes as `Authorization: Bearer`, as the HttpOnly cookie, or
once as `?token=`: that sets the cookie and redirects to the same URL without
it, so the token does not linger in the address bar or in history. A wrong or
missing token gets 401.

Handlers run the (blocking) ClickHouse reads in a worker thread; the queries
object serialises them.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from arrecon.sinks.dashboard.openapi import openapi
from arrecon.sinks.dashboard.queries import (
    BadParameterError,
    DashboardQueries,
    NotReadyError,
    Page,
    parse_as_of,
)

__all__ = ["COOKIE", "STATIC_DIR", "TokenGate", "dashboard_app", "dashboard_token"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
COOKIE = "arrecon_dashboard"
_log = logging.getLogger(__name__)
_SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

Clock = Callable[[], datetime]


def dashboard_token(environ: Mapping[str, str] = os.environ) -> str | None:
    """`ARRECON_DASHBOARD_TOKEN`, else the first of `ARRECON_FEED_TOKENS`."""
    token = environ.get("ARRECON_DASHBOARD_TOKEN", "").strip()
    if token:
        return token
    feeds = [part.strip() for part in environ.get("ARRECON_FEED_TOKENS", "").split(",")]
    return next((part for part in feeds if part), None)


class TokenGate:
    """ASGI middleware: only requests carrying the token reach the app."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token:
            raise ValueError("the dashboard needs a non-empty token")
        self.app = app
        self._token = token.encode()

    def _ok(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), self._token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        query_token = request.query_params.get("token")
        if query_token is not None and self._ok(query_token) and request.method == "GET":
            await self._set_cookie(request)(scope, receive, send)
            return
        header = request.headers.get("authorization", "")
        bearer = header[7:].strip() if header[:7].lower() == "bearer " else None
        if self._ok(bearer) or self._ok(request.cookies.get(COOKIE)):
            await self.app(scope, receive, send)
            return
        await _json({"error": "unauthorized"}, 401, {"www-authenticate": "Bearer"})(
            scope, receive, send
        )

    def _set_cookie(self, request: Request) -> Response:
        target = request.url.remove_query_params("token")
        response = RedirectResponse(str(target.replace(scheme="", netloc="")) or "/", 303)
        response.set_cookie(
            COOKIE,
            self._token.decode(),
            httponly=True,
            samesite="strict",
            path=str(request.scope.get("root_path") or "/"),
        )
        return response


def _default(value: Any) -> Any:
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    body = orjson.dumps(
        data,
        default=_default,
        option=orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC,
    )
    return Response(
        body,
        status,
        headers={**_SECURITY_HEADERS, **(headers or {})},
        media_type="application/json",
    )


def _int(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text in (None, ""):
        return default
    try:
        return int(text)
    except ValueError:
        raise BadParameterError(f"{name} must be an integer") from None


def _page(request: Request, default_limit: int = 50) -> Page:
    return Page(_int(request, "limit", default_limit), _int(request, "offset", 0))


Handler = Callable[[Request, datetime], dict[str, Any]]


class _Api:
    """The API handlers; each gets the request and the resolved `as_of`."""

    def __init__(self, queries: DashboardQueries, clock: Clock) -> None:
        self.queries = queries
        self.clock = clock

    def route(self, path: str, handler: Handler) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                data = await run_in_threadpool(self._call, handler, request)
            except BadParameterError as error:
                return _json({"error": str(error)}, 400)
            except NotReadyError as error:
                return _json({"error": str(error)}, 503)
            except Exception:
                _log.exception("dashboard query failed: %s", path)
                return _json({"error": "query failed"}, 500)
            return _json(data)

        return Route(path, endpoint, methods=["GET"])

    def _call(self, handler: Handler, request: Request) -> dict[str, Any]:
        as_of = parse_as_of(request.query_params.get("as_of"), self.clock(), self.queries.stream_at)
        return handler(request, as_of)

    def summary(self, request: Request, as_of: datetime) -> dict[str, Any]:
        return self.queries.summary(as_of, _int(request, "period_days", 90))

    def aging(self, request: Request, as_of: datetime) -> dict[str, Any]:
        params = request.query_params
        return self.queries.aging(
            as_of,
            params.get("dimension", "channel"),
            params.get("currency", ""),
            _page(request, 100),
        )

    def bucket_invoices(self, request: Request, as_of: datetime) -> dict[str, Any]:
        params = request.query_params
        missing = [name for name in ("key", "currency", "bucket") if name not in params]
        if missing:
            raise BadParameterError(f"missing {', '.join(missing)}")
        return self.queries.bucket_invoices(
            as_of,
            dimension=params.get("dimension", "channel"),
            key=params["key"],
            currency=params["currency"],
            bucket=params["bucket"],
            page=_page(request),
        )

    def exceptions(self, request: Request, as_of: datetime) -> dict[str, Any]:
        params = request.query_params
        order = params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise BadParameterError("order must be asc or desc")
        return self.queries.exceptions(
            as_of,
            kind=params.get("kind", ""),
            currency=params.get("currency", ""),
            sort=params.get("sort", "age"),
            descending=order == "desc",
            page=_page(request),
        )

    def disputes(self, request: Request, as_of: datetime) -> dict[str, Any]:
        return self.queries.disputes(as_of, _page(request))

    def customers(self, request: Request, as_of: datetime) -> dict[str, Any]:
        return self.queries.customers(as_of, request.query_params.get("q", ""), _page(request))

    def customer(self, request: Request, as_of: datetime) -> dict[str, Any]:
        return self.queries.customer(as_of, request.path_params["customer_id"], _page(request))

    def fees(self, request: Request, as_of: datetime) -> dict[str, Any]:
        return self.queries.fees(as_of, _int(request, "days", 90))

    def clock_now(self, _request: Request, as_of: datetime) -> dict[str, Any]:
        return {"now": as_of, **self.queries.clock()}


async def _index(_request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", headers=_SECURITY_HEADERS)


def dashboard_app(queries: DashboardQueries, token: str, *, clock: Clock | None = None) -> ASGIApp:
    """The page at `/`, assets at `/static`, the API at `/api/...`; mount it anywhere."""
    api = _Api(queries, clock or (lambda: datetime.now(UTC)))

    async def spec(request: Request) -> Response:
        return _json(openapi(str(request.scope.get("root_path") or "/")))

    app = Starlette(
        routes=[
            Route("/", _index, methods=["GET"]),
            Route("/api/openapi.json", spec, methods=["GET"]),
            api.route("/api/summary", api.summary),
            api.route("/api/aging", api.aging),
            api.route("/api/aging/invoices", api.bucket_invoices),
            api.route("/api/exceptions", api.exceptions),
            api.route("/api/disputes", api.disputes),
            api.route("/api/customers", api.customers),
            api.route("/api/customers/{customer_id:path}", api.customer),
            api.route("/api/fees", api.fees),
            api.route("/api/clock", api.clock_now),
            Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        ]
    )
    return TokenGate(app, token)
