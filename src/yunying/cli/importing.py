"""``yunying import`` and ``yunying quarantine list|show|export|clear``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from yunying.cli.common import (
    FormatOpt,
    OutputFormat,
    ProjectOpt,
    console,
    emit,
    err_console,
    settings_for,
)
from yunying.errors import YunyingError
from yunying.i18n import t


def parse_maps(values: list[str]) -> dict[str, str]:
    """``SOURCE=FIELD`` pairs from repeated ``--map`` options."""
    out: dict[str, str] = {}
    for v in values:
        src, sep, dst = v.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise YunyingError("importing.bad_map", value=v)
        out[src.strip()] = dst.strip()
    return out


def _one_char(option: str, value: str | None, allow_empty: bool) -> str | None:
    """A dialect character: one character (``\\t`` for tab), or empty where allowed."""
    if value is None:
        return None
    value = {"\\t": "\t", "tab": "\t"}.get(value, value)
    if len(value) == 1 and value not in "\r\n" or (allow_empty and value == ""):
        return value
    raise YunyingError("importing.bad_dialect", option=option, value=value)


def register(app: typer.Typer) -> None:
    @app.command("import")
    def import_cmd(
        table: Annotated[str, typer.Argument(help="Contract table: events, users, orders, …")],
        paths: Annotated[list[Path], typer.Argument(help="CSV, Parquet or JSON-lines files.")],
        input_format: Annotated[
            str | None,
            typer.Option("--format", help="csv, parquet or jsonl (default: from the file name)."),
        ] = None,
        maps: Annotated[
            list[str] | None,
            typer.Option("--map", help="SOURCE=FIELD: read file column SOURCE as FIELD."),
        ] = None,
        timezone: Annotated[
            str | None,
            typer.Option("--timezone", help="Zone of times without an offset (default: project)."),
        ] = None,
        encoding: Annotated[
            str | None,
            typer.Option(
                "--encoding",
                help="Text encoding, e.g. gb18030, utf-16 (default: detected: UTF-8, "
                "UTF-16 with BOM, GB18030/GBK).",
            ),
        ] = None,
        delimiter: Annotated[
            str | None,
            typer.Option("--delimiter", help="CSV delimiter (default: from the header line)."),
        ] = None,
        quote: Annotated[
            str | None,
            typer.Option("--quote", help='CSV quote character (default ", RFC 4180; "" = none).'),
        ] = None,
        excel_dates: Annotated[
            bool,
            typer.Option("--excel-dates", help="Read plain numbers in time columns as Excel serial days."),
        ] = False,
        project: ProjectOpt = None,
        output: Annotated[
            OutputFormat, typer.Option("--output", "-o", help="Summary as table, json or csv.")
        ] = OutputFormat.table,
    ) -> None:
        """Import files: each row is loaded, a duplicate, or quarantined. / 校验导入数据。"""
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TaskID,
            TextColumn,
            TimeElapsedColumn,
        )

        from yunying.warehouse.engine import open_warehouse
        from yunying.warehouse.importer import ImportRequest, run_import

        s = settings_for(project)
        if input_format is not None and input_format not in ("csv", "parquet", "jsonl"):
            raise YunyingError("importing.unknown_format", path=str(paths[0]), format=input_format)
        req = ImportRequest(
            table=table,
            paths=paths,
            format=input_format,  # type: ignore[arg-type]
            mapping=parse_maps(maps or []),
            timezone=timezone,
            encoding=encoding,
            delimiter=_one_char("--delimiter", delimiter, allow_empty=False),
            quote=_one_char("--quote", quote, allow_empty=True),
            excel_dates=excel_dates,
        )
        with (
            open_warehouse(s) as wh,
            Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err_console,
                transient=True,
            ) as bar,
        ):
            tasks: dict[tuple[str, str], TaskID] = {}

            def progress(phase: str, file: str, done: int, total: int) -> None:
                key = (phase, file)
                if key not in tasks:
                    desc = t(f"importing.progress.{phase}", file=Path(file).name)
                    tasks[key] = bar.add_task(desc, total=total or None)
                    if phase == "load":
                        bar.update(tasks[("read", file)], total=1, completed=1)
                bar.update(tasks[key], completed=done, total=total or None)

            result = run_import(wh, req, progress)
        emit(result, output)
        if output == OutputFormat.table:
            console.print(
                t(
                    "importing.summary",
                    table=result.table,
                    rows=result.rows_read,
                    loaded=result.loaded,
                    duplicate=result.duplicate,
                    quarantined=result.quarantined,
                )
            )
            for f in result.files:
                if f.quarantined:
                    console.print(t("importing.summary_hint", import_id=f.import_id))

    q = typer.Typer(
        help="See, export and clear quarantined rows. / 查看、导出、清除被隔离的数据。",
        no_args_is_help=True,
    )
    app.add_typer(q, name="quarantine")

    @q.command("list")
    def list_cmd(
        project: ProjectOpt = None,
        table: Annotated[str | None, typer.Option(help="Only this table.")] = None,
        limit: Annotated[int, typer.Option(help="At most this many imports.")] = 50,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """The import log with counts per file. / 导入记录。"""
        from yunying.warehouse import quarantine as qstore

        s = settings_for(project)
        emit(qstore.list_imports(s, table, limit), fmt)

    @q.command("show")
    def show_cmd(
        import_id: str,
        project: ProjectOpt = None,
        limit: Annotated[int, typer.Option(help="At most this many rows.")] = 100,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Quarantined rows of one import: line, field, reason, value. / 隔离明细。"""
        from yunying.warehouse import quarantine as qstore

        s = settings_for(project)
        detail = qstore.show_import(s, import_id, limit)
        emit(detail, fmt, title=f"{detail.table} — {detail.file}")
        if fmt == OutputFormat.table and detail.total > len(detail.rows):
            console.print(t("importing.show_more", shown=len(detail.rows), total=detail.total))

    @q.command("export")
    def export_cmd(
        import_id: str,
        output: Annotated[Path, typer.Argument(help="File to write (.csv, or .jsonl).")],
        project: ProjectOpt = None,
    ) -> None:
        """Write the bad rows back as a file to correct and re-import. / 导出待修正的行。"""
        from yunying.warehouse import quarantine as qstore

        s = settings_for(project)
        n = qstore.export_import(s, import_id, output)
        console.print(t("importing.exported", n=n, path=str(output)))

    @q.command("clear")
    def clear_cmd(import_id: str, project: ProjectOpt = None) -> None:
        """Forget the quarantined rows of an import once fixed. / 清除已处理的隔离数据。"""
        from yunying.warehouse import quarantine as qstore

        s = settings_for(project)
        n = qstore.clear_import(s, import_id)
        console.print(t("importing.cleared", n=n, import_id=import_id))
