"""One error type whose message is a catalog key, so every edge can show it in zh-CN or en."""

from __future__ import annotations

from typing import Any


class YunyingError(Exception):
    """A user-facing error: ``key`` names a message in the i18n catalogs."""

    def __init__(self, key: str, **params: Any) -> None:
        self.key = key
        self.params = params
        super().__init__(key)

    def message(self, lang: str | None = None) -> str:
        from yunying.i18n import t

        return t(self.key, lang=lang, **self.params)

    def __str__(self) -> str:
        return self.message()
