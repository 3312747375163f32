"""The indicator system (指标体系): specs, libraries, frameworks, computation, trees, alerts.

The web app and the CLI call this API; every result is a pydantic model.
"""

from __future__ import annotations

from yunying.metrics.compute import ComputeResult, MetricSeries, Point, compute, compute_totals
from yunying.metrics.frameworks import FRAMEWORKS, init_framework, list_system
from yunying.metrics.monitor import (
    AlertReport,
    AlertRule,
    Target,
    TargetReport,
    anomalies,
    check_alerts,
    detect,
    load_alerts,
    load_targets,
    plan_vs_actual,
    send_webhook,
    target_status,
)
from yunying.metrics.spec import MetricSpec, Registry, load_registry, registry_from_texts
from yunying.metrics.tree import (
    ExplainResult,
    GoalSeekResult,
    Period,
    Scenario,
    SensitivityResult,
    WhatIfResult,
    compare_scenarios,
    explain,
    goal_seek,
    load_scenario,
    parse_period,
    save_scenario,
    sensitivity,
    whatif,
)
from yunying.metrics.vintage import VintageResult, vintage

__all__ = [
    "FRAMEWORKS", "AlertReport", "AlertRule", "ComputeResult", "ExplainResult", "GoalSeekResult",
    "MetricSeries", "MetricSpec", "Period", "Point", "Registry", "Scenario", "SensitivityResult",
    "Target", "TargetReport", "WhatIfResult", "anomalies", "check_alerts", "compare_scenarios",
    "compute", "compute_totals", "detect", "explain", "goal_seek", "init_framework", "list_system",
    "load_alerts", "load_registry", "load_scenario", "load_targets", "parse_period", "plan_vs_actual",
    "registry_from_texts", "save_scenario", "send_webhook", "sensitivity", "target_status", "whatif",
    "VintageResult", "vintage",
]
