"""The web commands: users, API keys, capture flush, and `serve --demo` printing the sign-in."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from tests.conftest import make_project
from tests.web.server import YUNYING, free_port
from yunying.cli import app
from yunying.web.accounts import authenticate, key_principal
from yunying.web.capture import Journal, journal_path

runner = CliRunner()


def run(*args: str) -> str:
    r = runner.invoke(app, list(args), env={"YUNYING_LANGUAGE": "en"})
    assert r.exit_code == 0, r.output
    return r.output


def test_user_and_key_commands(tmp_path: Path) -> None:
    make_project(tmp_path)
    p = ["--project", str(tmp_path)]
    assert "Added ana@example.com (analyst)" in run("user", "add", "ana@example.com", "--role", "analyst", "--password", "s3cret-pass", *p)
    out = run("user", "list", *p, "--format", "csv")
    assert "ana@example.com,analyst,True" in out
    url = make_project(tmp_path).appdb_url
    assert authenticate(url, "ana@example.com", "s3cret-pass") is not None
    run("user", "disable", "ana@example.com", *p)
    assert authenticate(url, "ana@example.com", "s3cret-pass") is None
    env = {"PATH": "/usr/bin:/bin", "YUNYING_LANGUAGE": "en"}
    bad = subprocess.run([YUNYING, "user", "add", "x@example.com", "--role", "boss", "--password", "long-enough", *p],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "Unknown role 'boss'" in bad.stderr and "Traceback" not in bad.stderr
    short = subprocess.run([YUNYING, "user", "add", "y@example.com", "--password", "short", *p],
                           capture_output=True, text=True, env=env)
    assert short.returncode == 2 and "at least 8" in short.stderr

    out = run("apikey", "create", "sdk", "--scope", "capture", *p)
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("yyk_")
    assert key_principal(url, secret) is not None
    assert "sdk" in run("apikey", "list", *p) and secret not in run("apikey", "list", *p)
    run("apikey", "revoke", "1", *p)
    assert key_principal(url, secret) is None
    # A key may belong to a user: then it approves exactly when the user's role does.
    run("user", "add", "boss@example.com", "--role", "approver", "--password", "s3cret-pass", *p)
    boss = run("apikey", "create", "boss", "--scope", "full", "--user", "boss@example.com", *p).strip().splitlines()[-1]
    plain = run("apikey", "create", "ci", "--scope", "full", *p).strip().splitlines()[-1]
    bp, pp = key_principal(url, boss), key_principal(url, plain)
    assert bp is not None and bp.can("campaigns.approve") and bp.person == "boss@example.com"
    assert pp is not None and not pp.can("campaigns.approve") and pp.can("campaigns.write")
    r = runner.invoke(app, ["apikey", "create", "x", "--scope", "full", "--user", "nobody@example.com", *p])
    assert r.exit_code != 0


def test_capture_flush_command(tmp_path: Path) -> None:
    s = make_project(tmp_path)
    j = Journal(journal_path(s))
    j.write([("k1", "view", "u1", "2026-01-01 00:00:00", None, None, '{"a":1}')])
    j.close()
    out = run("capture", "flush", "--project", str(tmp_path), "--format", "json")
    assert '"moved": 1' in out
    out = run("capture", "flush", "--project", str(tmp_path))
    assert "Moved 0 events" in out


def test_serve_demo_prints_url_and_sign_in(tmp_path: Path) -> None:
    make_project(tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        [YUNYING, "serve", "--project", str(tmp_path), "--port", str(port), "--demo", "--flush-interval", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={"PATH": "/usr/bin:/bin", "YUNYING_LANGUAGE": "en"},
    )
    try:
        deadline = time.monotonic() + 180
        healthy = False
        while not healthy and time.monotonic() < deadline:
            try:
                healthy = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.3)
        assert healthy
        assert authenticate(make_project(tmp_path).appdb_url, "demo@yunying.local", "yunying-demo") is not None
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode()
    assert f"http://localhost:{port}/" in out
    assert "demo@yunying.local / yunying-demo" in out
