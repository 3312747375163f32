"""Spec validation: clear errors that name the file and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from yunying.config import Settings, load_settings
from yunying.errors import YunyingError
from yunying.metrics.spec import (
    LIBRARIES,
    eval_formula,
    load_registry,
    parse_formula,
    registry_from_texts,
)

GOOD = """\
metrics:
  - name: views
    label: {zh: 浏览, en: Views}
    type: simple
    table: events
    agg: count
    where: {event: view}
    dimensions: [channel]
"""


def error_of(text: str, libraries: tuple[str, ...] = ()) -> str:
    with pytest.raises(YunyingError) as e:
        registry_from_texts({"metrics/x.yaml": text}, libraries)
    return e.value.message("en")


def test_libraries_load_and_validate(settings: Settings) -> None:
    reg = load_registry(settings, list(LIBRARIES))
    assert len(reg.metrics) >= 60
    for m in reg.metrics.values():
        assert m.label.zh and m.label.en and m.definition, m.name
        assert m.file.startswith("library/") and m.line > 0


def test_unknown_metric_names_file_and_line() -> None:
    msg = error_of(GOOD + """\
  - name: rate
    label: {zh: 率, en: Rate}
    type: ratio
    numerator: views
    denominator: visitors
""")
    assert "Unknown metric 'visitors'" in msg and "metrics/x.yaml:9" in msg


def test_cycle_in_derived_metrics() -> None:
    msg = error_of("""\
metrics:
  - name: a
    label: {zh: a, en: a}
    type: derived
    formula: b + 1
  - name: b
    label: {zh: b, en: b}
    type: derived
    formula: a * 2
""")
    assert "cycle" in msg and "a → b → a" in msg and "metrics/x.yaml:2" in msg


def test_dimension_not_on_table() -> None:
    msg = error_of(GOOD.replace("[channel]", "[channel, colour]"))
    assert "Dimension 'colour' is not on table events" in msg and "metrics/x.yaml:2" in msg


def test_formula_syntax_and_forbidden_nodes() -> None:
    base = GOOD + "  - name: d\n    label: {zh: d, en: d}\n    type: derived\n    formula: "
    msg = error_of(base + "views * (2\n")
    assert "metrics/x.yaml:9" in msg and "does not parse" in msg
    msg = error_of(base + "__import__('os').system('true')\n")
    assert "Call" in msg or "Attribute" in msg
    msg = error_of(base + "views ** 2\n")
    assert "Pow" in msg


def test_bad_field_points_at_its_line() -> None:
    msg = error_of(GOOD.replace("agg: count", "agg: median"))
    assert "metrics/x.yaml:6" in msg and "agg" in msg


def test_missing_field_unknown_column_and_yaml_syntax() -> None:
    assert "needs 'agg'" in error_of(GOOD.replace("    agg: count\n", ""))
    msg = error_of(GOOD.replace("agg: count", "agg: sum\n    column: price"))
    assert "column 'price' is not on table events" in msg
    msg = error_of(GOOD.replace("agg: count", "agg: sum\n    column: user_id"))
    assert "not numeric" in msg
    msg = error_of("metrics:\n  - name: [oops\n")
    assert "metrics/x.yaml:" in msg and "YAML" in msg


def test_duplicate_and_override(tmp_path: Path) -> None:
    msg = error_of(GOOD + GOOD.split("metrics:\n", 1)[1])
    assert "already defined at metrics/x.yaml:2" in msg
    # A project spec may replace a library one of the same name.
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "gmv.yaml").write_text(GOOD.replace("name: views", "name: gmv"), encoding="utf-8")
    reg = load_registry(load_settings(tmp_path), ["ecommerce"])
    assert reg.get("gmv").type == "simple" and reg.get("gmv").file == "metrics/gmv.yaml"


def test_cumulative_base_must_be_additive() -> None:
    msg = error_of(GOOD + """\
  - name: users
    label: {zh: u, en: u}
    type: simple
    table: events
    agg: count_distinct
    column: user_id
  - name: running
    label: {zh: r, en: r}
    type: cumulative
    base: users
    window: running
""")
    assert "cumulative" in msg and "users" in msg


def test_formula_evaluation_is_our_own() -> None:
    tree = parse_formula("-(a + 2) * b / c")
    assert eval_formula(tree, {"a": 1.0, "b": 4.0, "c": 2.0}, lambda x, y: x / y) == -6.0


def test_unknown_library(tmp_path: Path) -> None:
    s = load_settings(tmp_path)
    s.metrics.libraries = ["nope"]
    with pytest.raises(YunyingError) as e:
        load_registry(s)
    assert "nope" in e.value.message("en")


def test_catalogs_have_the_same_keys_and_placeholders() -> None:
    import json
    import re
    from importlib import resources

    root = resources.files("yunying") / "locale"
    en = json.loads((root / "en" / "metrics.json").read_text(encoding="utf-8"))
    zh = json.loads((root / "zh_CN" / "metrics.json").read_text(encoding="utf-8"))
    assert en.keys() == zh.keys() and all(k.startswith("metrics.") for k in en)
    for k in en:
        assert set(re.findall(r"{(\w+)}", en[k])) == set(re.findall(r"{(\w+)}", zh[k])), k
    with pytest.raises(YunyingError) as e:
        registry_from_texts({"m.yaml": GOOD.replace("views\n    label", "views\n    labl")})
    assert "m.yaml:" in e.value.message("zh_CN") and "字段" in e.value.message("zh_CN")
