"""Metric specs: YAML files → validated pydantic models, with file and line kept for errors.

A spec file holds ``metrics:`` (a list of metric specs) and optionally ``system:`` (a metric
system built with a framework such as GSM or HEART). Built-in libraries ship as YAML in
``yunying/metrics/library``; the project's own files live in ``settings.metrics.folder``.
Formulas are parsed into a whitelisted AST and evaluated by us, never by Python or SQL.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.warehouse.contracts import CONTRACTS

LIBRARIES = ("ecommerce", "app", "user", "saas", "credit")
# Sub-folders of the metrics folder that hold other documents than specs.
RESERVED_FOLDERS = ("scenarios", "targets", "alerts")

MetricType = Literal["simple", "ratio", "derived", "cumulative", "conversion", "subscription", "lifecycle"]
Agg = Literal["count", "count_distinct", "sum", "avg", "min", "max"]
Grain = Literal["day", "week", "month"]
ADDITIVE_AGGS = ("count", "sum")
SUBSCRIPTION_MEASURES = (
    "mrr",
    "mrr_start",
    "new_mrr",
    "expansion_mrr",
    "contraction_mrr",
    "churned_mrr",
    "reactivation_mrr",
    "customers",
    "customers_start",
    "new_customers",
    "churned_customers",
)
LIFECYCLE_STATES = ("total", "new", "active", "silent", "churned")


class Labels(BaseModel):
    model_config = ConfigDict(extra="forbid")
    zh: str
    en: str

    def get(self, lang: str) -> str:
        return self.zh if lang.startswith("zh") else self.en


class Side(BaseModel):
    """One side of a conversion: rows of a table, optionally filtered."""

    model_config = ConfigDict(extra="forbid")
    table: str = "events"
    where: dict[str, Any] = Field(default_factory=dict)
    time: str | None = None  # defaults to the contract's time column


class TreeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["additive", "multiplicative"]
    children: list[str]


class MetricSpec(BaseModel):
    """One metric. Which fields apply depends on ``type``; ``validate_registry`` checks them."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: Labels
    description: str = ""
    definition: str = ""  # 统计口径: the exact definition in words
    owner: str = ""
    unit: str = ""
    format: Literal["number", "integer", "percent", "currency"] = "number"
    direction: Literal["higher", "lower"] = "higher"
    type: MetricType
    grain: Grain = "day"
    dimensions: list[str] = Field(default_factory=list)
    # simple
    table: str | None = None
    agg: Agg | None = None
    column: str | None = None
    where: dict[str, Any] = Field(default_factory=dict)
    per: Literal["day"] | None = None  # average of daily values over the period
    # ratio
    numerator: str | None = None
    denominator: str | None = None
    # derived
    formula: str | None = None
    # cumulative
    base: str | None = None
    window: Literal["running", "wtd", "mtd", "ytd"] | None = None
    # conversion
    entity: list[str] | str | None = None
    from_: Side | None = Field(default=None, alias="from")
    to: Side | None = None
    within_days: float | None = None
    after_days: float = 0.0
    on_day: int | None = None
    # subscription / lifecycle
    measure: str | None = None
    state: str | None = None
    churn_days: int = 30
    tree: TreeSpec | None = None
    tags: list[str] = Field(default_factory=list)
    # Where the spec came from (not part of its identity).
    file: str = Field(default="", exclude=True)
    line: int = Field(default=0, exclude=True)
    library: str = Field(default="", exclude=True)

    def spec_hash(self) -> str:
        body = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def where_(self) -> str:
        return f"{self.file}:{self.line}"

    def label_for(self, lang: str) -> str:
        return self.label.get(lang)

    def entities(self) -> list[str]:
        if self.entity is None:
            return ["user_id"]
        return [self.entity] if isinstance(self.entity, str) else list(self.entity)

    def deps(self) -> list[str]:
        """Metrics this one is computed from (not its tree children)."""
        if self.type == "ratio":
            return [x for x in (self.numerator, self.denominator) if x]
        if self.type == "cumulative":
            return [self.base] if self.base else []
        if self.type == "derived" and self.formula:
            try:
                return sorted(formula_names(parse_formula(self.formula)))
            except YunyingError:
                return []
        return []


class SystemNode(BaseModel):
    """A node of a framework's system: a goal, a HEART category, an AARRR stage…"""

    model_config = ConfigDict(extra="forbid")
    name: str
    label: Labels | None = None
    kind: str = ""  # goal | signal | category | stage | north_star | input
    explain: str = ""
    metrics: list[str] = Field(default_factory=list)
    children: list[SystemNode] = Field(default_factory=list)


class MetricSystem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    framework: Literal["pulse", "heart", "gsm", "aarrr", "north-star"]
    title: str = ""
    nodes: list[SystemNode] = Field(default_factory=list)
    file: str = Field(default="", exclude=True)
    line: int = Field(default=0, exclude=True)


# -- YAML with line numbers ------------------------------------------------------------


class LineDict(dict[str, Any]):
    """A mapping that remembers the (1-based) line of itself and of each key."""

    line: int = 0
    key_lines: dict[str, int]


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    d = LineDict()
    d.line = node.start_mark.line + 1
    d.key_lines = {}
    for k_node, v_node in node.value:
        key = loader.construct_object(k_node, deep=True)
        d[str(key)] = loader.construct_object(v_node, deep=True)
        d.key_lines[str(key)] = k_node.start_mark.line + 1
    return d


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str, file: str) -> Any:
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else 0
        raise YunyingError("metrics.yaml_syntax", file=file, line=line, reason=str(e.problem)) from e


def line_of(d: Any, loc: Iterable[Any]) -> int:
    """The line of the deepest key in ``loc`` that we still know."""
    line = getattr(d, "line", 0)
    cur = d
    for part in loc:
        if isinstance(cur, LineDict) and isinstance(part, str):
            key = "from" if part == "from_" else part
            line = cur.key_lines.get(key, line)
            cur = cur.get(key)
        elif isinstance(cur, list) and isinstance(part, int) and part < len(cur):
            cur = cur[part]
            line = getattr(cur, "line", line)
        else:
            break
    return line


# -- formulas --------------------------------------------------------------------------

_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Add, ast.Sub, ast.Mult, ast.Div,
            ast.USub, ast.UAdd, ast.Constant, ast.Name, ast.Load)


def parse_formula(text: str) -> ast.Expression:
    """Parse and whitelist: numbers, metric names, + - * /, unary minus, parentheses."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise YunyingError("metrics.formula_syntax", formula=text, reason=e.msg or "syntax") from e
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise YunyingError("metrics.formula_node", formula=text, node=type(node).__name__)
        if isinstance(node, ast.Constant) and (
            isinstance(node.value, bool) or not isinstance(node.value, int | float)
        ):
            raise YunyingError("metrics.formula_node", formula=text, node=repr(node.value))
    return tree


def formula_names(tree: ast.Expression) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def eval_formula(tree: ast.Expression, values: dict[str, Any], div: Callable[[Any, Any], Any]) -> Any:
    """Evaluate over floats or pandas Series; ``div`` decides what x/0 gives."""

    def ev(n: ast.AST) -> Any:
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant):
            assert isinstance(n.value, int | float)
            return float(n.value)
        if isinstance(n, ast.Name):
            return values[n.id]
        if isinstance(n, ast.UnaryOp):
            v = ev(n.operand)
            return -v if isinstance(n.op, ast.USub) else v
        if isinstance(n, ast.BinOp):
            a, b = ev(n.left), ev(n.right)
            if isinstance(n.op, ast.Add):
                return a + b
            if isinstance(n.op, ast.Sub):
                return a - b
            if isinstance(n.op, ast.Mult):
                return a * b
            return div(a, b)
        raise YunyingError("metrics.formula_node", formula="?", node=type(n).__name__)

    return ev(tree)


# -- dimensions ------------------------------------------------------------------------


@dataclass(frozen=True)
class DimRef:
    """How a dimension name reaches a table: a column, a JSON property, or a joined column."""

    name: str
    join: str | None  # None | "users" | "accounts"
    column: str  # column of the (joined) table, or the JSON key when json=True
    json: bool = False


def resolve_dim(table: str, name: str) -> DimRef:
    c = CONTRACTS.get(table)
    if c is None:
        raise YunyingError("warehouse.unknown_table", table=table, tables=", ".join(CONTRACTS))
    if name.startswith("properties.") and len(name) > 11:
        return DimRef(name, None, name[11:], True)
    if name in c.names and name != "properties":
        return DimRef(name, None, name)
    head, _, rest = name.partition(".")
    joins = {"user": "users", "users": "users", "account": "accounts", "accounts": "accounts"}
    if rest and head in joins:
        target = joins[head]
        link = "user_id" if target == "users" else "account_id"
        if link in c.names and table != target:
            if rest.startswith("properties.") and len(rest) > 11:
                return DimRef(name, target, rest[11:], True)
            if rest in CONTRACTS[target].names:
                return DimRef(name, target, rest)
    for target, link in (("users", "user_id"), ("accounts", "account_id")):
        if table != target and link in c.names and name in CONTRACTS[target].names and name != link:
            return DimRef(name, target, name)
    raise YunyingError("metrics.dim_not_on_table", dim=name, table=table, where="")


# -- registry --------------------------------------------------------------------------


@dataclass
class Registry:
    metrics: dict[str, MetricSpec] = field(default_factory=dict)
    systems: list[MetricSystem] = field(default_factory=list)
    folder: Path | None = None

    def get(self, name: str) -> MetricSpec:
        m = self.metrics.get(name)
        if m is None:
            raise YunyingError("metrics.unknown_metric", name=name, where="")
        return m

    def closure(self, names: Iterable[str]) -> list[str]:
        """``names`` and everything they depend on, dependencies first."""
        out: list[str] = []
        seen: set[str] = set()

        def visit(n: str) -> None:
            if n in seen:
                return
            seen.add(n)
            for d in self.get(n).deps():
                visit(d)
            out.append(n)

        for n in names:
            visit(n)
        return out

    def deep_hash(self, name: str) -> str:
        h = hashlib.sha256()
        for n in self.closure([name]):
            h.update(self.metrics[n].spec_hash().encode())
        return h.hexdigest()[:16]


def _library_files(names: Iterable[str]) -> list[tuple[str, str, str]]:
    root = resources.files("yunying") / "metrics" / "library"
    out = []
    for lib in names:
        if lib not in LIBRARIES:
            raise YunyingError("metrics.unknown_library", name=lib, libraries=", ".join(LIBRARIES))
        entry = root / f"{lib}.yaml"
        out.append((lib, f"library/{lib}.yaml", entry.read_text(encoding="utf-8")))
    return out


def project_files(folder: Path) -> list[Path]:
    if not folder.exists():
        return []
    files = []
    for p in sorted(folder.rglob("*.y*ml")):
        rel = p.relative_to(folder)
        if rel.parts[0] in RESERVED_FOLDERS or p.suffix not in (".yaml", ".yml"):
            continue
        files.append(p)
    return files


def _parse_file(text: str, file: str, library: str, reg: Registry, project: bool) -> None:
    doc = load_yaml(text, file)
    if doc is None:
        return
    if not isinstance(doc, dict) or not set(doc) <= {"metrics", "system"}:
        raise YunyingError("metrics.bad_file", file=file, line=getattr(doc, "line", 1))
    items = doc.get("metrics") or []
    if not isinstance(items, list):
        raise YunyingError("metrics.bad_file", file=file, line=getattr(doc, "line", 1))
    for raw in items:
        line = getattr(raw, "line", 0)
        if not isinstance(raw, dict):
            raise YunyingError("metrics.bad_file", file=file, line=line)
        try:
            spec = MetricSpec.model_validate(dict(raw))
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            raise YunyingError(
                "metrics.invalid_spec",
                file=file,
                line=line_of(raw, err["loc"]),
                field=loc,
                reason=err["msg"],
            ) from e
        spec.file, spec.line, spec.library = file, line, library
        old = reg.metrics.get(spec.name)
        if old is not None and (not project or not old.library):
            raise YunyingError(
                "metrics.duplicate", name=spec.name, where=spec.where_(), other=old.where_()
            )
        reg.metrics[spec.name] = spec  # a project spec overrides a library one
    if "system" in doc:
        try:
            system = MetricSystem.model_validate(doc["system"])
        except ValidationError as e:
            err = e.errors()[0]
            raise YunyingError(
                "metrics.invalid_spec",
                file=file,
                line=line_of(doc["system"], err["loc"]),
                field="system." + ".".join(str(x) for x in err["loc"]),
                reason=err["msg"],
            ) from e
        system.file, system.line = file, line_of(doc, ["system"])
        reg.systems.append(system)


def load_registry(settings: Settings, libraries: list[str] | None = None) -> Registry:
    """Enabled libraries, then the project's own spec files; validated as a whole."""
    reg = Registry(folder=settings.resolve(settings.metrics.folder))
    libs = settings.metrics.libraries if libraries is None else libraries
    for lib, file, text in _library_files(libs):
        _parse_file(text, file, lib, reg, project=False)
    assert reg.folder is not None
    for p in project_files(reg.folder):
        rel = str(p.relative_to(settings.project_dir)) if p.is_relative_to(settings.project_dir) else str(p)
        _parse_file(p.read_text(encoding="utf-8"), rel, "", reg, project=True)
    validate_registry(reg)
    return reg


def registry_from_texts(texts: dict[str, str], libraries: Iterable[str] = ()) -> Registry:
    """Build a registry from in-memory files (tests, the web editor's preview)."""
    reg = Registry()
    for lib, file, text in _library_files(libraries):
        _parse_file(text, file, lib, reg, project=False)
    for file, text in texts.items():
        _parse_file(text, file, "", reg, project=True)
    validate_registry(reg)
    return reg


_NUMERIC = ("decimal",)


def _check_column(m: MetricSpec, table: str, column: str, numeric: bool) -> None:
    c = CONTRACTS[table]
    if column.startswith("properties.") and len(column) > 11:
        return
    if column not in c.names:
        raise YunyingError("metrics.unknown_column", where=m.where_(), column=column, table=table)
    if numeric and c.column(column).type not in _NUMERIC:
        raise YunyingError("metrics.not_numeric", where=m.where_(), column=column, table=table)


def _check_where(m: MetricSpec, table: str, where: dict[str, Any]) -> None:
    for key, cond in where.items():
        try:
            resolve_dim(table, key)
        except YunyingError:
            raise YunyingError("metrics.unknown_column", where=m.where_(), column=key, table=table) from None
        if isinstance(cond, dict):
            bad = set(cond) - set(FILTER_OPS)
            if bad:
                raise YunyingError("metrics.bad_filter", where=m.where_(), column=key, ops=", ".join(FILTER_OPS))


FILTER_OPS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "is_null")


def _need(m: MetricSpec, *fields: str) -> None:
    for f in fields:
        val = m.from_ if f == "from" else getattr(m, f)
        if val is None:
            raise YunyingError("metrics.missing_field", where=m.where_(), field=f, type=m.type)


def validate_registry(reg: Registry) -> None:
    """Every reference resolves, columns and dimensions exist, no cycles."""
    for m in reg.metrics.values():
        _validate_one(reg, m)
    _check_cycles(reg)
    for s in reg.systems:
        stack = list(s.nodes)
        while stack:
            node = stack.pop()
            for name in node.metrics:
                if name not in reg.metrics:
                    raise YunyingError("metrics.unknown_metric", name=name, where=f" ({s.file}:{s.line})")
            stack.extend(node.children)


def _ref(reg: Registry, m: MetricSpec, name: str | None) -> None:
    if name is not None and name not in reg.metrics:
        raise YunyingError("metrics.unknown_metric", name=name, where=f" ({m.where_()})")


def _validate_one(reg: Registry, m: MetricSpec) -> None:
    if m.type == "simple":
        _need(m, "table", "agg")
        assert m.table is not None and m.agg is not None
        if m.table not in CONTRACTS:
            raise YunyingError("metrics.unknown_table", where=m.where_(), table=m.table)
        if m.agg != "count":
            if m.column is None:
                raise YunyingError("metrics.missing_field", where=m.where_(), field="column", type=m.type)
            _check_column(m, m.table, m.column, m.agg in ("sum", "avg"))
        _check_where(m, m.table, m.where)
    elif m.type == "ratio":
        _need(m, "numerator", "denominator")
        _ref(reg, m, m.numerator)
        _ref(reg, m, m.denominator)
    elif m.type == "derived":
        _need(m, "formula")
        assert m.formula is not None
        try:
            names = formula_names(parse_formula(m.formula))
        except YunyingError as err:
            raise YunyingError("metrics.bad_formula", where=m.where_(), reason=err.message()) from err
        for n in sorted(names):
            _ref(reg, m, n)
    elif m.type == "cumulative":
        _need(m, "base", "window")
        _ref(reg, m, m.base)
        assert m.base is not None
        b = reg.metrics[m.base]
        if b.type != "simple" or b.agg not in ADDITIVE_AGGS:
            raise YunyingError("metrics.cumulative_base", where=m.where_(), base=m.base)
    elif m.type == "conversion":
        _need(m, "from", "to", "within_days")
        assert m.from_ is not None and m.to is not None
        for side in (m.from_, m.to):
            if side.table not in CONTRACTS:
                raise YunyingError("metrics.unknown_table", where=m.where_(), table=side.table)
            _check_where(m, side.table, side.where)
            for ent in m.entities():
                try:
                    resolve_dim(side.table, ent)
                except YunyingError:
                    raise YunyingError(
                        "metrics.unknown_column", where=m.where_(), column=ent, table=side.table
                    ) from None
            if side.time is not None:
                _check_column(m, side.table, side.time, False)
    elif m.type == "subscription":
        if m.measure not in SUBSCRIPTION_MEASURES:
            raise YunyingError(
                "metrics.bad_measure", where=m.where_(), value=str(m.measure),
                allowed=", ".join(SUBSCRIPTION_MEASURES),
            )
    elif m.type == "lifecycle":
        if m.state not in LIFECYCLE_STATES:
            raise YunyingError(
                "metrics.bad_measure", where=m.where_(), value=str(m.state),
                allowed=", ".join(LIFECYCLE_STATES),
            )
    table = dim_table(reg, m)
    for d in m.dimensions:
        if table is None:
            raise YunyingError("metrics.dim_not_on_table", dim=d, table="-", where=f" ({m.where_()})")
        try:
            resolve_dim(table, d)
        except YunyingError:
            raise YunyingError("metrics.dim_not_on_table", dim=d, table=table, where=f" ({m.where_()})") from None
    if m.tree is not None:
        for c in m.tree.children:
            _ref(reg, m, c)


def dim_table(reg: Registry, m: MetricSpec) -> str | None:
    """The table whose rows a breakdown of ``m`` splits."""
    if m.type == "simple":
        return m.table
    if m.type == "conversion":
        return m.from_.table if m.from_ else None
    if m.type == "subscription":
        return "subscriptions"
    if m.type == "lifecycle":
        return "users"
    return None


def allowed_dims(reg: Registry, name: str) -> set[str]:
    """Dimensions a metric can be broken down by: its own, or those all its inputs share."""
    m = reg.get(name)
    if m.dimensions or not m.deps():
        return set(m.dimensions)
    sets = [allowed_dims(reg, d) for d in m.deps()]
    return set.intersection(*sets) if sets else set()


def _check_cycles(reg: Registry) -> None:

    def deps(n: str) -> list[str]:
        return reg.metrics[n].deps()

    def tree(n: str) -> list[str]:
        tr = reg.metrics[n].tree
        return list(tr.children) if tr else []

    # Computation and trees are separate graphs: AOV = GMV / buyers while GMV's tree has AOV.
    for edges in (deps, tree):
        _find_cycle(reg, edges)


def _find_cycle(reg: Registry, edges: Callable[[str], list[str]]) -> None:
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            cyc = path[path.index(n):] + [n]
            m = reg.metrics[n]
            raise YunyingError("metrics.cycle", cycle=" → ".join(cyc), where=m.where_())
        state[n] = 1
        for d in edges(n):
            visit(d, path + [n])
        state[n] = 2

    for n in reg.metrics:
        visit(n, [])
