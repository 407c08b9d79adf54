"""Small helpers the sink tests share."""

from __future__ import annotations

from datetime import UTC, datetime


def ts(text: str) -> datetime:
    """A UTC moment from ISO text without a zone: ts("2026-03-01T09:00")."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
