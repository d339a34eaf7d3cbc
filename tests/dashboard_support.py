"""The Grafana dashboard (docs/grafana-dashboard.json) read as its queries, and the metric names each PromQL query
names: for the unit test that holds it to the registry's names and the integration test that holds it to a running
app's /metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[1] / "docs" / "grafana-dashboard.json"

# PromQL's words that are not metric names: aggregation modifiers, set and vector-matching operators, `bool`, `offset`.
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NUMBER = re.compile(r"(?<![A-Za-z0-9_:])\.?\d[0-9A-Za-z_.]*")  # 0.99, 1e3, and offset's 5m
_WORD = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.*?)\s*,\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$")


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every query: each panel's targets, and each template variable's `label_values(selector,
    label)` (its selector)."""
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r} target {target['refId']}", target["expr"]))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        matched = _LABEL_VALUES.match(query)
        assert matched, f"variable {variable['name']}: {query!r} is not label_values(selector, label)"
        found.append((f"variable {variable['name']}", matched.group(1)))
    return found


def metric_names(promql: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once strings, label matchers, ranges, grouping
    clauses, function calls, keywords and numbers are taken out."""
    text = _STRING.sub('""', promql)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    text = _NUMBER.sub("", text)
    names = set()
    for word in _WORD.finditer(text):
        rest = text[word.end() :].lstrip()
        if rest.startswith("(") or word.group().lower() in KEYWORDS:
            continue  # a function, or an operator
        names.add(word.group())
    return names
