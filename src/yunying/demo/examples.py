"""The tour's example files, written into the demo project with dates around its last day.

Fixed calendar dates in shipped examples go stale: a campaign that ended last month cannot
be scheduled. ``yunying demo`` renders these templates against the demo's ``end`` instead,
so the README tour works on whatever day it is run.
"""

from __future__ import annotations

import csv
import datetime as dt
from importlib import resources
from pathlib import Path
from string import Template

from yunying.demo.generator import DemoSpec

EXAMPLES_DIR = "examples"


def example_dates(end: dt.date) -> dict[str, str]:
    """The campaign runs from 29 days before the last day of data to 30 days after it."""
    return {
        "end": end.isoformat(),
        "campaign_start": (end - dt.timedelta(days=29)).isoformat(),
        "campaign_end": (end + dt.timedelta(days=30)).isoformat(),
        "tool_start": (end - dt.timedelta(days=29)).isoformat(),
        "tool_end": (end + dt.timedelta(days=31)).isoformat(),
    }


def write_examples(spec: DemoSpec, project_dir: Path) -> list[Path]:
    """Render every template into ``project_dir/examples`` (overwriting) and add a small CSV
    of events to try ``yunying import`` on."""
    out = project_dir / EXAMPLES_DIR
    out.mkdir(parents=True, exist_ok=True)
    values = example_dates(spec.end)
    written: list[Path] = []
    root = resources.files("yunying.demo") / "examples"
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        text = Template(entry.read_text(encoding="utf-8")).substitute(values)
        path = out / entry.name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    path = out / "my-events.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["event_id", "uid", "event", "ts", "platform"])
        for i in range(3):
            ts = dt.datetime.combine(spec.end, dt.time(9 + i, 30))
            w.writerow([f"sample-{spec.end:%Y%m%d}-{i}", f"sample-user-{i}", "view", ts.isoformat(sep=" "), "web"])
    written.append(path)
    return written
