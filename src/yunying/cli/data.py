"""Project and data commands: init, tables, describe, status, data delete."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from yunying.cli.common import (
    FormatOpt,
    OutputFormat,
    ProjectOpt,
    console,
    emit,
    read_warehouse,
    render_rows,
    settings_for,
)
from yunying.i18n import t
from yunying.warehouse.contracts import CONTRACTS, contract


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init_cmd(
        project: ProjectOpt = None,
        name: Annotated[str, typer.Option(help="Project name.")] = "yunying project",
    ) -> None:
        """Write a commented yunying.toml into the project folder. / 初始化项目配置。"""
        from yunying.config import CONFIG_FILE, CONFIG_TEMPLATE

        s = settings_for(project, create=True)
        path = s.project_dir / CONFIG_FILE
        if path.exists():
            console.print(t("cli.init.exists", path=str(path)))
            return
        s.project_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(CONFIG_TEMPLATE.format(name=name), encoding="utf-8")
        console.print(t("cli.init.written", path=str(path)))

    @app.command("tables")
    def tables_cmd(fmt: FormatOpt = OutputFormat.table) -> None:
        """List the data contracts (the data dictionary). / 数据表（数据词典）。"""
        rows = [
            [c.table, c.key, ", ".join(c.names), t(c.description_key)] for c in CONTRACTS.values()
        ]
        render_rows(
            [t("cli.table"), t("cli.key"), t("cli.column"), t("cli.description")],
            rows,
            fmt,
            keys=["table", "key", "columns", "description"],
        )

    @app.command("describe")
    def describe_cmd(table: str, fmt: FormatOpt = OutputFormat.table) -> None:
        """Show one table's contract: columns, types, keys. / 表结构说明。"""
        c = contract(table)
        rows = [
            [
                col.name + (" *" if col.name == c.key else ""),
                col.type,
                t("cli.yes") if col.required else t("cli.no"),
                t(col.description_key),
            ]
            for col in c.columns
        ]
        render_rows(
            [t("cli.column"), t("cli.type"), t("cli.required"), t("cli.description")],
            rows,
            fmt,
            title=f"{c.table} — {t(c.description_key)}",
            keys=["column", "type", "required", "description"],
        )

    @app.command("status")
    def status_cmd(project: ProjectOpt = None, fmt: FormatOpt = OutputFormat.table) -> None:
        """Tables, row counts, date ranges and quarantine. / 数据状态。"""
        from yunying.warehouse.status import warehouse_status

        s = settings_for(project)
        with read_warehouse(s) as wh:
            emit(warehouse_status(wh), fmt)

    data = typer.Typer(
        help="Administer warehouse rows. / 管理数据仓库中的数据。", no_args_is_help=True
    )
    app.add_typer(data, name="data")

    @data.command("delete")
    def delete_cmd(
        table: Annotated[str, typer.Argument(help="Contract table: events, users, orders, …")],
        keys: Annotated[
            list[str] | None, typer.Option("--key", help="Delete the row with this key (repeatable).")
        ] = None,
        where: Annotated[
            str | None,
            typer.Option(
                "--where",
                help='Filter on columns, e.g. "ts>=2099-01-01" or "ts<2000-01-01 and event=view".',
            ),
        ] = None,
        outside_window: Annotated[
            bool,
            typer.Option(
                "--outside-window",
                help="Rows whose time is before event_time_floor or after now + event_future_skew.",
            ),
        ] = False,
        yes: Annotated[bool, typer.Option("--yes", help="Really delete (else: only count).")] = False,
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Delete rows by key or filter, with an audit entry. / 按主键或条件删除数据（留审计记录）。"""
        from yunying.appdb import open_appdb
        from yunying.warehouse.admin import delete_rows
        from yunying.warehouse.engine import open_warehouse
        from yunying.web.accounts import audit

        s = settings_for(project)
        with open_warehouse(s) as wh:
            res = delete_rows(wh, table, keys or [], where, outside_window, dry_run=not yes)
        if res.deleted:
            audit(open_appdb(s), f"cli:{getpass.getuser()}", "data.delete", res.table,
                  f"deleted={res.deleted}; {res.criteria}"[:2000])
        if fmt != OutputFormat.table:
            emit(res, fmt)
            return
        if res.dry_run:
            console.print(t("data.delete.would", n=res.matched, table=res.table))
        else:
            console.print(t("data.delete.done", n=res.deleted, table=res.table))
