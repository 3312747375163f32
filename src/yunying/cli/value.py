"""``yunying rfm`` (RFM 分层) and ``yunying clv`` (客户终身价值): customer value commands."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from yunying import clock, timeexpr
from yunying.cli.common import FormatOpt, OutputFormat, ProjectOpt, emit, err_console, settings_for
from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.i18n import t

Q = TypeVar("Q", bound=BaseModel)


class ThresholdChoice(StrEnum):
    mean = "mean"
    median = "median"
    custom = "custom"


class PeriodChoice(StrEnum):
    day = "day"
    week = "week"
    month = "month"


def _day(v: str | None, s: Settings) -> date | None:
    return timeexpr.parse_day(v, clock.today(s.timezone)) if v else None


def build_query(model: Callable[..., Q], **fields: Any) -> Q:
    """Pydantic validation errors become one translated, actionable message."""
    try:
        return model(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        reason = f"{where}: {first['msg']}" if where else str(first["msg"])
        raise YunyingError("value.bad_query", reason=reason) from None


def register(app: typer.Typer) -> None:
    @app.command("rfm")
    def rfm_cmd(
        project: ProjectOpt = None,
        as_of: Annotated[
            str | None,
            typer.Option("--as-of", help="Last day included (local): YYYY-MM-DD, yesterday, -7d … Default: latest order day."),
        ] = None,
        lookback: Annotated[int, typer.Option("--lookback", help="Days in the window, ending at --as-of.")] = 365,
        threshold: Annotated[
            ThresholdChoice, typer.Option("--threshold", help="High/low split for the 8 classes.")
        ] = ThresholdChoice.mean,
        r_threshold: Annotated[
            float | None, typer.Option("--r-threshold", help="Custom: recency days below = high R.")
        ] = None,
        f_threshold: Annotated[
            float | None, typer.Option("--f-threshold", help="Custom: orders above = high F.")
        ] = None,
        m_threshold: Annotated[
            float | None, typer.Option("--m-threshold", help="Custom: spend above = high M.")
        ] = None,
        export_users: Annotated[
            Path | None, typer.Option("--export-users", help="Write the per-user RFM table (CSV).")
        ] = None,
        group: Annotated[
            str | None,
            typer.Option("--class", help="With --export-users: only this class or segment (key, 中文 or English name)."),
        ] = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """RFM tiers: the 8 classes (重要价值客户 …) and the 1–5 score segments. / RFM 用户分层。"""
        s = settings_for(project)
        from yunying.analytics.rfm import RfmQuery, export_rfm_users, run_rfm
        from yunying.warehouse.engine import open_warehouse

        q = build_query(
            RfmQuery,
            as_of=_day(as_of, s),
            lookback_days=lookback,
            threshold=threshold.value,
            recency_threshold=r_threshold,
            frequency_threshold=f_threshold,
            monetary_threshold=m_threshold,
        )
        if group and not export_users:
            raise YunyingError("value.bad_query", reason="--class needs --export-users")
        with open_warehouse(s) as wh:
            result = run_rfm(wh, q)
            if export_users is not None:
                n = export_rfm_users(wh, q, export_users, group)
                err_console.print(t("value.exported", count=n, path=str(export_users)))
        th = result.thresholds
        title = t(
            "value.rfm.title",
            as_of=str(result.as_of),
            start=str(result.window_start),
            threshold=result.threshold,
            r=f"{th.recency_days:.4g}",
            f=f"{th.frequency:.4g}",
            m=f"{th.monetary:.2f}",
        )
        emit(result, fmt, title=title)

    @app.command("clv")
    def clv_cmd(
        project: ProjectOpt = None,
        calibration_end: Annotated[
            str | None,
            typer.Option("--calibration-end", help="Last day (inclusive) the models learn from: YYYY-MM-DD or -60d … Default: latest order day."),
        ] = None,
        calibration_start: Annotated[
            str | None,
            typer.Option("--calibration-start", help="Only customers whose first order is on or after this day."),
        ] = None,
        holdout_end: Annotated[
            str | None,
            typer.Option("--holdout-end", help="Validate predictions on the orders after the calibration end up to this day."),
        ] = None,
        period: Annotated[
            PeriodChoice, typer.Option("--period", help="Time unit of recency, T and the horizon.")
        ] = PeriodChoice.week,
        horizon: Annotated[
            float, typer.Option("--horizon", help="Expected purchases over the next H periods.")
        ] = 52.0,
        months: Annotated[int, typer.Option("--months", help="CLV horizon in months.")] = 12,
        discount_rate: Annotated[
            float, typer.Option("--discount-rate", help="Monthly discount rate (0.01 = 1 %/month).")
        ] = 0.01,
        top: Annotated[int, typer.Option("--top", help="Customers listed in the JSON result.")] = 20,
        export_users: Annotated[
            Path | None, typer.Option("--export-users", help="Write per-customer predictions (CSV).")
        ] = None,
        min_clv: Annotated[
            float | None, typer.Option("--min-clv", help="With --export-users: only CLV >= this.")
        ] = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """CLV with BG/NBD + Gamma-Gamma: P(alive), expected purchases, value. / 客户终身价值。"""
        s = settings_for(project)
        from yunying.analytics.clv import ClvQuery, clv_result, export_clv_users, fit_clv
        from yunying.warehouse.engine import open_warehouse

        q = build_query(
            ClvQuery,
            calibration_end=_day(calibration_end, s),
            calibration_start=_day(calibration_start, s),
            holdout_end=_day(holdout_end, s),
            period=period.value,
            horizon=horizon,
            months=months,
            discount_rate=discount_rate,
            top=top,
        )
        with open_warehouse(s) as wh:
            fit = fit_clv(wh, q)
            result = clv_result(wh, q, fit)
            if export_users is not None:
                n = export_clv_users(fit, export_users, min_clv)
                err_console.print(t("value.exported", count=n, path=str(export_users)))
        emit(result, fmt, title=t("value.clv.title", end=str(result.calibration_end), period=q.period))
