"""RFM tiers (用户分层): who buys recently, often and a lot, as of a date.

Two schemes the operations team uses side by side:

* the Chinese 8-class scheme (DOMAIN.md §2): each of R, F, M is high or low against a
  threshold (the mean by default, the median or custom values as options);
* 1–5 quintile scores per letter with the usual named segments (Champions … Lost).

Everything per user is an Ibis expression over ``orders`` so it runs unchanged on DuckDB
and Spark; only the small per-class summary and the export come back to Python.
"""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel, ConfigDict, Field, model_validator

from yunying.analytics.common import engine_of, local_midnight_utc, local_ts, to_float
from yunying.errors import YunyingError
from yunying.i18n import t

Threshold = Literal["mean", "median", "custom"]

# (key, R high, F high, M high, zh, en) in the order of DOMAIN.md §2.
CLASSES: tuple[tuple[str, bool, bool, bool, str, str], ...] = (
    ("important_value", True, True, True, "重要价值客户", "important value"),
    ("important_development", True, False, True, "重要发展客户", "important development"),
    ("important_retention", False, True, True, "重要保持客户", "important retention"),
    ("important_winback", False, False, True, "重要挽留客户", "important win-back"),
    ("general_value", True, True, False, "一般价值客户", "general value"),
    ("general_development", True, False, False, "一般发展客户", "general development"),
    ("general_retention", False, True, False, "一般保持客户", "general retention"),
    ("general_winback", False, False, False, "一般挽留客户", "general win-back"),
)

# The usual RF-score segment map; (key, R scores, F scores, zh, en). Checked in order, so
# "lost" (R=1, F=1) is carved out of hibernating. Together they cover all 25 RF cells.
SEGMENTS: tuple[tuple[str, tuple[int, ...], tuple[int, ...], str, str], ...] = (
    ("champions", (5,), (4, 5), "冠军客户", "Champions"),
    ("loyal", (3, 4), (4, 5), "忠诚客户", "Loyal"),
    ("potential_loyalist", (4, 5), (2, 3), "潜在忠诚客户", "Potential loyalist"),
    ("new_customers", (5,), (1,), "新客户", "New customers"),
    ("promising", (4,), (1,), "有潜力客户", "Promising"),
    ("need_attention", (3,), (3,), "需要关注", "Need attention"),
    ("about_to_sleep", (3,), (1, 2), "即将沉睡", "About to sleep"),
    ("cant_lose", (1, 2), (5,), "不能失去", "Can't lose them"),
    ("at_risk", (1, 2), (3, 4), "有流失风险", "At risk"),
    ("lost", (1,), (1,), "已流失", "Lost"),
    ("hibernating", (1, 2), (1, 2), "沉睡客户", "Hibernating"),
)

USER_COLUMNS = (
    "user_id",
    "recency_days",
    "frequency",
    "monetary",
    "r_score",
    "f_score",
    "m_score",
    "segment",
    "rfm_class",
)


class RfmThresholds(BaseModel):
    """Where "high" starts: R high means recency days strictly below, F/M strictly above."""

    recency_days: float
    frequency: float
    monetary: float


class RfmQuery(BaseModel):
    """RFM as of ``as_of`` (inclusive, project time zone) over ``lookback_days`` days."""

    model_config = ConfigDict(extra="forbid")

    as_of: date | None = None  # default: the day of the latest paid order
    lookback_days: int = Field(default=365, ge=1, le=36500)
    threshold: Threshold = "mean"
    # Only with threshold="custom"; all three are needed.
    recency_threshold: float | None = Field(default=None, ge=0)
    frequency_threshold: float | None = Field(default=None, ge=0)
    monetary_threshold: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _custom(self) -> RfmQuery:
        values = (self.recency_threshold, self.frequency_threshold, self.monetary_threshold)
        if self.threshold == "custom" and any(v is None for v in values):
            raise ValueError(
                "threshold 'custom' needs recency_threshold, frequency_threshold and "
                "monetary_threshold"
            )
        if self.threshold != "custom" and any(v is not None for v in values):
            raise ValueError("custom thresholds are only used with threshold 'custom'")
        return self


class RfmGroup(BaseModel):
    """One class or segment: how many users, what share of users and of revenue."""

    key: str
    name_zh: str
    name_en: str
    users: int
    share: float
    revenue: float
    revenue_share: float
    avg_spend: float | None


class RfmResult(BaseModel):
    as_of: date
    window_start: date
    lookback_days: int
    threshold: Threshold
    thresholds: RfmThresholds
    users: int
    revenue: float
    classes: list[RfmGroup]
    segments: list[RfmGroup]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        """The 8 classes then the 11 segments, names in the current language."""
        headers = [
            t("rfm.col.group"),
            t("rfm.col.users"),
            t("rfm.col.share"),
            t("rfm.col.revenue"),
            t("rfm.col.revenue_share"),
            t("rfm.col.avg_spend"),
        ]
        rows: list[list[Any]] = []
        for g in self.classes + self.segments:
            rows.append(
                [
                    t(f"rfm.name.{g.key}"),
                    g.users,
                    f"{g.share:.1%}",
                    f"{g.revenue:.2f}",
                    f"{g.revenue_share:.1%}",
                    None if g.avg_spend is None else f"{g.avg_spend:.2f}",
                ]
            )
        return headers, rows


# ---------------------------------------------------------------------------------------


def group_names() -> dict[str, tuple[str, str, str]]:
    """Every accepted spelling of a class or segment (key, zh, en) -> (kind, column, key)."""
    out: dict[str, tuple[str, str, str]] = {}
    for key, _r, _f, _m, zh, en in CLASSES:
        for name in (key, zh, en):
            out[name.lower()] = ("class", "rfm_class", key)
    for key, _rs, _fs, zh, en in SEGMENTS:
        for name in (key, zh, en):
            out[name.lower()] = ("segment", "segment", key)
    return out


def resolve_group(name: str) -> tuple[str, str]:
    """A user-typed class/segment name -> (column, key); unknown names list the choices."""
    found = group_names().get(name.strip().lower())
    if found is None:
        keys = [c[0] for c in CLASSES] + [s[0] for s in SEGMENTS]
        raise YunyingError("rfm.unknown_class", name=name, choices=", ".join(keys))
    return found[1], found[2]


def _paid_orders(wh: Any) -> ir.Table:
    o = wh.table("orders")
    return o.filter(o.status == "paid", o.user_id.notnull(), o.amount.notnull())


def latest_order_day(wh: Any) -> date:
    """The local day of the latest paid order (the default ``as_of``)."""
    engine = engine_of(wh)
    o = _paid_orders(wh)
    last = wh.execute(o.ts.max())
    if last is None or last != last:
        raise YunyingError("rfm.no_orders")
    day = wh.execute(local_ts(engine, ibis.literal(last, type="timestamp"), wh.settings.timezone).date())
    return _as_date(day)


def _as_date(v: Any) -> date:
    if hasattr(v, "date") and callable(v.date):
        return v.date()  # type: ignore[no-any-return]
    return v  # type: ignore[no-any-return]


def per_user(wh: Any, q: RfmQuery) -> tuple[ir.Table, date, date]:
    """Per-user recency (days), frequency (paid orders) and monetary (spend) in the window."""
    engine = engine_of(wh)
    tz = wh.settings.timezone
    as_of = q.as_of or latest_order_day(wh)
    start_day = as_of - timedelta(days=q.lookback_days - 1)
    lo, hi = local_midnight_utc(start_day, tz), local_midnight_utc(as_of + timedelta(days=1), tz)
    o = _paid_orders(wh)
    o = o.filter(o.ts >= lo, o.ts < hi)
    o = o.mutate(day=local_ts(engine, o.ts, tz).date())
    pu = o.group_by("user_id").aggregate(
        last_day=o.day.max(),
        frequency=o.count(),
        monetary=o.amount.sum(),
    )
    pu = pu.mutate(
        recency_days=ibis.literal(as_of).delta(pu.last_day, unit="day"),
        monetary=pu.monetary.cast("float64"),
    )
    return pu.select("user_id", "recency_days", "frequency", "monetary"), as_of, start_day


def _threshold_columns(pu: ir.Table, q: RfmQuery) -> tuple[ir.Value, ir.Value, ir.Value]:
    """Thresholds as expressions (window aggregates or literals): no extra round trip."""
    if q.threshold == "custom":
        assert q.recency_threshold is not None
        assert q.frequency_threshold is not None
        assert q.monetary_threshold is not None
        return (
            ibis.literal(float(q.recency_threshold)),
            ibis.literal(float(q.frequency_threshold)),
            ibis.literal(float(q.monetary_threshold)),
        )
    agg = "mean" if q.threshold == "mean" else "median"
    cols = (pu.recency_days.cast("float64"), pu.frequency.cast("float64"), pu.monetary)
    r, f, m = (getattr(c, agg)().over() for c in cols)
    return r, f, m


def _score(
    col: ir.NumericColumn, n: ir.IntegerValue, descending: bool = False
) -> ir.IntegerValue:
    """1–5 by rank: 1 + floor(5 * rank / n) with ties sharing the lowest rank."""
    order = ibis.desc(col) if descending else col
    rank = ibis.rank().over(order_by=order)
    return (1 + (rank * 5) // n).cast("int64")  # type: ignore[no-any-return]


def scored(wh: Any, q: RfmQuery) -> tuple[ir.Table, date, date]:
    """Per user: R, F, M, the 1–5 scores, the named segment, the 8-class label, thresholds."""
    pu, as_of, start_day = per_user(wh, q)
    th_r, th_f, th_m = _threshold_columns(pu, q)
    n = pu.user_id.count().over()
    s = pu.mutate(
        r_score=_score(pu.recency_days, n, descending=True),
        f_score=_score(pu.frequency, n),
        m_score=_score(pu.monetary, n),
        th_r=th_r,
        th_f=th_f,
        th_m=th_m,
    )
    s = s.mutate(
        r_high=s.recency_days < s.th_r,
        f_high=s.frequency > s.th_f,
        m_high=s.monetary > s.th_m,
    )
    s = s.mutate(
        rfm_class=ibis.cases(
            *[
                ((s.r_high == rh) & (s.f_high == fh) & (s.m_high == mh), key)
                for key, rh, fh, mh, _zh, _en in CLASSES
            ]
        ),
        segment=ibis.cases(
            *[(s.r_score.isin(rs) & s.f_score.isin(fs), key) for key, rs, fs, _zh, _en in SEGMENTS]
        ),
    )
    return s.select(*USER_COLUMNS, "th_r", "th_f", "th_m"), as_of, start_day


def run_rfm(wh: Any, q: RfmQuery) -> RfmResult:
    """One query: users and revenue per (class, segment) cell, with the thresholds used."""
    s, as_of, start_day = scored(wh, q)
    cells = wh.execute(
        s.group_by(["rfm_class", "segment"]).aggregate(
            users=s.count(),
            revenue=s.monetary.sum(),
            th_r=s.th_r.max(),
            th_f=s.th_f.max(),
            th_m=s.th_m.max(),
        )
    )
    users = int(cells["users"].sum()) if len(cells) else 0
    if users == 0:
        raise YunyingError("rfm.no_orders_window", start=str(start_day), end=str(as_of))
    revenue = float(cells["revenue"].sum())
    th = RfmThresholds(
        recency_days=float(cells["th_r"].iloc[0]),
        frequency=float(cells["th_f"].iloc[0]),
        monetary=float(cells["th_m"].iloc[0]),
    )
    by_class = cells.groupby("rfm_class", as_index=False)[["users", "revenue"]].sum()
    by_segment = cells.groupby("segment", as_index=False)[["users", "revenue"]].sum()

    def groups(df: Any, col: str, defs: list[tuple[str, str, str]]) -> list[RfmGroup]:
        stats = {str(r[col]): (int(r["users"]), to_float(r["revenue"]) or 0.0) for _, r in df.iterrows()}
        out = []
        for key, zh, en in defs:
            n, rev = stats.get(key, (0, 0.0))
            out.append(
                RfmGroup(
                    key=key,
                    name_zh=zh,
                    name_en=en,
                    users=n,
                    share=n / users,
                    revenue=round(rev, 2),
                    revenue_share=rev / revenue if revenue else 0.0,
                    avg_spend=round(rev / n, 2) if n else None,
                )
            )
        return out

    return RfmResult(
        as_of=as_of,
        window_start=start_day,
        lookback_days=q.lookback_days,
        threshold=q.threshold,
        thresholds=th,
        users=users,
        revenue=round(revenue, 2),
        classes=groups(by_class, "rfm_class", [(c[0], c[4], c[5]) for c in CLASSES]),
        segments=groups(by_segment, "segment", [(g[0], g[3], g[4]) for g in SEGMENTS]),
    )


def export_rfm_users(wh: Any, q: RfmQuery, path: str | Path, group: str | None = None) -> int:
    """Write the per-user RFM table (``user_id`` first, so it loads as a target list).

    ``group`` is a class or segment (key, Chinese or English name) to keep only its users.
    """
    s, _as_of, _start = scored(wh, q)
    if group:
        col, key = resolve_group(group)
        s = s.filter(s[col] == key)
    df = wh.execute(s.order_by("user_id"))
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(USER_COLUMNS)
            for row in df.itertuples(index=False):
                w.writerow(
                    [
                        row.user_id,
                        int(row.recency_days),
                        int(row.frequency),
                        f"{float(row.monetary):.2f}",
                        int(row.r_score),
                        int(row.f_score),
                        int(row.m_score),
                        row.segment,
                        row.rfm_class,
                    ]
                )
    except (OSError, ValueError) as e:
        raise YunyingError("value.export_failed", path=str(p), reason=str(e)) from e
    return len(df)
