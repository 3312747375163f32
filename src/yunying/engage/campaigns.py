"""Campaigns (活动): goal, target segment, schedule, budget, channel, tools and holdout.

Lifecycle draft → scheduled → running → ended → reviewed. Every step is guarded (wrong
status, wrong role, missing approval give a clear error) and recorded with who did it.
Assignment of the target segment's members to treatment or holdout (对照组) is a pure
function of the user id and the campaign's salt, and lands in the warehouse as
``campaign_assigned`` events with deterministic ids, so re-running adds nothing and a
campaign's effect is a join on the event log.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import pyarrow as pa
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from yunying.appdb import session_scope
from yunying.config import Settings
from yunying.engage.campaign_models import CampaignRow, CampaignTransition, assignment_group
from yunying.errors import YunyingError
from yunying.i18n import t
from yunying.segments import service as segments
from yunying.segments.rules import check_name, load_text
from yunying.segments.timeutil import to_utc_naive, utcnow, zone
from yunying.warehouse.engine import Warehouse

Role = Literal["admin", "analyst", "approver", "operator", "viewer", "owner"]
# The web roles, plus "owner": the project's local owner, as whom the CLI acts (it has
# the project folder, so it has everything). Roles are never taken from a request body:
# the web passes the signed-in user's role, the CLI passes "owner".
ROLES: tuple[str, ...] = ("admin", "analyst", "approver", "operator", "viewer", "owner")
OWNER = "owner"
STATUSES = ("draft", "scheduled", "running", "ended", "reviewed")
ASSIGN_EVENT = "campaign_assigned"

# action: (statuses it may start from, status it leads to, roles allowed)
ACTIONS: dict[str, tuple[tuple[str, ...], str, tuple[str, ...]]] = {
    "create": ((), "draft", ("admin", "operator", "analyst", OWNER)),
    "approve": (("draft",), "draft", ("admin", "approver", OWNER)),
    "schedule": (("draft",), "scheduled", ("admin", "operator", OWNER)),
    "start": (("scheduled",), "running", ("admin", "operator", OWNER)),
    "end": (("running",), "ended", ("admin", "operator", OWNER)),
    "review": (("ended",), "reviewed", ("admin", "operator", "analyst", OWNER)),
    "assign": (("scheduled", "running"), "", ("admin", "operator", OWNER)),
}


class CampaignSpec(BaseModel):
    """A campaign as written in a YAML file or given on the command line.

    ``starts_at``/``ends_at`` without a zone are wall-clock times in ``timezone``.
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str = Field(min_length=1, max_length=200)
    goal_metric: str = Field(min_length=1, max_length=128)
    goal_target: Decimal | None = None
    segment: str
    starts_at: datetime
    ends_at: datetime
    timezone: str | None = None
    budget: Decimal = Field(ge=0, max_digits=18, decimal_places=2)
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    channel: str = Field(min_length=1, max_length=64)
    tools: list[str] = Field(default_factory=list)
    holdout_share: float = Field(default=0.1, ge=0.0, le=0.9)
    owner: str = Field(min_length=1, max_length=254)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return check_name(v, "campaign id")

    @field_validator("tools")
    @classmethod
    def _tools(cls, v: list[str]) -> list[str]:
        for tool in v:
            if not tool or len(tool) > 64:
                raise ValueError(f"invalid tool id {tool!r}")
        if len(set(v)) != len(v):
            raise ValueError("a tool is listed twice")
        return v

    @model_validator(mode="after")
    def _window(self) -> CampaignSpec:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class Transition(BaseModel):
    action: str
    from_status: str | None
    to_status: str
    actor: str
    role: str
    at: datetime
    note: str


class ToolUsage(BaseModel):
    """A campaign tool as the tools module reports it (issued, money used)."""

    id: str
    kind: str
    name: str
    issued: int
    budget: Decimal | None
    budget_used: Decimal


class CampaignOut(BaseModel):
    id: str
    name: str
    status: str
    goal_metric: str
    goal_target: Decimal | None
    segment: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    budget: Decimal
    currency: str
    channel: str
    tools: list[str]
    holdout_share: float
    owner: str
    approved_by: str | None
    approved_role: str | None
    approved_at: datetime | None
    review_notes: str | None
    assigned_treatment: int
    assigned_holdout: int
    last_assigned_at: datetime | None
    created_by: str
    created_at: datetime
    transitions: list[Transition] = []
    tool_usage: list[ToolUsage] = []
    spent: Decimal = Decimal("0.00")

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        tz = zone(self.timezone)

        def local(v: datetime | None) -> str | None:
            if v is None:
                return None
            return v.replace(tzinfo=zone("UTC")).astimezone(tz).strftime("%Y-%m-%d %H:%M")

        rows: list[list[Any]] = [
            [t("campaign.f.id"), self.id],
            [t("campaign.f.name"), self.name],
            [t("campaign.f.status"), t(f"campaign.status.{self.status}")],
            [
                t("campaign.f.goal"),
                f"{self.goal_metric}"
                + (f" → {self.goal_target}" if self.goal_target is not None else ""),
            ],
            [t("campaign.f.segment"), self.segment],
            [
                t("campaign.f.window"),
                f"{local(self.starts_at)} – {local(self.ends_at)} ({self.timezone})",
            ],
            [t("campaign.f.budget"), f"{self.budget} {self.currency}"],
            [t("campaign.f.spent"), f"{self.spent} {self.currency}"],
            [t("campaign.f.channel"), self.channel],
            [
                t("campaign.f.tools"),
                ", ".join(f"{u.id} ({u.kind} {u.name}, {u.issued})" for u in self.tool_usage)
                or ", ".join(self.tools),
            ],
            [t("campaign.f.holdout"), f"{self.holdout_share:.0%}"],
            [t("campaign.f.owner"), self.owner],
            [
                t("campaign.f.approved"),
                f"{self.approved_by} ({self.approved_role}) {local(self.approved_at)}"
                if self.approved_by
                else t("campaign.not_approved"),
            ],
            [t("campaign.f.assigned"), f"{self.assigned_treatment} / {self.assigned_holdout}"],
        ]
        if self.review_notes:
            rows.append([t("campaign.f.review"), self.review_notes])
        for tr in self.transitions:
            rows.append(
                [
                    f"{local(tr.at)}",
                    f"{t('campaign.action.' + tr.action)}: {tr.from_status or '-'} → {tr.to_status}"
                    f" · {tr.actor} ({tr.role})" + (f" · {tr.note}" if tr.note else ""),
                ]
            )
        return [t("campaign.f.field"), t("campaign.f.value")], rows


class CampaignList(BaseModel):
    campaigns: list[CampaignOut]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        headers = [
            t("campaign.f.id"),
            t("campaign.f.name"),
            t("campaign.f.status"),
            t("campaign.f.segment"),
            t("campaign.f.channel"),
            t("campaign.f.budget"),
            t("campaign.f.starts"),
            t("campaign.f.owner"),
        ]
        rows = [
            [
                c.id,
                c.name,
                t(f"campaign.status.{c.status}"),
                c.segment,
                c.channel,
                f"{c.budget} {c.currency}",
                c.starts_at.isoformat(sep=" ", timespec="minutes"),
                c.owner,
            ]
            for c in self.campaigns
        ]
        return headers, rows


class AssignResult(BaseModel):
    campaign_id: str
    members: int
    treatment: int
    holdout: int
    new_events: int

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        return [
            t("campaign.f.id"),
            t("campaign.f.members"),
            t("campaign.f.treatment"),
            t("campaign.f.holdout_n"),
            t("campaign.f.new_events"),
        ], [[self.campaign_id, self.members, self.treatment, self.holdout, self.new_events]]


# -- pure pieces ------------------------------------------------------------------------------


def assignment_event_id(campaign_id: str, user_id: str) -> str:
    """One event per campaign and user, whatever the run."""
    return f"ca-{campaign_id}-{hashlib.sha256(user_id.encode()).hexdigest()[:32]}"


def load_campaign_spec(text: str, source: str = "campaign") -> CampaignSpec:
    data = load_text(text, source)
    if not isinstance(data, dict):
        raise YunyingError("campaign.invalid", field=source, reason="expected a mapping")
    return parse_spec(data)


def parse_spec(data: dict[str, Any]) -> CampaignSpec:
    try:
        return CampaignSpec.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        raise YunyingError(
            "campaign.invalid",
            field=".".join(str(p) for p in err["loc"]) or "campaign",
            reason=err["msg"].removeprefix("Value error, "),
        ) from None


# -- guards -----------------------------------------------------------------------------------


def _check_actor(action: str, actor: str, role: str) -> None:
    if not actor.strip():
        raise YunyingError("campaign.actor_required")
    if role not in ROLES:
        raise YunyingError("campaign.unknown_role", role=role, roles=", ".join(ROLES))
    allowed = ACTIONS[action][2]
    if role not in allowed:
        raise YunyingError(
            "campaign.forbidden",
            role=role,
            action=t(f"campaign.action.{action}"),
            roles=", ".join(allowed),
        )


def _check_tools(url: str, tools: list[str]) -> None:
    """Tool ids must exist in the tools module when it is installed."""
    if not tools:
        return
    try:
        from yunying.engage.service import get_tool
    except ImportError:  # pragma: no cover - the tools module ships with yunying
        return
    for tool in tools:
        try:
            get_tool(url, tool)
        except YunyingError as e:
            if e.key == "engage.unknown_tool":
                raise YunyingError("campaign.unknown_tool", tool=tool) from None
            raise


def tool_usage(url: str, tools: list[str]) -> list[ToolUsage]:
    """Live figures of the campaign's tools; tools deleted since are left out."""
    if not tools:
        return []
    try:
        from yunying.engage.service import get_tool
    except ImportError:  # pragma: no cover - the tools module ships with yunying
        return []
    out = []
    for tool in tools:
        try:
            x = get_tool(url, tool)
        except YunyingError:
            continue
        out.append(
            ToolUsage(
                id=x.id, kind=x.kind, name=x.name, issued=x.issued,
                budget=x.budget, budget_used=x.budget_used,
            )
        )
    return out


def _out(row: CampaignRow, transitions: list[CampaignTransition] | None = None) -> CampaignOut:
    return CampaignOut(
        id=row.id,
        name=row.name,
        status=row.status,
        goal_metric=row.goal_metric,
        goal_target=row.goal_target,
        segment=row.segment,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        timezone=row.timezone,
        budget=Decimal(row.budget).quantize(Decimal("0.01")),
        currency=row.currency,
        channel=row.channel,
        tools=list(row.tools),
        holdout_share=row.holdout_share,
        owner=row.owner,
        approved_by=row.approved_by,
        approved_role=row.approved_role,
        approved_at=row.approved_at,
        review_notes=row.review_notes,
        assigned_treatment=row.assigned_treatment,
        assigned_holdout=row.assigned_holdout,
        last_assigned_at=row.last_assigned_at,
        created_by=row.created_by,
        created_at=row.created_at,
        transitions=[
            Transition(
                action=x.action,
                from_status=x.from_status,
                to_status=x.to_status,
                actor=x.actor,
                role=x.role,
                at=x.at,
                note=x.note,
            )
            for x in (transitions or [])
        ],
    )


def _row(s: sa.orm.Session, campaign_id: str, lock: bool = False) -> CampaignRow:
    q = sa.select(CampaignRow).where(CampaignRow.id == campaign_id)
    if lock:
        q = q.with_for_update()
    row = s.scalar(q)
    if row is None:
        raise YunyingError("campaign.not_found", id=campaign_id)
    return row


def _log(
    s: sa.orm.Session,
    row: CampaignRow,
    action: str,
    frm: str | None,
    actor: str,
    role: str,
    at: datetime,
    note: str = "",
) -> None:
    s.add(
        CampaignTransition(
            campaign_id=row.id,
            action=action,
            from_status=frm,
            to_status=row.status,
            actor=actor,
            role=role,
            at=at,
            note=note,
        )
    )


# -- operations -------------------------------------------------------------------------------


def create_campaign(
    settings: Settings, spec: CampaignSpec, actor: str, role: str, now: datetime | None = None
) -> CampaignOut:
    """Save a draft; the target segment and the tools must exist."""
    _check_actor("create", actor, role)
    url = segments.appdb_url(settings)
    tz = spec.timezone or settings.timezone
    zone(tz)
    segments.get_segment(settings, spec.segment)
    _check_tools(url, spec.tools)
    at = now or utcnow()
    with session_scope(url) as s:
        if s.get(CampaignRow, spec.id) is not None:
            raise YunyingError("campaign.exists", id=spec.id)
        row = CampaignRow(
            id=spec.id,
            name=spec.name,
            goal_metric=spec.goal_metric,
            goal_target=spec.goal_target,
            segment=spec.segment,
            starts_at=to_utc_naive(spec.starts_at, tz),
            ends_at=to_utc_naive(spec.ends_at, tz),
            timezone=tz,
            budget=spec.budget,
            currency=(spec.currency or settings.currency).upper(),
            channel=spec.channel,
            tools=list(spec.tools),
            holdout_share=spec.holdout_share,
            owner=spec.owner,
            status="draft",
            salt=secrets.token_hex(8),
            assigned_treatment=0,
            assigned_holdout=0,
            created_by=actor,
            created_at=at,
            updated_at=at,
        )
        s.add(row)
        s.flush()
        _log(s, row, "create", None, actor, role, at)
        return _out(row)


def get_campaign(settings: Settings, campaign_id: str) -> CampaignOut:
    with session_scope(segments.appdb_url(settings)) as s:
        row = _row(s, campaign_id)
        trs = list(
            s.scalars(
                sa.select(CampaignTransition)
                .where(CampaignTransition.campaign_id == campaign_id)
                .order_by(CampaignTransition.at, CampaignTransition.id)
            ).all()
        )
        out = _out(row, trs)
    out.tool_usage = tool_usage(segments.appdb_url(settings), out.tools)
    out.spent = sum((u.budget_used for u in out.tool_usage), Decimal("0.00"))
    return out


def list_campaigns(settings: Settings, status: str | None = None) -> CampaignList:
    if status is not None and status not in STATUSES:
        raise YunyingError("campaign.unknown_status", status=status, statuses=", ".join(STATUSES))
    with session_scope(segments.appdb_url(settings)) as s:
        q = sa.select(CampaignRow).order_by(CampaignRow.starts_at, CampaignRow.id)
        if status:
            q = q.where(CampaignRow.status == status)
        return CampaignList(campaigns=[_out(r) for r in s.scalars(q).all()])


def transition(
    settings: Settings,
    campaign_id: str,
    action: str,
    actor: str,
    role: str,
    now: datetime | None = None,
    note: str = "",
) -> CampaignOut:
    """Apply ``approve|schedule|start|end|review`` if the status, role and approval allow it."""
    if action not in ACTIONS or action in ("create", "assign"):
        raise YunyingError("campaign.unknown_action", action=action)
    _check_actor(action, actor, role)
    froms, to, _ = ACTIONS[action]
    at = now or utcnow()
    with session_scope(segments.appdb_url(settings)) as s:
        row = _row(s, campaign_id, lock=True)
        if row.status not in froms:
            raise YunyingError(
                "campaign.bad_transition",
                id=campaign_id,
                action=t(f"campaign.action.{action}"),
                status=t(f"campaign.status.{row.status}"),
                allowed=", ".join(t(f"campaign.status.{x}") for x in froms),
            )
        if action == "approve":
            row.approved_by, row.approved_role, row.approved_at = actor, role, at
        if action == "schedule":
            if not row.approved_by:
                raise YunyingError("campaign.needs_approval", id=campaign_id)
            if at >= row.ends_at:
                raise YunyingError("campaign.already_over", id=campaign_id)
            usage = tool_usage(segments.appdb_url(settings), list(row.tools))
            capped = sum((u.budget for u in usage if u.budget is not None), Decimal(0))
            if capped > row.budget:
                raise YunyingError(
                    "campaign.tools_over_budget", id=campaign_id, tools=str(capped),
                    budget=str(row.budget),
                )
        if action == "start":
            if at < row.starts_at:
                raise YunyingError("campaign.not_yet", id=campaign_id, starts_at=str(row.starts_at))
            if at >= row.ends_at:
                raise YunyingError("campaign.already_over", id=campaign_id)
        if action == "review":
            if not note.strip():
                raise YunyingError("campaign.review_needs_notes")
            row.review_notes = note
        frm = row.status
        row.status = to
        row.updated_at = at
        _log(s, row, action, frm, actor, role, at, note)
    return get_campaign(settings, campaign_id)


def approve(
    settings: Settings, campaign_id: str, actor: str, role: str, now: datetime | None = None
) -> CampaignOut:
    return transition(settings, campaign_id, "approve", actor, role, now)


def assign(
    settings: Settings,
    wh: Warehouse,
    campaign_id: str,
    actor: str,
    role: str,
    now: datetime | None = None,
    refresh_segment: bool = False,
    as_of: datetime | None = None,
) -> AssignResult:
    """Assign the segment's current members to treatment/holdout; write only new events.

    The campaign row stays locked (PostgreSQL) from reading the existing events to
    recording the counts, so two concurrent runs cannot both write the same users.
    """
    _check_actor("assign", actor, role)
    at = now or utcnow()
    url = segments.appdb_url(settings)
    c = get_campaign(settings, campaign_id)
    if c.status not in ACTIONS["assign"][0]:
        raise YunyingError(
            "campaign.cannot_assign", id=campaign_id, status=t(f"campaign.status.{c.status}")
        )
    if refresh_segment and segments.get_segment(settings, c.segment).kind == "dynamic":
        segments.refresh(settings, wh, c.segment, as_of=as_of, now=at)
    ids = segments.members(settings, c.segment)
    with session_scope(url) as s:
        row = _row(s, campaign_id, lock=True)
        if row.status not in ACTIONS["assign"][0]:
            raise YunyingError(
                "campaign.cannot_assign", id=campaign_id, status=t(f"campaign.status.{row.status}")
            )
        salt, share = row.salt, row.holdout_share
        wh.refresh()
        ev = wh.table("events")
        done = wh.execute(
            ev.filter(
                ev.event == ASSIGN_EVENT, ev.event_id.startswith(f"ca-{campaign_id}-")
            ).select("event_id", "user_id")
        )
        existing_ids = set(done["event_id"].tolist())
        new = [u for u in ids if assignment_event_id(campaign_id, u) not in existing_ids]
        if new:
            wh.append_arrow("events", _assignment_events(campaign_id, salt, share, new, at))
        everyone = {str(u) for u in done["user_id"].tolist()} | set(new)
        holdout = sum(1 for u in everyone if assignment_group(salt, share, u) == "holdout")
        row.assigned_holdout = holdout
        row.assigned_treatment = len(everyone) - holdout
        row.last_assigned_at = at
        row.updated_at = at
        _log(s, row, "assign", row.status, actor, role, at, f"+{len(new)}")
    return AssignResult(
        campaign_id=campaign_id,
        members=len(ids),
        treatment=len(everyone) - holdout,
        holdout=holdout,
        new_events=len(new),
    )


def _assignment_events(
    campaign_id: str, salt: str, share: float, users: list[str], at: datetime
) -> pa.Table:
    n = len(users)
    props = [
        json.dumps({"campaign_id": campaign_id, "group": assignment_group(salt, share, u)})
        for u in users
    ]
    return pa.table(
        {
            "event_id": [assignment_event_id(campaign_id, u) for u in users],
            "event": [ASSIGN_EVENT] * n,
            "user_id": users,
            "ts": [at] * n,
            "account_id": pa.nulls(n, pa.string()),
            "session_id": pa.nulls(n, pa.string()),
            "properties": props,
        }
    )


def group_of(settings: Settings, campaign_id: str, user_id: str) -> Literal["treatment", "holdout"]:
    """The group a user falls in for a campaign (the tools skip the holdout group)."""
    with session_scope(segments.appdb_url(settings)) as s:
        row = _row(s, campaign_id)
        return assignment_group(row.salt, row.holdout_share, user_id)
