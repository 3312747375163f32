"""Experiments (A/B 实验) over HTTP: create from a definition, list, show, a user's variant,
assignment with exposures, analysis and the power calculator; the calls
``yunying experiment …`` makes, with the same models (``ExperimentSpec`` is the YAML file
as JSON, saved as ``experiments/<id>.yaml`` like the CLI does)."""

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from yunying.errors import YunyingError
from yunying.experiments.analysis import AnalyzeQuery, ExperimentResult
from yunying.experiments.assignment import AssignSummary
from yunying.experiments.sizing import PowerQuery, PowerResult
from yunying.experiments.sizing import power as run_power
from yunying.experiments.spec import ExperimentSpec
from yunying.web.accounts import Principal
from yunying.web.domains._common import (
    ERRORS,
    IDEMPOTENCY_DOC,
    Strict,
    acted,
    replayed,
    settings,
    write_warehouse,
)
from yunying.web.security import require

error_status = {
    "experiments.not_found": 404,
    "experiments.exists": 409,
    "experiments.layer_overlap": 409,
}

api_router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["experiments"])


class ExperimentList(BaseModel):
    experiments: list[ExperimentSpec]


class Assignment(BaseModel):
    experiment: str
    user_id: str
    variant: str | None = Field(description="None: outside the experiment (coverage, layer slice or holdout).")


class AssignRequest(Strict):
    user_ids: list[str] | None = Field(default=None, max_length=1_000_000, description="Only these users (default: the eligible ones).")
    at: dt.datetime | None = Field(default=None, description="Exposure time (UTC), default now.")


def _load(request: Request, experiment_id: str) -> ExperimentSpec:
    from yunying.experiments.spec import load

    return load(settings(request), experiment_id)


@api_router.get("/experiments", response_model=ExperimentList)
def list_experiments(request: Request, p: Principal = Depends(require("read"))) -> ExperimentList:
    """Experiment definitions (`yunying experiment list`)."""
    from yunying.experiments.spec import load_all

    return ExperimentList(experiments=load_all(settings(request)))


@api_router.post("/experiments", response_model=ExperimentSpec, status_code=201)
def create_experiment(
    spec: ExperimentSpec,
    request: Request,
    idempotency_key: str | None = Header(default=None, max_length=128, description=IDEMPOTENCY_DOC),
    p: Principal = Depends(require("experiments.write")),
) -> Any:
    """Save a definition as experiments/<id>.yaml (layers must not overlap)."""
    from yunying.experiments.spec import save

    if replayed(request, "experiment.create", idempotency_key, spec.id):
        out = _load(request, spec.id)
        return JSONResponse(out.model_dump(mode="json"), status_code=201, headers={"Idempotent-Replayed": "true"})
    if not spec.owner:
        spec = spec.model_copy(update={"owner": p.person})
    save(settings(request), spec)
    acted(request, p, "experiment.create", spec.id, idempotency_key)
    return spec


@api_router.post("/experiments/analyze", response_model=ExperimentResult)
def analyze_experiment(q: AnalyzeQuery, request: Request, p: Principal = Depends(require("read"))) -> ExperimentResult:
    """Effects, intervals, SRM check and sequential looks (`yunying experiment analyze`)."""
    from yunying.experiments.analysis import run_analysis

    spec = _load(request, q.experiment)
    key = ("experiment", spec.model_dump_json() + q.model_dump_json())
    return request.app.state.gate.run(key, lambda wh: run_analysis(wh, spec, q))  # type: ignore[no-any-return]


@api_router.post("/experiments/power", response_model=PowerResult)
def power(q: PowerQuery, p: Principal = Depends(require("read"))) -> PowerResult:
    """Users needed per variant to detect ``mde`` (`yunying experiment power`)."""
    return run_power(q, source="body")


@api_router.get("/experiments/{experiment_id}", response_model=ExperimentSpec)
def get_experiment(experiment_id: str, request: Request, p: Principal = Depends(require("read"))) -> ExperimentSpec:
    """One definition."""
    return _load(request, experiment_id)


@api_router.get("/experiments/{experiment_id}/assignment", response_model=Assignment)
def assignment(
    experiment_id: str, request: Request, user_id: str = Query(min_length=1, max_length=128),
    p: Principal = Depends(require("read")),
) -> Assignment:
    """The variant a user gets (a pure function of the id and the definition; nothing logged)."""
    from yunying.experiments.assignment import assign

    spec = _load(request, experiment_id)
    return Assignment(experiment=spec.id, user_id=user_id, variant=assign(spec, [user_id])[0])


@api_router.post("/experiments/{experiment_id}/assign", response_model=AssignSummary)
def assign_experiment(
    experiment_id: str, request: Request, body: AssignRequest | None = None,
    p: Principal = Depends(require("experiments.write")),
) -> AssignSummary:
    """Assign the eligible users (or the given ones) and log their exposures, once each."""
    from yunying.experiments.assignment import assign_and_log

    b = body or AssignRequest()
    s = settings(request)
    spec = _load(request, experiment_id)
    at = b.at.astimezone(dt.UTC).replace(tzinfo=None) if b.at is not None and b.at.tzinfo else b.at  # naive UTC
    r = write_warehouse(request, lambda wh: assign_and_log(s, wh, spec, b.user_ids, at))
    if r.eligible == 0:
        raise YunyingError("experiments.no_users", id=experiment_id)
    acted(request, p, "experiment.assign", spec.id, detail=f"assigned={r.assigned} written={r.written}")
    return AssignSummary.of(spec, r)
