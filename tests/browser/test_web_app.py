"""The review web app in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`)
driven by Selenium against `vehicle-assessment serve` with the tiny model.

One journey, as a person makes it: create an assessment on the New page with three sample photos
(drag-and-drop's file input, previews, upload progress through the presigned forms), watch the result
page until it is final, check photos, neighbour thumbnails, the valuation and the audio player, review
one photo and see the valuation change. Every page is screenshotted into ``test-artifacts/browser/``
(gitignored) and any browser console error fails the test.

Without Chromium the test skips with the reason; ``VDA_REQUIRE_BROWSER=1`` (set by ``.ci/run``) turns
that skip into a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import REPO_ROOT, SAMPLE_DATA, TEST_DATA, TINY_MODEL

pytestmark = [pytest.mark.slow, pytest.mark.allow_hosts(["127.0.0.1", "::1"])]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REQUIRE_BROWSER_ENV = "VDA_REQUIRE_BROWSER"
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
VIN = "1FTMW1T88MFA00001"  # a valid 2021 Ford F-150 VIN
PHOTOS = [
    SAMPLE_DATA / "queries" / "undamaged" / "red_44070187_5e5a50b675_b.jpg",
    *sorted((SAMPLE_DATA / "queries" / "damaged").glob("*.jpg"))[:2],
]
# The tiny model assesses three photos in seconds; the first request also loads it.
FINAL_WAIT_S = 180
PAGE_WAIT_S = 30
# `vehicle-assessment ...` in a fresh interpreter that knows the tiny test architecture (registered
# in-process only, as the CLI tests do), so the real `serve` command runs as its own process.
CLI_WITH_TINY_MODEL = (
    "import sys\n"
    "from vehicle_assessment.adapters.local.openclip_encoder import register_model_config\n"
    "register_model_config(sys.argv[1])\n"
    "from vehicle_assessment.cli import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)


def _browser_missing() -> str | None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        return f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (requirements-dev.txt)"
    return None


def require_browser() -> None:
    """Skips (with the reason) when the browser cannot run, or fails where CI requires it."""
    reason = _browser_missing()
    if reason is None:
        return
    if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
        pytest.fail(f"{REQUIRE_BROWSER_ENV}=1 but the browser test cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module", autouse=True)
def _browser_available() -> None:
    require_browser()


def _cli_env(data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "VDA_DATA_DIR": str(data_dir),
        "VDA_ENCODER__MODEL_NAME": TINY_MODEL,
        "VDA_ENCODER__PRETRAINED": "",
        "VDA_ENCODER__UNTRAINED": "true",
        "VDA_ENCODER__THREADS": "2",
        "VDA_VPIC__ENABLED": "false",
        "PYTHONPATH": str(REPO_ROOT),
    }


def _cli(*args: str) -> list[str]:
    model_config = TEST_DATA / "models" / f"{TINY_MODEL}.json"
    return [sys.executable, "-c", CLI_WITH_TINY_MODEL, str(model_config), *args]


@dataclass(frozen=True)
class Served:
    base_url: str
    demo_page: str  # what `serve` printed: the web app's page of the newest assessment


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """As after `make demo`: `vehicle-assessment index build` and `assess`, then `vehicle-assessment serve
    --port 0`, in a temp data dir."""
    data_dir = tmp_path_factory.mktemp("browser-data")
    env = _cli_env(data_dir)
    reference = SAMPLE_DATA / "reference"
    built = subprocess.run(
        _cli("index", "build", str(reference), "--labels", str(reference / "labels.csv")),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert built.returncode == 0, built.stderr
    assessed = subprocess.run(
        _cli(
            "assess",
            "--vin",
            VIN,
            "--color",
            "Oxford White",
            "--mileage",
            "48200",
            "--estimate",
            "38500",
            *map(str, PHOTOS),
        ),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert assessed.returncode == 0, assessed.stderr
    log = (data_dir / "serve.log").open("w")
    process = subprocess.Popen(
        _cli("serve", "--port", "0"), env=env, stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO_ROOT
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.match(r"serving (http://\S+)", first)
        assert match, f"serve said {first!r}; log: {(data_dir / 'serve.log').read_text()}"
        page = re.match(r"web app: (http://\S+)", process.stdout.readline())
        assert page, "serve prints the web app's page of the newest assessment"
        # Keep reading what it prints (the API's log lines), so that a full pipe never blocks it.
        threading.Thread(target=shutil.copyfileobj, args=(process.stdout, log), daemon=True).start()
        yield Served(match.group(1), page.group(1))
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C: the server finishes what it has in hand
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        # Beside the screenshots: what the server logged (the API's tracebacks, if any).
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_dir / "serve.log", ARTIFACTS / "serve.log")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


def _wait(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")


def _console_errors(driver: Any) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _screenshot(driver: Any, artifacts: Path, name: str) -> None:
    # The whole page, not only the window: resize to the document's height first.
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, 800)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(max(height + 150, 800), 6000))  # + the window's own bars
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(artifacts / f"{name}.png"))


def _images_loaded(driver: Any, selector: str) -> list[bool]:
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(i => i.complete && i.naturalWidth > 0)",
        selector,
    )


def _explained(browser: Any, artifacts: Path, journey: Callable[[], None]) -> None:
    try:
        journey()
    except (AssertionError, TimeoutError) as failure:
        # What the page showed, and what the browser logged, beside the failure.
        browser.save_screenshot(str(artifacts / "failure.png"))
        shown = browser.execute_script("return document.getElementById('main')?.innerText ?? ''")
        logs = [f"{e['level']}: {e['message']}" for e in browser.get_log("browser")]
        raise AssertionError(
            f"{failure}\npage at {browser.current_url}:\n{shown[:2000]}\nlog: {logs}"
        ) from failure


def test_the_demo_assessment_shows_with_photos_neighbours_value_and_audio(
    browser: Any, served: Served, artifacts: Path
) -> None:
    """After `make demo`, the page `serve` prints shows what `assess` made."""
    _explained(browser, artifacts, lambda: _demo(browser, served.demo_page, artifacts))


def test_create_view_and_review_an_assessment_in_the_browser(
    browser: Any, served: Served, artifacts: Path
) -> None:
    _explained(browser, artifacts, lambda: _journey(browser, served.base_url, artifacts))


def _demo(driver: Any, page: str, artifacts: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.get(page)
    _wait(
        lambda: driver.find_element(By.ID, "main").get_attribute("data-status") == "COMPLETED",
        PAGE_WAIT_S,
        "the demo assessment",
    )
    _check_result_page(driver)
    _screenshot(driver, artifacts, "0-demo-assessment")
    errors = _console_errors(driver)
    assert not errors, f"browser console errors: {errors}"


def _check_result_page(driver: Any) -> None:
    """Photos loaded, reference thumbnails loaded with similarity and label, the valuation breakdown,
    the untrained-encoder warning, and audio players whose audio loads."""
    from selenium.webdriver.common.by import By

    photos = driver.find_elements(By.CSS_SELECTOR, "article.photo")
    assert len(photos) == len(PHOTOS)
    _wait(lambda: all(_images_loaded(driver, "img.photo-main")), PAGE_WAIT_S, "the photos to load")
    neighbours = driver.find_elements(By.CSS_SELECTOR, ".neighbour img")
    assert len(neighbours) >= len(PHOTOS), "each photo shows its nearest reference photos"
    # Thumbnails load lazily (phones): bring each into view first.
    for thumbnail in neighbours:
        driver.execute_script("arguments[0].scrollIntoView()", thumbnail)
    _wait(lambda: all(_images_loaded(driver, ".neighbour img")), PAGE_WAIT_S, "the reference thumbnails")
    assert "similarity" in photos[0].text
    assert driver.find_element(By.ID, "adjusted-value").text.startswith("$")
    assert "Depreciation per photo" in driver.find_element(By.ID, "valuation").text
    # The tiny model has random weights: the page must say so, loudly.
    assert "Untrained encoder" in driver.find_element(By.ID, "warnings").text
    # The audio player plays what the server made (espeak-ng): its metadata loads.
    assert driver.find_elements(By.CSS_SELECTOR, "#descriptions audio"), "each description has its player"
    driver.execute_script("document.querySelectorAll('#descriptions audio').forEach(a => a.load())")
    _wait(
        lambda: driver.execute_script("return document.querySelector('#descriptions audio').readyState >= 1"),
        PAGE_WAIT_S,
        "the audio's metadata",
    )
    assert driver.execute_script("return document.querySelector('#descriptions audio').duration") > 0


def _journey(driver: Any, server_url: str, artifacts: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    started = time.monotonic()

    # --- New assessment ----------------------------------------------------------------------
    driver.get(f"{server_url}/#/new")
    _wait(lambda: driver.find_elements(By.ID, "new-assessment"), PAGE_WAIT_S, "the New page")
    # Keyboard: a new page puts focus on its heading; Tab goes on to the first field; the drop zone
    # takes focus too (Enter opens the file chooser).
    assert driver.switch_to.active_element.tag_name == "h1"
    driver.switch_to.active_element.send_keys(Keys.TAB)
    assert driver.switch_to.active_element.get_attribute("id") == "vin"
    assert driver.find_element(By.CSS_SELECTOR, ".drop-zone").get_attribute("tabindex") == "0"
    driver.find_element(By.ID, "vin").send_keys(VIN)
    driver.find_element(By.ID, "color").send_keys("Oxford White")
    driver.find_element(By.ID, "mileage").send_keys("48200")
    driver.find_element(By.ID, "estimate_usd").send_keys("38500")
    driver.find_element(By.ID, "photos-input").send_keys("\n".join(str(p) for p in PHOTOS))
    _wait(lambda: len(_images_loaded(driver, "#previews img")) == 3, PAGE_WAIT_S, "three previews")
    assert all(_images_loaded(driver, "#previews img"))
    _screenshot(driver, artifacts, "1-new-assessment")
    driver.find_element(By.CSS_SELECTOR, "#new-assessment button[type=submit]").click()

    # --- Assessment: updates itself until final ---------------------------------------------
    _wait(lambda: re.search(r"#/assessments/[\w-]+$", driver.current_url), PAGE_WAIT_S, "the result page")
    assessment_id = driver.current_url.rsplit("/", 1)[1]
    _wait(
        lambda: driver.find_element(By.ID, "main").get_attribute("data-status") == "COMPLETED",
        FINAL_WAIT_S,
        "the assessment to complete",
    )
    view = requests.get(f"{server_url}/assessments/{assessment_id}", timeout=10).json()
    assert view["status"] == "COMPLETED"
    _check_result_page(driver)
    value_before = driver.find_element(By.ID, "adjusted-value").text
    _screenshot(driver, artifacts, "2-assessment")
    # Readable on a phone: one column, nothing wider than the screen.
    driver.set_window_size(390, 844)
    time.sleep(0.3)
    # (A table may scroll sideways inside its own box; the page itself may not.)
    too_wide = driver.execute_script(
        "return [...document.querySelectorAll('main *')]"
        ".filter(e => !e.closest('.table-scroll') && e.getBoundingClientRect().right > window.innerWidth + 1)"
        ".map(e => e.tagName + '.' + e.className).slice(0, 10)"
    )
    assert not too_wide, f"wider than a phone's screen: {too_wide}"
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    _screenshot(driver, artifacts, "3-assessment-phone")
    driver.set_window_size(1280, 1600)

    # --- Review one photo ----------------------------------------------------------------------
    driver.find_element(By.LINK_TEXT, "Review").click()
    _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "form.review-form"), PAGE_WAIT_S, "the Review page")
    _screenshot(driver, artifacts, "4-review")
    # A change the valuation must show: the first photo the model did not call severe becomes severe
    # damage (or, if all were severe, the first becomes undamaged).
    rows = view["valuation"]["photos"]
    target = next((r for r in rows if r["counted"] and r["severity"] != "severe"), rows[0])
    form = driver.find_element(By.CSS_SELECTOR, f"form.review-form[data-photo-id='{target['photo_id']}']")
    damaged = target["severity"] != "severe"
    form.find_element(By.CSS_SELECTOR, f"input[name=damaged][value={'yes' if damaged else 'no'}]").click()
    if damaged:
        Select(form.find_element(By.NAME, "damage_type")).select_by_value("broken")
        Select(form.find_element(By.NAME, "severity")).select_by_value("severe")
    # User text is shown as text, never parsed as HTML.
    note = '<img src=x id=injected onerror="document.title=1"> bumper checked by hand'
    form.find_element(By.NAME, "note").send_keys(note)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(lambda: driver.find_elements(By.ID, "value-after"), PAGE_WAIT_S, "the saved review")
    value_after = driver.find_element(By.ID, "value-after").text
    assert driver.find_element(By.ID, "value-before").text == value_before
    assert value_after != value_before, "the review changed the valuation"
    assert driver.find_element(By.ID, "adjusted-value").text == value_after
    assert not driver.find_elements(By.ID, "injected") and note in driver.find_element(By.ID, "photos").text
    reviewed = requests.get(f"{server_url}/assessments/{assessment_id}", timeout=10).json()
    [photo] = [p for p in reviewed["photos"] if p["photo_id"] == target["photo_id"]]
    assert photo["reviews"][-1]["note"] == note
    _screenshot(driver, artifacts, "5-review-saved")

    # --- Assessments list ------------------------------------------------------------------------
    driver.get(f"{server_url}/#/")
    _wait(lambda: driver.find_elements(By.ID, "assessment-list"), PAGE_WAIT_S, "the Assessments page")
    assert driver.find_elements(By.CSS_SELECTOR, f"tr[data-assessment-id='{assessment_id}']")
    _screenshot(driver, artifacts, "6-assessments")

    errors = _console_errors(driver)
    assert not errors, f"browser console errors: {errors}"
    elapsed = time.monotonic() - started
    (artifacts / "timing.json").write_text(json.dumps({"journey_s": round(elapsed, 1)}))
