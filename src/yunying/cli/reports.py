"""``yunying report experiment|campaign ID --format html|pdf|json``: review documents."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from yunying.cli.common import ProjectOpt, console, err_console, settings_for
from yunying.errors import YunyingError
from yunying.i18n import get_language, t

FORMATS = ("html", "pdf", "json")

FmtOpt = Annotated[str, typer.Option("--format", "-f", help="html, pdf or json.")]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="File to write (default reports/<kind>-<id>.<format>; '-' = stdout)."),
]
LangOpt = Annotated[str | None, typer.Option("--lang", help="zh_CN or en (default: project language).")]


def _write(doc_kind: str, doc_id: str, fmt: str, out: Path | None, project_dir: Path, doc: object) -> None:
    from yunying.reports.render import ReportDoc, render_html, render_pdf

    assert isinstance(doc, ReportDoc)
    if fmt == "json":
        data: bytes = doc.model_dump_json(indent=2).encode()
    elif fmt == "html":
        data = render_html(doc).encode()
    else:
        data = render_pdf(doc)
    if out is not None and str(out) == "-":
        if fmt == "pdf":
            sys.stdout.buffer.write(data)
        else:
            sys.stdout.write(data.decode())
        return
    path = out or project_dir / "reports" / f"{doc_kind}-{doc_id}.{fmt}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as e:
        raise YunyingError("reports.write_failed", path=str(path), reason=str(e)) from e
    console.print(t("reports.written", path=str(path)))


def _check(fmt: str) -> None:
    if fmt not in FORMATS:
        raise YunyingError("reports.bad_format", format=fmt)


def register(app: typer.Typer) -> None:
    rep = typer.Typer(help="Review reports (复盘) as HTML or PDF. / 复盘报告。", no_args_is_help=True)
    app.add_typer(rep, name="report")

    @rep.command("experiment")
    def experiment_cmd(
        experiment_id: str,
        project: ProjectOpt = None,
        fmt: FmtOpt = "html",
        out: OutOpt = None,
        lang: LangOpt = None,
    ) -> None:
        """Experiment review: result in words, charts, next steps. / 实验复盘。"""
        from yunying.cli.common import read_warehouse
        from yunying.experiments.spec import load
        from yunying.reports.experiment import experiment_report

        _check(fmt)
        s = settings_for(project)
        spec = load(s, experiment_id)
        with read_warehouse(s) as wh, err_console.status(t("experiments.working")):
            doc = experiment_report(wh, spec, lang=lang or get_language())
        _write("experiment", spec.id, fmt, out, s.project_dir, doc)

    @rep.command("campaign")
    def campaign_cmd(
        campaign_id: str,
        project: ProjectOpt = None,
        fmt: FmtOpt = "html",
        out: OutOpt = None,
        lang: LangOpt = None,
        by: Annotated[str, typer.Option(help="Users column or property for the per-segment view.")] = "channel",
    ) -> None:
        """Campaign review: lift vs holdout, cost, CPA, ROI, per tool. / 活动复盘。"""
        from yunying.cli.common import read_warehouse
        from yunying.reports.campaign import campaign_report

        _check(fmt)
        s = settings_for(project)
        with read_warehouse(s) as wh, err_console.status(t("experiments.working")):
            doc = campaign_report(s, wh, campaign_id, lang=lang or get_language(), segment_by=by)
        _write("campaign", campaign_id, fmt, out, s.project_dir, doc)
