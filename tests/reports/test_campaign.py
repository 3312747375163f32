"""Campaign evaluation on engage-shaped events: lift vs holdout, cost, CPA, ROI, segments."""

from __future__ import annotations

import pandas as pd
import pytest
from scipy import stats

from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.experiments.campaign import run_campaign_eval
from yunying.warehouse.engine import Warehouse

from .campaign_data import build_campaign


def test_lift_cost_cpa_roi(settings: Settings, wh: Warehouse) -> None:
    truth = build_campaign(wh)
    ev = run_campaign_eval(settings, wh, "may_voucher")
    g = {x.group: x for x in ev.groups}
    assert g["treatment"].users + g["holdout"].users == 6000
    assert g["holdout"].users / 6000 == pytest.approx(0.2, abs=0.02)
    # Lift against scipy on the same per-user 0/1 data.
    o = wh.execute(wh.table("orders"))
    payers = set(o["user_id"])
    a = wh.execute(wh.table("events").filter(lambda e: e.event == "campaign_assigned"))
    grp = a["properties"].str.contains('"holdout"')
    y_h = pd.Series([1.0 if u in payers else 0.0 for u in a.loc[grp, "user_id"]])
    y_t = pd.Series([1.0 if u in payers else 0.0 for u in a.loc[~grp, "user_id"]])
    assert ev.conversion is not None
    assert ev.conversion.abs_effect == pytest.approx(y_t.mean() - y_h.mean())
    assert ev.conversion.p_value == pytest.approx(stats.ttest_ind(y_t, y_h, equal_var=False).pvalue, rel=0.02)
    assert ev.conversion.significant
    assert ev.cost == pytest.approx(truth["cost"])
    assert {x.tool_id for x in ev.tools} == {"v20", "cb5"}
    inc = ev.incremental_payers
    assert inc is not None and inc == pytest.approx((y_t.mean() - y_h.mean()) * len(y_t))
    assert ev.cpa == pytest.approx(ev.cost / inc)
    assert ev.incremental_revenue == pytest.approx(inc * 120.0, rel=1e-9)
    assert ev.roi == pytest.approx((ev.incremental_revenue - ev.cost) / ev.cost)
    assert {s.segment for s in ev.segments} == {"app", "web"}
    assert ev.burn[-1][1] == pytest.approx(ev.cost)


def test_unknown_campaign_is_a_clear_error(settings: Settings, wh: Warehouse) -> None:
    with pytest.raises(YunyingError) as e:
        run_campaign_eval(settings, wh, "nope")
    assert "campaign_assigned" in e.value.message("en")
    build_campaign(wh, n=200)
    with pytest.raises(YunyingError) as e:
        run_campaign_eval(settings, wh, "may_voucher", segment_by="tier; drop")
    assert e.value.key == "reports.bad_segment_by"
