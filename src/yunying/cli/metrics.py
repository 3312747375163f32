"""``yunying metrics …``: the indicator system from the terminal (a thin edge over yunying.metrics)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer

from yunying import clock, timeexpr
from yunying.cli.common import (
    FormatOpt,
    OutputFormat,
    ProjectOpt,
    console,
    emit,
    err_console,
    read_warehouse,
    settings_for,
)
from yunying.errors import YunyingError
from yunying.i18n import t

if TYPE_CHECKING:
    from yunying.config import Settings
    from yunying.metrics.tree import Period

metrics_app = typer.Typer(
    name="metrics",
    help="Indicator system: specs, libraries, compute, trees, what-if, targets, alerts. / 指标体系。",
    no_args_is_help=True,
)


def _date(text: str | None, default: dt.date, s: Settings) -> dt.date:
    """A day expression (YYYY-MM-DD, yesterday, -30d …) in the project's zone."""
    return timeexpr.parse_day(text, clock.today(s.timezone)) if text else default


def _yesterday(s: Settings) -> dt.date:
    return clock.today(s.timezone) - dt.timedelta(days=1)


def _last_month(s: Settings) -> Period:
    from yunying.metrics.tree import Period

    first = _yesterday(s).replace(day=1)
    end = first - dt.timedelta(days=1)
    return Period(start=end.replace(day=1), end=end)


def _period(text: str | None, s: Settings) -> Period:
    """``2026-10``, a day, ``A..B``, or relative: ``last-month``, ``-60d..-31d``, ``last-30d`` …"""
    from yunying.metrics.tree import Period, parse_period

    if not text:
        return _last_month(s)
    try:
        return parse_period(text)
    except YunyingError:
        start, end = timeexpr.parse_range(text, clock.today(s.timezone))
        return Period(start=start, end=end)


FromOpt = Annotated[
    str | None, typer.Option("--from", help="First day: YYYY-MM-DD or -60d, -3m … (default: 30 days before --to).")
]
ToOpt = Annotated[str | None, typer.Option("--to", help="Last day: YYYY-MM-DD, yesterday, -1d … (default: yesterday).")]
PeriodOpt = Annotated[
    str | None,
    typer.Option(
        "--period", help="2026-10, a day, A..B, last-month, last-week, last-30d, -60d..-31d … (default: last month)."
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(metrics_app, name="metrics")


@metrics_app.command("list")
def list_cmd(project: ProjectOpt = None, fmt: FormatOpt = OutputFormat.table) -> None:
    """The metric system as a tree: frameworks, then libraries. / 指标体系树。"""
    from rich.tree import Tree

    from yunying.metrics.frameworks import list_system
    from yunying.metrics.spec import load_registry

    s = settings_for(project)
    listing = list_system(load_registry(s))
    if fmt != OutputFormat.table:
        emit(listing, fmt)
        return
    root = Tree(t("metrics.list.title"))
    stack: list[Tree] = [root]
    for ln in listing.lines:
        del stack[ln.depth + 1:]
        text = f"[bold]{ln.label}[/] [dim]{ln.name} · {ln.kind}[/]" + (f" — {ln.detail}" if ln.detail else "")
        stack.append(stack[-1].add(text))
    console.print(root)


@metrics_app.command("validate")
def validate_cmd(project: ProjectOpt = None) -> None:
    """Check every spec (names, references, columns, dimensions, formulas, cycles). / 校验指标定义。"""
    from yunying.metrics.spec import load_registry

    s = settings_for(project)
    reg = load_registry(s)
    console.print(t("metrics.valid", n=len(reg.metrics), systems=len(reg.systems)))


@metrics_app.command("init")
def init_cmd(
    framework: Annotated[str, typer.Option("--framework", help="pulse | heart | gsm | aarrr | north-star")],
    project: ProjectOpt = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing scaffold.")] = False,
) -> None:
    """Scaffold a metric system with explained placeholders. / 按框架生成指标体系。"""
    from yunying.metrics.frameworks import FRAMEWORKS, init_framework

    s = settings_for(project)
    if framework not in FRAMEWORKS:
        raise YunyingError("metrics.unknown_framework", name=framework, frameworks=", ".join(FRAMEWORKS))
    path = init_framework(s, framework, force)
    console.print(t("metrics.init.written", path=str(path)))


@metrics_app.command("compute")
def compute_cmd(
    names: Annotated[list[str], typer.Argument(help="Metric names.")],
    grain: Annotated[str | None, typer.Option("--grain", help="day | week | month | total (default: the metric's).")] = None,
    start: FromOpt = None,
    end: ToOpt = None,
    by: Annotated[str | None, typer.Option("--by", help="Break down by a dimension.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute even if cached.")] = False,
    project: ProjectOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Compute metrics per period. / 计算指标。"""
    from yunying.metrics.compute import compute
    from yunying.metrics.spec import load_registry

    s = settings_for(project)
    reg = load_registry(s)
    to = _date(end, _yesterday(s), s)
    frm = _date(start, to - dt.timedelta(days=29), s)
    g = grain or reg.get(names[0]).grain
    with read_warehouse(s) as wh:
        res = compute(wh, reg, names, g, frm, to, by, use_cache=not no_cache)
    emit(res, fmt, title=t("metrics.compute.title", start=frm.isoformat(), end=to.isoformat(), grain=g))


@metrics_app.command("explain")
def explain_cmd(
    name: str,
    period_a: Annotated[str, typer.Option("--from", help="Base period: 2026-09, a day, A..B, last-month, -56d..-29d …")],
    period_b: Annotated[str, typer.Option("--to", help="Compared period, same forms.")],
    by: Annotated[str | None, typer.Option("--by", help="Also attribute to the values of a dimension.")] = None,
    project: ProjectOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Attribute a change between two periods to drivers and dimension values. / 指标变动归因。"""
    from yunying.metrics.spec import load_registry
    from yunying.metrics.tree import explain

    s = settings_for(project)
    reg = load_registry(s)
    with read_warehouse(s) as wh:
        res = explain(wh, reg, name, _period(period_a, s), _period(period_b, s), by)
    emit(res, fmt, title=t("metrics.explain.title", name=res.label, method=res.method or "-"))


@metrics_app.command("whatif")
def whatif_cmd(
    name: str,
    sets: Annotated[list[str], typer.Option("--set", help="driver=+5% | driver=-2% | driver=+100 | driver=0.04")],
    period: PeriodOpt = None,
    save: Annotated[str | None, typer.Option("--save", help="Save as a named scenario.")] = None,
    description: Annotated[str, typer.Option(help="Scenario description.")] = "",
    project: ProjectOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Simulate driver changes through the metric tree. / 经营指标变动模拟。"""
    from yunying.metrics.spec import load_registry
    from yunying.metrics.tree import Scenario, parse_change, save_scenario, whatif

    s = settings_for(project)
    reg = load_registry(s)
    p = _period(period, s)
    changes = dict(parse_change(x) for x in sets)
    with read_warehouse(s) as wh:
        res = whatif(wh, reg, name, p, changes)
    if save:
        path = save_scenario(s, Scenario(name=save, metric=name, period=p.label(), changes=res.changes, description=description))
        err_console.print(t("metrics.scenario.saved", path=str(path)))
    emit(res, fmt, title=t("metrics.whatif.title", name=name, period=p.label()))


@metrics_app.command("goalseek")
def goalseek_cmd(
    name: str,
    goal: Annotated[str, typer.Option("--goal", help="+10% | +5000 | 1200000")],
    driver: Annotated[str, typer.Option("--driver", help="The driver to move.")],
    period: PeriodOpt = None,
    project: ProjectOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """What value of a driver reaches a goal? / 目标反推。"""
    from yunying.metrics.spec import load_registry
    from yunying.metrics.tree import goal_seek

    s = settings_for(project)
    reg = load_registry(s)
    p = _period(period, s)
    with read_warehouse(s) as wh:
        res = goal_seek(wh, reg, name, p, goal, driver)
    emit(res, fmt, title=t("metrics.goalseek.title", name=name, driver=res.driver))


@metrics_app.command("sensitivity")
def sensitivity_cmd(
    name: str, period: PeriodOpt = None, project: ProjectOpt = None, fmt: FormatOpt = OutputFormat.table
) -> None:
    """How much each driver moves the metric. / 敏感性分析。"""
    from yunying.metrics.spec import load_registry
    from yunying.metrics.tree import sensitivity

    s = settings_for(project)
    reg = load_registry(s)
    with read_warehouse(s) as wh:
        res = sensitivity(wh, reg, name, _period(period, s))
    emit(res, fmt, title=t("metrics.sensitivity.title", name=name))


@metrics_app.command("scenarios")
def scenarios_cmd(
    names: Annotated[list[str], typer.Argument(help="Saved scenario names to compare.")],
    project: ProjectOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Compare saved what-if scenarios. / 情景对比。"""
    from yunying.metrics.spec import load_registry
    from yunying.metrics.tree import compare_scenarios

    s = settings_for(project)
    reg = load_registry(s)
    with read_warehouse(s) as wh:
        res = compare_scenarios(wh, reg, s, names)
    emit(res, fmt, title=t("metrics.scenario.title", name=res.metric))


@metrics_app.command("targets")
def targets_cmd(
    as_of: Annotated[str | None, typer.Option("--as-of", help="Day the data is complete to (default: yesterday).")] = None,
    project: ProjectOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Plan vs actual, gap and pacing forecast. / 目标达成与预测。"""
    from yunying.metrics.monitor import load_targets, plan_vs_actual
    from yunying.metrics.spec import load_registry

    s = settings_for(project)
    reg = load_registry(s)
    day = _date(as_of, _yesterday(s), s)
    with read_warehouse(s) as wh:
        res = plan_vs_actual(wh, reg, load_targets(s, reg), day)
    emit(res, fmt, title=t("metrics.targets.title", day=day.isoformat()))


@metrics_app.command("anomalies")
def anomalies_cmd(
    name: str,
    start: FromOpt = None,
    end: ToOpt = None,
    by: Annotated[str | None, typer.Option("--by")] = None,
    weeks: Annotated[int, typer.Option(help="Weeks of same-weekday history.")] = 4,
    threshold: Annotated[float, typer.Option(help="Robust z-score that counts as an anomaly.")] = 3.5,
    project: ProjectOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Daily values scored against a same-weekday median/MAD baseline. / 异常检测。"""
    from yunying.metrics.monitor import anomalies
    from yunying.metrics.spec import load_registry

    s = settings_for(project)
    reg = load_registry(s)
    to = _date(end, _yesterday(s), s)
    frm = _date(start, to - dt.timedelta(days=13), s)
    with read_warehouse(s) as wh:
        pts = anomalies(wh, reg, name, frm, to, by, weeks, threshold)
    from yunying.cli.common import render_rows

    if fmt == OutputFormat.json:
        import json
        import sys

        sys.stdout.write(json.dumps([p.model_dump(mode="json") for p in pts], ensure_ascii=False, indent=2) + "\n")
        return
    render_rows(
        [t("metrics.col.period"), t("metrics.col.dim"), t("metrics.col.value"), t("metrics.col.baseline"),
         t("metrics.col.score"), t("metrics.col.anomaly")],
        [[p.day.isoformat(), p.dim or "", p.value, p.baseline, None if p.score is None else round(p.score, 2),
          "⚠" if p.anomaly else ""] for p in pts],
        fmt,
    )


@metrics_app.command("check")
def check_cmd(
    as_of: Annotated[str | None, typer.Option("--as-of", help="Day to check (default: yesterday).")] = None,
    webhook: Annotated[str | None, typer.Option("--webhook", help="POST the result as JSON to this URL.")] = None,
    project: ProjectOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Evaluate the alert rules; exits 1 when any fired (for cron). / 检查告警。"""
    from yunying.metrics.monitor import check_alerts, load_alerts, load_targets, send_webhook
    from yunying.metrics.spec import load_registry

    s = settings_for(project)
    reg = load_registry(s)
    rules, file_hook = load_alerts(s, reg)
    day = _date(as_of, _yesterday(s), s)
    with read_warehouse(s) as wh:
        report = check_alerts(wh, reg, rules, day, load_targets(s, reg))
    url = webhook or file_hook
    if report.fired and url:
        send_webhook(url, report)
    if fmt == OutputFormat.table:
        if report.fired:
            emit(report, fmt, title=t("metrics.check.fired", n=len(report.fired), rules=report.evaluated))
        else:
            console.print(t("metrics.check.quiet", rules=report.evaluated, day=day.isoformat()))
    else:
        emit(report, fmt)
    if report.fired:
        raise typer.Exit(1)


@metrics_app.command("vintage")
def vintage_cmd(
    start: Annotated[str, typer.Option("--from", help="First disbursement day YYYY-MM-DD.")],
    end: ToOpt = None,
    mobs: Annotated[int, typer.Option(help="Months on book to show.")] = 6,
    dpd: Annotated[int, typer.Option(help="Days past due that make a loan bad.")] = 30,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Data complete to (default: yesterday).")] = None,
    project: ProjectOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Credit vintage curves by disbursement month. / 账龄分析。"""
    from yunying.metrics.vintage import vintage

    s = settings_for(project)
    day = _date(as_of, _yesterday(s), s)
    with read_warehouse(s) as wh:
        res = vintage(wh, _date(start, day, s), _date(end, day, s), mobs, dpd, day)
    emit(res, fmt, title=t("metrics.vintage.title", dpd=dpd))
