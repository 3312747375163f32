from __future__ import annotations

import re
from importlib import resources

from yunying.i18n import catalog, normalize, t


def test_catalogs_have_the_same_keys() -> None:
    en, zh = catalog("en"), catalog("zh_CN")
    assert set(en) == set(zh), sorted(set(en) ^ set(zh))


def test_placeholders_match() -> None:
    en, zh = catalog("en"), catalog("zh_CN")
    for k in en:
        assert set(re.findall(r"{(\w+)}", en[k])) == set(re.findall(r"{(\w+)}", zh[k])), k


def test_each_domain_file_exists_in_both_languages() -> None:
    root = resources.files("yunying") / "locale"
    en = {p.name for p in (root / "en").iterdir()}
    zh = {p.name for p in (root / "zh_CN").iterdir()}
    assert en == zh


def test_translate_and_fallback() -> None:
    assert t("cli.yes", lang="zh_CN") == "是"
    assert t("cli.yes", lang="en") == "yes"
    assert t("no.such.key") == "no.such.key"
    assert normalize("zh-Hans-CN") == "zh_CN" and normalize("en-US") == "en"
