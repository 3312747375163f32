"""User-operations analysis commands: trends, funnel, retention, lifecycle, stickiness.

Each command builds the same pydantic query the HTTP API takes and prints the typed result
(``--format json`` is that result's JSON). Filters are written ``prop=value``, ``prop>10``,
``prop in a|b`` …; ``--export-users FILE`` writes the user ids behind a number for targeting.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from yunying import clock, timeexpr
from yunying.cli.common import (
    FormatOpt,
    OutputFormat,
    ProjectOpt,
    console,
    emit,
    read_warehouse,
    settings_for,
)
from yunying.errors import YunyingError
from yunying.i18n import t

if TYPE_CHECKING:
    from yunying.analytics.common import PropertyFilter

M = TypeVar("M", bound=BaseModel)

FromOpt = Annotated[
    str | None, typer.Option("--from", help="First day: YYYY-MM-DD, yesterday, -90d, -3m … (default: 30 days ago).")
]
ToOpt = Annotated[
    str | None, typer.Option("--to", help="Last day, inclusive: YYYY-MM-DD, yesterday, -1d … (default: today).")
]
LastOpt = Annotated[
    str | None,
    typer.Option("--last", help="Instead of --from/--to: 30d, 8w, 3m, 1y (ending today), or last-month, this-week …"),
]
WhereOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--where", "-w",
        help="Event filter, repeatable: prop=v, prop!=v, prop>n, prop>=n, prop<n, prop<=n, "
        "'prop in a|b', 'prop not_in a|b', prop~text, prop?, !prop.",
    ),
]
ExportOpt = Annotated[
    Path | None, typer.Option("--export-users", help="Write the user ids of the chosen group to this CSV.")
]

_OPS = [(">=", "gte"), ("<=", "lte"), ("!=", "ne"), ("=", "eq"), (">", "gt"), ("<", "lt"), ("~", "contains")]


def _value(text: str) -> str | int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def parse_filter(text: str) -> PropertyFilter:
    """``prop=value`` … → a PropertyFilter; a clear error for anything else."""
    from yunying.analytics.common import PropertyFilter

    s = text.strip()
    try:
        if s.startswith("!") and re.fullmatch(r"![\w\-]+", s):
            return PropertyFilter(property=s[1:], operator="is_not_set")
        if re.fullmatch(r"[\w\-]+\?", s):
            return PropertyFilter(property=s[:-1], operator="is_set")
        m = re.fullmatch(r"([\w\-]+)\s+(in|not_in)\s+(.+)", s)
        if m:
            vals = [_value(v.strip()) for v in m.group(3).split("|") if v.strip()]
            return PropertyFilter(property=m.group(1), operator=m.group(2), value=vals)  # type: ignore[arg-type]
        for sym, op in _OPS:
            if sym in s:
                prop, _, val = s.partition(sym)
                v: Any = val.strip() if op == "contains" else _value(val.strip())
                return PropertyFilter(property=prop.strip(), operator=op, value=v)  # type: ignore[arg-type]
    except ValidationError:
        pass
    raise YunyingError("analytics.bad_filter", text=text)


def _filters(items: list[str] | None) -> list[PropertyFilter]:
    return [parse_filter(x) for x in items or []]


def _dates(frm: str | None, to: str | None, tz: str, span: str | None = None) -> dict[str, date]:
    """``--from``/``--to`` as day expressions, or ``--last`` as a span or named range."""
    from yunying.analytics.common import zone

    zone(tz)
    today = clock.today(tz)
    if span:
        if frm or to:
            raise YunyingError("time.last_and_from")
        try:
            start, end = timeexpr.last(span, today)
        except YunyingError:
            start, end = timeexpr.parse_range(span, today)
        return {"from": start, "to": end}
    end = timeexpr.parse_day(to, today) if to else today
    start = timeexpr.parse_day(frm, today) if frm else end - timedelta(days=29)
    return {"from": start, "to": end}


def build(model: type[M], **data: Any) -> M:
    """Validate a query; pydantic's complaint becomes a translated YunyingError."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        raise YunyingError(
            "analytics.invalid_query",
            field=".".join(str(x) for x in first["loc"]) or "query",
            reason=str(first["msg"]).removeprefix("Value error, "),
        ) from None


def _step(text: str) -> dict[str, Any]:
    """``event`` or ``event[prop=v;prop2>3]`` → a funnel step."""
    m = re.fullmatch(r"([^\[\]]+)(?:\[(.*)\])?", text.strip())
    if not m:
        raise YunyingError("analytics.bad_filter", text=text)
    filters = [parse_filter(f) for f in (m.group(2) or "").split(";") if f.strip()]
    return {"event": m.group(1).strip(), "filters": filters}


def _exported(n: int, path: Path) -> None:
    console.print(t("analytics.exported", count=n, path=str(path)))


def _duration(secs: float | None) -> str:
    if secs is None:
        return "-"
    if secs < 3600:
        return f"{secs / 60:.1f} min"
    if secs < 86400:
        return f"{secs / 3600:.1f} h"
    return f"{secs / 86400:.1f} d"


def register(app: typer.Typer) -> None:
    @app.command("trends")
    def trends_cmd(
        event: Annotated[str | None, typer.Argument(help="Event name (default: any event).")] = None,
        measure: Annotated[
            str, typer.Option(help="count|users|sum|avg|min|max|p50|p90|p95|p99|dau|wau|mau")
        ] = "count",
        prop: Annotated[str | None, typer.Option("--property", help="Numeric property for sum/avg/…")] = None,
        grain: Annotated[str, typer.Option(help="hour|day|week|month")] = "day",
        by: Annotated[str | None, typer.Option("--by", help="Break down by this property.")] = None,
        limit: Annotated[int, typer.Option(help="Breakdown: top N values, the rest as other.")] = 10,
        frm: FromOpt = None,
        to: ToOpt = None,
        span: LastOpt = None,
        where: WhereOpt = None,
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Event counts, users, revenue, DAU/WAU/MAU over time. / 趋势分析。"""
        from yunying.analytics.trends import TrendsQuery, run_trends

        s = settings_for(project)
        q = build(
            TrendsQuery, event=event, measure=measure, property=prop, grain=grain,
            dates=_dates(frm, to, s.timezone, span), filters=_filters(where),
            breakdown={"property": by, "limit": limit} if by else None,
        )
        with read_warehouse(s) as wh:
            emit(run_trends(wh, q), fmt)

    @app.command("funnel")
    def funnel_cmd(
        steps: Annotated[list[str], typer.Argument(help="2-20 step events; filters as event[prop=v;prop2>3].")],
        window: Annotated[int, typer.Option(help="Conversion window in days.")] = 14,
        mode: Annotated[str, typer.Option(help="ordered|strict|unordered")] = "ordered",
        exclude: Annotated[list[str] | None, typer.Option(help="Exclusion event (repeatable).")] = None,
        by: Annotated[str | None, typer.Option("--by", help="Break down by this property (of step 1).")] = None,
        interval: Annotated[str | None, typer.Option(help="Conversion over time: hour|day|week|month.")] = None,
        frm: FromOpt = None,
        to: ToOpt = None,
        span: LastOpt = None,
        where: WhereOpt = None,
        export_users: ExportOpt = None,
        export_step: Annotated[int, typer.Option(help="Export: users who reached this step …")] = 1,
        converted: Annotated[
            bool, typer.Option(help="Export: … all who reached it (default: only those who dropped off there).")
        ] = False,
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Funnel conversion, drop-off and time to convert. / 漏斗分析。"""
        from yunying.analytics.funnels import FunnelQuery, export_funnel_users, run_funnel

        s = settings_for(project)
        q = build(
            FunnelQuery, steps=[_step(x) for x in steps], window_days=window, mode=mode,
            exclusions=[_step(x) for x in exclude or []], interval=interval,
            dates=_dates(frm, to, s.timezone, span), filters=_filters(where),
            breakdown={"property": by} if by else None,
        )
        with read_warehouse(s) as wh:
            if export_users is not None:
                _exported(export_funnel_users(wh, q, export_step, str(export_users), converted), export_users)
                return
            res = run_funnel(wh, q)
            emit(res, fmt)
            ttc = res.time_to_convert
            if fmt == OutputFormat.table and ttc is not None and ttc.users:
                console.print(
                    t("funnel.time_to_convert", median=_duration(ttc.median_seconds),
                      p90=_duration(ttc.p90_seconds), users=ttc.users)
                )

    @app.command("retention")
    def retention_cmd(
        start: Annotated[str, typer.Option("--start", help="Start (cohort) event.")],
        ret: Annotated[str | None, typer.Option("--return", help="Return event (default: any).")] = None,
        cohort: Annotated[str, typer.Option(help="first_ever|first_in_range|recurring")] = "first_ever",
        period: Annotated[str, typer.Option(help="day|week|month")] = "day",
        periods: Annotated[int, typer.Option(help="Periods after the cohort to show.")] = 7,
        method: Annotated[str, typer.Option(help="classic (in period N) | rolling (N or later)")] = "classic",
        by: Annotated[
            str | None, typer.Option("--by", help="Break down by this property of the event that formed the cohort.")
        ] = None,
        limit: Annotated[int, typer.Option(help="Breakdown: top N values, the rest as other.")] = 10,
        frm: FromOpt = None,
        to: ToOpt = None,
        span: LastOpt = None,
        where: WhereOpt = None,
        export_users: ExportOpt = None,
        export_cohort: Annotated[str | None, typer.Option(help="Export: cohort label, e.g. 2024-03-04.")] = None,
        export_period: Annotated[int, typer.Option(help="Export: period N.")] = 1,
        lost: Annotated[bool, typer.Option(help="Export the users NOT retained in period N.")] = False,
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Cohort retention, D1/D7/D30. / 留存分析。"""
        from yunying.analytics.retention import (
            RetentionQuery,
            export_retention_users,
            run_retention,
        )

        s = settings_for(project)
        q = build(
            RetentionQuery, start_event=start, return_event=ret, cohort=cohort, period=period,
            periods=periods, method=method, dates=_dates(frm, to, s.timezone, span), filters=_filters(where),
            breakdown={"property": by, "limit": limit} if by else None,
        )
        if export_users is not None and q.breakdown is not None:
            raise YunyingError("retention.export_breakdown")
        with read_warehouse(s) as wh:
            if export_users is not None:
                label = export_cohort or q.dates.from_.isoformat()
                n = export_retention_users(wh, q, label, export_period, str(export_users), not lost)
                _exported(n, export_users)
                return
            res = run_retention(wh, q)
            emit(res, fmt)
            if fmt == OutputFormat.table:
                for sm in res.summary:
                    console.print(
                        t("retention.summary", day=sm.day, rate="-" if sm.rate is None else f"{sm.rate:.1%}",
                          retained=sm.retained, users=sm.users)
                    )
                for b in res.breakdowns:
                    for sm in b.summary:
                        console.print(
                            t("retention.summary_by", value=b.value, day=sm.day,
                              rate="-" if sm.rate is None else f"{sm.rate:.1%}", retained=sm.retained, users=sm.users),
                            markup=False,
                        )

    @app.command("lifecycle")
    def lifecycle_cmd(
        event: Annotated[str | None, typer.Option(help="Event that counts as active (default: any).")] = None,
        grain: Annotated[str, typer.Option(help="hour|day|week|month")] = "week",
        frm: FromOpt = None,
        to: ToOpt = None,
        span: LastOpt = None,
        where: WhereOpt = None,
        export_users: ExportOpt = None,
        stage: Annotated[str, typer.Option(help="Export: new|returning|resurrecting|dormant")] = "dormant",
        period_label: Annotated[str | None, typer.Option("--period", help="Export: period label (default: last).")] = None,
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """New, returning, resurrecting and dormant users per period. / 生命周期。"""
        from yunying.analytics.lifecycle import (
            LifecycleQuery,
            export_lifecycle_users,
            run_lifecycle,
        )

        s = settings_for(project)
        q = build(
            LifecycleQuery, event=event, grain=grain, dates=_dates(frm, to, s.timezone, span),
            filters=_filters(where),
        )
        with read_warehouse(s) as wh:
            if export_users is not None:
                label = period_label
                if label is None:
                    periods = run_lifecycle(wh, q).periods
                    label = periods[-1].period
                _exported(export_lifecycle_users(wh, q, label, stage, str(export_users)), export_users)
                return
            emit(run_lifecycle(wh, q), fmt)

    @app.command("stickiness")
    def stickiness_cmd(
        event: Annotated[str | None, typer.Option(help="Event that counts as active (default: any).")] = None,
        period: Annotated[str, typer.Option(help="week|month")] = "week",
        by: Annotated[
            str | None, typer.Option("--by", help="Break down by this property of the active events.")
        ] = None,
        limit: Annotated[int, typer.Option(help="Breakdown: top N values, the rest as other.")] = 10,
        frm: FromOpt = None,
        to: ToOpt = None,
        span: LastOpt = None,
        where: WhereOpt = None,
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """How many days per week/month users were active. / 用户粘性。"""
        from yunying.analytics.stickiness import StickinessQuery, run_stickiness

        s = settings_for(project)
        q = build(
            StickinessQuery, event=event, period=period, dates=_dates(frm, to, s.timezone, span),
            filters=_filters(where), breakdown={"property": by, "limit": limit} if by else None,
        )
        with read_warehouse(s) as wh:
            res = run_stickiness(wh, q)
            emit(res, fmt)
            if fmt == OutputFormat.table:
                for b in res.breakdowns:
                    avg = "-" if b.average_days is None else f"{b.average_days:.2f}"
                    console.print(t("stickiness.average_by", value=b.value, average=avg), markup=False)
