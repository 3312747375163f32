"""Incentive tools (运营工具) over HTTP: create (the eight kinds, each with its rules),
list, show with budget and stock, one-time codes, and the ledger check; the calls
``yunying tool …`` makes, with the same models (``ToolSpec`` is the tool file as JSON)."""

from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from yunying.engage import service as S
from yunying.engage.schemas import (
    CodeList,
    CodesResult,
    IssueRequest,
    IssueResult,
    LedgerCheck,
    RedeemRequest,
    RedeemResult,
    ToolList,
    ToolOut,
    ToolSpec,
)
from yunying.errors import YunyingError
from yunying.web.accounts import Principal
from yunying.web.domains._common import ERRORS, IDEMPOTENCY_DOC, Strict, acted, replayed
from yunying.web.security import require

error_status = {
    "engage.unknown_tool": 404,
    "engage.tool_exists": 409,
    "engage.key_reused": 409,
    "engage.conflict": 409,
    "engage.busy": 503,
}

api_router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["tools"])

MAX_CODES = 1_000_000  # per request; the CLI has no such bound (it writes a file)
MAX_SHOWN = 100_000


class CodesRequest(Strict):
    count: int = Field(ge=1, le=MAX_CODES, description="How many codes to generate.")
    show: bool = Field(default=False, description=f"Return the codes (at most {MAX_SHOWN:,} at a time).")


def _url(request: Request) -> str:
    return request.app.state.appdb_url  # type: ignore[no-any-return]


@api_router.get("/tools", response_model=ToolList)
def list_tools(
    request: Request,
    campaign: str | None = Query(default=None, max_length=64, description="Only this campaign's tools."),
    p: Principal = Depends(require("read")),
) -> ToolList:
    """Tools with stock, budget and counters (`yunying tool list`)."""
    return S.list_tools(_url(request), campaign)


@api_router.post("/tools", response_model=ToolOut, status_code=201)
def create_tool(
    spec: ToolSpec,
    request: Request,
    idempotency_key: str | None = Header(default=None, max_length=128, description=IDEMPOTENCY_DOC),
    p: Principal = Depends(require("tools.write")),
) -> Any:
    """Create a tool: voucher, cashback, trial_credit, trial_class, flash_sale, rate_boost,
    lottery or privileged; ``rules`` follow the kind (docs/tools.md)."""
    url = _url(request)
    if replayed(request, "tool.create", idempotency_key, spec.id):
        out = S.get_tool(url, spec.id)
        return JSONResponse(out.model_dump(mode="json"), status_code=201, headers={"Idempotent-Replayed": "true"})
    out = S.create_tool(url, spec)
    acted(request, p, "tool.create", out.id, idempotency_key)
    return out


@api_router.get("/tools/{tool_id}", response_model=ToolOut)
def get_tool(tool_id: str, request: Request, p: Principal = Depends(require("read"))) -> ToolOut:
    """One tool: issued, budget and budget used, stock and sold (`yunying tool show`)."""
    return S.get_tool(_url(request), tool_id)


@api_router.post("/tools/{tool_id}/codes", response_model=CodesResult, status_code=201)
def generate_codes(
    tool_id: str, body: CodesRequest, request: Request, p: Principal = Depends(require("tools.write"))
) -> CodesResult:
    """Generate unique one-time codes in bulk (`yunying tool codes`)."""
    if body.show and body.count > MAX_SHOWN:
        raise YunyingError("engage.bad_count", n=body.count)
    res = S.generate_codes(_url(request), tool_id, body.count, show=body.show)
    acted(request, p, "tool.codes", tool_id, detail=f"created={res.created}")
    return res


@api_router.get("/tools/{tool_id}/codes", response_model=CodeList)
def list_codes(
    tool_id: str,
    request: Request,
    offset: int = Query(default=0, ge=0),
    limit: int = Query(default=100, ge=1, le=10_000),
    unused: bool = Query(default=False, description="Only codes no one has claimed."),
    p: Principal = Depends(require("tools.write")),
) -> CodeList:
    """A page of the tool's codes with who claimed each (codes are secrets: operators only)."""
    return S.list_codes(_url(request), tool_id, offset, limit, unused)


def _eligible(request: Request, act: Any) -> Any:
    """Run ``act(eligibility)`` with the segments' answers (membership, first seen), as the
    campaign engine sees them; the warehouse is read only for first-seen times."""
    from yunying.segments.eligibility import SegmentEligibility

    s = request.app.state.settings
    return request.app.state.gate.run(None, lambda wh: act(SegmentEligibility(s, wh)))


@api_router.post("/tools/issue", response_model=IssueResult)
def issue(req: IssueRequest, request: Request, p: Principal = Depends(require("tools.write"))) -> IssueResult:
    """Issue a coupon-like tool to a user (`yunying tool issue`); ``key`` makes it idempotent:
    the same key answers with the first grant (``replayed``)."""
    return _eligible(request, lambda elig: S.issue(_url(request), req, elig))  # type: ignore[no-any-return]


@api_router.post("/tools/redeem", response_model=RedeemResult)
def redeem(req: RedeemRequest, request: Request, p: Principal = Depends(require("tools.write"))) -> RedeemResult:
    """Redeem a grant, buy a flash-sale unit, draw a lottery… (`yunying tool redeem`);
    idempotent by ``key``. Money and stock move in one transaction, into the ledger."""
    return _eligible(request, lambda elig: S.redeem(_url(request), req, elig))  # type: ignore[no-any-return]


@api_router.get("/ledger", response_model=LedgerCheck)
def ledger(
    request: Request,
    prefix: str = Query(default="", max_length=128, description="Only accounts starting with this."),
    p: Principal = Depends(require("read")),
) -> LedgerCheck:
    """Ledger balances and the check that every transaction sums to zero (`yunying tool ledger`)."""
    return S.check_ledger(_url(request), prefix)
