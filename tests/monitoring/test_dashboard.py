"""The Grafana dashboard the chart ships, checked as Grafana's dashboard-linter would.

Grafana's own linter (github.com/grafana/dashboard-linter) cannot be had here: the Go
module proxy refuses it (no version of it is listed). These checks are ours, on the
same points: a valid dashboard model, the data source a template variable, unique
panel ids, a query in every panel, a unit on every panel, the variables used by every
query. That every metric the queries name is served by /metrics is test_exposed.py's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from tests.monitoring.monitoring import DASHBOARD, dashboard, dashboard_queries, metric_names

Panel = dict[str, Any]


def panels(model: dict[str, Any]) -> Iterator[Panel]:
    """Every panel, those inside (collapsed) rows included."""
    for panel in model["panels"]:
        yield panel
        yield from panel.get("panels", [])


def test_the_configmap_holds_the_dashboard_file_unchanged() -> None:
    assert dashboard() == json.loads(DASHBOARD.read_text())


def test_it_is_a_dashboard_model() -> None:
    model = dashboard()
    for key, kind in (("uid", str), ("title", str), ("schemaVersion", int),
                      ("panels", list), ("templating", dict), ("time", dict)):
        assert isinstance(model.get(key), kind), key
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", model["uid"])
    assert "id" not in model or model["id"] is None  # Grafana assigns it on import
    for panel in panels(model):
        assert isinstance(panel.get("id"), int) and panel.get("type") and panel.get("title")
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]


def test_panel_ids_are_unique_and_panels_do_not_overlap() -> None:
    model = dashboard()
    ids = [panel["id"] for panel in panels(model)]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in panels(model):
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_the_data_source_is_a_template_variable() -> None:
    model = dashboard()
    variables = {v["name"]: v for v in model["templating"]["list"]}
    source = variables["datasource"]
    assert source["type"] == "datasource" and source["query"] == "prometheus"
    templated = {"type": "prometheus", "uid": "${datasource}"}
    for panel in panels(model):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == templated, panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", templated) == templated, panel["title"]
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == templated, variable["name"]


def test_every_panel_has_a_query_and_a_unit() -> None:
    for panel in panels(dashboard()):
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and metric_names(target["expr"]), panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']}: no unit"
        assert panel.get("description"), f"{panel['title']}: no description"


def test_every_query_follows_the_namespace_and_pod_variables() -> None:
    model = dashboard()
    for panel in panels(model):
        for target in panel.get("targets", []):
            selectors = re.findall(r"\b(?:cninfra|process)_\w+(\{[^}]*\})?", target["expr"])
            assert selectors, panel["title"]
            for selector in selectors:
                assert 'namespace=~"$namespace"' in selector, (panel["title"], target["expr"])
                assert 'pod=~"$pod"' in selector, (panel["title"], target["expr"])
    rates = [expr for expr in dashboard_queries(model) if "rate(" in expr]
    assert rates and all("[$__rate_interval]" in expr for expr in rates)


def test_the_metric_name_lexer() -> None:
    """metric_names, which the exposure test trusts, on the shapes the queries use."""
    assert metric_names('histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{x="1"}'
                        "[$__rate_interval])))") == {"a_bucket"}
    assert metric_names('max by (pod) (b{level=~"debug|trace"}) > 3600 or time() - c'
                        " > 60 unless on (pod) d offset 5m") == {"b", "c", "d"}
    assert metric_names("label_values(cninfra_build_info{namespace=~\"$ns\"}, pod)") == {
        "cninfra_build_info"}
    assert metric_names("sum(rate(x_total[5m])) and on (namespace, pod) y") == {"x_total", "y"}
