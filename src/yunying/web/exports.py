"""CSV exports written for specific analyses' result models (the rest export ``to_rows()``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from yunying.i18n import t


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


def rfm_export(res: Any) -> tuple[list[str], list[list[Any]]]:
    headers = ["kind", "key", "name_zh", "name_en", "users", "share", "revenue", "revenue_share", "avg_spend"]
    rows = [[kind, g.key, g.name_zh, g.name_en, g.users, g.share, g.revenue, g.revenue_share, g.avg_spend]
            for kind, groups in (("class", res.classes), ("segment", res.segments)) for g in groups]
    return headers, rows


def retention_export(res: Any) -> tuple[list[str], list[list[Any]]]:
    """Rates per cohort; with a breakdown, a leading ``breakdown`` column ("" = all users)
    and each value's total and cohorts after the all-users rows."""
    n = max((len(c.rates) for c in [res.total, *res.cohorts]), default=0)
    headers = ["cohort", "size", *[f"p{i}" for i in range(n)]]
    rows = [[c.cohort, c.size, *c.rates] for c in [res.total, *res.cohorts]]
    breakdowns = getattr(res, "breakdowns", None) or []
    if not breakdowns:
        return headers, rows
    rows = [["", *r] for r in rows]
    for b in breakdowns:
        rows.extend([b.value, c.cohort, c.size, *c.rates] for c in [b.total, *b.cohorts])
    return ["breakdown", *headers], rows


EXPORTS: dict[str, Callable[[Any], tuple[list[str], list[list[Any]]]]] = {
    "funnel": funnel_export, "rfm": rfm_export, "retention": retention_export,
}
