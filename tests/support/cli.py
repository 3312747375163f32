"""Run a Typer app in this process exactly as the installed ``yunying`` command does."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from typing import Any


def run_in_process(app: Any, *args: str, lang: str = "en") -> subprocess.CompletedProcess[str]:
    """``run_app`` with ``argv`` and the language set, stdout and stderr captured."""
    from yunying.cli.common import run_app

    out, err = io.StringIO(), io.StringIO()
    old_argv, old_lang = sys.argv, os.environ.get("YUNYING_LANGUAGE")
    sys.argv = ["yunying", *args]
    os.environ["YUNYING_LANGUAGE"] = lang
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            run_app(app)
    except SystemExit as e:
        code = int(e.code or 0)
    finally:
        sys.argv = old_argv
        if old_lang is None:
            os.environ.pop("YUNYING_LANGUAGE", None)
        else:
            os.environ["YUNYING_LANGUAGE"] = old_lang
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
