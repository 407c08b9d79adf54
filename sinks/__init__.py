"""Sinks: outcomes to rows (ClickHouse), alerts and metrics."""
