"""Shared fixtures: a temp project, the warehouse on every engine, PostgreSQL, Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from yunying.config import Settings, load_settings
from yunying.i18n import set_language
from yunying.warehouse.engine import Warehouse

# Hypothesis: CI replays a fixed set of examples (a random find must never block a landing);
# local runs explore and remember failures; `make fuzz` explores much further. A failure
# found anywhere is pinned with @example in its test.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
hypothesis_settings.register_profile("dev", print_blob=True)
hypothesis_settings.register_profile("fuzz", print_blob=True)
hypothesis_settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI", "").lower() in ("1", "true") else "dev")
)

ENGINES = ["duckdb", pytest.param("spark", marks=[pytest.mark.spark, pytest.mark.xdist_group("spark")])]


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    set_language("en")
    yield
    set_language(None)


def make_project(folder: Path) -> Settings:
    """A project folder as ``yunying init`` leaves it (the CLI refuses one without
    ``yunying.toml``), with the default settings."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "yunying.toml"
    if not cfg.exists():
        cfg.write_text("# test project: every setting at its default\n", encoding="utf-8")
    return load_settings(folder)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_project(tmp_path)


@pytest.fixture
def wh(settings: Settings) -> Iterator[Warehouse]:
    w = Warehouse(settings, "duckdb")
    yield w
    w.close()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Parametrises a test over every engine that runs here (DuckDB and Spark local)."""
    return str(request.param)


@pytest.fixture
def any_wh(settings: Settings, engine: str) -> Iterator[Warehouse]:
    w = Warehouse(settings, engine)
    yield w
    w.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a real PostgreSQL server started for this test session."""
    from tests.support.pg import pg_bin, start_server

    if pg_bin() is None:
        pytest.fail("PostgreSQL is not installed; run `make test`, which installs it")
    server = start_server()
    yield server.url
    server.stop()
    shutil.rmtree(server.datadir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("Chromium is not installed; run `make test`, which installs it")
    return path
