"""What every command shares: --project, --format, rendering, and error handling.

Errors a user can act on (``YunyingError``) print their translated message and exit 2;
anything else prints a one-line notice (never a traceback unless YUNYING_DEBUG=1).
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol, runtime_checkable

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from yunying.errors import YunyingError
from yunying.i18n import set_language, t

if TYPE_CHECKING:
    from yunying.config import Settings
    from yunying.warehouse.engine import Warehouse

console = Console()
err_console = Console(stderr=True)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


ProjectOpt = Annotated[
    Path | None,
    typer.Option(
        "--project",
        "-p",
        help="Project folder (default: $YUNYING_PROJECT or the current folder).",
        show_default=False,
    ),
]
FormatOpt = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="Output format: table, json or csv.")
]


def settings_for(project: Path | None, create: bool = False) -> Settings:
    """The project's settings. Only ``init`` and ``demo`` (``create=True``) accept a folder
    without ``yunying.toml``: anywhere else a misspelt ``--project`` would silently start
    an empty project, or write ``.yunying`` into a system folder."""
    from yunying import config  # pydantic-settings: not for --help
    from yunying.config import CONFIG_FILE, load_settings, project_dir_default

    folder = project if project is not None else project_dir_default()
    s = load_settings(folder)
    set_language(os.environ.get("YUNYING_LANGUAGE") or s.language)
    if not create and not (s.project_dir / CONFIG_FILE).is_file():
        raise YunyingError("cli.no_project", path=str(s.project_dir))
    config.on_warehouse_wait = _waiting_notice  # every command says why it waits for the file
    return s


def _waiting_notice() -> None:
    err_console.print(f"[yellow]{t('warehouse.waiting')}[/]")


@contextmanager
def read_warehouse(s: Settings) -> Iterator[Warehouse]:
    """The warehouse read-only: it opens beside ``yunying serve`` and other readers, and
    waits (saying so) while a writer holds it; see docs/web.md."""
    from yunying.warehouse.engine import open_warehouse

    with open_warehouse(s, read_only=True, on_wait=_waiting_notice) as wh:
        yield wh


@contextmanager
def write_warehouse(s: Settings) -> Iterator[Warehouse]:
    """The warehouse read-write, waiting (saying so) while the server or a reader holds it."""
    from yunying.warehouse.engine import open_warehouse

    with open_warehouse(s, on_wait=_waiting_notice) as wh:
        yield wh


@runtime_checkable
class Tabular(Protocol):
    """A result that can show itself as rows (for table and csv output)."""

    def to_rows(self) -> tuple[list[str], list[list[Any]]]: ...


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e6 else f"{v:,.0f}"
    return str(v)


def render_rows(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    fmt: OutputFormat,
    title: str = "",
    keys: Sequence[str] | None = None,
) -> None:
    """Table, csv or json; json objects use the stable ``keys`` (not translated headers)."""
    if fmt == OutputFormat.csv:
        from yunying import csvsafe

        buf = io.StringIO()
        w = csvsafe.writer(buf)
        w.writerow(headers)
        for r in rows:
            w.writerow(["" if v is None else v for v in r])
        sys.stdout.write(buf.getvalue())
        return
    if fmt == OutputFormat.json:
        sys.stdout.write(
            json.dumps(
                [dict(zip(keys or headers, r, strict=False)) for r in rows],
                default=str,
                ensure_ascii=False,
                indent=2,
            )
            + "\n"
        )
        return
    table = Table(title=title or None, show_lines=False)
    for h in headers:
        table.add_column(str(h))
    for r in rows:
        table.add_row(*[_cell(v) for v in r])
    console.print(table)


def emit(result: Any, fmt: OutputFormat, title: str = "") -> None:
    """Print a result: json is the same document the HTTP API returns."""
    if fmt == OutputFormat.json:
        if isinstance(result, BaseModel):
            sys.stdout.write(result.model_dump_json(indent=2) + "\n")
        else:
            sys.stdout.write(json.dumps(result, default=str, ensure_ascii=False, indent=2) + "\n")
        return
    if isinstance(result, Tabular):
        headers, rows = result.to_rows()
        render_rows(headers, rows, fmt, title)
        return
    if isinstance(result, BaseModel):
        data = result.model_dump(mode="json")
        render_rows(["key", "value"], [[k, v] for k, v in data.items()], fmt, title)
        return
    console.print(result)


def fail(key: str, **params: Any) -> None:
    raise YunyingError(key, **params)


def run_app(app: typer.Typer) -> None:
    try:
        app(standalone_mode=True)
    except YunyingError as e:
        err_console.print(f"[bold red]{t('cli.error')}:[/] {e.message()}")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:
        if os.environ.get("YUNYING_DEBUG"):
            raise
        err_console.print(f"[bold red]{t('cli.error')}:[/] {t('cli.unexpected', kind=type(e).__name__)}")
        sys.exit(1)
