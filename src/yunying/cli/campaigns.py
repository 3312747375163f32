"""``yunying campaign …`` (活动): create, list, show, approve, schedule, start, end, review, assign.

The command line acts as the project's local owner (whoever holds the project folder holds
every right over it): the role recorded is ``owner``, the actor is ``--by`` or the local OS
user, and each act is written to the audit log as the local owner's. ``--role`` no longer
grants anything; it is accepted, ignored and warned about, so old scripts keep running.
Approval by role is the web's and the API's: a signed-in user or a user's API key.
"""

from __future__ import annotations

import getpass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer

from yunying.cli.common import FormatOpt, OutputFormat, ProjectOpt, emit, err_console, settings_for
from yunying.cli.segments import TIME_FORMATS
from yunying.errors import YunyingError
from yunying.i18n import t

ByOpt = Annotated[str, typer.Option("--by", help="Who does this (recorded; default: the local OS user).")]
RoleOpt = Annotated[
    str | None,
    typer.Option("--role", hidden=True, help="Deprecated and ignored: the command line acts as the local owner."),
]


def local_user() -> str:
    try:
        return getpass.getuser() or "local-owner"
    except (OSError, KeyError, ImportError):
        return "local-owner"


def _actor(by: str, role: str | None) -> str:
    """Who is recorded: ``--by`` or the OS user; the role is always the local owner's."""
    if role is not None:
        err_console.print(f"[yellow]{t('campaign.role_ignored')}[/]")
    return by.strip() or local_user()


def _audit(settings: Any, action: str, campaign_id: str, actor: str) -> None:
    from yunying.appdb import open_appdb
    from yunying.web.accounts import audit

    audit(open_appdb(settings), f"local-owner:{local_user()}", f"campaign.{action}", campaign_id,
          f"by={actor}; role=owner; via=cli")
TimeOpt = Annotated[
    datetime | None,
    typer.Option(formats=TIME_FORMATS, help="Local time in the campaign's time zone.", show_default=False),
]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise YunyingError("campaign.invalid", field=str(path), reason=str(e)) from None


def register(app: typer.Typer) -> None:
    camp = typer.Typer(help="Campaigns (活动): plan, approve, run, assign, review.", no_args_is_help=True)
    app.add_typer(camp, name="campaign")

    @camp.command("create")
    def create_cmd(
        file: Annotated[Path | None, typer.Argument(help="Campaign file (YAML or JSON).")] = None,
        id_: Annotated[str | None, typer.Option("--id", help="Campaign id (short, no spaces).")] = None,
        name: Annotated[str | None, typer.Option(help="Display name.")] = None,
        goal: Annotated[str | None, typer.Option(help="Goal metric, e.g. gmv.")] = None,
        goal_target: Annotated[Decimal | None, typer.Option(help="Target value of the goal.")] = None,
        segment: Annotated[str | None, typer.Option(help="Target segment.")] = None,
        start: TimeOpt = None,
        end: TimeOpt = None,
        tz: Annotated[str | None, typer.Option("--tz", help="Time zone (default: the project's).")] = None,
        budget: Annotated[Decimal | None, typer.Option(help="Budget (money).")] = None,
        channel: Annotated[str | None, typer.Option(help="Channel, e.g. push, sms, app.")] = None,
        tool: Annotated[list[str] | None, typer.Option("--tool", help="Tool id (repeat).")] = None,
        holdout: Annotated[float, typer.Option(help="Share kept as holdout (0–0.9).")] = 0.1,
        owner: Annotated[str | None, typer.Option(help="Owner.")] = None,
        project: ProjectOpt = None,
        by: ByOpt = "",
        role: RoleOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Create a draft campaign. / 创建活动（草稿）。"""
        from yunying.engage import campaigns as svc

        s = settings_for(project)
        if file is not None:
            spec = svc.load_campaign_spec(_read(file), str(file))
        else:
            needed = (id_, name, goal, segment, start, end, budget, channel, owner)
            if any(v is None for v in needed):
                raise YunyingError("campaign.need_file_or_options")
            data: dict[str, Any] = {
                "id": id_, "name": name, "goal_metric": goal, "goal_target": goal_target,
                "segment": segment, "starts_at": start, "ends_at": end, "timezone": tz,
                "budget": budget, "channel": channel, "tools": list(tool or []),
                "holdout_share": holdout, "owner": owner,
            }
            spec = svc.parse_spec(data)
        actor = _actor(by or spec.owner, role)
        out = svc.create_campaign(s, spec, actor, svc.OWNER)
        _audit(s, "create", out.id, actor)
        emit(out, fmt, t("campaign.created", id=out.id))

    @camp.command("list")
    def list_cmd(
        status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Campaigns by start time. / 活动列表。"""
        from yunying.engage import campaigns as svc

        emit(svc.list_campaigns(settings_for(project), status), fmt)

    @camp.command("show")
    def show_cmd(campaign: str, project: ProjectOpt = None, fmt: FormatOpt = OutputFormat.table) -> None:
        """One campaign with its history of status changes. / 活动详情。"""
        from yunying.engage import campaigns as svc

        emit(svc.get_campaign(settings_for(project), campaign), fmt)

    def _step(action: str, help_text: str) -> None:
        def cmd(
            campaign: str,
            project: ProjectOpt = None,
            by: ByOpt = "",
            role: RoleOpt = None,
            fmt: FormatOpt = OutputFormat.table,
        ) -> None:
            from yunying.engage import campaigns as svc

            s = settings_for(project)
            actor = _actor(by, role)
            out = svc.transition(s, campaign, action, actor, svc.OWNER)
            _audit(s, action, campaign, actor)
            emit(out, fmt)

        cmd.__doc__ = help_text
        camp.command(action)(cmd)

    _step("approve", "Approve a draft as the project's local owner (recorded). / 审批活动。")
    _step("schedule", "Schedule an approved draft. / 排期。")
    _step("start", "Start a scheduled campaign (not before its start time). / 开始活动。")
    _step("end", "End a running campaign. / 结束活动。")

    @camp.command("review")
    def review_cmd(
        campaign: str,
        notes: Annotated[str, typer.Option("--notes", help="Review conclusions (复盘结论).")] = "",
        project: ProjectOpt = None,
        by: ByOpt = "",
        role: RoleOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Record the review of an ended campaign. / 活动复盘。"""
        from yunying.engage import campaigns as svc

        s = settings_for(project)
        actor = _actor(by, role)
        out = svc.transition(s, campaign, "review", actor, svc.OWNER, note=notes)
        _audit(s, "review", campaign, actor)
        emit(out, fmt)

    @camp.command("assign")
    def assign_cmd(
        campaign: str,
        refresh: Annotated[
            bool, typer.Option("--refresh", help="Refresh the (dynamic) segment first.")
        ] = False,
        as_of: Annotated[
            datetime | None,
            typer.Option("--as-of", formats=TIME_FORMATS, help="Segment evaluation time (local).", show_default=False),
        ] = None,
        project: ProjectOpt = None,
        by: ByOpt = "",
        role: RoleOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Assign segment members to treatment/holdout (idempotent events). / 分配实验组与对照组。"""
        from yunying.engage import campaigns as svc
        from yunying.segments.timeutil import to_utc_naive
        from yunying.warehouse.engine import open_warehouse

        s = settings_for(project)
        at = to_utc_naive(as_of, s.timezone) if as_of else None
        actor = _actor(by, role)
        with open_warehouse(s) as wh:
            out = svc.assign(s, wh, campaign, actor, svc.OWNER, refresh_segment=refresh, as_of=at)
        _audit(s, "assign", campaign, actor)
        emit(out, fmt)
