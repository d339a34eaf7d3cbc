"""docs/grafana-dashboard.json asks only for what the app exports: every PromQL query of every panel (and of the
instance variable) names only series of app/metrics.py's registry, as PromQL names them (a counter's `_total`, a
histogram's `_bucket`, `_sum`, `_count`); and every metric of the service's own has a panel."""

from __future__ import annotations

import pytest
from dashboard_support import load, metric_names, queries

from app import metrics

EXPORTED = metrics.exported_names()


def test_the_dashboard_is_grafana_json_with_panels() -> None:
    dashboard = load()
    assert dashboard["title"] and dashboard["uid"]
    for panel in dashboard["panels"]:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])


@pytest.mark.parametrize(("where", "promql"), queries(load()))
def test_every_query_names_only_exported_series(where: str, promql: str) -> None:
    names = metric_names(promql)
    assert names, f"{where}: {promql!r} names no metric"
    assert names <= EXPORTED, f"{where} names {sorted(names - EXPORTED)}, which the app does not export"


def test_every_metric_of_the_service_has_a_panel() -> None:
    shown = {name for _, promql in queries(load()) for name in metric_names(promql)}
    ours = {name for name in EXPORTED if name.startswith("library_") and not name.endswith(("_sum", "_count"))}
    assert ours <= shown, f"no panel shows {sorted(ours - shown)}"


def test_the_panels_the_operators_asked_for() -> None:
    titles = [panel["title"].lower() for panel in load()["panels"]]
    for words in ("requests per second by route", "p99", "error rate", "reservation outcomes", "heals", "repairs"):
        assert any(words in title for title in titles), words
    assert any("repair lag" in title for title in titles)
    assert any("driver errors" in title for title in titles)


@pytest.mark.parametrize(
    ("promql", "names"),
    [
        ('sum by (route) (rate(library_http_requests_total{status=~"5.."}[5m]))', {"library_http_requests_total"}),
        ("histogram_quantile(0.99, sum by (le) (rate(h_bucket[$__rate_interval])))", {"h_bucket"}),
        ("time() - max(g > 0)", {"g"}),
        ("a / on(job) group_left(x) b offset 5m > bool 1e3 and c:recorded", {"a", "b", "c:recorded"}),
        ('count(x{name="by (le) rate(y)"})', {"x"}),
    ],
)
def test_the_names_read_from_promql(promql: str, names: set[str]) -> None:
    assert metric_names(promql) == names
