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


def local_day_bounds(day: dt.date, tz: str, days: int = 1) -> tuple[dt.datetime, dt.datetime]:
    """UTC (naive) bounds of ``days`` local days ending with ``day``."""
    zone = ZoneInfo(tz)
    start = dt.datetime.combine(day - dt.timedelta(days=days - 1), dt.time(), zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
    utc = dt.UTC
    return (
        start.astimezone(utc).replace(tzinfo=None),
        end.astimezone(utc).replace(tzinfo=None),
    )


def last_local_day(wh: Warehouse, tz: str) -> dt.date | None:
    e = wh.table("events")
    v = wh.execute(e.ts.max())
    if v is None or pd.isna(v):
        return None
    return pd.Timestamp(v).tz_localize("UTC").tz_convert(tz).date()  # type: ignore[no-any-return]


def _scalar(wh: Warehouse, expr: ibis.Expr) -> object:
    v = wh.execute(expr)
    return None if v is None or (not isinstance(v, str) and pd.isna(v)) else v


def headline(wh: Warehouse, tz: str, as_of: dt.date | None = None) -> Headline:
    as_of = as_of or last_local_day(wh, tz)
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
