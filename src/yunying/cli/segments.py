"""``yunying segment …`` (用户分群) and ``yunying tag …`` (用户标签)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from yunying.cli.common import FormatOpt, OutputFormat, ProjectOpt, console, emit, settings_for
from yunying.errors import YunyingError
from yunying.i18n import t

TIME_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"]
AsOfOpt = Annotated[
    datetime | None,
    typer.Option(
        "--as-of",
        formats=TIME_FORMATS,
        help="Evaluate relative periods ('last 30 days') as of this local time (default: now).",
        show_default=False,
    ),
]
ByOpt = Annotated[str, typer.Option("--by", help="Who does this (recorded).")]
CsvOpt = Annotated[
    Path | None, typer.Option("--csv", help="CSV of user ids (user_id column or first column).")
]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise YunyingError("segment.bad_file", path=str(path), reason=str(e)) from None


def register(app: typer.Typer) -> None:
    seg = typer.Typer(help="Segments (用户分群): rules, members, history.", no_args_is_help=True)
    tag = typer.Typer(help="User tags (用户标签).", no_args_is_help=True)
    app.add_typer(seg, name="segment")
    app.add_typer(tag, name="tag")

    def as_of_utc(s_tz: str, as_of: datetime | None) -> datetime | None:
        from yunying.segments.timeutil import to_utc_naive

        return to_utc_naive(as_of, s_tz) if as_of else None

    @seg.command("create")
    def create_cmd(
        file: Annotated[Path, typer.Argument(help="Segment file (YAML or JSON).")],
        project: ProjectOpt = None,
        as_of: AsOfOpt = None,
        by: ByOpt = "",
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Save a segment from a file and compute its members. / 创建分群。"""
        from yunying.segments import service
        from yunying.warehouse.engine import open_warehouse

        s = settings_for(project)
        spec = service.load_spec(_read(file), str(file))
        with open_warehouse(s) as wh:
            res = service.create_segment(s, wh, spec, as_of=as_of_utc(s.timezone, as_of), by=by)
        emit(res, fmt, t("segment.created", name=spec.name))

    @seg.command("preview")
    def preview_cmd(
        file: Annotated[
            Path | None, typer.Argument(help="Segment or rule file (YAML or JSON).")
        ] = None,
        rule: Annotated[
            str | None, typer.Option("--rule", help="The rule inline, as YAML or JSON.")
        ] = None,
        project: ProjectOpt = None,
        as_of: AsOfOpt = None,
        sample: Annotated[int, typer.Option(min=0, max=1000, help="Example ids to show.")] = 10,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Audience size of a rule, without saving. / 预估分群人数。"""
        from yunying.segments import service
        from yunying.segments.rules import load_text, parse_rule_text
        from yunying.warehouse.engine import open_warehouse

        s = settings_for(project)
        if (file is None) == (rule is None):
            raise YunyingError("segment.need_rule")
        if file is not None:
            text = _read(file)
            data = load_text(text, str(file))
            parsed = (
                service.load_spec(text, str(file)).parsed()
                if isinstance(data, dict) and "name" in data
                else parse_rule_text(text)
            )
        else:
            parsed = parse_rule_text(rule or "")
        with open_warehouse(s) as wh:
            res = service.preview(s, wh, parsed, as_of_utc(s.timezone, as_of), sample)
        emit(res, fmt)

    @seg.command("refresh")
    def refresh_cmd(
        name: Annotated[str | None, typer.Argument(help="Segment to refresh.")] = None,
        due: Annotated[
            bool, typer.Option("--due", help="Refresh every scheduled segment that is due (cron).")
        ] = False,
        project: ProjectOpt = None,
        as_of: AsOfOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Recompute members of a dynamic segment (or all due ones). / 刷新分群。"""
        from yunying.segments import service
        from yunying.warehouse.engine import open_warehouse

        s = settings_for(project)
        if (name is None) == (not due):
            raise YunyingError("segment.need_name_or_due")
        with open_warehouse(s) as wh:
            at = as_of_utc(s.timezone, as_of)
            if due:
                emit(service.refresh_due(s, wh, as_of=at), fmt)
            else:
                emit(service.refresh(s, wh, name or "", as_of=at), fmt)

    @seg.command("export")
    def export_cmd(
        name: str,
        out: Annotated[Path, typer.Option("--out", "-o", help="CSV file to write.")],
        project: ProjectOpt = None,
    ) -> None:
        """Write the members to CSV (user_id, joined_at). / 导出分群成员。"""
        from yunying.segments import service

        s = settings_for(project)
        n = service.export_members(s, name, out)
        console.print(t("segment.exported", count=n, path=str(out)))

    @seg.command("list")
    def list_cmd(project: ProjectOpt = None, fmt: FormatOpt = OutputFormat.table) -> None:
        """Segments with their size and last refresh. / 分群列表。"""
        from yunying.segments import service

        emit(service.list_segments(settings_for(project)), fmt)

    @seg.command("show")
    def show_cmd(name: str, project: ProjectOpt = None, fmt: FormatOpt = OutputFormat.table) -> None:
        """One segment and its rule. / 分群详情。"""
        from yunying.segments import service

        s = settings_for(project)
        summary = service.get_segment(s, name)
        emit(summary, fmt)
        if fmt == OutputFormat.table:
            import yaml

            console.print(yaml.safe_dump(summary.rule, allow_unicode=True, sort_keys=False))

    @seg.command("history")
    def history_cmd(
        name: str,
        user: Annotated[str | None, typer.Option("--user", help="Only this user.")] = None,
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Who joined and left, with times. / 成员变动历史。"""
        from yunying.segments import service

        emit(service.history(settings_for(project), name, user), fmt)

    def _users(user_ids: list[str] | None, csv_file: Path | None) -> list[str]:
        from yunying.segments import tags

        ids = list(user_ids or [])
        if csv_file is not None:
            ids += tags.read_user_csv(csv_file)
        if not ids:
            raise YunyingError("tag.no_users")
        return ids

    @tag.command("add")
    def tag_add(
        name: Annotated[str, typer.Argument(help="Tag.")],
        user_ids: Annotated[list[str] | None, typer.Argument(help="User ids.")] = None,
        csv_file: CsvOpt = None,
        project: ProjectOpt = None,
        by: ByOpt = "",
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Tag users (by id, or in bulk from a CSV). / 打标签。"""
        from yunying.segments import tags

        s = settings_for(project)
        emit(tags.add_tag(s, name, _users(user_ids, csv_file), by), fmt)

    @tag.command("remove")
    def tag_remove(
        name: Annotated[str, typer.Argument(help="Tag.")],
        user_ids: Annotated[list[str] | None, typer.Argument(help="User ids.")] = None,
        csv_file: CsvOpt = None,
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Remove a tag from users. / 移除标签。"""
        from yunying.segments import tags

        s = settings_for(project)
        emit(tags.remove_tag(s, name, _users(user_ids, csv_file)), fmt)

    @tag.command("list")
    def tag_list(
        name: Annotated[str | None, typer.Argument(help="Only this tag's users.")] = None,
        user: Annotated[str | None, typer.Option("--user", help="Only this user's tags.")] = None,
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Tags with user counts, or one tag's users, or one user's tags. / 标签列表。"""
        from yunying.segments import tags

        emit(tags.list_tags(settings_for(project), name, user), fmt)
