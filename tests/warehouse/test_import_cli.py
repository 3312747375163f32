"""The ``import`` and ``quarantine`` commands end to end (one real subprocess, the rest
in-process through the same ``run_app`` error handling)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_project
from yunying.cli.importing import parse_maps
from yunying.errors import YunyingError

# Only this area's commands: the CLI package finds modules by name, and this keeps the
# test independent of other areas' modules.
RUNNER = (
    "import typer\n"
    "from yunying.cli import importing\n"
    "from yunying.cli.common import run_app\n"
    "app = typer.Typer()\n"
    "importing.register(app)\n"
    "run_app(app)\n"
)


def cli_subprocess(*args: str, lang: str = "en") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "YUNYING_DEBUG"}
    env["YUNYING_LANGUAGE"] = lang
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-c", RUNNER, *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_import_show_export_reimport(tmp_path: Path) -> None:
    p = str(tmp_path / "proj")
    make_project(tmp_path / "proj")
    data = tmp_path / "users.csv"
    data.write_text(
        "uid,first_seen,channel\nu1,2024-01-01 08:00,seo\nu2,not a date,ads\nu1,2024-01-01,x\n",
        encoding="utf-8",
    )
    r = cli("import", "users", str(data), "--map", "uid=user_id", "--timezone", "UTC", "-p", p)
    assert r.returncode == 0, r.stderr
    assert "3 rows read, 1 loaded, 1 duplicate, 1 quarantined" in r.stdout
    r = cli("import", "users", str(data), "--map", "uid=user_id", "-p", p, "-o", "json")
    doc = json.loads(r.stdout)
    assert doc["files"][0]["duplicate"] == 2 and doc["files"][0]["quarantined"] == 1
    import_id = doc["files"][0]["import_id"]
    r = cli("quarantine", "list", "-p", p, "-f", "json")
    assert [e["loaded"] for e in json.loads(r.stdout)["imports"]] == [0, 1]
    r = cli("quarantine", "show", import_id, "-p", p, "-f", "json")
    rows = json.loads(r.stdout)["rows"]
    assert [(x["line"], x["field"], x["value"]) for x in rows] == [(3, "first_seen", "not a date")]
    out = tmp_path / "fix.csv"
    r = cli("quarantine", "export", import_id, str(out), "-p", p)
    assert r.returncode == 0 and out.read_text().splitlines() == [
        "uid,first_seen,channel",
        "u2,not a date,ads",
    ]
    out.write_text(out.read_text().replace("not a date", "2024-02-01"))
    r = cli("import", "users", str(out), "--map", "uid=user_id", "-p", p, "-o", "json")
    assert json.loads(r.stdout)["files"][0]["loaded"] == 1
    r = cli("quarantine", "clear", import_id, "-p", p)
    assert r.returncode == 0 and "Removed 1" in r.stdout


def cli(*args: str, lang: str = "en") -> subprocess.CompletedProcess[str]:
    """Run the commands in this process, exactly as ``yunying`` does (``run_app``)."""
    import typer

    from tests.support.cli import run_in_process
    from yunying.cli import importing

    app = typer.Typer()
    importing.register(app)
    return run_in_process(app, *args, lang=lang)


def test_the_command_runs_as_a_program(tmp_path: Path) -> None:
    data = tmp_path / "e.csv"
    data.write_text("event_id,event,user_id,ts\ne1,view,u1,1704103200\ne2,view,u2,x\n", encoding="utf-8")
    make_project(tmp_path / "p")
    r = cli_subprocess("import", "events", str(data), "-p", str(tmp_path / "p"), "-o", "json")
    assert r.returncode == 0, r.stderr
    f = json.loads(r.stdout)["files"][0]
    assert (f["rows_read"], f["loaded"], f["quarantined"]) == (2, 1, 1)


@pytest.mark.parametrize(
    ("args", "en", "zh"),
    [
        (["import", "events", "missing.csv"], "File not found", "找不到文件"),
        (["import", "events", "x.csv", "--format", "xml"], "Cannot tell the format", "无法判断"),
        (["import", "events", "x.csv", "--map", "oops"], "--map expects", "--map 的格式"),
        (["import", "nosuch", "x.csv"], "Unknown table", None),
        (["import", "events", "x.csv", "--timezone", "Nowhere"], "Unknown time zone", "未知时区"),
        (["quarantine", "show", "nope"], "No import with id", "没有编号为"),
    ],
)
def test_bad_input_gets_a_translated_message_not_a_traceback(
    tmp_path: Path, args: list[str], en: str, zh: str | None
) -> None:
    (tmp_path / "x.csv").write_text("event_id,event,user_id,ts\n", encoding="utf-8")
    make_project(tmp_path / "proj")
    args = [a.replace("x.csv", str(tmp_path / "x.csv")) for a in args]
    for lang, want in (("en", en), ("zh_CN", zh)):
        if want is None:
            continue
        r = cli(*args, "-p", str(tmp_path / "proj"), lang=lang)
        assert r.returncode == 2, r.stderr
        assert want in r.stderr
        assert "Traceback" not in r.stderr


def test_parse_maps() -> None:
    assert parse_maps(["a=b", " c = d "]) == {"a": "b", "c": "d"}
    with pytest.raises(YunyingError):
        parse_maps(["=b"])
