"""What ships in deploy/: the Prometheus alert rules pass their promtool tests, and the
Grafana dashboard queries only metrics Legato exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from legato.observability.metrics import METRICS

DEPLOY = Path(__file__).parents[2] / "deploy"
_SUFFIXES = ("_bucket", "_count", "_sum")
_NAME = re.compile(r"\blegato_[a-z_]+")


def _metric(name: str) -> str:
    """The exported metric a queried series name belongs to."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in METRICS:
            return name.removesuffix(suffix)
    return name


def test_the_alert_rules_pass_their_promtool_tests() -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, (
        "promtool is not installed: apt-get install prometheus (.ci/run installs it)"
    )
    rules = DEPLOY / "prometheus"
    for args in (
        ["check", "rules", "legato-rules.yml"],
        ["test", "rules", "legato-rules.test.yml"],
    ):
        result = subprocess.run(
            [promtool, *args], cwd=rules, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_use_only_exported_metrics() -> None:
    text = (DEPLOY / "prometheus" / "legato-rules.yml").read_text()
    exprs = re.findall(r"expr: (.*(?:\n {10,}.*)*)", text)
    names = {_metric(n) for e in exprs for n in _NAME.findall(e)}
    assert names and names <= set(METRICS), names - set(METRICS)


def test_the_dashboard_queries_only_exported_metrics_and_shows_each_area() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "legato.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    names = {_metric(n) for e in exprs for n in _NAME.findall(e)}
    assert names <= set(METRICS), names - set(METRICS)
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for area in (
        "runs by status",
        "throughput",
        "step latency",
        "compensations",
        "deliveries",
        "lag",
        "expectations",
    ):
        assert area in titles, area
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
