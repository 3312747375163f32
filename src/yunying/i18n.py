"""Message catalogs (zh_CN and en), one JSON file per domain under ``locale/<lang>/``.

Each domain owns its own file so features can add strings without touching others'.
The active language is a context variable: the CLI sets it from settings, the web app
per request from the user's choice or Accept-Language.
"""

from __future__ import annotations

import json
import os
from contextvars import ContextVar
from functools import cache
from importlib import resources
from typing import Any

LANGUAGES = ("zh_CN", "en")
DEFAULT_LANGUAGE = "zh_CN"

_current: ContextVar[str | None] = ContextVar("yunying_language", default=None)


def normalize(lang: str | None) -> str:
    if not lang:
        return DEFAULT_LANGUAGE
    low = lang.replace("-", "_").lower()
    if low.startswith("zh"):
        return "zh_CN"
    if low.startswith("en"):
        return "en"
    return DEFAULT_LANGUAGE


def set_language(lang: str | None) -> None:
    _current.set(normalize(lang) if lang else None)


def get_language() -> str:
    cur = _current.get()
    if cur:
        return cur
    return normalize(os.environ.get("YUNYING_LANGUAGE"))


@cache
def catalog(lang: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    root = resources.files("yunying") / "locale" / lang
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            data = json.loads(entry.read_text(encoding="utf-8"))
            dup = set(merged) & set(data)
            if dup:
                raise RuntimeError(f"duplicate i18n keys in {lang}/{entry.name}: {sorted(dup)}")
            merged.update(data)
    return merged


def t(key: str, lang: str | None = None, **params: Any) -> str:
    """Translate ``key``; a missing key shows itself so it is noticed, never crashes."""
    lang = normalize(lang) if lang else get_language()
    text = catalog(lang).get(key)
    if text is None:
        text = catalog("en").get(key, key)
    if params:
        try:
            return text.format(**params)
        except (KeyError, IndexError, ValueError):
            return text
    return text


def has(key: str) -> bool:
    return key in catalog("en")
