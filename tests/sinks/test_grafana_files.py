"""Grafana files: they parse, every panel is wired, and they say what the code says.

The ClickHouse dashboard must run the views' own SQL (with the documented
parameter substitutions), and the Prometheus dashboard may only name metrics
that the process really exports.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import arrecon.connectors.webhook
import arrecon.sinks.metrics
from arrecon.sinks.clickhouse import view_names, view_sql

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
CH_UID, PROM_UID = "arrecon-clickhouse", "arrecon-prometheus"

# View parameter -> what the Grafana panel writes instead (README.md says the same).
SUBSTITUTIONS = (
    ("{as_of:DateTime64(3, 'UTC')}", "toDateTime64($__toTime, 3, 'UTC')"),
    ("{period_days:UInt32}", "${period_days}"),
    ("{dimension:Identifier}", "${dimension}"),
    ("{limit:UInt32}", "200"),
    ("{offset:UInt32}", "0"),
)


def load(name: str) -> dict[str, Any]:
    return json.loads((DASHBOARDS / name).read_text(encoding="utf-8"))


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return dashboard["panels"]


def grafana_sql(view: str) -> str:
    sql = view_sql(view)
    for parameter, replacement in SUBSTITUTIONS:
        sql = sql.replace(parameter, replacement)
    return sql


@pytest.mark.parametrize("name", ["arrecon-clickhouse.json", "arrecon-prometheus.json"])
def test_dashboard_structure(name: str) -> None:
    dashboard = load(name)
    assert dashboard["uid"]
    assert dashboard["title"]
    assert dashboard["schemaVersion"] >= 36
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)) > 3
    for panel in panels(dashboard):
        assert panel["datasource"]["uid"] in (CH_UID, PROM_UID), panel["title"]
        assert panel["targets"], panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0
        assert grid["x"] + grid["w"] <= 24
        assert grid["h"] > 0
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            assert target["refId"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))


def test_clickhouse_panels_run_the_views_sql() -> None:
    dashboard = load("arrecon-clickhouse.json")
    used = set()
    for panel in panels(dashboard):
        assert panel["datasource"] == {"type": "grafana-clickhouse-datasource", "uid": CH_UID}
        view = re.match(r"view: (\w+)", panel["description"])
        assert view, panel["title"]
        [target] = panel["targets"]
        assert target["rawSql"] == grafana_sql(view.group(1)), panel["title"]
        assert not re.search(r"\{\w+:[^}]+\}", target["rawSql"]), "a view parameter was left in"
        used.add(view.group(1))
    assert used == set(view_names())  # every view has a panel


def test_clickhouse_variables_cover_the_substitutions() -> None:
    variables = {v["name"]: v for v in load("arrecon-clickhouse.json")["templating"]["list"]}
    assert set(variables) == {"dimension", "period_days"}
    assert {o["value"] for o in variables["dimension"]["options"]} == {
        "channel", "segment", "currency", "customer_id",
    }  # fmt: skip
    assert all(o["value"].isdigit() for o in variables["period_days"]["options"])


def exported_metric_names() -> set[str]:
    """Series names, also for labelled metrics that have no sample yet."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def test_prometheus_panels_name_real_metrics() -> None:
    exported = exported_metric_names()
    referenced = set()
    for panel in panels(load("arrecon-prometheus.json")):
        assert panel["datasource"] == {"type": "prometheus", "uid": PROM_UID}
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")")
            referenced.update(re.findall(r"\barrecon_[a-z0-9_]+", target["expr"]))
    assert referenced
    assert referenced <= exported, referenced - exported
    # The four concerns each have a panel.
    titles = " ".join(panel["title"].lower() for panel in panels(load("arrecon-prometheus.json")))
    for concern in ("throughput", "latency", "lag", "rejections"):
        assert concern in titles


# Labels of each metric family, as declared in sinks/metrics.py and connectors/webhook.py.
LABELS = {
    "arrecon_events_in": {"source", "kind"},
    "arrecon_outcomes": {"type", "method"},
    "arrecon_rejections": {"reason"},
    "arrecon_receiver_accepted": {"endpoint"},
    "arrecon_receiver_rejected": {"endpoint", "reason"},
    "arrecon_receiver_store_seconds": {"endpoint"},
    "arrecon_sink_rows": {"table"},
    "arrecon_unapplied_cash_minor": {"currency"},
}


def test_label_table_matches_the_registry() -> None:
    declared = {
        collector._name: set(collector._labelnames)  # type: ignore[attr-defined]
        for collector in (
            arrecon.sinks.metrics.EVENTS_IN,
            arrecon.sinks.metrics.OUTCOMES,
            arrecon.sinks.metrics.REJECTIONS,
            arrecon.connectors.webhook.ACCEPTED,
            arrecon.connectors.webhook.REJECTED,
            arrecon.connectors.webhook.STORE_SECONDS,
            arrecon.sinks.metrics.SINK_ROWS,
            arrecon.sinks.metrics.UNAPPLIED_CASH,
        )
    }
    assert declared == LABELS


def test_prometheus_groupings_and_legends_use_real_labels() -> None:
    for panel in panels(load("arrecon-prometheus.json")):
        for target in panel["targets"]:
            expr = target["expr"]
            metrics = {
                re.sub(r"_(total|bucket)$", "", name)
                for name in re.findall(r"\barrecon_[a-z0-9_]+", expr)
            }
            available = set().union(*(LABELS.get(metric, set()) for metric in metrics))
            grouped = {
                label.strip()
                for clause in re.findall(r"by \(([^)]*)\)", expr)
                for label in clause.split(",")
            } - {"le"}
            assert grouped <= available, (panel["title"], grouped - available)
            shown = grouped or available
            for legend in re.findall(r"\{\{(\w+)\}\}", target["legendFormat"]):
                assert legend in shown, (panel["title"], legend)


def test_provisioning_points_at_the_dashboards() -> None:
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/arrecon.yaml").read_text())
    by_uid = {source["uid"]: source for source in sources["datasources"]}
    assert by_uid[CH_UID]["type"] == "grafana-clickhouse-datasource"
    assert by_uid[PROM_UID]["type"] == "prometheus"
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/arrecon.yaml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].endswith("/arrecon")
    assert sources["apiVersion"] == providers["apiVersion"] == 1
    for name in ("arrecon-clickhouse.json", "arrecon-prometheus.json"):
        for panel in panels(load(name)):
            assert panel["datasource"]["uid"] in by_uid


def test_webhook_metrics_module_is_loaded() -> None:
    # The receiver's metrics live in connectors.webhook; the lag panel needs them.
    assert arrecon.connectors.webhook.ACCEPTED._name == "arrecon_receiver_accepted"
