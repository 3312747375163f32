"""Numbers in words a non-statistician can act on, in the report's language."""

from __future__ import annotations

import math

from yunying.i18n import t


def pct(v: float, digits: int = 1) -> str:
    return f"{v * 100:+.{digits}f}%"


def effect_text(kind: str, v: float, lang: str, signed: bool = False) -> str:
    """An absolute change: percentage points for conversions, plain numbers otherwise."""
    if kind == "proportion":
        s = f"{v * 100:+.1f}" if signed else f"{abs(v) * 100:.1f}"
        return t("reports.pp", lang=lang, v=s)
    s = f"{v:+,.2f}" if signed else f"{abs(v):,.2f}"
    return s


def value_text(kind: str, v: float) -> str:
    if kind == "proportion":
        return f"{v * 100:.2f}%"
    return f"{v:,.2f}"


def money(v: float | None, currency: str) -> str:
    if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
        return "–"
    sym = {"CNY": "¥", "USD": "$", "EUR": "€"}.get(currency, "")
    return f"{sym}{v:,.2f}" if sym else f"{v:,.2f} {currency}"


def level(alpha: float) -> str:
    return f"{(1 - alpha) * 100:g}%"
