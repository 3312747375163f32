"""``yunying experiment create|list|assign|analyze|power``: A/B tests from YAML definitions."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from yunying.cli.common import (
    FormatOpt,
    OutputFormat,
    ProjectOpt,
    console,
    emit,
    err_console,
    render_rows,
    settings_for,
)
from yunying.errors import YunyingError
from yunying.i18n import t


def parse_variants(text: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in text.split(","):
        key, _, w = part.strip().partition(":")
        try:
            weight = float(w) if w else 1.0
        except ValueError:
            raise YunyingError("experiments.bad_variants", value=text) from None
        if not key or weight <= 0:
            raise YunyingError("experiments.bad_variants", value=text)
        out.append({"key": key, "weight": weight})
    if len(out) < 2:
        raise YunyingError("experiments.bad_variants", value=text)
    return out


def parse_metric(text: str) -> dict[str, Any]:
    """``id:kind:orders[:agg]``, ``id:kind:events:event[:agg[:value]]`` or
    ``id:kind:indicator:name``."""
    parts = text.split(":")
    if len(parts) < 3 or parts[1] not in ("proportion", "mean"):
        raise YunyingError("experiments.bad_metric", value=text)
    mid, kind, source = parts[0], parts[1], parts[2]
    default_agg = "any" if kind == "proportion" else ("sum" if source == "orders" else "count")
    if source == "indicator" and len(parts) == 4:
        return {"id": mid, "kind": kind, "indicator": parts[3]}
    if source == "orders" and len(parts) <= 4:
        agg = parts[3] if len(parts) == 4 else default_agg
        return {"id": mid, "kind": kind, "measure": {"source": "orders", "agg": agg}}
    if source == "events" and 4 <= len(parts) <= 6:
        m: dict[str, Any] = {"source": "events", "event": parts[3]}
        m["agg"] = parts[4] if len(parts) >= 5 else default_agg
        if len(parts) == 6:
            m["value"] = parts[5]
        return {"id": mid, "kind": kind, "measure": m}
    raise YunyingError("experiments.bad_metric", value=text)


def register(app: typer.Typer) -> None:
    exp = typer.Typer(
        help="A/B experiments: definitions, assignment, analysis. / 实验：定义、分流、分析。",
        no_args_is_help=True,
    )
    app.add_typer(exp, name="experiment")

    @exp.command("create")
    def create_cmd(
        experiment_id: Annotated[str, typer.Argument(help="Experiment id (letters, digits, _ -).")],
        project: ProjectOpt = None,
        variants: Annotated[str, typer.Option(help="key:weight,… first is control.")] = "control:50,treatment:50",
        metric: Annotated[
            list[str] | None,
            typer.Option(help="id:proportion|mean:orders[:agg] or …:events:event[:agg[:prop]] or …:indicator:name; repeat."),
        ] = None,
        name: Annotated[str, typer.Option(help="Human name.")] = "",
        hypothesis: Annotated[str, typer.Option(help="What you expect and why.")] = "",
        layer: Annotated[str | None, typer.Option(help="Mutual-exclusion layer.")] = None,
        layer_range: Annotated[str, typer.Option(help="Slice of the layer, from:to.")] = "0:1",
        holdout: Annotated[float, typer.Option(help="Share held out of the experiment.")] = 0.0,
        coverage: Annotated[float, typer.Option(help="Share of eligible users included.")] = 1.0,
        segment: Annotated[str | None, typer.Option(help="Target a segment.")] = None,
        users_file: Annotated[str | None, typer.Option(help="Target users in this CSV.")] = None,
        method: Annotated[str, typer.Option(help="frequentist | bayesian | sequential")] = "frequentist",
        from_file: Annotated[Path | None, typer.Option(help="Validate and copy a YAML definition.")] = None,
        force: Annotated[bool, typer.Option(help="Replace an existing definition.")] = False,
    ) -> None:
        """Write an experiment definition to experiments/<id>.yaml. / 创建实验定义。"""
        from yunying.experiments.spec import ExperimentSpec, parse, save

        s = settings_for(project)
        if from_file is not None:
            try:
                text = from_file.read_text(encoding="utf-8")
            except OSError as e:
                raise YunyingError("experiments.bad_yaml", path=str(from_file), reason=str(e)) from e
            spec = parse(text, str(from_file))
        else:
            lo, _, hi = layer_range.partition(":")
            targeting = None
            if segment or users_file:
                targeting = {"segment": segment, "users_file": users_file}
            data: dict[str, Any] = {
                "id": experiment_id,
                "name": name,
                "hypothesis": hypothesis,
                "variants": parse_variants(variants),
                "metrics": [parse_metric(m) for m in (metric or ["paid:proportion:orders"])],
                "layer": layer,
                "holdout": holdout,
                "coverage": coverage,
                "targeting": targeting,
                "method": method,
            }
            try:
                data["layer_range"] = (float(lo), float(hi or 1))
                spec = ExperimentSpec.model_validate(data)
            except (ValueError, ValidationError) as e:
                reason = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
                field = (
                    ".".join(str(x) for x in e.errors()[0]["loc"])
                    if isinstance(e, ValidationError)
                    else "layer_range"
                )
                raise YunyingError("experiments.invalid", path="--options", field=field, reason=reason) from e
        path = save(s, spec, overwrite=force)
        console.print(t("experiments.created", id=spec.id, path=str(path)))

    @exp.command("list")
    def list_cmd(project: ProjectOpt = None, fmt: FormatOpt = OutputFormat.table) -> None:
        """List experiment definitions. / 实验列表。"""
        from yunying.experiments.spec import load_all

        s = settings_for(project)
        rows = [
            [
                x.id,
                x.name,
                ", ".join(f"{v.key}:{v.weight:g}" for v in x.variants),
                f"{x.layer} [{x.layer_range[0]:g}, {x.layer_range[1]:g})" if x.layer else "",
                x.method,
                ", ".join(m.id for m in x.metrics),
            ]
            for x in load_all(s)
        ]
        render_rows(
            [t("experiments.col.id"), t("experiments.col.name"), t("experiments.col.variants"),
             t("experiments.col.layer"), t("experiments.col.method"), t("experiments.col.metrics")],
            rows,
            fmt,
            keys=["id", "name", "variants", "layer", "method", "metrics"],
        )

    @exp.command("assign")
    def assign_cmd(
        experiment_id: str,
        project: ProjectOpt = None,
        users_file: Annotated[Path | None, typer.Option(help="Assign only these users (CSV).")] = None,
        at: Annotated[datetime | None, typer.Option(help="Exposure time (UTC), default now.")] = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Assign eligible users and log their exposures. / 分流并记录曝光。"""
        from yunying.cli.common import write_warehouse
        from yunying.experiments.assignment import assign_and_log, read_user_file
        from yunying.experiments.spec import load

        s = settings_for(project)
        spec = load(s, experiment_id)
        ids = read_user_file(users_file) if users_file is not None else None
        with write_warehouse(s) as wh, err_console.status(t("experiments.working")):
            r = assign_and_log(s, wh, spec, ids, at)
        if r.eligible == 0:
            raise YunyingError("experiments.no_users", id=experiment_id)
        from yunying.experiments.assignment import AssignSummary

        summary = AssignSummary.of(spec, r)
        if fmt == OutputFormat.table:
            console.print(
                t("experiments.assigned", assigned=r.assigned, eligible=r.eligible,
                  already=r.already, written=r.written)
            )
        emit(summary, fmt)

    @exp.command("analyze")
    def analyze_cmd(
        experiment_id: str,
        project: ProjectOpt = None,
        method: Annotated[str | None, typer.Option(help="frequentist | bayesian | sequential")] = None,
        baseline: Annotated[str | None, typer.Option(help="Compare against this variant (or holdout).")] = None,
        correction: Annotated[str | None, typer.Option(help="none | holm | bh")] = None,
        as_of: Annotated[datetime | None, typer.Option(help="Only data before this time (UTC).")] = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Analyse an experiment: effects, intervals, SRM check. / 分析实验结果。"""
        from yunying.cli.common import read_warehouse
        from yunying.experiments.analysis import AnalyzeQuery, run_analysis
        from yunying.experiments.spec import load

        s = settings_for(project)
        spec = load(s, experiment_id)
        try:
            q = AnalyzeQuery(
                experiment=experiment_id, method=method, baseline=baseline,
                correction=correction, as_of=as_of,
            )
        except ValidationError as e:
            first = e.errors()[0]
            raise YunyingError(
                "experiments.invalid", path="--options",
                field=".".join(str(x) for x in first["loc"]), reason=first["msg"],
            ) from e
        with read_warehouse(s) as wh, err_console.status(t("experiments.working")):
            result = run_analysis(wh, spec, q)
        if result.srm.mismatch and fmt == OutputFormat.table:
            err_console.print(
                "[bold yellow]" + t("experiments.srm_warning", p=f"{result.srm.p_value:.2g}") + "[/]"
            )
        emit(result, fmt, title=result.name)

    @exp.command("power")
    def power_cmd(
        mde: Annotated[float, typer.Option(help="Absolute change to detect (0.01 = 1 pp).")],
        baseline: Annotated[float | None, typer.Option(help="Baseline conversion rate.")] = None,
        sd: Annotated[float | None, typer.Option(help="Std dev of a per-user metric.")] = None,
        alpha: Annotated[float, typer.Option()] = 0.05,
        power: Annotated[float, typer.Option()] = 0.8,
        variants: Annotated[int, typer.Option()] = 2,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Users needed to detect a change. / 样本量计算。"""
        from yunying.experiments.sizing import PowerQuery
        from yunying.experiments.sizing import power as run_power

        q = PowerQuery.model_construct(mde=mde, baseline=baseline, sd=sd, alpha=alpha, power=power, variants=variants)
        emit(run_power(q), fmt)
