"""The lab page in a real headless Chromium (Debian's `chromium` + `chromium-driver`, driven through
selenium from the `test` extra), against a lab server started in this process on a free port.

The test types sentences and sense labels, picks the word from the page's own word chips, and
checks that every cosine on the page (the word matrices, the sentence matrix, the neighbours and
the sense-separation points) equals what `Lab.compare` returns for the same input, within 1e-5.
The page shows 3 decimals and keeps each full value in the cell's `data-value` (and tooltip); the
test checks both. It also checks that a bad input shows the server's error on the page in place of
the old result, that the colour scale is fixed, that whatever the learner types is shown as text
(never run as markup), that the attention-explorer link opens, that a page from another origin
cannot read or trigger the lab, and saves a screenshot."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from lessons import lab as lab_module
from lessons import lab_server

pytestmark = pytest.mark.browser

SENTENCES = [
    "I deposited the cheque at the bank this morning.",
    "The bank raised its interest rates again.",
    "We had a picnic on the grassy bank of the river.",
    "Fishermen lined the bank waiting for the tide.",
]
SENSES = ["money", "money", "river", "river"]
WORD = "bank"
# The page must show the Python API's numbers. JSON carries each float exactly and JavaScript's
# String(number) round-trips it, so the real difference is 0; 1e-5 is the bound the lab promises.
PAGE_ATOL = 1e-5
# The visible text is the value with 3 decimals: half a unit in the last place, plus float slack.
SHOWN_ATOL = 5e-4 + 1e-9
WAIT_S = 120  # one comparison under the busy shared machines' load, with room

@pytest.fixture(scope="module")
def browser(tmp_path_factory, chromium):
    chrome = chromium(tmp_path_factory.mktemp("chromium-profile"), "1400,1000")
    yield chrome
    chrome.quit()


@pytest.fixture(scope="module")
def url(lab):
    with lab_server.serving(lab) as server:
        yield server.address()


def _wait(driver, script: str, what: str):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _rendered(driver) -> int:
    return int(driver.execute_script("return Number(document.body.dataset.rendered || 0)"))


@pytest.fixture(scope="module")
def page(browser, url):
    """The page after the learner typed SENTENCES with SENSES and clicked the word's chip."""
    browser.get(url)
    _wait(browser, "return document.body.dataset.ready", "the page to load /api/info")
    browser.find_element("id", "clear").click()
    while len(browser.find_elements("css selector", "#rows .row")) < len(SENTENCES):
        browser.find_element("id", "add").click()
    rows = browser.find_elements("css selector", "#rows .row")
    for row, sentence, sense in zip(rows, SENTENCES, SENSES):
        row.find_element("css selector", "input.sentence").send_keys(sentence)
        row.find_element("css selector", "input.sense").send_keys(sense)
    chips = {c.get_attribute("data-word"): c for c in browser.find_elements("css selector", "#chips .chip")}
    assert set(chips) == {"the", WORD}  # the only words in all four sentences
    before = _rendered(browser)
    chips[WORD].click()  # picks the word and compares
    _wait(browser, f"return Number(document.body.dataset.rendered || 0) > {before}", "the comparison")
    assert not browser.find_element("id", "error").is_displayed()
    return browser


@pytest.fixture(scope="module")
def expected(lab):
    return lab.compare(SENTENCES, WORD, SENSES)


def _cells(driver, selector: str) -> list[dict]:
    return driver.execute_script(f"""
        return [...document.querySelectorAll('{selector}')].map(c => ({{
            rep: c.dataset.rep, i: Number(c.dataset.i), j: Number(c.dataset.j), k: Number(c.dataset.k),
            word: c.dataset.word, value: c.dataset.value === '' ? null : Number(c.dataset.value),
            text: c.textContent}}));""")


def test_every_cosine_matrix_on_the_page_equals_the_python_api(page, expected):
    cells = _cells(page, "td.cos")
    n = len(SENTENCES)
    matrices = {rep["key"]: rep["matrix"] for rep in expected["representations"] if rep["matrix"] is not None}
    matrices["sentence"] = expected["sentence_similarity"]
    assert len(cells) == n * n * len(matrices)  # every matrix, every cell, nothing else
    seen = set()
    for c in cells:
        want = matrices[c["rep"]][c["i"]][c["j"]]
        assert abs(c["value"] - want) <= PAGE_ATOL, c
        assert abs(float(c["text"]) - want) <= SHOWN_ATOL, c
        seen.add((c["rep"], c["i"], c["j"]))
    assert len(seen) == len(cells)
    # every representation the lab offers is there
    keys = set(matrices)
    assert {"glove", "bert-input", "elmo-0", "elmo-1", "elmo-2", "elmo-mix", "sentence"} <= keys
    assert {f"bert-{i}" for i in range(1, 7)} <= keys


def test_sense_separation_points_equal_the_python_api(page, expected):
    points = page.execute_script(
        "return [...document.querySelectorAll('#separation circle.gap')].map(c => [c.dataset.key, Number(c.dataset.value)])")
    want = {p["key"]: p["gap"] for p in expected["separation"]}
    assert [key for key, _ in points] == list(want)
    for key, value in points:
        assert abs(value - want[key]) <= PAGE_ATOL, key


def test_neighbours_on_the_page_equal_the_python_api(page, expected):
    from selenium.webdriver.support.ui import Select

    shown_keys = []
    for key in ("bert-6", "glove", "elmo-mix"):
        Select(page.find_element("id", "nn-rep")).select_by_value(key)
        cells = _cells(page, "td.nn")
        assert len(cells) == sum(len(found) for found in expected["neighbours"][key])
        floors = _cells(page, "td.floor")
        assert [f["i"] for f in floors] == list(range(len(SENTENCES)))
        for f in floors:
            assert abs(f["value"] - expected["neighbour_floors"][key][f["i"]]) <= PAGE_ATOL
        nones = len(page.find_elements("css selector", "td.none"))
        assert nones == sum(1 for found in expected["neighbours"][key] if not found)
        for c in cells:
            assert c["rep"] == key
            word, value = expected["neighbours"][key][c["i"]][c["k"]]
            assert c["word"] == word and abs(c["value"] - value) <= PAGE_ATOL, c
        shown_keys.append(key)
    Select(page.find_element("id", "nn-rep")).select_by_value("bert-6")
    assert shown_keys == ["bert-6", "glove", "elmo-mix"]


def test_the_page_shows_the_sentences_and_the_elmo_label(page, lab):
    legend = page.find_element("id", "legend").text
    for sentence in SENTENCES:
        assert sentence in legend
    marks = [m.text for m in page.find_elements("css selector", "#legend mark")]
    assert [m.lower() for m in marks] == [WORD] * len(SENTENCES)
    assert lab_module.elmo_description(lab.elmo_name) in page.find_element("id", "matrices").text


def test_the_screenshot(page, tmp_path):
    height, chrome = page.execute_script(
        "return [document.body.scrollHeight, window.outerHeight - window.innerHeight]")
    page.set_window_size(1400, height + chrome)  # the whole page, no more
    shot = tmp_path / "lab.png"
    assert page.save_screenshot(str(shot))
    assert shot.stat().st_size > 50_000
    target = os.environ.get("LAB_SCREENSHOT")  # used once to make docs/img/lab.png
    if target:
        shutil.copy(shot, target)
    page.set_window_size(1400, 1000)


def test_a_bad_input_shows_the_servers_error_on_the_page(page):
    word = page.find_element("id", "word")
    word.clear()
    word.send_keys("picnic")
    page.find_element("id", "compare").click()
    error = page.find_element("id", "error")
    _wait(page, "return !document.getElementById('error').hidden", "the error message")
    assert error.text == "sentence 1 does not contain the word 'picnic'"
    # the old result is gone: no numbers for another word stay under the message
    assert not page.find_element("id", "results").is_displayed()
    assert not page.find_elements("css selector", "td.cos")
    # a good request clears it again
    before = _rendered(page)
    word.clear()
    word.send_keys(WORD)
    page.find_element("id", "compare").click()
    _wait(page, f"return Number(document.body.dataset.rendered || 0) > {before}", "the comparison")
    assert not error.is_displayed()


def test_the_attention_explorer_link_opens_for_a_sentence(page, url):
    links = page.find_elements("css selector", "#legend a.explore")
    assert len(links) == len(SENTENCES)
    href = links[2].get_attribute("href")
    assert parse_qs(urlsplit(href).query)["sentence"] == [SENTENCES[2]]
    page.get(href)
    assert SENTENCES[2] in page.page_source
    # the explorer's data block: the page draws from it, with no further request
    assert page.execute_script("return document.querySelector('script[type=\"application/json\"]') !== null")
    page.back()


def _type_rows(driver, sentences, senses):
    """Fill the rows through the DOM (send_keys cannot type U+2028), as typing does, input events included."""
    _wait(driver, "return document.body.dataset.ready", "the page to load /api/info")
    driver.find_element("id", "clear").click()
    while len(driver.find_elements("css selector", "#rows .row")) < len(sentences):
        driver.find_element("id", "add").click()
    driver.execute_script("""
        const [sentences, senses] = arguments;
        [...document.querySelectorAll('#rows .row')].forEach((row, i) => {
          row.querySelector('input.sentence').value = sentences[i];
          row.querySelector('input.sense').value = senses[i];
          row.querySelector('input.sentence').dispatchEvent(new Event('input'));
        });""", sentences, senses)


def _compare(driver, sentences, senses, word):
    _type_rows(driver, sentences, senses)
    box = driver.find_element("id", "word")
    box.clear()
    box.send_keys(word)
    before = _rendered(driver)
    driver.find_element("id", "compare").click()
    _wait(driver, f"return Number(document.body.dataset.rendered || 0) > {before}", "the comparison")


def test_one_fixed_colour_scale_with_a_legend(page):
    """Every cell is shaded by the same function of its value, which the legend draws, whatever
    the other values of the request: a cosine of 1 looks the same in two unrelated requests."""
    _wait(page, "return document.body.dataset.ready", "the page to load /api/info")
    swatches = page.execute_script(
        "return [...document.querySelectorAll('#scale-legend td.swatch')].map(c => [Number(c.dataset.value), c.getAttribute('style')])")
    assert [v for v, _ in swatches][0] == -1 and [v for v, _ in swatches][-1] == 1
    for sentences, word in [(SENTENCES, WORD), (["I saw a bat fly.", "He swung the bat."], "bat")]:
        _compare(page, sentences, [""] * len(sentences), word)
        mismatched = page.execute_script(
            "return [...document.querySelectorAll('td.cos')].filter(c => c.dataset.value !== '' && "
            "c.getAttribute('style') !== shade(Number(c.dataset.value))).length")
        assert mismatched == 0
        diagonal = page.execute_script(
            "return [...document.querySelectorAll('td.cos')].filter(c => c.dataset.i === c.dataset.j && "
            "c.dataset.value === '1').map(c => c.getAttribute('style'))")
        assert diagonal and set(diagonal) == {dict(swatches)[1]}


HOSTILE = [
    "</script><script>window.pwned = 1</script> bank",
    "<img src=x onerror=\"window.pwned = 2\"> bank",
    "<!--<script> bank",
    "\"><svg onload=\"window.pwned = 3\"> bank",
    "' onmouseover='window.pwned = 4' bank",
    "quotes \" ' and back\\slash \\ bank",
    "line\u2028separators\u2029 bank",
]
HOSTILE_SENSES = ["<img src=x onerror=pwned=5>", "</td><b>x</b>", "a", "a", "b", "b", "\"'\\", ]


def test_what_the_learner_types_is_shown_as_text(page):
    """Markup in a sentence or a sense label is shown as the characters typed: nothing runs, no
    element is made of it, in the lab page and in the attention explorer it links to."""
    _compare(page, HOSTILE, HOSTILE_SENSES, WORD)
    assert page.execute_script("return window.pwned") is None
    rows = page.execute_script(
        "return [...document.querySelectorAll('#legend tr')].slice(1).map(r => [r.cells[1].textContent, r.cells[2].textContent])")
    assert rows == [[s, k] for s, k in zip(HOSTILE, HOSTILE_SENSES)]
    assert page.execute_script("return document.querySelectorAll('main img, main script, #legend svg').length") == 0
    # the only bold text in the table is the page's own row labels, not the sense's <b>x</b>
    assert page.execute_script("return [...document.querySelectorAll('#legend b')].map(b => b.textContent)") == [
        f"s{i + 1}" for i in range(len(HOSTILE))]
    chips = page.execute_script("return [...document.querySelectorAll('#chips .chip')].map(c => c.textContent)")
    assert WORD in chips
    # the explorer for the first sentence, served by the lab
    href = page.find_elements("css selector", "#legend a.explore")[0].get_attribute("href")
    page.get(href)
    _wait(page, "return document.querySelectorAll('#head-svg g.tok').length > 0", "the explorer's head view")
    assert page.execute_script("return window.pwned") is None
    assert page.execute_script("return document.getElementById('shown-text').textContent").startswith("Text: " + HOSTILE[0])
    page.back()
    _wait(page, "return document.body.dataset.ready", "the page to load /api/info")


FOREIGN_PAGE = "<!doctype html><title>another site</title><p>a page on another origin</p>"


@pytest.fixture
def foreign_origin(tmp_path):
    """A second page on another loopback port: another origin, as any web site is to the lab."""
    (tmp_path / "index.html").write_text(FOREIGN_PAGE)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


def test_a_page_from_another_origin_cannot_read_or_trigger_the_lab(page, url, lab, foreign_origin, monkeypatch):
    answered = []
    answer = lab.answer
    monkeypatch.setattr(lab, "answer", lambda request: answered.append(request) or answer(request))
    page.get(foreign_origin)
    assert "another origin" in page.page_source
    page.set_script_timeout(WAIT_S)
    results = page.execute_async_script("""
        const [lab, body] = arguments, done = arguments[arguments.length - 1];
        const post = (type) => ({method: "POST", headers: {"Content-Type": type}, body});
        const tries = {
          page: [lab, {}], info: [lab + "api/info", {}], explorer: [lab + "explorer?sentence=a%20bank", {}],
          compareJson: [lab + "api/compare", post("application/json")],
          compareText: [lab + "api/compare", post("text/plain")],
        };
        (async () => {
          const out = {};
          for (const [name, [target, options]] of Object.entries(tries)) {
            try { out[name] = "read: " + (await (await fetch(target, options)).text()).slice(0, 60); }
            catch (error) { out[name] = "failed: " + error.name; }
          }
          // no-cors asks for an opaque answer; Cross-Origin-Resource-Policy refuses even that
          try { out.noCors = "got: " + (await fetch(lab + "api/info", {mode: "no-cors"})).type; }
          catch (error) { out.noCors = "failed: " + error.name; }
          done(out);
        })();""", url, '{"sentences": ["a bank", "the bank"], "word": "bank"}')
    assert results == {"page": "failed: TypeError", "info": "failed: TypeError", "explorer": "failed: TypeError",
                       "compareJson": "failed: TypeError", "compareText": "failed: TypeError",
                       "noCors": "failed: TypeError"}
    assert answered == []  # and no comparison ran for it
    # the lab's own page still works in the same browser
    page.get(url)
    _wait(page, "return document.body.dataset.ready", "the page to load /api/info")
