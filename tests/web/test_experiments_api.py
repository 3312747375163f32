"""Experiments over HTTP: create from a definition, a user's variant, assign, analyze, power."""

from __future__ import annotations

from fastapi.testclient import TestClient

from yunying.config import Settings
from yunying.experiments import spec as spec_mod
from yunying.experiments.assignment import assign
from yunying.experiments.sizing import PowerQuery, power

BTN = {
    "id": "btn", "name": "Green button", "hypothesis": "green converts better",
    "variants": [{"key": "control"}, {"key": "green"}],
    "metrics": [{"id": "paid", "kind": "proportion", "measure": {"source": "orders", "agg": "any"}}],
}


def test_create_assign_analyze(clients: dict[str, TestClient], project: Settings) -> None:
    op, viewer = clients["operator"], clients["viewer"]
    assert viewer.post("/api/v1/experiments", json=BTN).status_code == 403
    r = op.post("/api/v1/experiments", json=BTN)
    assert r.status_code == 201, r.text
    assert r.json()["owner"] == "operator@example.com"
    # Saved where the CLI saves it, and read back the same.
    saved = spec_mod.load(project, "btn")
    assert viewer.get("/api/v1/experiments/btn").json() == saved.model_dump(mode="json")
    assert [x["id"] for x in viewer.get("/api/v1/experiments").json()["experiments"]] == ["btn"]
    assert op.post("/api/v1/experiments", json=BTN).status_code == 409
    # A user's variant is the domain's pure function of the id.
    got = viewer.get("/api/v1/experiments/btn/assignment?user_id=u2").json()
    assert got == {"experiment": "btn", "user_id": "u2", "variant": assign(saved, ["u2"])[0]}
    assert viewer.post("/api/v1/experiments/btn/assign").status_code == 403
    r = op.post("/api/v1/experiments/btn/assign")
    assert r.status_code == 200, r.text
    a = r.json()
    assert (a["eligible"], a["assigned"], a["written"]) == (3, 3, 3) and sum(a["counts"].values()) == 3
    assert op.post("/api/v1/experiments/btn/assign").json()["written"] == 0  # exposures logged once
    r = viewer.post("/api/v1/experiments/analyze", json={"experiment": "btn"})
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["experiment"] == "btn" and sum(v["users"] for v in res["variants"]) == 3
    assert "srm" in res and res["metrics"]
    r = viewer.post("/api/v1/experiments/analyze", json={"experiment": "btn", "method": "bayesian"})
    assert r.status_code == 200 and r.json()["method"] == "bayesian"


def test_bad_definitions_and_unknown_ids(clients: dict[str, TestClient]) -> None:
    op = clients["analyst"]  # analysts design experiments too
    r = op.post("/api/v1/experiments", json={**BTN, "id": "one", "variants": [{"key": "control"}]})
    assert r.status_code == 422
    r = op.post("/api/v1/experiments", json={**BTN, "id": "dup", "variants": [{"key": "a"}, {"key": "a"}]})
    assert r.status_code == 422 and "unique" in r.json()["message"]
    r = op.post("/api/v1/experiments", json={**BTN, "id": "has space"})
    assert r.status_code == 422
    assert op.get("/api/v1/experiments/ghost").status_code == 404
    assert op.post("/api/v1/experiments/ghost/assign").status_code == 404
    assert op.post("/api/v1/experiments/analyze", json={"experiment": "ghost"}).status_code == 404
    r = op.post("/api/v1/experiments/analyze", json={"experiment": "btn", "method": "magic"})
    assert r.status_code == 422


def test_power_calculator(clients: dict[str, TestClient]) -> None:
    c = clients["viewer"]
    r = c.post("/api/v1/experiments/power", json={"mde": 0.01, "baseline": 0.1})
    assert r.status_code == 200
    assert r.json() == power(PowerQuery(mde=0.01, baseline=0.1)).model_dump(mode="json")
    assert r.json()["per_variant"] > 10_000 and r.json()["total"] == 2 * r.json()["per_variant"]
    r = c.post("/api/v1/experiments/power", json={"mde": 2.0, "sd": 30.0, "variants": 3})
    assert r.status_code == 200 and r.json()["total"] == 3 * r.json()["per_variant"]
    for bad in ({"mde": 0.01}, {"mde": -1, "baseline": 0.1}, {"mde": 0.5, "baseline": 0.9}, {"mde": 0.01, "baseline": 0.1, "alpha": 2}):
        r = c.post("/api/v1/experiments/power", json=bad)
        assert r.status_code == 400 and r.json()["error"] == "experiments.invalid", bad
