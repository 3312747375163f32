"""The CLI starts without its heavy libraries, and ``--help`` still lists every command.

Each check runs in a fresh interpreter: this test process has imported everything already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Loaded only by the commands that need them (statistics, PostgreSQL, warehouse
# expressions, the web app, compiled passes).
HEAVY = ["scipy", "fastapi", "uvicorn", "psycopg", "ibis", "pandas", "sqlalchemy", "numba", "statsmodels"]


def _python(code: str, **env: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", **env},
        check=True,
    )
    return out.stdout


def _loaded_after(code: str) -> list[str]:
    probe = (
        "import sys, json\n"
        f"{code}\n"
        f"heavy = {HEAVY!r}\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    return list(json.loads(_python(probe).strip().splitlines()[-1]))


def test_import_cli_loads_no_heavy_library() -> None:
    assert _loaded_after("import yunying.cli") == []


def test_help_loads_no_heavy_library() -> None:
    code = (
        "sys.argv = ['yunying', '--help']\n"
        "from yunying.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    assert _loaded_after(code) == []


def _command_names() -> list[str]:
    from yunying.cli import app

    names = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
    assert all(names)
    return sorted(str(n) for n in names)


def test_every_command_is_registered() -> None:
    names = _command_names()
    for expected in ["demo", "funnel", "retention", "status", "serve", "experiment", "segment", "campaign"]:
        assert expected in names


@pytest.mark.parametrize("language", ["en", "zh_CN"])
def test_help_lists_every_command_in_both_languages(language: str) -> None:
    out = _python(
        "import sys\n"
        "sys.argv = ['yunying', '--help']\n"
        "from yunying.cli import main\n"
        "main()\n",
        YUNYING_LANGUAGE=language,
    )
    listed = {line.strip("│ ").split(" ")[0] for line in out.splitlines() if line.startswith("│ ")}
    missing = [n for n in _command_names() if n not in listed]
    assert not missing, f"not in --help: {missing}\n{out}"
    # the help texts are the commands' bilingual docstrings
    assert "Funnel conversion" in out and "漏斗分析" in out
    assert "Cohort retention" in out and "留存分析" in out


def test_subcommand_help_stays_lazy() -> None:
    code = (
        "sys.argv = ['yunying', 'experiment', '--help']\n"
        "from yunying.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    assert _loaded_after(code) == []


@pytest.mark.parametrize(
    ("command", "forbidden"),
    [
        (["tables"], HEAVY),
        (["status"], HEAVY),  # plain DuckDB queries: no Ibis, no pandas
        (["experiment", "list"], ["scipy", "statsmodels", "psycopg", "fastapi"]),  # specs, not statistics
        (["tool", "list"], ["psycopg", "scipy", "fastapi"]),  # SQLite project: no PostgreSQL driver
        (["segment", "list"], ["psycopg", "scipy", "fastapi"]),
    ],
)
def test_commands_load_only_what_they_use(command: list[str], forbidden: list[str], tmp_path: Path) -> None:
    (tmp_path / "yunying.toml").write_text("", encoding="utf-8")
    argv = ["yunying", *command, "--project", str(tmp_path)] if command != ["tables"] else ["yunying", "tables"]
    code = (
        f"sys.argv = {argv!r}\n"
        "from yunying.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
    )
    assert [m for m in _loaded_after(code) if m in forbidden] == []
