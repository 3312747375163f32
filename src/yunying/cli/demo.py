"""``yunying demo`` builds the demo company; ``yunying overview`` prints the headline view."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer

from yunying.cli.common import (
    FormatOpt,
    OutputFormat,
    ProjectOpt,
    console,
    emit,
    read_warehouse,
    settings_for,
    write_warehouse,
)
from yunying.i18n import t

if TYPE_CHECKING:
    import pyarrow as pa


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(
        project: ProjectOpt = None,
        users: Annotated[int, typer.Option(min=100, help="Consumer users to generate.")] = 20_000,
        days: Annotated[int, typer.Option(min=60, max=3650, help="Days of history.")] = 180,
        seed: Annotated[int, typer.Option(help="Random seed: same seed, same company.")] = 42,
        end: Annotated[
            dt.datetime | None,
            typer.Option(formats=["%Y-%m-%d"], help="Last day of data (default: yesterday, in the project zone)."),
        ] = None,
    ) -> None:
        """Build the demo company into the project's warehouse (replaces its data). / 生成演示公司数据。"""
        import pyarrow as pa
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        from yunying.config import CONFIG_FILE, CONFIG_TEMPLATE
        from yunying.demo import DemoSpec, generate
        from yunying.demo.examples import write_examples
        from yunying.demo.generator import spec_experiment, yesterday
        from yunying.experiments.spec import save as save_experiment
        from yunying.warehouse.contracts import CONTRACTS

        s = settings_for(project, create=True)
        s.project_dir.mkdir(parents=True, exist_ok=True)
        cfg = s.project_dir / CONFIG_FILE
        if not cfg.exists():
            cfg.write_text(CONFIG_TEMPLATE.format(name="演示公司 Demo Co."), encoding="utf-8")
        spec = DemoSpec(
            users=users,
            days=days,
            seed=seed,
            end=end.date() if end else yesterday(s.timezone),
            timezone=s.timezone,
            currency=s.currency,
        )
        with write_warehouse(s) as wh:
            for table in CONTRACTS:
                wh.truncate(table)
            buffers: dict[str, list[pa.Table]] = {}

            def sink(table: str, data: pa.Table) -> None:
                # Batch small chunks so the Spark lake gets few, large files.
                buffers.setdefault(table, []).append(data)
                if sum(b.num_rows for b in buffers[table]) >= 2_000_000:
                    wh.append_arrow(table, pa.concat_tables(buffers.pop(table)))

            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            ) as bar:
                task = bar.add_task(t("demo.generating"), total=users)
                stats = generate(spec, sink, lambda n: bar.advance(task, n))
                for table, chunks in buffers.items():
                    wh.append_arrow(table, pa.concat_tables(chunks))
        # The planted A/B test's definition, so `yunying experiment analyze` finds it.
        save_experiment(s, spec_experiment(spec), overwrite=True)
        write_examples(spec, s.project_dir)
        console.print(
            t(
                "demo.done",
                project=str(s.project_dir),
                rows=", ".join(f"{k} {v:,}" for k, v in stats.rows.items()),
                end=spec.end.isoformat(),
            )
        )

    @app.command("overview")
    def overview_cmd(
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
        as_of: Annotated[
            dt.datetime | None, typer.Option("--as-of", formats=["%Y-%m-%d"], help="Day of the figures.")
        ] = None,
    ) -> None:
        """Operations overview: tables and headline figures. / 运营总览。"""
        from yunying.warehouse.overview import overview

        s = settings_for(project)
        with read_warehouse(s) as wh:
            result = overview(wh, s.timezone, as_of.date() if as_of else None)
        if fmt != OutputFormat.table:
            emit(result, fmt)
            return
        emit(result.status, fmt, title=t("overview.tables"))
        emit(result, fmt, title=t("overview.title", as_of=str(result.headline.as_of or "-")))
