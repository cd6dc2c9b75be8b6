"""The attention explorer in a real headless Chromium (Debian's `chromium` + `chromium-driver`,
driven through selenium from the `test` extra). The page is opened from disk (file://), with no
server and no network: the test switches head and layer, checks the drawing changed, hovers a
token, checks the shading equals that token's attention row, and saves a screenshot."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from lessons.attention import write_explorer_for

pytestmark = pytest.mark.browser

SENTENCE = "The river bank was eroding due to heavy rainfall."
# The page writes probabilities with 4 decimals (explorer.py) and the shading's fill-opacity
# with 4 decimals (explorer.html): half a unit in the last place of each.
SHADING_ATOL = 1e-4

HEADLESS_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1100,760",
]


def _missing(reason: str):
    # In CI (.ci/run installs chromium + chromium-driver + the test extra) a missing browser is a
    # broken set-up, not a reason to skip.
    if os.environ.get("CI"):
        pytest.fail(f"browser test cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing('selenium is not installed: pip install -e ".[test]"')
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not browser or not chromedriver:
        _missing("Debian's chromium and chromium-driver are not installed "
                 "(apt-get install -y chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in HEADLESS_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    # Both paths are given, so selenium never tries to download a browser or a driver.
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    yield chrome
    chrome.quit()


@pytest.fixture(scope="module")
def page(driver, tmp_path_factory):
    path = write_explorer_for(SENTENCE, tmp_path_factory.mktemp("explorer") / "attention_explorer.html")
    driver.get(path.resolve().as_uri())
    data = json.loads(driver.execute_script(
        "return document.getElementById('attention-data').textContent"))
    return driver, data


def _drawing(driver) -> dict:
    """What is on screen: the heatmap's pixels and the lines' geometry and opacity."""
    return driver.execute_script("""
        const lines = [...document.querySelectorAll('#lines line')].map(
            l => [l.getAttribute('y2'), l.getAttribute('stroke-opacity')].join(':'));
        return {canvas: document.getElementById('heatmap').toDataURL(), lines: lines.join(' '),
                stats: document.getElementById('stats').textContent};
    """)


def _select(driver, element_id: str, value: int) -> None:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", element_id)).select_by_value(str(value))


def test_page_draws_from_disk(page):
    driver, data = page
    assert driver.current_url.startswith("file://")
    assert len(data["tokens"]) == len(data["attentions"][0][0])
    drawn = _drawing(driver)
    assert drawn["lines"], "no attention lines were drawn"
    assert drawn["canvas"].startswith("data:image/png")
    labels = [t.text for t in driver.find_elements("css selector", "#lines text.query")]
    assert labels == data["tokens"]


def test_switching_head_and_layer_changes_the_drawing(page):
    driver, _ = page
    _select(driver, "layer", 0)
    _select(driver, "head", 0)
    first = _drawing(driver)
    _select(driver, "head", 1)
    second = _drawing(driver)
    assert second["canvas"] != first["canvas"]
    assert second["lines"] != first["lines"]
    _select(driver, "layer", 2)
    third = _drawing(driver)
    assert third["canvas"] != second["canvas"]
    assert third["stats"] != second["stats"] or third["lines"] != second["lines"]
    assert driver.execute_script("return document.body.dataset.layer") == "2"
    assert driver.execute_script("return document.body.dataset.head") == "1"


def test_hover_shows_where_a_token_attends(page, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains

    driver, data = page
    layer, head, query = 1, 3, 3  # "bank" is word piece 3 of the sentence
    _select(driver, "layer", layer)
    _select(driver, "head", head)
    token = driver.find_element("css selector", f'#lines text.query[data-query="{query}"]')
    ActionChains(driver).move_to_element(token).perform()
    active = driver.find_element("css selector", "#lines text.query.active")
    assert active.get_attribute("data-query") == str(query)
    shading = driver.execute_script(
        "return [...document.querySelectorAll('#lines rect.key-shade')].map("
        "r => Number(r.getAttribute('fill-opacity')))")
    expected = data["attentions"][layer][head][query]
    assert len(shading) == len(expected)
    for shown, want in zip(shading, expected):
        assert abs(shown - want) <= SHADING_ATOL
    # only the hovered token's lines remain
    assert all(l.get_attribute("y1") == driver.find_elements("css selector", "#lines line")[0]
               .get_attribute("y1") for l in driver.find_elements("css selector", "#lines line"))
    shot = tmp_path / "explorer.png"
    assert driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    target = os.environ.get("EXPLORER_SCREENSHOT")  # used once to make docs/img/attention_explorer.png
    if target:
        shutil.copy(shot, target)
