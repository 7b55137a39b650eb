"""The chart's PrometheusRule checked by the real promtool: its groups are a valid rules
file (``promtool check rules``), and every alert fires on the series it is about and
only on those (``promtool test rules`` with tests/monitoring/rules-test.yaml)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring.monitoring import ALL_ON, alert_rules, promtool, rule_groups

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "rules-test.yaml"

#: The alerts the chart ships, by the name a runbook and an Alertmanager route know.
ALERTS = ["CninfraSidecarNotReady", "CninfraPluginError", "CninfraProgramCrashLooping",
          "CninfraProgramDown", "CninfraStatusPublishFailing",
          "CninfraKafkaStatusEventsDropped", "CninfraDebugLogLevelLeftOn"]


def with_alerts(**alerts: dict[str, Any]) -> dict[str, Any]:
    values = copy.deepcopy(ALL_ON)
    values["metrics"]["prometheusRule"]["alerts"] = alerts
    return values


def test_the_chart_ships_these_alerts() -> None:
    assert [rule["alert"] for rule in alert_rules()] == ALERTS


def test_the_rules_pass_promtool_check_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule_groups()))
    done = promtool("check", "rules", "--lint=all", "--lint-fatal", rules)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in done.stdout + done.stderr


def test_promtool_check_rules_has_teeth(tmp_path: Path) -> None:
    groups = rule_groups()
    groups["groups"][0]["rules"][0]["expr"] = "max by (pod) (cninfra_agent_ready{) == 0"
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(groups))
    done = promtool("check", "rules", rules)
    assert done.returncode != 0 and "parse error" in done.stdout + done.stderr


def run_rule_tests(directory: Path, values: dict[str, Any] | None = None
                   ) -> tuple[int, str]:
    groups = rule_groups(values)
    for rule in (r for group in groups["groups"] for r in group["rules"]):
        rule["annotations"] = {"summary": rule["annotations"]["summary"]}
    (directory / "rules.yaml").write_text(yaml.safe_dump(groups))
    (directory / "rules-test.yaml").write_text(FIXTURES.read_text())
    done = promtool("test", "rules", "rules-test.yaml", cwd=directory)
    return done.returncode, done.stdout + done.stderr


def test_every_alert_fires_on_its_series_and_only_on_them(tmp_path: Path) -> None:
    status, output = run_rule_tests(tmp_path)
    assert status == 0, output
    assert "SUCCESS" in output


def test_every_alert_has_series_that_must_fire_it_and_series_that_must_not() -> None:
    fixtures = yaml.safe_load(FIXTURES.read_text())
    fires: dict[str, int] = {}
    quiet: dict[str, int] = {}
    for test in fixtures["tests"]:
        for case in test["alert_rule_test"]:
            counts = fires if case["exp_alerts"] else quiet
            counts[case["alertname"]] = counts.get(case["alertname"], 0) + 1
    assert sorted(fires) == sorted(ALERTS)
    assert sorted(quiet) == sorted(ALERTS)


@pytest.mark.parametrize(("alert", "settings"), [
    # A threshold the fixtures' crash loop does not reach: pod b must then stay quiet.
    ("CninfraProgramCrashLooping", {"enabled": True, "for": "5m", "severity": "warning",
                                    "window": "15m", "restarts": 100}),
    # Paging sooner than the fixtures expect.
    ("CninfraSidecarNotReady", {"enabled": True, "for": "2m", "severity": "critical"}),
    # Half an hour for this team: pod a's debug level fires it already at 55m.
    ("CninfraDebugLogLevelLeftOn", {"enabled": True, "for": "0m", "severity": "info",
                                    "maxAgeSeconds": 1800}),
])
def test_the_fixtures_catch_a_changed_threshold(tmp_path: Path, alert: str,
                                                settings: dict[str, Any]) -> None:
    status, output = run_rule_tests(tmp_path, with_alerts(**{alert: settings}))
    assert status != 0, output
    assert alert in output


def test_alerts_can_be_turned_off_and_labelled() -> None:
    values = with_alerts(CninfraDebugLogLevelLeftOn={"enabled": False, "severity": "info"})
    values["metrics"]["prometheusRule"]["additionalAlertLabels"] = {"team": "platform"}
    values["metrics"]["prometheusRule"]["selector"] = 'job="shop/demo-cninfra-sidecar"'
    rules = alert_rules(values)
    assert [r["alert"] for r in rules] == ALERTS[:-1]
    for rule in rules:
        assert rule["labels"]["team"] == "platform"
        assert 'job="shop/demo-cninfra-sidecar"' in rule["expr"]
        assert 'namespace="shop"' not in rule["expr"]


def test_every_alert_has_a_severity_and_a_runbook() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}, rule
        assert rule["annotations"]["runbook_url"] == (
            "https://cninfra-sidecar.example/operations/alerts/#" + rule["alert"].lower())
