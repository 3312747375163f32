"""``POST /api/v1/data/delete``: an administrator removes warehouse rows, audited.

Kept apart from ``api.py`` so that the data-administration door is one small function;
the work is ``yunying.warehouse.admin.delete_rows``, the same as ``yunying data delete``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from yunying.web.accounts import Principal, audit
from yunying.web.security import require


class DeleteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    table: str = Field(max_length=64)
    keys: list[str] = Field(default_factory=list, max_length=10_000)
    where: str | None = Field(default=None, max_length=2000)
    outside_window: bool = False
    dry_run: bool = False


class DeleteOut(BaseModel):
    table: str
    matched: int
    deleted: int
    dry_run: bool
    criteria: str


def add_data_routes(r: APIRouter) -> None:
    @r.post("/data/delete", response_model=DeleteOut, tags=["data"])
    def delete_data(
        body: DeleteBody, request: Request, p: Principal = Depends(require("data.delete"))
    ) -> DeleteOut:
        """Delete rows by key, filter or time window (all given criteria must match)."""
        from yunying.warehouse.admin import delete_rows
        from yunying.web.domains._common import write_warehouse

        # A write: the requests' read-only connections step aside, as for the flush.
        res = write_warehouse(
            request, lambda wh: delete_rows(wh, body.table, body.keys, body.where, body.outside_window, body.dry_run)
        )
        if res.deleted:
            audit(request.app.state.appdb_url, p.name, "data.delete", res.table,
                  f"deleted={res.deleted}; {res.criteria}"[:2000])
        return DeleteOut(**res.model_dump())
