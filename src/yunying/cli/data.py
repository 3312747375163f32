"""Project and data commands: init, tables, describe, status."""

from __future__ import annotations

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
from yunying.config import CONFIG_FILE, CONFIG_TEMPLATE
from yunying.i18n import t
from yunying.warehouse.contracts import CONTRACTS, contract
from yunying.warehouse.status import warehouse_status


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init_cmd(
        project: ProjectOpt = None,
        name: Annotated[str, typer.Option(help="Project name.")] = "yunying project",
    ) -> None:
        """Write a commented yunying.toml into the project folder. / 初始化项目配置。"""
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
        s = settings_for(project)
        with read_warehouse(s) as wh:
            emit(warehouse_status(wh), fmt)
