"""Charts and exports written for specific analyses' result models.

Each function reads the runner's own result model; ``views.chart_for`` falls back to a
generic chart when a result's shape changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from markupsafe import Markup

from yunying.i18n import t
from yunying.web import charts


def funnel_chart(res: Any) -> Markup:
    """Step chart: users per step, with conversion from step 1 and drop-off."""
    steps = res.steps
    notes = [f"{s.conversion:.1%}" + (f" · −{s.drop_off:,}" if s.drop_off else "") for s in steps]
    return charts.bar_chart([f"{s.step}. {s.name}" for s in steps], [s.users for s in steps], note=notes)


def funnel_export(res: Any) -> tuple[list[str], list[list[Any]]]:
    """Drop-off per step (and per breakdown group)."""
    headers = [
        t("funnel.col.group"), t("funnel.col.step"), t("funnel.col.name"), t("funnel.col.users"),
        t("funnel.col.conversion"), t("funnel.col.step_conversion"), t("funnel.col.drop_off"),
    ]
    rows: list[list[Any]] = []
    for group, steps in [("", res.steps), *[(g.value, g.steps) for g in res.groups]]:
        for s in steps:
            rows.append([group, s.step, s.name, s.users, round(s.conversion, 6), round(s.step_conversion, 6), s.drop_off])
    return headers, rows


CHARTS: dict[str, Callable[[Any], Markup]] = {"funnel": funnel_chart}
EXPORTS: dict[str, Callable[[Any], tuple[list[str], list[list[Any]]]]] = {"funnel": funnel_export}
