"""The ``yunying`` command. Each module in this package adds one domain's commands.

A module defines ``register(app: typer.Typer) -> None``; modules are found by name, so a
new domain adds a file here and touches nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

app = typer.Typer(
    name="yunying",
    help="yunying (运营): the operations system. / 运营体系：指标、诊断、行动、度量、复盘。",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_registered = False


def _register_all() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "common":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


def main() -> None:
    _register_all()
    from yunying.cli.common import run_app

    run_app(app)


_register_all()
