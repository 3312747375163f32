from __future__ import annotations

import re
from pathlib import Path

import pytest

from yunying.config import CONFIG_TEMPLATE, Settings, load_settings
from yunying.errors import YunyingError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def _keys(model: type, prefix: str = "") -> list[str]:
    from pydantic import BaseModel

    out = []
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        if name == "project_dir":
            continue
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _keys(ann, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = [k for k in _keys(Settings) if f"`{k}`" not in text]
    assert not missing, f"settings missing from docs/configuration.md: {missing}"


def test_template_parses_and_equals_defaults(tmp_path: Path) -> None:
    (tmp_path / "yunying.toml").write_text(CONFIG_TEMPLATE.format(name="x"), encoding="utf-8")
    s = load_settings(tmp_path)
    d = Settings()
    assert s.warehouse == d.warehouse and s.web == d.web and s.timezone == d.timezone


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "yunying.toml").write_text('[warehouse]\nengine = "duckdb"\n', encoding="utf-8")
    monkeypatch.setenv("YUNYING_WAREHOUSE__ENGINE", "spark")
    monkeypatch.setenv("YUNYING_TIMEZONE", "UTC")
    s = load_settings(tmp_path)
    assert s.warehouse.engine == "spark" and s.timezone == "UTC"


def test_bad_setting_names_field(tmp_path: Path) -> None:
    (tmp_path / "yunying.toml").write_text('[warehouse]\nengine = "oracle"\n', encoding="utf-8")
    with pytest.raises(YunyingError) as ei:
        load_settings(tmp_path)
    assert "warehouse.engine" in ei.value.message("en")


def test_bad_toml(tmp_path: Path) -> None:
    (tmp_path / "yunying.toml").write_text("name = \n", encoding="utf-8")
    with pytest.raises(YunyingError) as ei:
        load_settings(tmp_path)
    assert re.search("yunying.toml", ei.value.message("en"))
