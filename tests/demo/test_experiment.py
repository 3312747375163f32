"""The demo's planted A/B test is found by the experiments engine, no more and no less."""

from __future__ import annotations

import json

import pyarrow as pa

from yunying.config import Settings
from yunying.demo import DemoSpec, generate
from yunying.demo.experiment import PAY_LIFT
from yunying.demo.generator import spec_experiment
from yunying.experiments.analysis import run_analysis
from yunying.experiments.assignment import assign
from yunying.warehouse.engine import Warehouse


def test_planted_effect_is_recovered(settings: Settings) -> None:
    spec = DemoSpec(users=12_000, days=90, seed=11)
    wh = Warehouse(settings, "duckdb")
    parts: dict[str, list[pa.Table]] = {}
    generate(spec, lambda t, d: parts.setdefault(t, []).append(d))
    for table, chunks in parts.items():
        wh.append_arrow(table, pa.concat_tables(chunks))
    experiment = spec_experiment(spec)
    result = run_analysis(wh, experiment)
    assert not result.srm.mismatch
    counts = {v.variant: v.users for v in result.variants}
    assert abs(counts["control"] - counts["big_button"]) < 0.1 * sum(counts.values())

    # The exposures carry exactly the variant the experiments module assigns.
    exp = wh.execute(
        wh.table("events").filter(lambda e: e.event == "$exposure").select("user_id", "properties")
    )
    sample = exp.head(500)
    expected = assign(experiment, sample["user_id"].tolist())
    got = [json.loads(p)["variant"] for p in sample["properties"]]
    assert got == expected

    by_metric = {m.metric: m for m in result.metrics}
    ratio = by_metric["pays_per_checkout"]
    # The generator multiplies checkout → pay by PAY_LIFT for treated sessions.
    assert ratio.significant and ratio.rel_low < PAY_LIFT - 1 < ratio.rel_high
    assert by_metric["paying"].rel_effect > 0
    wh.close()
