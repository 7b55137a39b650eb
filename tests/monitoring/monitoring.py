"""The chart's monitoring objects (ServiceMonitor, PodMonitor, PrometheusRule, the Grafana
dashboard) as the tests see them, and the real tools that check them.

``promtool`` is built from the Prometheus Go module by ``scripts/provision/promtool.sh``;
the Prometheus Operator's CRDs come from its Go module by
``scripts/provision/monitoring-crds.sh``. Both are cached under ``$CNINFRA_CACHE``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.packaging.render import CHART_DIR, Doc, find, helm_template
from tests.servers._util import cache_dir, provisioned

__all__ = ["DASHBOARD", "NAMESPACE", "RELEASE", "alert_rules", "crd_docs", "dashboard",
           "dashboard_queries", "metric_names", "monitoring", "promtool", "rule_groups"]

RELEASE = "demo"
NAMESPACE = "shop"
DASHBOARD = CHART_DIR / "dashboards" / "cninfra-sidecar.json"
#: Every monitoring object on (a PodMonitor: a ServiceMonitor is the other case).
ALL_ON: dict[str, Any] = {"metrics": {"podMonitor": {"enabled": True},
                                      "prometheusRule": {"enabled": True},
                                      "dashboard": {"enabled": True}}}


def promtool_bin() -> Path:
    """``CNINFRA_PROMTOOL`` or ``$CNINFRA_CACHE/bin/promtool``."""
    return provisioned("promtool", "CNINFRA_PROMTOOL", "scripts/provision/promtool.sh")


def promtool(*args: str | Path, cwd: Path | None = None,
             stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool (never raising on its exit status: the tests read it)."""
    return subprocess.run([str(promtool_bin()), *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=cwd, input=stdin, check=False)


def crd_docs() -> list[Doc]:
    """The ServiceMonitor, PodMonitor and PrometheusRule CRDs of the Prometheus Operator."""
    directory = Path(os.environ.get("CNINFRA_MONITORING_CRDS")
                     or cache_dir() / "prometheus-operator-crds")
    files = sorted(directory.glob("monitoring.coreos.com_*.yaml"))
    if len(files) != 3:
        raise FileNotFoundError(f"no CRDs in {directory}: run "
                                "scripts/provision/monitoring-crds.sh (or make test)")
    return [yaml.safe_load(path.read_text()) for path in files]


@functools.cache
def _monitoring(values: str) -> tuple[Doc, ...]:
    docs = helm_template(json.loads(values), release=RELEASE, namespace=NAMESPACE)
    return tuple(d for d in docs if d["apiVersion"].startswith("monitoring.coreos.com/")
                 or d["metadata"]["name"].endswith("-dashboard"))


def monitoring(values: dict[str, Any] | None = None) -> list[Doc]:
    """The monitoring objects the chart renders with ``values`` (default: all of them on,
    with a PodMonitor), release ``demo`` in namespace ``shop``."""
    return [json.loads(json.dumps(d)) for d in _monitoring(json.dumps(values or ALL_ON))]


def rule_groups(values: dict[str, Any] | None = None) -> dict[str, Any]:
    """The PrometheusRule's spec: a Prometheus rules file (``groups:``)."""
    return dict(find(monitoring(values), "PrometheusRule")["spec"])


def alert_rules(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [rule for group in rule_groups(values)["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    """The dashboard as the chart ships it (the ConfigMap's JSON)."""
    config_map = find(monitoring(), "ConfigMap")
    return dict(json.loads(config_map["data"]["cninfra-sidecar.json"]))


def dashboard_queries(model: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard: panels' targets (rows' inner panels
    too) and the template variables' queries."""
    queries = []
    panels = list(model.get("panels", []))
    while panels:
        panel = panels.pop()
        panels.extend(panel.get("panels", []))
        queries += [t["expr"] for t in panel.get("targets", []) if t.get("expr")]
    for variable in model.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            queries.append(query["query"] if isinstance(query, dict) else query)
    return queries


# -- PromQL ------------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.$])[a-zA-Z_:][\w:]*")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*([a-zA-Z_:][\w:]*)?")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
             "group_left", "group_right", "inf", "nan", "start", "end"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (Grafana's ``label_values(metric,
    label)`` included). A small lexer, not a parser: it drops strings, label matchers,
    ranges and label lists, then keeps the identifiers that are not functions or
    keywords: enough for the expressions of our rules and dashboard, which the tests
    also run through promtool and check against what /metrics serves."""
    values = _LABEL_VALUES.match(expr)
    if values:
        return {values.group(1)} if values.group(1) else set()
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _LABEL_LIST.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        if text[match.end():].lstrip().startswith("("):
            continue  # a function
        if match.group().lower() not in _KEYWORDS:
            names.add(match.group())
    return names
