"""The static site in a real browser: the index and a claim page load in headless Chromium,
every claim link resolves, every plot image loads, and a screenshot lands in build/.

Uses Debian's chromium and chromedriver through Selenium (no browser download); where either
is missing the test skips and says which.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

import report
from harness import environment
from tests.conftest import ENV, FREE_THREADED, bench, check, figure, run_json

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOTS = ROOT / "build" / "site-screenshots"

needs_chromium = pytest.mark.skipif(
    not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
    reason=f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}); apt-get install them",
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                    "(requirements-report.txt)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path_factory.getbasetemp())
    for arg in ("--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1600",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to run as root inside its sandbox
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A report of two environments with plots, built from synthetic runs."""
    base = tmp_path_factory.mktemp("site")
    for e, cores in ((ENV, 1.0), (FREE_THREADED, 1.9)):
        parts = [bench(name=f"test_w[{k}]", params={"workers": k}, checks=[check(value=cores, interval=[0.9, 2], n=7)],
                       figures={"thread_cores": figure(cores, "cores", interval=[cores - 0.1, cores + 0.1], n=7),
                                "process_cores": figure(k * 0.9, "cores")}) for k in (2, 4)]
        path = base / "runs" / environment.slug(e) / "m" / "0001.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(run_json(parts, e)))
    assert report.main([str(base / "runs"), "--out", str(base / "out")]) == 0
    return base / "out" / "site"


def _images(driver) -> list[tuple[str, bool]]:
    return driver.execute_script(
        "return Array.from(document.images).map(i => [i.src, i.complete && i.naturalWidth > 0]);")


@needs_chromium
def test_index_links_to_every_claim_page_and_every_plot_loads(browser, site):
    browser.get((site / "index.html").as_uri())
    assert "verdicts" in browser.title
    links = browser.execute_script(
        "return Array.from(document.querySelectorAll('a.claim-link')).map(a => a.href);")
    assert links, "the index links to no claim page"
    for href in sorted(set(links)):
        browser.get(href)
        assert browser.find_elements("css selector", "h1"), f"{href} did not load"
        broken = [src for src, ok in _images(browser) if not ok]
        assert not broken, f"{href}: images that did not load: {broken}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.get((site / "index.html").as_uri())
    browser.save_screenshot(str(SCREENSHOTS / "index.png"))


@needs_chromium
def test_a_claim_page_shows_its_plots_and_folds_its_checks(browser, site):
    browser.get((site / "claims" / "TH4.html").as_uri())
    images = _images(browser)
    assert images and all(ok for _, ok in images), images
    assert browser.find_element("css selector", "details summary").text.startswith("Checks")
    anchors = browser.execute_script("return Array.from(document.querySelectorAll('h3[id]')).map(h => h.id);")
    assert len(anchors) == 2  # one section per environment, linked from the matrix
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "TH4.png"))
