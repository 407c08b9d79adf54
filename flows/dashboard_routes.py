"""Mount the ops dashboard on the receiver's Starlette app (`build_runtime`'s hook).

Use: `run(settings, receiver, extra_routes=lambda app, dsn: mount_dashboard(app, dsn, token))`.
The page lives at `/dashboard/`, the API at `/dashboard/api/...`. Without a token
argument the environment's is used (`ARRECON_DASHBOARD_TOKEN`, else the first
`ARRECON_FEED_TOKENS`); with none there either, a random one is made and the
page's URL is printed once on stderr, so the dashboard is never open.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping

from starlette.applications import Starlette
from starlette.routing import Mount

from arrecon.sinks.dashboard.queries import DashboardQueries
from arrecon.sinks.dashboard.web import dashboard_app, dashboard_token

__all__ = ["MOUNT_PATH", "mount_dashboard"]

MOUNT_PATH = "/dashboard"


def mount_dashboard(
    app: Starlette,
    dsn: str,
    token: str | None = None,
    *,
    environ: Mapping[str, str] = os.environ,
) -> str:
    """Add the dashboard under `/dashboard` and return the token that opens it."""
    chosen = token or dashboard_token(environ)
    if not chosen:
        chosen = secrets.token_urlsafe(24)
        print(f"arrecon: dashboard at {MOUNT_PATH}/?token={chosen}", file=sys.stderr)
    queries = DashboardQueries(dsn)
    app.router.routes.append(Mount(MOUNT_PATH, app=dashboard_app(queries, chosen)))
    return chosen
