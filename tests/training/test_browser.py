"""The training page in a real headless browser (Debian's chromium, driven by selenium), with no network.

Checks that it loads and runs with every network request blocked, that the step-through moves forward and
back (buttons, keys, clicking an arrow), that the matrix shows "never" for NWS × 個人番号 in both languages,
and that the quiz reveals its answer. Saves a screenshot under tests/artifacts/ and prints its path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from simulator.training.viewer import write_page

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture
def browser(chromium: tuple[str, str], tmp_path: Path) -> Iterator[WebDriver]:
    binary, driver_path = chromium
    options = Options()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1400,1100",
        # No network at all: every name resolves to nothing and every connection goes to a closed port.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=127.0.0.1:9",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _pos(driver: WebDriver) -> str:
    return str(driver.find_element(By.ID, "pos").text)


def _visible_panel(driver: WebDriver) -> list[str]:
    return [str(p.get_attribute("id")) for p in driver.find_elements(By.CSS_SELECTOR, ".panel") if p.is_displayed()]


def test_page_runs_offline_steps_and_shows_the_matrix(browser: WebDriver, query_run: Any, tmp_path: Path) -> None:
    page = tmp_path / "query.html"
    write_page(query_run.path, page)
    browser.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
    browser.get(page.as_uri())

    # Loaded with nothing fetched and no error (a blocked fetch or a CSP violation would be logged).
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    severe = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert severe == []
    total = len(query_run.trace.hops)
    assert _pos(browser) == "1" and browser.find_element(By.ID, "total").text == str(total)
    assert _visible_panel(browser) == ["panel-1"]
    assert not browser.find_element(By.ID, "prev").is_enabled()

    # Forward and back: buttons, keys, and a click on an arrow of the diagram.
    browser.find_element(By.ID, "next").click()
    assert _pos(browser) == "2" and _visible_panel(browser) == ["panel-2"]
    assert "current" in str(browser.find_element(By.ID, "hop-2").get_attribute("class"))
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.ARROW_RIGHT)
    assert _pos(browser) == "3" and _visible_panel(browser) == ["panel-3"]
    body.send_keys(Keys.ARROW_LEFT)
    assert _pos(browser) == "2"
    browser.find_element(By.ID, "prev").click()
    assert _pos(browser) == "1"
    browser.execute_script("document.getElementById('hop-4').dispatchEvent(new MouseEvent('click', {bubbles: true}))")
    assert _pos(browser) == "4" and _visible_panel(browser) == ["panel-4"]
    body.send_keys(Keys.END)
    assert _pos(browser) == str(total) and not browser.find_element(By.ID, "next").is_enabled()
    body.send_keys(Keys.HOME)
    body.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    assert _pos(browser) == "3"  # the query to NWS: its matrix cells are outlined

    cell = browser.find_element(By.CSS_SELECTOR, 'td[data-party="nws.core"][data-item="my_number"]')
    assert cell.get_attribute("data-exposure") == "never" and cell.text == "見ていない"
    code_cell = browser.find_element(By.CSS_SELECTOR, 'td[data-party="nws.core"][data-item="linkage_code"]')
    assert "touched" in str(code_cell.get_attribute("class"))

    # The whole page in one picture: diagram, the current step's panel, the matrix and the findings.
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    browser.set_window_size(1400, min(height + 120, 4000))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "training-query.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print(f"\nscreenshot: {shot}")

    browser.find_element(By.ID, "lang-toggle").click()
    assert cell.text == "never"
    assert browser.find_element(By.CSS_SELECTOR, "#panel-3 h3").text.startswith("Kurashiki intermediate server")

    # Quiz: pick the right system and the right control; the answer is then shown.
    browser.find_element(By.ID, "quiz-toggle").click()
    assert browser.find_element(By.ID, "quiz").is_displayed()
    question = browser.find_elements(By.CSS_SELECTOR, "#quiz .q")[0]
    reveal = question.find_element(By.CSS_SELECTOR, ".reveal")
    assert not reveal.is_displayed()
    question.find_element(By.CSS_SELECTOR, '.who button[data-right="1"]').click()
    question.find_element(By.CSS_SELECTOR, '.why button[data-right="1"]').click()
    assert reveal.is_displayed() and "Why:" in reveal.text
    assert not browser.find_element(By.CSS_SELECTOR, "#panel-3 .answers").is_displayed()  # no spoilers in quiz mode
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
