"""RFM tiers (用户分层): who buys recently, often and a lot, as of a date.

Two schemes the operations team uses side by side:

* the Chinese 8-class scheme (DOMAIN.md §2): each of R, F, M is high or low against a
  threshold (the mean by default, the median or custom values as options);
* 1–5 quintile scores per letter with the usual named segments (Champions … Lost).

Everything per user is an Ibis expression over ``orders`` (``scored``) so it runs
unchanged on DuckDB and Spark; only the small per-class summary and the export come back
to Python. ``run_rfm`` on DuckDB takes a faster path with the same answer (tested): one
aggregate brings recency, frequency and spend in cents per user into NumPy, where the
thresholds, the 1–5 ranks (by counting: recency and frequency are small integers) and
the class x segment cells cost a few array passes, instead of three window sorts. Both
paths compare with the mean exactly, in integer cents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field, model_validator

from yunying.analytics.common import (
    QUERY_CONFIG,
    QueryDate,
    engine_of,
    local_midnight_utc,
    local_ts,
)
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

    model_config = QUERY_CONFIG

    as_of: QueryDate | None = None  # default: the day of the latest paid order
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


def _window(wh: Any, q: RfmQuery) -> tuple[date, date]:
    """(as_of, first day of the look-back window), local days."""
    as_of = q.as_of or latest_order_day(wh)
    return as_of, as_of - timedelta(days=q.lookback_days - 1)


def _per_user_raw(wh: Any, as_of: date, start_day: date) -> ir.Table:
    """Per user: recency (days), frequency and monetary (the exact decimal sum)."""
    engine = engine_of(wh)
    tz = wh.settings.timezone
    lo, hi = local_midnight_utc(start_day, tz), local_midnight_utc(as_of + timedelta(days=1), tz)
    o = _paid_orders(wh)
    o = o.filter(o.ts >= lo, o.ts < hi)
    o = o.mutate(day=local_ts(engine, o.ts, tz).date())
    pu = o.group_by("user_id").aggregate(
        last_day=o.day.max(),
        frequency=o.count(),
        monetary=o.amount.sum(),
    )
    return pu.mutate(recency_days=ibis.literal(as_of).delta(pu.last_day, unit="day"))


def per_user(wh: Any, q: RfmQuery) -> tuple[ir.Table, date, date]:
    """Per-user recency (days), frequency (paid orders) and monetary (spend) in the window."""
    as_of, start_day = _window(wh, q)
    pu = _per_user_raw(wh, as_of, start_day)
    pu = pu.mutate(monetary=pu.monetary.cast("float64"))
    return pu.select("user_id", "recency_days", "frequency", "monetary"), as_of, start_day


def _flags(
    pu: ir.Table, q: RfmQuery
) -> tuple[ir.BooleanValue, ir.BooleanValue, ir.BooleanValue, ir.Value, ir.Value, ir.Value]:
    """(R high, F high, M high, R, F, M thresholds) as expressions over ``pu``.

    ``pu`` has recency_days, frequency, monetary, spend in integer ``cents`` and ``n``.
    Whole-table aggregates are reductions of ``pu``'s own columns used in ``pu.mutate``,
    which Ibis turns into windows bound to ``pu``; no ``.over()`` without a table, a form
    that can fall back to an unbound ``_`` ("Unable to infer datatype _.count().over()").

    The mean is compared exactly, x * n against the sum in decimal(38, 0): a spend equal
    to the mean is not above it, whatever the rounding of a float mean. The median of
    integers (or their midpoint) is exact in float64 already.
    """
    r, f, c = pu.recency_days, pu.frequency, pu.cents
    if q.threshold == "custom":
        assert q.recency_threshold is not None
        assert q.frequency_threshold is not None
        assert q.monetary_threshold is not None
        tr = ibis.literal(float(q.recency_threshold))
        tf = ibis.literal(float(q.frequency_threshold))
        tm = ibis.literal(float(q.monetary_threshold))
        return r < tr, f > tf, pu.monetary > tm, tr, tf, tm
    if q.threshold == "mean":

        def big(v: ir.IntegerColumn) -> ir.DecimalColumn:
            return v.cast(dt.Decimal(38, 0))  # type: ignore[return-value]

        sr, sf, sc = big(r).sum(), big(f).sum(), big(c).sum()
        n = pu.n
        nf = n.cast("float64")
        return (
            big(r) * n < sr,
            big(f) * n > sf,
            big(c) * n > sc,
            sr.cast("float64") / nf,
            sf.cast("float64") / nf,
            sc.cast("float64") / (nf * 100),
        )
    mr, mf, mc = (v.cast("float64").median() for v in (r, f, c))
    return r < mr, f > mf, c > mc, mr, mf, mc / 100


def _score(col: ir.NumericColumn, n: ir.IntegerValue, descending: bool = False) -> ir.IntegerValue:
    """1–5 by rank: 1 + floor(5 * rank / n) with ties sharing the lowest rank (0-based).

    ``col`` and ``n`` are columns of the per-user table, so the window is bound to it.
    """
    order = ibis.desc(col) if descending else col
    rank = ibis.rank().over(ibis.window(order_by=order))
    return (1 + (rank * 5) // n).cast("int64")  # type: ignore[no-any-return]


def scored(wh: Any, q: RfmQuery) -> tuple[ir.Table, date, date]:
    """Per user: R, F, M, the 1–5 scores, the named segment, the 8-class label, thresholds.

    The generic path (any engine, and what segments and exports build on); also keeps
    the exact spend in ``cents``.
    """
    as_of, start_day = _window(wh, q)
    raw = _per_user_raw(wh, as_of, start_day)
    pu = raw.select(
        "user_id",
        "recency_days",
        "frequency",
        monetary=raw.monetary.cast("float64"),
        cents=(raw.monetary * 100).cast("int64"),
    )
    pu = pu.mutate(n=pu.count())
    r_high, f_high, m_high, th_r, th_f, th_m = _flags(pu, q)
    s = pu.mutate(
        r_score=_score(pu.recency_days, pu.n, descending=True),
        f_score=_score(pu.frequency, pu.n),
        m_score=_score(pu.monetary, pu.n),
        r_high=r_high,
        f_high=f_high,
        m_high=m_high,
        th_r=th_r,
        th_f=th_f,
        th_m=th_m,
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
    return s.select(*USER_COLUMNS, "cents", "th_r", "th_f", "th_m"), as_of, start_day


@dataclass(frozen=True)
class _Cells:
    """Users and revenue per (class, segment) cell, in CLASSES x SEGMENTS order."""

    users: npt.NDArray[np.int64]
    revenue: npt.NDArray[np.float64]
    thresholds: RfmThresholds


_CLASS_INDEX = {c[0]: i for i, c in enumerate(CLASSES)}
_SEGMENT_INDEX = {g[0]: i for i, g in enumerate(SEGMENTS)}


def _class_table() -> npt.NDArray[np.intp]:
    """[r_high, f_high, m_high] -> class index."""
    out = np.zeros((2, 2, 2), dtype=np.intp)
    for i, (_key, rh, fh, mh, _zh, _en) in enumerate(CLASSES):
        out[int(rh), int(fh), int(mh)] = i
    return out


def _segment_table() -> npt.NDArray[np.intp]:
    """[r_score, f_score] -> segment index, the first segment that matches (as in SQL)."""
    out = np.full((6, 6), -1, dtype=np.intp)
    for r in range(1, 6):
        for f in range(1, 6):
            out[r, f] = next(
                i for i, (_k, rs, fs, _zh, _en) in enumerate(SEGMENTS) if r in rs and f in fs
            )
    return out


_CLASS_OF = _class_table()
_SEGMENT_OF = _segment_table()


def _cells_generic(wh: Any, q: RfmQuery) -> tuple[_Cells, date, date]:
    """Any engine: the per-user Ibis table grouped into cells, one query."""
    s, as_of, start_day = scored(wh, q)
    df = wh.execute(
        s.group_by(["rfm_class", "segment"]).aggregate(
            users=s.count(),
            cents=s.cents.sum(),
            th_r=s.th_r.max(),
            th_f=s.th_f.max(),
            th_m=s.th_m.max(),
        )
    )
    users = np.zeros((len(CLASSES), len(SEGMENTS)), dtype=np.int64)
    revenue = np.zeros((len(CLASSES), len(SEGMENTS)), dtype=np.float64)
    for row in df.itertuples(index=False):
        i, j = _CLASS_INDEX[str(row.rfm_class)], _SEGMENT_INDEX[str(row.segment)]
        users[i, j] = int(row.users)
        revenue[i, j] = int(row.cents) / 100
    th = RfmThresholds(recency_days=0.0, frequency=0.0, monetary=0.0)
    if len(df):
        th = RfmThresholds(
            recency_days=float(df["th_r"].iloc[0]),
            frequency=float(df["th_f"].iloc[0]),
            monetary=float(df["th_m"].iloc[0]),
        )
    return _Cells(users, revenue, th), as_of, start_day


IntArr = npt.NDArray[np.int64]


def _distinct(v: IntArr) -> tuple[IntArr, IntArr, IntArr]:
    """(sorted distinct values, their counts, each element's index into them).

    Recency and frequency are small non-negative integers: the values are then simply
    0..max and the element is its own index (no sort, no copy).
    """
    n = len(v)
    if int(v.min()) >= 0 and int(v.max()) <= 4 * n + 1024:
        counts = np.bincount(v)
        return np.arange(len(counts), dtype=np.int64), counts, v
    values, index, counts = np.unique(v, return_inverse=True, return_counts=True)
    return values, counts, index.astype(np.int64, copy=False)


def _scores(counts: IntArr, n: int, descending: bool = False) -> IntArr:
    """1 + floor(5 * rank / n) per distinct value, rank 0-based with ties sharing the lowest."""
    below = np.cumsum(counts) - counts
    rank = n - below - counts if descending else below
    return 1 + (rank * 5) // n  # type: ignore[no-any-return]


def _median_pair(values: IntArr, counts: IntArr) -> tuple[int, int]:
    """The two middle values (equal when n is odd) from distinct values and counts."""
    n = int(counts.sum())
    cum = np.cumsum(counts)
    lo, hi = np.searchsorted(cum, [(n - 1) // 2 + 1, n // 2 + 1])
    return int(values[lo]), int(values[hi])


def _median_pair_of(v: IntArr) -> tuple[int, int]:
    n = len(v)
    lo_k, hi_k = (n - 1) // 2, n // 2
    part = np.partition(v, [lo_k, hi_k])
    return int(part[lo_k]), int(part[hi_k])


# code = 144 R-high + 72 F-high + 36 M-high + 6 r_score + f_score, 288 codes -> 8 x 11 cells
_CODE_CELL = np.array(
    [
        _CLASS_OF[c // 144, (c // 72) % 2, (c // 36) % 2] * len(SEGMENTS)
        + max(_SEGMENT_OF[(c % 36) // 6, c % 6], 0)
        for c in range(288)
    ],
    dtype=np.intp,
)


def _cells_duckdb(wh: Any, q: RfmQuery) -> tuple[_Cells, date, date]:
    """DuckDB: one aggregate to NumPy (recency, frequency, spend in cents per user), then
    counting. Same answer as ``_cells_generic`` (tested); the mean and the median are
    compared exactly, in integers.

    Everything about R (high or not, score) depends only on the recency value, a small
    integer, so it is computed once per distinct value and gathered; likewise F. Per user
    there remain two gathers, one comparison (M) and two counts.
    """
    as_of, start_day = _window(wh, q)
    pu = _per_user_raw(wh, as_of, start_day)
    tab = wh.to_pyarrow(
        pu.select(
            r=pu.recency_days.cast("int64"),
            f=pu.frequency.cast("int64"),
            c=(pu.monetary * 100).cast("int64"),
        )
    )
    r, f, c = (np.asarray(tab.column(k).to_numpy(), dtype=np.int64) for k in ("r", "f", "c"))
    n = len(r)
    shape = (len(CLASSES), len(SEGMENTS))
    if n == 0:
        th = RfmThresholds(recency_days=0.0, frequency=0.0, monetary=0.0)
        return _Cells(np.zeros(shape, np.int64), np.zeros(shape), th), as_of, start_day
    rv, rn, ri = _distinct(r)
    fv, fn, fi = _distinct(f)
    if q.threshold == "mean":
        sr, sf, sc = int(rv @ rn), int(fv @ fn), int(c.sum())
        # x < S/n and x > S/n for integers x, without rounding: S/n is rarely exact.
        r_high = rv < -(-sr // n)
        f_high = fv > sf // n
        m_high = c > sc // n
        th = RfmThresholds(recency_days=sr / n, frequency=sf / n, monetary=sc / (100 * n))
    elif q.threshold == "median":
        (rl, rh), (fl, fh), (cl, ch) = _median_pair(rv, rn), _median_pair(fv, fn), _median_pair_of(c)
        r_high = 2 * rv < rl + rh
        f_high = 2 * fv > fl + fh
        m_high = 2 * c > cl + ch
        th = RfmThresholds(
            recency_days=(rl + rh) / 2, frequency=(fl + fh) / 2, monetary=(cl + ch) / 200
        )
    else:
        assert q.recency_threshold is not None
        assert q.frequency_threshold is not None
        assert q.monetary_threshold is not None
        r_high = rv < float(q.recency_threshold)
        f_high = fv > float(q.frequency_threshold)
        m_high = c / 100.0 > float(q.monetary_threshold)  # as the generic path's float spend
        th = RfmThresholds(
            recency_days=float(q.recency_threshold),
            frequency=float(q.frequency_threshold),
            monetary=float(q.monetary_threshold),
        )
    r_part = (144 * r_high + 6 * _scores(rn, n, descending=True)).astype(np.int16)
    f_part = (72 * f_high + _scores(fn, n)).astype(np.int16)
    code = r_part[ri] + f_part[fi]
    code += 36 * m_high.astype(np.int16)
    users = np.bincount(code, minlength=288)
    cents = np.bincount(code, weights=c.astype(np.float64), minlength=288)
    size = shape[0] * shape[1]
    cell_users = np.bincount(_CODE_CELL, weights=users, minlength=size)
    cell_cents = np.bincount(_CODE_CELL, weights=cents, minlength=size)
    return (
        _Cells(cell_users.reshape(shape).astype(np.int64), cell_cents.reshape(shape) / 100.0, th),
        as_of,
        start_day,
    )


def run_rfm(wh: Any, q: RfmQuery, fast: bool = True) -> RfmResult:
    """Users and revenue per class and per segment, with the thresholds used.

    On DuckDB (``fast``) one aggregate and NumPy; elsewhere one Ibis query with windows.
    """
    if fast and engine_of(wh) == "duckdb":
        cells, as_of, start_day = _cells_duckdb(wh, q)
    else:
        cells, as_of, start_day = _cells_generic(wh, q)
    users = int(cells.users.sum())
    if users == 0:
        raise YunyingError("rfm.no_orders_window", start=str(start_day), end=str(as_of))
    revenue = float(cells.revenue.sum())

    def groups(
        n_by: npt.NDArray[np.int64], rev_by: npt.NDArray[np.float64], defs: list[tuple[str, str, str]]
    ) -> list[RfmGroup]:
        out = []
        for (key, zh, en), n, rev in zip(defs, n_by.tolist(), rev_by.tolist(), strict=True):
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
        thresholds=cells.thresholds,
        users=users,
        revenue=round(revenue, 2),
        classes=groups(
            cells.users.sum(axis=1), cells.revenue.sum(axis=1), [(c[0], c[4], c[5]) for c in CLASSES]
        ),
        segments=groups(
            cells.users.sum(axis=0), cells.revenue.sum(axis=0), [(g[0], g[3], g[4]) for g in SEGMENTS]
        ),
    )


def export_rfm_users(wh: Any, q: RfmQuery, path: str | Path, group: str | None = None) -> int:
    """Write the per-user RFM table (``user_id`` first, so it loads as a target list).

    ``group`` is a class or segment (key, Chinese or English name) to keep only its users.
    """
    from yunying import csvsafe

    s, _as_of, _start = scored(wh, q)
    if group:
        col, key = resolve_group(group)
        s = s.filter(s[col] == key)
    df = wh.execute(s.order_by("user_id"))
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("w", encoding="utf-8", newline="") as fh:
            w = csvsafe.writer(fh)
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
