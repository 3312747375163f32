"""Charts drawn on the server as inline SVG: no JavaScript library, no CDN, works offline.

Each function returns SVG markup (already escaped) for a Jinja template to embed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from markupsafe import Markup

PALETTE = ("#2563eb", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#0891b2", "#db2777")


def _num(v: object) -> float:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def sparkline(values: Sequence[object], width: int = 120, height: int = 32) -> Markup:
    vals = [_num(v) for v in values]
    if len(vals) < 2:
        return Markup("")
    lo, hi = min(vals), max(vals)
    span = hi - lo or 1.0
    step = width / (len(vals) - 1)
    pts = " ".join(f"{i * step:.1f},{height - 2 - (v - lo) / span * (height - 4):.1f}" for i, v in enumerate(vals))
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">'
        f'<polyline fill="none" stroke="{PALETTE[0]}" stroke-width="1.5" points="{pts}"/></svg>'
    )


def bar_chart(
    labels: Sequence[object], values: Sequence[object], width: int = 640, fmt: str = "{:,.0f}", note: Sequence[str] | None = None
) -> Markup:
    """Horizontal bars (funnel steps, RFM classes, distributions)."""
    vals = [_num(v) for v in values]
    if not vals:
        return Markup("")
    top = max(vals) or 1.0
    row, label_w = 30, 180
    height = row * len(vals) + 10
    parts = [
        f'<svg class="chart bars" viewBox="0 0 {width} {height}" width="100%" '
        f'style="max-width:{width}px" role="img">'
    ]
    for i, (lab, v) in enumerate(zip(labels, vals, strict=False)):
        y = 5 + i * row
        w = max(1.0, (width - label_w - 230) * v / top)  # room for the value and its note
        extra = f" · {escape(note[i])}" if note and i < len(note) and note[i] else ""
        parts.append(
            f'<text x="0" y="{y + 18}" class="lab">{escape(str(lab))[:28]}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row - 10}" fill="{PALETTE[0]}" rx="2"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 18}" class="val">{escape(fmt.format(v))}{extra}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(
    x: Sequence[object], series: Mapping[str, Sequence[object]], width: int = 720, height: int = 240
) -> Markup:
    """Lines over time (trends, lifecycle); x labels are shown at the ends and middle."""
    names = list(series)
    if not x or not names:
        return Markup("")
    allv = [_num(v) for s in series.values() for v in s] or [0.0]
    lo, hi = min(0.0, min(allv)), max(allv) or 1.0
    span = hi - lo or 1.0
    left, bottom = 56, 24
    pw, ph = width - left - 10, height - bottom - 10
    step = pw / max(1, len(x) - 1)
    parts = [
        f'<svg class="chart lines" viewBox="0 0 {width} {height + 20 * ((len(names) + 3) // 4)}" width="100%" '
        f'style="max-width:{width * 1.4:.0f}px" role="img">'
    ]
    for frac in (0.0, 0.5, 1.0):
        y = 10 + ph - frac * ph
        parts.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" class="axis" text-anchor="end">{lo + frac * span:,.4g}</text>'
        )
    for idx in sorted({0, len(x) // 2, len(x) - 1}):
        parts.append(
            f'<text x="{left + idx * step:.1f}" y="{height - 4}" class="axis" text-anchor="middle">{escape(str(x[idx]))[:16]}</text>'
        )
    for n, name in enumerate(names):
        color = PALETTE[n % len(PALETTE)]
        pts = " ".join(
            f"{left + i * step:.1f},{10 + ph - (_num(v) - lo) / span * ph:.1f}" for i, v in enumerate(series[name])
        )
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}"/>')
        lx, ly = left + (n % 4) * 160, height + 14 + 20 * (n // 4)
        parts.append(
            f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{color}"/>'
            f'<text x="{lx + 14}" y="{ly}" class="lab">{escape(str(name))[:20]}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def heat_color(v: float | None) -> str:
    """Background for a 0..1 share: white → blue."""
    if v is None:
        return "transparent"
    v = max(0.0, min(1.0, v))
    r = int(255 - v * (255 - 37))
    g = int(255 - v * (255 - 99))
    b = int(255 - v * (255 - 235))
    return f"rgb({r},{g},{b})"
