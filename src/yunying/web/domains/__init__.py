"""Web doors that are found, not wired: one module per domain in this package.

Each module ``yunying.web.domains.<domain>`` exposes ``api_router`` (routes under
``/api/v1``) and, when it has pages, ``page_router``. ``include_all(app)`` imports every
module here in name order and includes what it finds, so a new domain adds a file and
touches neither ``app.py`` nor any other shared module (as ``cli/__init__.py`` does for
``cli/<domain>.py``). Each route still declares its permission with ``require``.

A module may also expose ``error_status``: its error keys that are not a plain 400
(``{"campaign.not_found": 404, …}``); they join the app's table of statuses.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from fastapi import APIRouter, FastAPI


def modules() -> list[ModuleType]:
    """The domain modules of this package, by name."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    return [importlib.import_module(f"{__name__}.{n}") for n in names]


def include_all(app: FastAPI) -> list[str]:
    """Include each domain's ``api_router`` and ``page_router``; returns the domains found."""
    from yunying.web import app as web_app

    found = []
    for mod in modules():
        web_app.STATUS_BY_KEY.update(getattr(mod, "error_status", {}))
        routers: list[APIRouter] = [
            r for a in ("api_router", "page_router") if isinstance(r := getattr(mod, a, None), APIRouter)
        ]
        if not routers:
            raise TypeError(f"{mod.__name__} has neither api_router nor page_router")
        for r in routers:
            app.include_router(r)
        found.append(mod.__name__.rsplit(".", 1)[1])
    return found
