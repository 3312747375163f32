"""A real PostgreSQL server for the tests: Debian's binaries, a free port, a temp data dir.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user
(created by the Debian package) or ``nobody``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    bindir: Path
    datadir: Path
    port: int
    user: str | None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://yunying@127.0.0.1:{self.port}/yunying"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True)

    def start(self) -> None:
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D", str(self.datadir), "-l", str(self.datadir / "log"), "-w", "-t", "60",
            "-o", f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 "
            "-c max_connections=400 -c fsync=on -c shared_buffers=128MB",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            (["runuser", "-u", self.user, "--"] if self.user else [])
            + [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop"],
            capture_output=True,
            check=False,
        )


def start_server() -> PgServer:
    bindir = pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (make test installs it)")
    user: str | None = None
    if os.geteuid() == 0:
        for name in ("postgres", "nobody"):
            try:
                pwd.getpwnam(name)
                user = name
                break
            except KeyError:
                continue
    root = Path(tempfile.mkdtemp(prefix="yy-pg-"))
    datadir = root / "data"
    datadir.mkdir()
    if user:
        shutil.chown(root, user)
        shutil.chown(datadir, user)
        os.chmod(root, 0o755)
    server = PgServer(bindir, datadir, free_port(), user)
    server._run(
        str(bindir / "initdb"), "-D", str(datadir), "-U", "yunying", "--auth=trust",
        "-E", "UTF8", "--locale=C",
    )
    server.start()
    deadline = time.time() + 30
    while True:
        try:
            server._run(
                str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(server.port), "-U",
                "yunying", "yunying",
            )
            break
        except subprocess.CalledProcessError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)
    return server
