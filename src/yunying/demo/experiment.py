"""The demo company's A/B test: a bigger checkout button, run over the last four weeks.

Users are assigned with the experiments module's own hashing, so `yunying experiment
analyze checkout_cta` reads the exposures the generator wrote and finds the effect the
generator planted: in the variant, a checkout turns into a payment more often.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from yunying.experiments.assignment import assign
from yunying.experiments.spec import ExperimentSpec, Measure, MetricDef, Variant

EXPERIMENT_ID = "checkout_cta"
WINDOW_DAYS = 28
# Checkout → payment rate multiplier in the variant (the planted effect).
PAY_LIFT = 1.15


def demo_experiment(start: dt.datetime, end: dt.datetime) -> ExperimentSpec:
    return ExperimentSpec(
        id=EXPERIMENT_ID,
        name="结算按钮改版 / Bigger checkout button",
        hypothesis="A bigger, clearer checkout button turns more checkouts into payments.",
        variants=[Variant(key="control", weight=50), Variant(key="big_button", weight=50)],
        start=start,
        end=end,
        metrics=[
            MetricDef(
                id="paying",
                name="付费转化 Paying conversion",
                kind="proportion",
                measure=Measure(source="orders", agg="any"),
            ),
            MetricDef(
                id="revenue",
                name="人均收入 Revenue per user",
                kind="mean",
                measure=Measure(source="orders", agg="sum"),
                winsorize=0.99,
            ),
            MetricDef(
                id="pays_per_checkout",
                name="支付/结算 Payments per checkout",
                kind="ratio",
                numerator=Measure(source="events", event="pay", agg="count"),
                denominator=Measure(source="events", event="checkout", agg="count"),
            ),
        ],
        owner="增长组",
    )


def first_exposure(
    s_user: np.ndarray, s_start: np.ndarray, s_day: np.ndarray, n: int, window_start_day: int
) -> np.ndarray:
    """Per user, the start of their first session in the window (int64 µs), or -1."""
    never = np.iinfo(np.int64).max
    exp = np.full(n, never, dtype=np.int64)
    inside = s_day >= window_start_day
    np.minimum.at(exp, s_user[inside], s_start[inside])
    return np.where(exp == never, -1, exp)


def variants_of(spec: ExperimentSpec, user_ids: list[str]) -> np.ndarray:
    return np.array([v or "" for v in assign(spec, user_ids)], dtype=object)
