"""The operations overview: what is in the warehouse and the headline figures.

Windows are whole days in the project time zone, turned into UTC bounds in Python so the
same Ibis filters run on every engine.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import ibis
import pandas as pd
from pydantic import BaseModel

from yunying.i18n import t
from yunying.warehouse.engine import Warehouse
from yunying.warehouse.status import WarehouseStatus, warehouse_status


class Headline(BaseModel):
    as_of: dt.date | None
    users: int
    new_users_30d: int
    dau: int
    mau: int
    orders: int
    paying_users: int
    gmv: Decimal
    net_revenue: Decimal
    aov: Decimal | None
    refund_rate: float | None
    accounts: int
    active_subscriptions: int
    mrr: Decimal
    arr: Decimal


class Overview(BaseModel):
    status: WarehouseStatus
    headline: Headline

    def to_rows(self) -> tuple[list[str], list[list[object]]]:
        """Readable figures for the table: thousands separators, money to the cent, rates in %."""
        rows: list[list[object]] = [
            [t(f"overview.{k}"), _show(k, v)] for k, v in self.headline.model_dump().items()
        ]
        return [t("overview.figure"), t("overview.value")], rows


def _show(key: str, v: object) -> str:
    if v is None:
        return "-"
    if key.endswith("_rate") and isinstance(v, float):
        return f"{v:.2%}"
    if isinstance(v, Decimal):
        return f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


# Local days are clamped here, so that UTC bounds never fall outside what datetime holds.
_FIRST_DAY, _LAST_DAY = dt.date(1, 1, 2), dt.date(9999, 12, 30)


def local_day_bounds(day: dt.date, tz: str, days: int = 1) -> tuple[dt.datetime, dt.datetime]:
    """UTC (naive) bounds of ``days`` local days ending with ``day``."""
    zone = ZoneInfo(tz)
    day = min(max(day, _FIRST_DAY), _LAST_DAY)
    first = dt.date.fromordinal(max(day.toordinal() - (days - 1), _FIRST_DAY.toordinal()))
    start = dt.datetime.combine(first, dt.time(), zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
    utc = dt.UTC
    return (
        start.astimezone(utc).replace(tzinfo=None),
        end.astimezone(utc).replace(tzinfo=None),
    )


def last_local_day(wh: Warehouse, tz: str) -> dt.date | None:
    """The local day of the newest event, never after today (clock.today).

    Events stamped in the future (a client's wrong clock, a year 9999) do not move it: only
    events before the end of today count. Read as text, so any stored value is safe.
    """
    from yunying import clock
    from yunying.warehouse.status import parse_stored_time

    today = clock.today(tz)
    end_of_today = local_day_bounds(today, tz)[1]
    e = wh.table("events")
    v = parse_stored_time(wh.execute(e.filter(e.ts < end_of_today).ts.max().cast("string")))
    if v is None:
        return None
    if v.year < 2:  # no local day before the first one datetime holds
        return _FIRST_DAY
    local = v.replace(tzinfo=dt.UTC).astimezone(ZoneInfo(tz)).date()
    return min(local, today)


def _scalar(wh: Warehouse, expr: ibis.Expr) -> object:
    v = wh.execute(expr)
    return None if v is None or (not isinstance(v, str) and pd.isna(v)) else v


def headline(wh: Warehouse, tz: str, as_of: dt.date | None = None) -> Headline:
    from yunying import clock

    as_of = as_of or last_local_day(wh, tz)
    if as_of is not None:
        as_of = min(as_of, clock.today(tz))  # "as of" never passes today
    e, u, o = wh.table("events"), wh.table("users"), wh.table("orders")
    a, s = wh.table("accounts"), wh.table("subscriptions")
    dau = mau = new30 = 0
    if as_of is not None:
        d0, d1 = local_day_bounds(as_of, tz)
        m0, m1 = local_day_bounds(as_of, tz, 30)
        dau = int(wh.execute(e.filter((e.ts >= d0) & (e.ts < d1)).user_id.nunique()))
        mau = int(wh.execute(e.filter((e.ts >= m0) & (e.ts < m1)).user_id.nunique()))
        new30 = int(wh.execute(u.filter((u.first_seen >= m0) & (u.first_seen < m1)).count()))
    placed = o.filter(o.status.isin(["paid", "refunded"]))
    agg = wh.execute(
        placed.aggregate(
            n=placed.count(),
            payers=placed.user_id.nunique(),
            gmv=placed.amount.sum(),
            refunded=(placed.status == "refunded").sum(),
            net=placed.amount.sum(where=placed.status == "paid"),
        )
    ).iloc[0]
    n = int(agg["n"])
    gmv = _money(agg["gmv"])
    active = s
    if as_of is not None:
        active = s.filter((s.start_date <= as_of) & (s.end_date.isnull() | (s.end_date >= as_of)))
    subs = wh.execute(active.aggregate(n=active.count(), mrr=active.mrr.sum())).iloc[0]
    mrr = _money(subs["mrr"])
    return Headline(
        as_of=as_of,
        users=int(wh.execute(u.count())),
        new_users_30d=new30,
        dau=dau,
        mau=mau,
        orders=n,
        paying_users=int(agg["payers"]),
        gmv=gmv,
        net_revenue=_money(agg["net"]),
        aov=(gmv / n).quantize(Decimal("0.01")) if n else None,
        refund_rate=(int(agg["refunded"]) / n) if n else None,
        accounts=int(wh.execute(a.count())),
        active_subscriptions=int(subs["n"]),
        mrr=mrr,
        arr=mrr * 12,
    )


def _money(v: object) -> Decimal:
    if v is None or (not isinstance(v, Decimal) and pd.isna(v)):  # type: ignore[call-overload]
        return Decimal("0.00")
    return Decimal(str(v)).quantize(Decimal("0.01"))


def overview(wh: Warehouse, tz: str, as_of: dt.date | None = None) -> Overview:
    return Overview(status=warehouse_status(wh), headline=headline(wh, tz, as_of))
