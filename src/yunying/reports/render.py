"""A report is data (``ReportDoc``); this module turns it into HTML and PDF.

HTML is self-contained (inline CSS and SVG) so it can be mailed or archived; the PDF is
the same HTML through WeasyPrint, with Noto CJK named first so Chinese renders with
real glyphs.
"""

from __future__ import annotations

from datetime import datetime

from jinja2 import Environment, select_autoescape
from markupsafe import Markup
from pydantic import BaseModel, Field

from yunying.errors import YunyingError


class Kpi(BaseModel):
    label: str
    value: str
    note: str = ""


class TableData(BaseModel):
    headers: list[str]
    rows: list[list[str]]


class Section(BaseModel):
    title: str
    paragraphs: list[str] = Field(default_factory=list)
    charts: list[str] = Field(default_factory=list)  # inline SVG documents we generated
    table: TableData | None = None


class ReportDoc(BaseModel):
    """Everything a review shows, already translated; the same document in JSON."""

    kind: str
    id: str
    title: str
    subtitle: str = ""
    lang: str
    generated_at: datetime
    headline: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    kpis: list[Kpi] = Field(default_factory=list)
    sections: list[Section] = Field(default_factory=list)
    next_steps: list[str] = Field(default_factory=list)
    next_steps_title: str = ""
    footer: str = ""


_TEMPLATE = """<!DOCTYPE html>
<html lang="{{ 'zh-CN' if doc.lang.startswith('zh') else 'en' }}">
<head><meta charset="utf-8"><title>{{ doc.title }}</title>
<style>
@page { size: A4; margin: 16mm 14mm; @bottom-right { content: counter(page) " / " counter(pages); font-size: 9px; color: #888; } }
body { font-family: 'Noto Sans CJK SC', 'Noto Sans SC', 'Noto Sans', 'Helvetica Neue', Arial, sans-serif;
       color: #222; max-width: 760px; margin: 0 auto; padding: 12px; font-size: 13px; line-height: 1.5; }
h1 { font-size: 22px; margin: 0 0 2px; } h2 { font-size: 16px; margin: 22px 0 6px; border-bottom: 1px solid #ddd; padding-bottom: 3px; }
.sub { color: #666; margin-bottom: 12px; }
.headline { background: #f3f7fb; border-left: 4px solid #2f6fb3; padding: 8px 12px; margin: 10px 0; }
.headline p { margin: 4px 0; font-size: 14px; }
.warn { background: #fff4e5; border-left: 4px solid #e67e22; padding: 8px 12px; margin: 8px 0; }
.kpis { display: flex; flex-wrap: wrap; gap: 8px; margin: 10px 0; }
.kpi { border: 1px solid #e2e2e2; border-radius: 4px; padding: 6px 10px; min-width: 120px; }
.kpi .v { font-size: 17px; font-weight: bold; } .kpi .l { color: #666; font-size: 11px; } .kpi .n { color: #888; font-size: 10px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; font-size: 11.5px; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 4px 6px; text-align: left; }
th { background: #fafafa; }
.chart { margin: 8px 0; page-break-inside: avoid; }
ol.next li { margin: 4px 0; }
footer { color: #888; font-size: 10px; margin-top: 24px; }
</style></head>
<body>
<h1>{{ doc.title }}</h1>
<div class="sub">{{ doc.subtitle }}</div>
{% for w in doc.warnings %}<div class="warn">{{ w }}</div>{% endfor %}
{% if doc.headline %}<div class="headline">{% for h in doc.headline %}<p>{{ h }}</p>{% endfor %}</div>{% endif %}
{% if doc.kpis %}<div class="kpis">{% for k in doc.kpis %}<div class="kpi"><div class="l">{{ k.label }}</div><div class="v">{{ k.value }}</div>{% if k.note %}<div class="n">{{ k.note }}</div>{% endif %}</div>{% endfor %}</div>{% endif %}
{% for s in doc.sections %}
<h2>{{ s.title }}</h2>
{% for p in s.paragraphs %}<p>{{ p }}</p>{% endfor %}
{% for c in s.charts %}<div class="chart">{{ svg(c) }}</div>{% endfor %}
{% if s.table %}<table><thead><tr>{% for h in s.table.headers %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>{% for r in s.table.rows %}<tr>{% for c in r %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</tbody></table>{% endif %}
{% endfor %}
{% if doc.next_steps %}<h2>{{ doc.next_steps_title }}</h2><ol class="next">{% for n in doc.next_steps %}<li>{{ n }}</li>{% endfor %}</ol>{% endif %}
<footer>{{ doc.footer }}</footer>
</body></html>
"""

_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))


def _svg(markup: str) -> Markup:
    # Only SVG produced by yunying.reports.svg reaches here; its labels are escaped there.
    if not markup.startswith("<svg"):
        return Markup("")
    return Markup(markup)


_env.globals["svg"] = _svg
_template = _env.from_string(_TEMPLATE)


def render_html(doc: ReportDoc) -> str:
    return _template.render(doc=doc)


def render_pdf(doc: ReportDoc) -> bytes:
    """PDF via WeasyPrint (fonts from fontconfig: Debian's fonts-noto-cjk)."""
    try:
        from weasyprint import HTML
    except ImportError as e:  # pragma: no cover - depends on the install
        raise YunyingError("reports.pdf_missing") from e
    out = HTML(string=render_html(doc)).write_pdf()
    assert out is not None
    return bytes(out)
