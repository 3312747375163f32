"""The README's five-minute tour, run as written by bash, under clocks years ahead.

The block is taken from README.md itself, so a tour that goes stale fails here. Each command
is a real `yunying` process run under Debian's `faketime`, so nothing in the process (our
clock, DuckDB, the report renderer) can see the real date. Only `serve` is left out: it
waits for a browser; the web tests cover it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tour_script() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## A five-minute tour") :]
    m = re.search(r"```bash\n(.*?)```", section, re.S)
    assert m, "the tour's bash block is missing from README.md"
    keep = [
        line
        for line in m.group(1).splitlines()
        if not line.startswith(("source ", "cd ")) and "yunying serve" not in line
    ]
    assert sum(line.startswith("yunying ") for line in keep) >= 25
    return "set -euo pipefail\n" + "\n".join(keep) + "\n"


def test_tour_block_is_found() -> None:
    script = tour_script()
    assert "campaign schedule winback" in script and "2026-" not in script


@pytest.mark.slow
@pytest.mark.parametrize("when", ["2027-12-01 09:00:00", "2029-06-30 22:30:00"])
def test_readme_tour_exits_0_under_a_clock_ahead(tmp_path: Path, when: str) -> None:
    faketime = shutil.which("faketime")
    if faketime is None:
        pytest.fail("faketime is not installed; run `make test`, which installs it")
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", "YUNYING_LANGUAGE": "en", "COLUMNS": "200"}
    env.pop("YUNYING_PROJECT", None)
    # Under an outer faketime (the whole suite run years ahead), a nested one would shift
    # from the already-shifted time: each command gets only its own.
    for k in [k for k in env if k.startswith("FAKETIME") or k == "LD_PRELOAD"]:
        env.pop(k)
    project = tmp_path / "demo-company"
    demo = subprocess.run(
        [faketime, when, str(bindir / "yunying"), "demo", "--project", str(project), "--users", "2000", "--days", "120"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    local = dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC).astimezone(ZoneInfo("Asia/Shanghai"))
    end = (local.date() - dt.timedelta(days=1)).isoformat()
    assert f"Dataends{end}" in "".join(demo.stdout.split()), demo.stdout
    (tmp_path / "tour.sh").write_text(tour_script(), encoding="utf-8")
    run = subprocess.run(
        [faketime, when, "bash", "-x", str(tmp_path / "tour.sh")],
        cwd=project, env=env, capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
    assert (project / "reports" / "campaign-winback.pdf").stat().st_size > 0
    assert f"ends_at: {end[:4]}" in (project / "examples" / "campaign-winback.yaml").read_text(encoding="utf-8") or (
        f"ends_at: {int(end[:4]) + 1}" in (project / "examples" / "campaign-winback.yaml").read_text(encoding="utf-8")
    )
