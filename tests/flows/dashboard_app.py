"""Test launcher: `arrecon run` with the ops dashboard mounted.

Usage: python tests/flows/dashboard_app.py DATA_DIR PORT. Settings come from the
environment like the CLI's (`ARRECON_*`); the dashboard token from
`ARRECON_DASHBOARD_TOKEN` (else the first feed token).
"""

from __future__ import annotations

import sys
from pathlib import Path

from arrecon.connectors.webhook import ReceiverSettings
from arrecon.flows.dashboard_routes import mount_dashboard
from arrecon.flows.run import run
from arrecon.flows.settings import Settings


def main(data_dir: str, port: str) -> None:
    settings = Settings.from_env().with_overrides(
        data_dir=Path(data_dir), port=int(port), snapshot_interval_s=0.5
    )
    run(
        settings,
        ReceiverSettings.from_env(),
        extra_routes=lambda app, dsn: mount_dashboard(app, dsn, None),
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
