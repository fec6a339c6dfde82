"""The web app's static files: shipped with the package, kept out of the Lambda assets, valid ES modules,
never building HTML from strings; and the browser test's skip that CI turns into a failure."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

WEBAPP = REPO_ROOT / "vehicle_assessment" / "webapp"
FILES = sorted(p for p in WEBAPP.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
SCRIPTS = [p for p in FILES if p.suffix == ".js"]
# Ways to turn a string into markup: with user text (VIN, colour, notes, descriptions) that is XSS.
HTML_SINKS = re.compile(r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function\(")


def test_every_static_file_is_package_data() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["vehicle_assessment"]
    for file in FILES:
        relative = file.relative_to(REPO_ROOT / "vehicle_assessment").as_posix()
        assert any(fnmatch.fnmatchcase(relative, p) for p in patterns), f"{relative} is not installed"
    assert {"index.html", "app.js", "styles.css"} <= {p.name for p in FILES}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(WEBAPP).as_posix())
def test_no_script_builds_html_from_strings(script: Path) -> None:
    found = HTML_SINKS.findall(script.read_text())
    assert not found, f"{script.name} uses {found}: build nodes with dom.h() and textContent instead"


def test_the_page_loads_no_inline_script_or_style() -> None:
    """The CSP (serve's and CloudFront's) allows scripts and styles from the site's files only."""
    for page in (p for p in FILES if p.suffix == ".html"):
        html = page.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), f"{page.name}: inline script"
        assert "<style" not in html and " style=" not in html, f"{page.name}: inline style"
        assert not re.search(r"\son[a-z]+=", html), f"{page.name}: inline event handler"
    # (A style attribute set from a script would be refused too: the browser test fails on the CSP
    # violation it logs.)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed (the CDK's runtime)")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(WEBAPP).as_posix())
def test_every_script_is_a_valid_es_module(script: Path) -> None:
    checked = subprocess.run(
        ["node", "--experimental-default-type=module", "--check", str(script)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr


def test_the_lambda_assets_leave_the_web_app_out() -> None:
    from infra.lambda_package import LIGHT, stage_sources

    staged = stage_sources(LIGHT)
    assert (staged / "vehicle_assessment" / "pipeline.py").is_file()
    assert not (staged / "vehicle_assessment" / "webapp").exists()


def test_a_missing_browser_skips_with_the_reason_or_fails_where_required(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.browser import test_web_app

    monkeypatch.setattr(test_web_app, "CHROMIUM", tmp_path / "chromium")
    monkeypatch.delenv(test_web_app.REQUIRE_BROWSER_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium not installed"):
        test_web_app.require_browser()
    monkeypatch.setenv(test_web_app.REQUIRE_BROWSER_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="VDA_REQUIRE_BROWSER=1"):
        test_web_app.require_browser()
