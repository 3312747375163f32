"""Small inline SVG charts generated here: no JavaScript, no CDN, identical in HTML and PDF.

Every chart escapes its labels and uses only basic SVG that WeasyPrint renders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

FONT = "'Noto Sans CJK SC','Noto Sans SC','Noto Sans',sans-serif"
PALETTE = ("#2f6fb3", "#e07b39", "#3a9b5c", "#9b59b6", "#c0392b", "#7f8c8d", "#16a085")
GOOD, BAD, NEUTRAL = "#2e8b57", "#c0392b", "#7f8c8d"


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'font-family="{FONT}" font-size="11">' + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, s: str, anchor: str = "start", size: int = 11, fill: str = "#333") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
        f'fill="{fill}">{escape(s)}</text>'
    )


def _nice_range(lo: float, hi: float) -> tuple[float, float]:
    if lo == hi:
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.08
    return lo - pad, hi + pad


@dataclass(frozen=True)
class Interval:
    label: str
    point: float
    low: float
    high: float
    color: str = NEUTRAL


def forest(rows: Sequence[Interval], title: str, fmt: str = "{:+.1%}", width: int = 640) -> str:
    """Effects with their intervals around a zero line: the picture of a test result."""
    row_h, top, left, right = 26, 30, 220, 70
    height = top + row_h * max(len(rows), 1) + 30
    lo = min([0.0, *[r.low for r in rows]])
    hi = max([0.0, *[r.high for r in rows]])
    lo, hi = _nice_range(lo, hi)
    span = width - left - right

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * span

    body = [_text(8, 18, title, size=13, fill="#111")]
    zx = x(0.0)
    body.append(
        f'<line x1="{zx:.1f}" y1="{top - 6}" x2="{zx:.1f}" y2="{height - 24}" '
        'stroke="#999" stroke-dasharray="3,3"/>'
    )
    for i, r in enumerate(rows):
        y = top + i * row_h + row_h / 2
        body.append(_text(8, y + 4, r.label))
        body.append(
            f'<line x1="{x(r.low):.1f}" y1="{y:.1f}" x2="{x(r.high):.1f}" y2="{y:.1f}" '
            f'stroke="{r.color}" stroke-width="3" stroke-linecap="round"/>'
        )
        body.append(f'<circle cx="{x(r.point):.1f}" cy="{y:.1f}" r="5" fill="{r.color}"/>')
        body.append(_text(width - right + 6, y + 4, fmt.format(r.point), size=10))
    body.append(_text(x(lo), height - 8, fmt.format(lo), size=9, fill="#666"))
    body.append(_text(zx, height - 8, "0", anchor="middle", size=9, fill="#666"))
    body.append(_text(x(hi), height - 8, fmt.format(hi), anchor="end", size=9, fill="#666"))
    return _svg(width, height, body, title)


def bars(
    labels: Sequence[str],
    values: Sequence[float],
    title: str,
    fmt: str = "{:,.2f}",
    width: int = 640,
    colors: Sequence[str] | None = None,
) -> str:
    """Horizontal bars (per-variant values, cost per tool): labels left, values right."""
    row_h, top, left, right = 24, 30, 180, 90
    height = top + row_h * max(len(values), 1) + 10
    vmax = max([abs(v) for v in values] + [0.0]) or 1.0
    span = width - left - right
    body = [_text(8, 18, title, size=13, fill="#111")]
    for i, (lab, v) in enumerate(zip(labels, values, strict=True)):
        y = top + i * row_h
        w = abs(v) / vmax * span
        color = (colors or PALETTE)[i % len(colors or PALETTE)]
        body.append(_text(8, y + 15, lab))
        body.append(
            f'<rect x="{left}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" fill="{color}" rx="2"/>'
        )
        body.append(_text(left + w + 6, y + 15, fmt.format(v), size=10))
    return _svg(width, height, body, title)


def lines(
    x_labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str,
    fmt: str = "{:,.0f}",
    width: int = 640,
    height: int = 220,
    reference: float | None = None,
) -> str:
    """Lines over time (exposures per day, cumulative spend against the budget line)."""
    top, bottom, left, right = 30, 30, 60, 110
    allv = [v for s in series.values() for v in s] + ([reference] if reference is not None else [])
    lo, hi = 0.0, max(allv + [1.0])
    hi *= 1.08
    n = max(len(x_labels), 1)
    pw, ph = width - left - right, height - top - bottom

    def px(i: int) -> float:
        return left + (i / (n - 1) * pw if n > 1 else pw / 2)

    def py(v: float) -> float:
        return top + ph - (v - lo) / (hi - lo) * ph

    body = [_text(8, 18, title, size=13, fill="#111")]
    body.append(
        f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#bbb"/>'
    )
    body.append(_text(left - 6, py(hi / 1.08) + 4, fmt.format(hi / 1.08), anchor="end", size=9, fill="#666"))
    body.append(_text(left - 6, top + ph + 4, fmt.format(0), anchor="end", size=9, fill="#666"))
    if reference is not None:
        ry = py(reference)
        body.append(
            f'<line x1="{left}" y1="{ry:.1f}" x2="{left + pw}" y2="{ry:.1f}" stroke="{BAD}" '
            'stroke-dasharray="5,4"/>'
        )
    for k, (name, vals) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        pts = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(vals))
        body.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        body.append(f'<rect x="{left + pw + 12}" y="{top + k * 18}" width="10" height="10" fill="{color}"/>')
        body.append(_text(left + pw + 26, top + k * 18 + 9, name, size=10))
    if x_labels:
        body.append(_text(left, height - 10, x_labels[0], size=9, fill="#666"))
        body.append(_text(left + pw, height - 10, x_labels[-1], anchor="end", size=9, fill="#666"))
    return _svg(width, height, body, title)
