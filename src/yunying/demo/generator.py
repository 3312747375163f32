"""A deterministic demo company: a 2C e-commerce app and a 2B SaaS side.

Everything is drawn with numpy in blocks of users, so memory stays bounded at any size
(``--users 1000000`` works) and the same seed always gives the same rows. The data is
shaped so every analysis has something to find: channels differ in quality, weekends and
a promotion lift traffic, users churn and some come back, accounts upgrade, downgrade,
churn and reactivate.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pyarrow as pa

from yunying import clock
from yunying.demo.experiment import (
    PAY_LIFT,
    WINDOW_DAYS,
    demo_experiment,
    first_exposure,
    variants_of,
)
from yunying.experiments.assignment import exposure_table
from yunying.experiments.spec import ExperimentSpec

BLOCK_USERS = 50_000
SECOND = np.int64(1_000_000)  # microseconds
DAY = 86_400 * SECOND

CHANNELS = ("organic", "sem", "social", "referral", "kol")
CHANNEL_SHARE = np.array([0.35, 0.25, 0.20, 0.10, 0.10])
# Per channel: share who come back after the first visit, daily churn hazard, buy propensity.
CHANNEL_ACTIVATION = np.array([0.75, 0.60, 0.50, 0.80, 0.45])
CHANNEL_HAZARD = np.array([0.030, 0.050, 0.070, 0.025, 0.090])
CHANNEL_BUY = np.array([1.00, 0.90, 0.65, 1.25, 0.70])
PLATFORMS = ("ios", "android", "web", "miniprogram")
PLATFORM_SHARE = np.array([0.35, 0.40, 0.10, 0.15])
CITIES = ("上海", "北京", "深圳", "杭州", "成都", "武汉", "西安", "南京")
CITY_SHARE = np.array([0.18, 0.16, 0.14, 0.12, 0.12, 0.10, 0.09, 0.09])
CATEGORIES = ("服饰", "美妆", "数码", "食品", "家居", "母婴")
CATEGORY_PRICE = np.array([4.9, 5.1, 6.2, 4.0, 5.3, 4.8])  # log-mean price
KEYWORDS = ("连衣裙", "口红", "耳机", "零食", "收纳", "奶粉", "手机壳", "面膜")
# Local hour-of-day weights: evenings peak.
HOUR_WEIGHTS = np.array(
    [2, 1, 1, 1, 1, 1, 2, 4, 6, 6, 6, 7, 8, 7, 6, 6, 6, 7, 8, 10, 12, 12, 9, 5], dtype=float
)

INDUSTRIES = ("零售", "制造", "金融", "教育", "医疗", "互联网")
TIERS = ("KA", "mid", "SMB")
TIER_SHARE = np.array([0.06, 0.24, 0.70])
TIER_SEATS = np.array([40, 12, 4])
PLANS = ("basic", "pro", "enterprise")
PLAN_MRR = np.array([299.0, 1299.0, 6999.0])
OWNERS = ("王芳", "李伟", "张敏", "刘洋", "陈静", "杨磊", "赵丽", "黄勇")


def yesterday(tz: str = "Asia/Shanghai") -> dt.date:
    """The default last day of demo data: the day before the clock's today in ``tz``."""
    return clock.today(tz) - dt.timedelta(days=1)


@dataclass(frozen=True)
class DemoSpec:
    """Same seed, size and ``end``: the same rows. ``end`` defaults to yesterday, so the
    demo always looks current and its example campaign is never already over."""

    users: int = 20_000
    days: int = 180
    seed: int = 42
    end: dt.date = field(default_factory=yesterday)
    timezone: str = "Asia/Shanghai"
    currency: str = "CNY"

    @property
    def start(self) -> dt.date:
        return self.end - dt.timedelta(days=self.days - 1)

    @property
    def promo_days(self) -> tuple[int, int]:
        """An eight-day sale ending 40 days before the end (day offsets, inclusive)."""
        last = max(self.days - 41, 7)
        return last - 7, last

    @property
    def accounts(self) -> int:
        return int(min(max(self.users // 100, 30), 20_000))


@dataclass
class DemoStats:
    rows: dict[str, int] = field(default_factory=dict)

    def add(self, table: str, n: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + n


def day_factors(spec: DemoSpec) -> np.ndarray:
    """Traffic multiplier per day: slow growth, weekends up, the promotion far up."""
    d = np.arange(spec.days)
    weekday = np.array([(spec.start + dt.timedelta(days=int(i))).weekday() for i in d])
    f = 1.0 + 0.4 * d / max(spec.days - 1, 1)
    f = f * np.where(weekday >= 5, 1.30, 1.0)
    lo, hi = spec.promo_days
    f = f * np.where((d >= lo) & (d <= hi), 2.2, 1.0)
    return f


def _utc_offset_us(spec: DemoSpec) -> np.int64:
    off = ZoneInfo(spec.timezone).utcoffset(dt.datetime.combine(spec.start, dt.time()))
    return np.int64(int(off.total_seconds()) if off else 0) * SECOND


def _epoch_us(day: dt.date) -> np.int64:
    return np.int64((day - dt.date(1970, 1, 1)).days) * DAY


def _choice(rng: np.random.Generator, n: int, p: np.ndarray) -> np.ndarray:
    return rng.choice(len(p), size=n, p=p / p.sum())


def generate(
    spec: DemoSpec,
    sink: Callable[[str, pa.Table], None],
    progress: Callable[[int], None] | None = None,
) -> DemoStats:
    """Generate the company block by block, handing each table chunk to ``sink``."""
    stats = DemoStats()
    con = duckdb.connect()
    try:
        for table, data in _blocks(spec, con, progress):
            if data.num_rows:
                sink(table, data)
                stats.add(table, data.num_rows)
    finally:
        con.close()
    return stats


def _blocks(
    spec: DemoSpec, con: duckdb.DuckDBPyConnection, progress: Callable[[int], None] | None
) -> Iterator[tuple[str, pa.Table]]:
    factors = day_factors(spec)
    for start in range(0, spec.users, BLOCK_USERS):
        n = min(BLOCK_USERS, spec.users - start)
        yield from _consumer_block(spec, con, factors, start, n)
        if progress:
            progress(n)
    yield from _b2b(spec, con)


# -- 2C -----------------------------------------------------------------------------------
def _consumer_block(
    spec: DemoSpec,
    con: duckdb.DuckDBPyConnection,
    factors: np.ndarray,
    first: int,
    n: int,
) -> Iterator[tuple[str, pa.Table]]:
    experiment = spec_experiment(spec)
    rng = np.random.default_rng([spec.seed, first])
    D = spec.days
    t0 = _epoch_us(spec.start) - _utc_offset_us(spec)  # local midnight of day 0, in UTC
    end_us = t0 + D * DAY

    # Users: sign-up day follows traffic; channel sets quality.
    uid = np.arange(first, first + n)
    signup = _choice(rng, n, factors)
    channel = _choice(rng, n, CHANNEL_SHARE)
    platform = _choice(rng, n, PLATFORM_SHARE)
    city = _choice(rng, n, CITY_SHARE)
    activated = rng.random(n) < CHANNEL_ACTIVATION[channel]
    activity = rng.gamma(2.0, 0.5, n)  # skew: a few heavy users
    buy = CHANNEL_BUY[channel] * rng.gamma(2.0, 0.5, n)
    life1 = rng.geometric(CHANNEL_HAZARD[channel]).astype(np.int64)
    life1 = np.where(activated, life1, 1)
    end1 = signup + life1
    resurrect = activated & (end1 < D - 20) & (rng.random(n) < 0.22)
    gap = 14 + rng.geometric(1 / 30, n)
    start2 = end1 + gap
    life2 = rng.geometric(np.minimum(CHANNEL_HAZARD[channel] * 1.5, 0.9)).astype(np.int64)
    resurrect &= start2 < D
    end2 = np.where(resurrect, np.minimum(start2 + life2, D), start2)
    end1 = np.minimum(end1, D)
    len1 = end1 - signup
    len2 = np.where(resurrect, end2 - start2, 0)

    # Sessions: the first at sign-up, then Poisson over the active days, thinned by the
    # day's traffic factor so weekends and the promotion show.
    rate = 0.35 * activity * activated
    fmax = factors.max()
    extra = rng.poisson(rate * (len1 + len2) * fmax / factors.mean())
    s_user = np.repeat(np.arange(n), extra)
    u = rng.random(s_user.size)
    l1, l2 = len1[s_user], len2[s_user]
    in2 = u * (l1 + l2) >= l1
    off = np.floor(rng.random(s_user.size) * np.where(in2, l2, l1)).astype(np.int64)
    s_day = np.where(in2, start2[s_user], signup[s_user]) + off
    keep = (s_day < D) & (rng.random(s_user.size) < factors[np.minimum(s_day, D - 1)] / fmax)
    s_user = np.concatenate([np.arange(n), s_user[keep]])
    s_day = np.concatenate([signup, s_day[keep]])
    order = np.lexsort((s_day, s_user))
    s_user, s_day = s_user[order], s_day[order]
    ns = s_user.size
    hour = _choice(rng, ns, HOUR_WEIGHTS)
    s_start = t0 + s_day * DAY + hour * 3600 * SECOND + rng.integers(0, 3600, ns) * SECOND
    first_session = np.r_[True, s_user[1:] != s_user[:-1]]
    first_seen = s_start[first_session]

    lo, hi = spec.promo_days
    promo = (s_day >= lo) & (s_day <= hi)
    views = 1 + rng.poisson(2.0, ns)
    search = rng.random(ns) < 0.4
    p_cart = np.minimum(0.16 * buy[s_user] * np.where(promo, 1.7, 1.0), 0.9)
    cart = rng.random(ns) < p_cart
    checkout = cart & (rng.random(ns) < 0.62)
    # The A/B test of the last four weeks: exposure at the first session in the window.
    exp_ts = first_exposure(s_user, s_start, s_day, n, D - WINDOW_DAYS)
    exposed = np.flatnonzero(exp_ts >= 0)
    variant = np.full(n, "", dtype=object)
    variant[exposed] = variants_of(experiment, _uid(uid[exposed]).to_pylist())
    treated = (variant[s_user] == "big_button") & (s_start >= exp_ts[s_user])
    p_pay = np.where(promo, 0.88, 0.78) * np.where(treated, PAY_LIFT, 1.0)
    pay = checkout & (rng.random(ns) < p_pay)
    category = _choice(rng, ns, np.ones(len(CATEGORIES)))
    price = np.round(np.exp(rng.normal(CATEGORY_PRICE[category], 0.55)), 2)
    price = np.where(promo, np.round(price * 0.85, 2), price)
    qty = 1 + rng.poisson(0.3, ns)
    amount = np.round(price * qty, 2)

    # Event times inside a session: search, then views 45 s apart, cart, checkout, pay.
    v_sess = np.repeat(np.arange(ns), views)
    v_idx = np.arange(v_sess.size) - np.repeat(np.cumsum(views) - views, views)
    v_ts = s_start[v_sess] + (30 + 45 * v_idx + rng.integers(0, 40, v_sess.size)) * SECOND
    cart_ts = s_start + (30 + 45 * views + 20) * SECOND
    co_ts = cart_ts + rng.integers(60, 180, ns) * SECOND
    pay_ts = co_ts + rng.integers(30, 120, ns) * SECOND
    # Nothing may fall after the last local day.
    keep_v = v_ts < end_us
    v_sess, v_ts = v_sess[keep_v], v_ts[keep_v]
    search &= s_start + 10 * SECOND < end_us
    cart &= cart_ts < end_us
    checkout &= co_ts < end_us
    pay &= pay_ts < end_us
    refund = pay & (rng.random(ns) < 0.07)
    refund_ts = pay_ts + rng.integers(1, 8, ns) * DAY
    refund &= refund_ts < end_us

    users = pa.table(
        {
            "user_id": _uid(uid),
            "first_seen": pa.array(first_seen, pa.timestamp("us")),
            "channel": pa.array(np.array(CHANNELS)[channel]),
            "platform": pa.array(np.array(PLATFORMS)[platform]),
            "city": pa.array(np.array(CITIES)[city]),
        }
    )
    con.register("u", users)
    yield "users", con.sql(
        "SELECT user_id, first_seen, channel, "
        "json_object('platform', platform, 'city', city) AS properties FROM u"
    ).to_arrow_table()
    con.unregister("u")

    sess_id = np.char.add(f"s{spec.seed}-{first}-", np.arange(ns).astype(str))
    pay_idx = np.flatnonzero(pay)
    order_ids = np.char.add(f"o{spec.seed}-{first}-", pay_idx.astype(str))
    parts = {
        "sign_up": (np.flatnonzero(first_session), s_start[first_session]),
        "search": (np.flatnonzero(search), s_start[search] + 10 * SECOND),
        "view": (v_sess, v_ts),
        "add_to_cart": (np.flatnonzero(cart), cart_ts[cart]),
        "checkout": (np.flatnonzero(checkout), co_ts[checkout]),
        "pay": (pay_idx, pay_ts[pay]),
        "refund": (np.flatnonzero(refund), refund_ts[refund]),
    }
    ev_sess = np.concatenate([p[0] for p in parts.values()])
    ev_ts = np.concatenate([p[1] for p in parts.values()])
    ev_name = np.concatenate([np.full(p[0].size, k) for k, p in parts.items()])
    order_of = np.full(ns, "", dtype=object)
    order_of[pay_idx] = order_ids
    events = pa.table(
        {
            "event": pa.array(ev_name),
            "user_id": _uid(uid[s_user[ev_sess]]),
            "ts": pa.array(ev_ts, pa.timestamp("us")),
            "session_id": pa.array(sess_id[ev_sess]),
            "platform": pa.array(np.array(PLATFORMS)[platform[s_user[ev_sess]]]),
            "channel": pa.array(np.array(CHANNELS)[channel[s_user[ev_sess]]]),
            "category": pa.array(np.array(CATEGORIES)[category[ev_sess]]),
            "keyword": pa.array(np.array(KEYWORDS)[ev_sess % len(KEYWORDS)]),
            "price": pa.array(price[ev_sess]),
            "amount": pa.array(amount[ev_sess]),
            "order_id": pa.array(order_of[ev_sess].astype(str)),
            "promo": pa.array(promo[ev_sess]),
        }
    )
    con.register("e", events)
    yield "events", con.sql(
        f"""
        SELECT 'e{spec.seed}-{first}-' || CAST(row_number() OVER () AS VARCHAR) AS event_id,
               event, user_id, ts, NULL::VARCHAR AS account_id, session_id,
               CASE event
                 WHEN 'sign_up' THEN json_object('platform', platform, 'channel', channel)
                 WHEN 'search' THEN json_object('platform', platform, 'keyword', keyword)
                 WHEN 'view' THEN json_object('platform', platform, 'category', category,
                                              'price', price)
                 WHEN 'add_to_cart' THEN json_object('platform', platform, 'category', category,
                                                     'price', price)
                 WHEN 'checkout' THEN json_object('platform', platform, 'amount', amount)
                 ELSE json_object('platform', platform, 'order_id', order_id,
                                  'amount', amount, 'promo', promo)
               END AS properties
        FROM e
        """
    ).to_arrow_table()
    con.unregister("e")
    yield "events", _exposures(experiment, uid[exposed], exp_ts[exposed], variant[exposed])

    orders = pa.table(
        {
            "order_id": pa.array(order_ids),
            "user_id": _uid(uid[s_user[pay_idx]]),
            "ts": pa.array(pay_ts[pay], pa.timestamp("us")),
            "amount": pa.array([Decimal(f"{a:.2f}") for a in amount[pay]], pa.decimal128(18, 2)),
            "currency": pa.array(np.full(pay_idx.size, spec.currency)),
            "status": pa.array(np.where(refund[pay], "refunded", "paid")),
            "category": pa.array(np.array(CATEGORIES)[category[pay]]),
            "items": pa.array(qty[pay]),
            "promo": pa.array(promo[pay]),
        }
    )
    con.register("o", orders)
    yield "orders", con.sql(
        "SELECT order_id, user_id, ts, amount, currency, status, "
        "json_object('category', category, 'items', items, 'promo', promo) AS properties FROM o"
    ).to_arrow_table()
    con.unregister("o")


def spec_experiment(spec: DemoSpec) -> ExperimentSpec:
    """The demo's experiment, running over the last ``WINDOW_DAYS`` local days."""
    tz = ZoneInfo(spec.timezone)
    end = dt.datetime.combine(spec.end + dt.timedelta(days=1), dt.time(), tz)
    start = end - dt.timedelta(days=WINDOW_DAYS)
    return demo_experiment(
        start.astimezone(dt.UTC).replace(tzinfo=None), end.astimezone(dt.UTC).replace(tzinfo=None)
    )


def _exposures(
    experiment: ExperimentSpec, ids: np.ndarray, ts: np.ndarray, variants: np.ndarray
) -> pa.Table:
    pairs = list(zip(_uid(ids).to_pylist(), variants.tolist(), strict=True))
    table = exposure_table(experiment, pairs, dt.datetime(1970, 1, 1))
    return table.set_column(
        table.schema.get_field_index("ts"), "ts", pa.array(ts, pa.timestamp("us"))
    )


def _uid(ids: np.ndarray) -> pa.Array:
    return pa.array(np.char.add("u", np.char.zfill(ids.astype(str), 7)))


# -- 2B -----------------------------------------------------------------------------------
def _b2b(spec: DemoSpec, con: duckdb.DuckDBPyConnection) -> Iterator[tuple[str, pa.Table]]:
    rng = np.random.default_rng([spec.seed, 10**9])
    na = spec.accounts
    D = spec.days
    t0 = _epoch_us(spec.start) - _utc_offset_us(spec)
    tier = _choice(rng, na, TIER_SHARE)
    industry = _choice(rng, na, np.ones(len(INDUSTRIES)))
    owner = rng.integers(0, len(OWNERS), na)
    # A third of the accounts predate the window; the rest sign up inside it.
    created_day = np.where(
        rng.random(na) < 0.35, -rng.integers(30, 720, na), rng.integers(0, max(D - 15, 1), na)
    )
    created = t0 + created_day * DAY + rng.integers(9 * 3600, 18 * 3600, na) * SECOND
    aid = np.char.add("a", np.char.zfill(np.arange(na).astype(str), 5))
    accounts = pa.table(
        {
            "account_id": pa.array(aid),
            "name": pa.array(np.char.add("客户", np.arange(1, na + 1).astype(str))),
            "industry": pa.array(np.array(INDUSTRIES)[industry]),
            "tier": pa.array(np.array(TIERS)[tier]),
            "owner": pa.array(np.array(OWNERS)[owner]),
            "created_at": pa.array(created, pa.timestamp("us")),
            "seats": pa.array(TIER_SEATS[tier]),
        }
    )
    con.register("a", accounts)
    yield "accounts", con.sql(
        "SELECT account_id, name, industry, tier, owner, created_at, "
        "json_object('seats', seats) AS properties FROM a"
    ).to_arrow_table()
    con.unregister("a")

    # Subscriptions month by month: each change closes a row and opens the next.
    plan0 = np.clip(2 - tier + (rng.random(na) < 0.2), 0, 2)
    churn_p = np.array([0.010, 0.025, 0.045])[tier]
    # (account, plan, n-th subscription, start, end or None, mrr)
    sub_rows: list[tuple[str, str, int, dt.date, dt.date | None, float]] = []
    health = np.zeros(na)
    for i in range(na):
        day = max(int(created_day[i]), -720)
        plan = int(plan0[i])
        active = True
        start = day
        mrr = float(PLAN_MRR[plan] * (1 + 0.25 * rng.random()))
        n_sub = 0
        health[i] = rng.random()
        cursor = start + 30
        while cursor < D:
            r = rng.random()
            if active:
                change: str | None = None
                if r < churn_p[i] * (1.6 - health[i]):
                    change = "churn"
                elif r < churn_p[i] + 0.03 * health[i] and plan < 2:
                    change = "up"
                elif r < churn_p[i] + 0.03 * health[i] + 0.012 and plan > 0:
                    change = "down"
                if change:
                    sub_rows.append(
                        (aid[i], PLANS[plan], n_sub, _d(spec, start), _d(spec, cursor - 1), mrr)
                    )
                    n_sub += 1
                    if change == "churn":
                        active = False
                    else:
                        plan += 1 if change == "up" else -1
                        mrr = float(PLAN_MRR[plan] * (1 + 0.25 * rng.random()))
                        start = cursor
            elif r < 0.08:
                active = True
                start = cursor
                mrr = float(PLAN_MRR[plan] * (1 + 0.25 * rng.random()))
            cursor += 30
        if active:
            sub_rows.append((aid[i], PLANS[plan], n_sub, _d(spec, start), None, mrr))
    subs = pa.table(
        {
            "subscription_id": pa.array([f"sub-{r[0]}-{r[2]}" for r in sub_rows]),
            "account_id": pa.array([r[0] for r in sub_rows]),
            "plan": pa.array([r[1] for r in sub_rows]),
            "mrr": pa.array([Decimal(f"{r[5]:.2f}") for r in sub_rows], pa.decimal128(18, 2)),
            "start_date": pa.array([r[3] for r in sub_rows], pa.date32()),
            "end_date": pa.array([r[4] for r in sub_rows], pa.date32()),
            "properties": pa.array(["{}"] * len(sub_rows)),
        }
    )
    yield "subscriptions", subs

    # Seat activity: healthy accounts log in and build reports more often.
    seats = TIER_SEATS[tier]
    weeks = D // 7
    per = rng.poisson(np.repeat(1.5 + 3 * health, seats)[:, None], (seats.sum(), weeks))
    seat_acct = np.repeat(np.arange(na), seats)
    seat_no = np.arange(seats.sum()) - np.repeat(np.cumsum(seats) - seats, seats)
    # Rows are in order per account: the last one says whether it is still a customer.
    alive_days = np.full(na, D)
    for row in sub_rows:
        last_end = row[4]
        alive_days[int(row[0][1:])] = D if last_end is None else (last_end - spec.start).days
    a_idx, w_idx = np.nonzero(per)
    counts = per[a_idx, w_idx]
    a_idx, w_idx = np.repeat(a_idx, counts), np.repeat(w_idx, counts)
    e_day = w_idx * 7 + rng.integers(0, 5, a_idx.size)
    acct = seat_acct[a_idx]
    ok = (e_day < alive_days[acct]) & (e_day >= np.maximum(created_day[acct], 0))
    a_idx, e_day, acct = a_idx[ok], e_day[ok], acct[ok]
    ts = t0 + e_day * DAY + rng.integers(9 * 3600, 19 * 3600, e_day.size) * SECOND
    names = np.where(rng.random(e_day.size) < 0.7, "login", "report_created")
    seat_events = pa.table(
        {
            "event": pa.array(names),
            "user_id": pa.array(
                np.char.add(np.char.add(aid[acct], "-s"), seat_no[a_idx].astype(str))
            ),
            "ts": pa.array(ts, pa.timestamp("us")),
            "account_id": pa.array(aid[acct]),
        }
    )
    con.register("b", seat_events)
    yield "events", con.sql(
        f"SELECT 'b{spec.seed}-' || CAST(row_number() OVER () AS VARCHAR) AS event_id, event, "
        "user_id, ts, account_id, NULL::VARCHAR AS session_id, "
        "json_object('product', 'saas') AS properties FROM b"
    ).to_arrow_table()
    con.unregister("b")


def _d(spec: DemoSpec, offset: int) -> dt.date:
    return spec.start + dt.timedelta(days=int(offset))
