"""deploy/prometheus: the scrape config targets arrecon and every rule is well formed.

Without a Prometheus binary the rules are checked structurally: required keys,
durations, severities, balanced expressions, and every metric an expression
names is registered by arrecon's modules (or is Bytewax's Kafka gauge) with the
labels the selector uses.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from bytewax.connectors import kafka as bytewax_kafka
from prometheus_client import REGISTRY
from prometheus_client.registry import Collector

import arrecon.connectors.webhook
import arrecon.flows.alerts_sink
import arrecon.sinks.metrics
from arrecon.flows.settings import Settings
from arrecon.state import outcomes

# Imported for the collectors they register in the default registry.
REGISTERING = (
    arrecon.sinks.metrics,
    arrecon.flows.alerts_sink,
    arrecon.connectors.webhook,
    bytewax_kafka,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
SEVERITIES = {"info", "warning", "critical"}
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
METRIC = re.compile(r"\b((?:arrecon|bytewax)_[a-zA-Z0-9_]+)\s*(\{[^}]*\})?")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
# Series Prometheus makes itself; not from any registry.
SYNTHETIC = {"up"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}


def load(name: str) -> Any:
    return yaml.safe_load((PROMETHEUS_DIR / name).read_text())


def rules() -> list[dict[str, Any]]:
    return [rule for group in load("alerts.yml")["groups"] for rule in group["rules"]]


def exposed_series() -> dict[str, Collector]:
    """Every series name the default registry can expose, with its collector."""
    names = getattr(REGISTRY, "_names_to_collectors", {})
    out: dict[str, Collector] = {}
    for family in REGISTRY.collect():
        for suffix in SUFFIXES.get(family.type, ("",)):
            series = family.name + suffix
            if series in names:
                out[series] = names[series]
    return out


def label_names(collector: Collector, series: str) -> set[str]:
    names = set(getattr(collector, "_labelnames", ()))
    return names | {"le"} if series.endswith("_bucket") else names


def referenced(expr: str) -> list[tuple[str, dict[str, str]]]:
    """(metric, {label: value}) for each arrecon/bytewax selector in an expression."""
    out = []
    for match in METRIC.finditer(expr):
        matchers = {name: value for name, _op, value in MATCHER.findall(match.group(2) or "")}
        out.append((match.group(1), matchers))
    return out


def test_scrape_config_targets_arrecon_metrics_endpoint() -> None:
    config = load("prometheus.yml")
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "arrecon"]
    assert job["metrics_path"] == "/metrics"
    targets = [t for static in job["static_configs"] for t in static["targets"]]
    settings = Settings()
    assert targets == [f"{settings.host}:{settings.port}"] == ["127.0.0.1:8080"]
    for name in ("scrape_interval", "evaluation_interval"):
        assert DURATION.match(config["global"][name])
    assert config["rule_files"] == ["alerts.yml"]
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS_DIR / rule_file).is_file()


def test_every_rule_has_the_required_fields() -> None:
    found = rules()
    assert len(found) >= 5
    names = [rule["alert"] for rule in found]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in found:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"])
        assert isinstance(rule["expr"], str)
        assert rule["expr"].strip()
        assert DURATION.match(rule["for"]), rule["for"]
        assert rule["labels"]["severity"] in SEVERITIES
        assert rule["annotations"]["summary"].strip()
        assert rule["annotations"]["description"].strip()
    for group in load("alerts.yml")["groups"]:
        assert group["name"].startswith("arrecon.")


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_expression_is_balanced_and_names_only_real_metrics(rule: dict[str, Any]) -> None:
    expr: str = rule["expr"]
    for opening, closing in ("()", "[]", "{}"):
        depth = 0
        for char in expr:
            depth += (char == opening) - (char == closing)
            assert depth >= 0, f"{closing!r} before {opening!r} in {rule['alert']}"
        assert depth == 0, f"unbalanced {opening}{closing} in {rule['alert']}"
    series = exposed_series()
    metrics = referenced(expr)
    assert metrics or SYNTHETIC & set(re.findall(r"\b[a-z_]+\b", expr)), "names no metric"
    types = {cls.type for cls in get_args(outcomes.Outcome)}
    for name, matchers in metrics:
        assert name in series, f"{rule['alert']}: {name} is not exposed by arrecon or Bytewax"
        unknown = set(matchers) - label_names(series[name], name)
        assert not unknown, f"{rule['alert']}: {name} has no labels {unknown}"
        if name == "arrecon_outcomes_total" and "type" in matchers:
            assert matchers["type"] in types, matchers["type"]


def test_required_signals_are_covered() -> None:
    """The issue's list: short-pay rate, fee creep, unapplied cash, lag, dead letters."""
    used = {(name, m.get("type", "")) for rule in rules() for name, m in referenced(rule["expr"])}
    assert ("arrecon_outcomes_total", "short_paid") in used
    assert ("arrecon_outcomes_total", "fee_anomaly") in used
    assert ("arrecon_unapplied_cash_minor", "") in used
    assert ("arrecon_rejections_total", "") in used
    assert ("arrecon_alerts_failed_total", "") in used
    assert ("bytewax_kafka_consumer_lag", "") in used


def test_the_checker_rejects_what_prometheus_would_not_find() -> None:
    """The metric check itself can fail: a misspelt metric or label is caught."""
    series = exposed_series()
    assert "arrecon_outcome_total" not in series
    assert "arrecon_outcomes_total" in series
    assert "arrecon_event_to_outcome_seconds_bucket" in series
    assert "bytewax_kafka_consumer_lag" in series
    ((name, matchers),) = referenced('rate(arrecon_outcomes_total{kind="x"}[5m])')
    assert set(matchers) - label_names(series[name], name) == {"kind"}
    ((name, matchers),) = referenced('arrecon_event_to_outcome_seconds_bucket{le="1"}')
    assert not set(matchers) - label_names(series[name], name)
