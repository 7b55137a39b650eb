"""The docs list every alert with what to do when it fires, and every metric the alerts
and the dashboard use: the alerts reference is generated from the chart
(scripts/alerts-reference.py), the runbook is written by hand and checked here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from markdown.extensions.toc import slugify  # type: ignore[import-untyped]

from tests.monitoring.monitoring import alert_rules, dashboard, dashboard_queries, metric_names

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = REPO / "docs" / "operations" / "alerts.md"
METRICS = REPO / "docs" / "reference" / "metrics.md"
SUFFIXES = ("_total", "_bucket", "_sum", "_count")


def test_the_alerts_reference_is_what_the_chart_says() -> None:
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "alerts-reference.py"),
                           "--check"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr


def test_the_runbook_has_a_section_for_every_alert_and_no_other() -> None:
    sections = re.findall(r"^## (\S+)$", RUNBOOK.read_text(), flags=re.MULTILINE)
    assert sections == [rule["alert"] for rule in alert_rules()]


def test_every_runbook_url_leads_to_its_section() -> None:
    for rule in alert_rules():
        anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert anchor == slugify(rule["alert"], "-")
        assert rule["annotations"]["runbook_url"].split("#")[0].endswith("operations/alerts/")


def family(sample: str) -> str:
    for suffix in SUFFIXES:
        if sample.endswith(suffix):
            return sample.removesuffix(suffix)
    return sample


def test_every_metric_the_alerts_dashboard_and_runbook_name_is_in_the_reference() -> None:
    listed = set(re.findall(r"^\| `(\w+)` \|", METRICS.read_text(), flags=re.MULTILINE))
    named = {name for rule in alert_rules() for name in metric_names(rule["expr"])}
    named |= {name for query in dashboard_queries(dashboard())
              for name in metric_names(query)}
    named |= set(re.findall(r"\bcninfra_\w+", RUNBOOK.read_text()))
    ours = {name for name in named if name.startswith("cninfra_")}
    assert len(ours) >= 20
    # A sample's family: cninfra_x_total is cninfra_x, an info's cninfra_y_info is cninfra_y.
    missing = {name for name in ours
               if not {family(name), name.removesuffix("_info")} & listed}
    assert not missing
