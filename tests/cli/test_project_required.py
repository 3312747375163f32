"""Only ``init`` and ``demo`` create a project; every other command refuses a folder
without ``yunying.toml``, naming it (issue 13, item 8). Real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

YUNYING = str(Path(sys.executable).parent / "yunying")


def cli(*args: str, lang: str = "en", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("YUNYING_PROJECT", "YUNYING_DEBUG")}
    env["YUNYING_LANGUAGE"] = lang
    env["COLUMNS"] = "300"
    return subprocess.run([YUNYING, *args], capture_output=True, text=True, env=env, timeout=120, cwd=cwd)


COMMANDS = [
    ["status"],
    ["overview"],
    ["trends", "--from", "2026-01-01", "--to", "2026-01-02"],
    ["funnel", "view", "pay", "--from", "2026-01-01", "--to", "2026-01-02"],
    ["metrics", "list"],
    ["user", "list"],
    ["apikey", "list"],
    ["capture", "flush"],
    ["quarantine", "list"],
    ["serve", "--port", "1"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0] if len(a) == 1 else "-".join(a[:2]))
def test_a_misspelt_project_is_refused_and_nothing_is_created(tmp_path: Path, args: list[str]) -> None:
    typo = tmp_path / "my-projcet"
    res = cli(*args, "--project", str(typo))
    assert res.returncode == 2, (res.stdout, res.stderr)
    message = " ".join(res.stderr.split())
    assert "is not a yunying project" in message and "yunying.toml" in message, message
    assert "my-projcet" in message
    assert not typo.exists(), "a refused command must create nothing"


def test_a_system_folder_gets_no_yunying_folder(tmp_path: Path) -> None:
    """``-p /usr`` (here: a read-only-like folder of someone else) is refused, untouched."""
    system = tmp_path / "usr"
    (system / "bin").mkdir(parents=True)
    before = sorted(p.name for p in system.iterdir())
    res = cli("status", "-p", str(system))
    assert res.returncode == 2 and "is not a yunying project" in " ".join(res.stderr.split())
    assert sorted(p.name for p in system.iterdir()) == before
    assert not (system / ".yunying").exists()


def test_the_current_folder_is_checked_too_and_the_message_is_translated(tmp_path: Path) -> None:
    res = cli("status", lang="zh_CN", cwd=tmp_path)
    assert res.returncode == 2
    assert "不是 yunying 项目" in res.stderr and str(tmp_path) in "".join(res.stderr.split())
    assert not (tmp_path / ".yunying").exists()


def test_init_and_demo_still_create_a_project(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    res = cli("init", "--project", str(fresh))
    assert res.returncode == 0, res.stderr
    assert (fresh / "yunying.toml").is_file()
    status = cli("status", "--project", str(fresh), "--format", "json")
    assert status.returncode == 0, status.stderr
    demo = tmp_path / "demo"
    res = cli("demo", "--project", str(demo), "--users", "100", "--days", "60")
    assert res.returncode == 0, res.stderr
    assert (demo / "yunying.toml").is_file()
