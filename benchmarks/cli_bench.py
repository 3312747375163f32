"""CLI start-up benchmark: whole ``yunying`` processes, as operations people and cron run them.

Builds the demo company in a temporary folder (``yunying demo --project DIR``), then runs
each command ``--runs`` times as a fresh process, in turns, and prints the median and best
wall time beside ``python -c pass`` on the same interpreter, the ratio to it, and where it
ran. Targets (issue 15): ``--help`` <= 0.35 s, ``status`` <= 0.8 s, a one-off ``funnel``
<= 1.2 s.

    .venv/bin/python benchmarks/cli_bench.py [--runs 7] [--users 20000] [--keep]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when imported by path
from machine import print_machine  # noqa: E402

DEMO_END = "2026-10-31"  # pinned (yunying demo --end), so every run times the same company
TARGETS = {"yunying --help": 0.35, "yunying status": 0.8, "yunying funnel (one-off)": 1.2}


def yunying_cmd() -> list[str]:
    """The installed ``yunying`` script next to this interpreter, else ``-c`` on main."""
    script = Path(sys.executable).with_name("yunying")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from yunying.cli import main; main()"]


def commands(project: str) -> dict[str, list[str]]:
    yy = yunying_cmd()
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "yunying --help": [*yy, "--help"],
        "yunying status": [*yy, "status", "--project", project],
        "yunying funnel (one-off)": [
            *yy, "funnel", "view", "add_to_cart", "checkout", "pay", "--window", "7",
            "--from", "2026-05-01", "--to", DEMO_END, "--project", project, "--format", "json",
        ],
    }


def run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the child and its threads)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=7, help="processes per command")
    ap.add_argument("--users", type=int, default=20_000, help="demo consumer users (yunying demo --users)")
    ap.add_argument("--keep", action="store_true", help="keep the demo folder")
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="yy-cli-bench-"))
    project = str(work / "demo")
    env = {**os.environ, "COLUMNS": "120"}
    env.pop("YUNYING_PROJECT", None)
    try:
        t0 = time.perf_counter()
        subprocess.run(
            [*yunying_cmd(), "demo", "--project", project, "--users", str(a.users), "--end", DEMO_END],
            check=True, stdout=subprocess.DEVNULL, env=env,
        )
        print(f"demo company ({a.users:,} users) built in {time.perf_counter() - t0:.1f} s")
        cmds = commands(project)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in cmds}
        for cmd in cmds.values():  # one untimed run each: the OS file cache, .pyc files
            run_once(cmd, env)
        for _ in range(a.runs):  # in turns, so a burst of load on the machine hits all alike
            for name, cmd in cmds.items():
                times[name].append(run_once(cmd, env))
        base = statistics.median(w for w, _ in times["python -c pass"])
        print(f"\n== CLI start-up: {a.runs} whole processes each, wall median (best), CPU median ==")
        ok = True
        for name, runs in times.items():
            ts = [w for w, _ in runs]
            cpu = statistics.median(c for _, c in runs)
            med = statistics.median(ts)
            target = TARGETS.get(name)
            verdict = ""
            if target is not None:
                verdict = f"  target <= {target:.2f} s: {'met' if med <= target else 'MISSED'}"
                ok = ok and med <= target
            print(
                f"  {name:26s} {med:6.3f} s  ({min(ts):6.3f} s)  CPU {cpu:6.3f} s"
                f"  {med / base:5.1f}x python -c pass{verdict}"
            )
        print(f"  all targets {'met' if ok else 'NOT met'}")
        print()
        print_machine()
    finally:
        if a.keep:
            print(f"demo kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
