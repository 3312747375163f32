"""Reports as a reader gets them: HTML with inline SVG, PDF pages rendered to PNG with
poppler, text extracted, Chinese drawn with a real CJK font (not tofu)."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from yunying.cli import app
from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.experiments.spec import ExperimentSpec, save
from yunying.reports.experiment import experiment_report
from yunying.reports.render import ReportDoc, render_html, render_pdf
from yunying.warehouse.engine import Warehouse

from ..experiments.data import build, spec_dict
from .campaign_data import build_campaign

runner = CliRunner()


def _poppler() -> None:
    if not shutil.which("pdftoppm") or not shutil.which("pdftotext"):
        pytest.fail("poppler-utils is not installed; run `make test`, which installs it")


def _png(pdf: Path, out: Path, dpi: int = 60) -> list[Path]:
    subprocess.run(["pdftoppm", "-r", str(dpi), "-png", str(pdf), str(out)], check=True)
    return sorted(out.parent.glob(out.name + "*.png"))


def test_experiment_report_html_and_pdf(wh: Warehouse, tmp_path: Path) -> None:
    _poppler()
    spec = ExperimentSpec.model_validate(spec_dict(goal_lift=0.02, hypothesis="更大的按钮让付款更容易"))
    build(wh, spec, lift=0.5)
    en = experiment_report(wh, spec, lang="en")
    assert en.headline[0].startswith("Variant b raised Paying conversion by ")
    assert "95% CI" in en.headline[0] and "pp" in en.headline[0]
    assert any("Roll out variant b" in s for s in en.next_steps)
    html = render_html(en)
    assert html.count("<svg") >= 3 and "<script" not in html and "https://" not in html
    zh = experiment_report(wh, spec, lang="zh_CN")
    assert "提升了" in zh.headline[0] and "个百分点" in zh.headline[0]
    pdf = tmp_path / "exp.pdf"
    pdf.write_bytes(render_pdf(zh))
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "实验复盘" in text and "置信区间" in text and "下一步行动" in text
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "CJK" in fonts  # a CJK font is embedded
    pages = _png(pdf, tmp_path / "page")
    assert pages
    px = np.asarray(Image.open(pages[0]).convert("L"))
    assert px.std() > 10  # not a blank page


def _title_strip(title: str, tmp_path: Path) -> np.ndarray:
    doc = ReportDoc(kind="t", id="t", title=title, lang="zh_CN", generated_at=datetime(2026, 1, 1))
    pdf = tmp_path / f"{abs(hash(title))}.pdf"
    pdf.write_bytes(render_pdf(doc))
    png = _png(pdf, tmp_path / f"{abs(hash(title))}", dpi=100)[0]
    img = np.asarray(Image.open(png).convert("L"))
    return img[40:110, :]  # the title line


def test_chinese_is_drawn_with_real_glyphs_not_tofu(tmp_path: Path) -> None:
    """Missing glyphs all render as the same box; real glyphs differ from one another."""
    _poppler()
    a = _title_strip("运营复盘运营复盘", tmp_path)
    b = _title_strip("实验活动实验活动", tmp_path)
    assert (a < 128).sum() > 200 and (b < 128).sum() > 200  # ink on the line
    assert np.abs(a.astype(int) - b.astype(int)).sum() > 50_000
    # Control: characters no font has (private use) do come out as identical boxes.
    c = _title_strip("\U000F0000\U000F0001\U000F0002", tmp_path)
    d = _title_strip("\U000F0010\U000F0011\U000F0012", tmp_path)
    assert np.abs(c.astype(int) - d.astype(int)).sum() < 1_000


def test_report_cli_campaign_and_experiment(settings: Settings, wh: Warehouse, tmp_path: Path) -> None:
    _poppler()
    build_campaign(wh)
    spec = ExperimentSpec.model_validate(spec_dict())
    save(settings, spec)
    build(wh, spec, n_users=1500, seed=3)
    wh.close()
    p = str(settings.project_dir)
    r = runner.invoke(app, ["report", "campaign", "may_voucher", "-p", p, "--format", "html", "--out", "-", "--lang", "en"])
    assert r.exit_code == 0, r.output
    assert "Cost per extra payer" in r.stdout and "against the holdout" in r.stdout and "<svg" in r.stdout
    r = runner.invoke(app, ["report", "campaign", "may_voucher", "-p", p, "--format", "pdf", "--lang", "zh_CN"])
    assert r.exit_code == 0, r.output
    out = settings.project_dir / "reports" / "campaign-may_voucher.pdf"
    text = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True, check=True).stdout
    assert "活动复盘" in text and "每新增付费用户成本" in text
    r = runner.invoke(app, ["report", "experiment", spec.id, "-p", p, "--format", "json", "--out", str(tmp_path / "e.json")])
    assert r.exit_code == 0, r.output
    assert '"kind": "experiment"' in (tmp_path / "e.json").read_text(encoding="utf-8")
    r = runner.invoke(app, ["report", "experiment", spec.id, "-p", p, "--format", "docx"])
    assert isinstance(r.exception, YunyingError) and r.exception.key == "reports.bad_format"
