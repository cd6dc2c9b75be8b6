"""The attention explorer in a real headless Chromium (Debian's `chromium` + `chromium-driver`,
driven through selenium from the `test` extra). The page is opened from disk (file://), with no
server and no network. It holds three texts from all-MiniLM-L6-v2: a sentence, a sentence pair
and a 128-word-piece paragraph. Every number read off the page is compared with the model's own
tensors (minibert.attention.analyse), not with the page's data.

Set EXPLORER_SCREENSHOTS=DIR to keep the screenshots of each view (docs/img/ holds a set)."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import pytest

from minibert import Tokenizer
from minibert.attention import PROB_SCALE, analyse, render

pytestmark = pytest.mark.browser

SENTENCE = "The river bank was eroding due to heavy rainfall."
PAIR = ("The bank raised its interest rates.", "Savers were pleased.")
# exactly 128 word pieces with all-MiniLM-L6-v2's tokenizer, [CLS] and [SEP] included
LONG = ("After the flood, the old river bank collapsed into the water, and the village council met at the "
        "savings bank to discuss repairs. Engineers argued that the embankment had been weakened by years of "
        "neglect, while the bankers worried about loans to farmers whose fields were now under water. Nobody "
        "could agree on who should pay, so the meeting ended late at night without a decision, and the rain "
        "kept falling on the empty streets until morning. The next day, the mayor announced an emergency fund, "
        "the bank offered cheap credit to the farmers, and volunteers began to fill sandbags along the "
        "crumbling bank. Everyone hoped that the worst was finally over.")
TEXTS = [SENTENCE, PAIR, LONG]

# Shading and line opacity are written with 4 decimals from α stored in steps of 1/65535:
# 0.5e-4 + 0.76e-5 from the model's float32 probability, inside the 1e-4 the page promises.
SHADING_ATOL = 1e-4
# The neuron view redoes q·k in float64 from the model's float32 q and k; torch sums in float32.
# On these three texts scores reach 208 in magnitude, and the two differ by at most 2.0e-5
# (measured over every layer and head, every sixth query).
SCORE_ATOL = 5e-5
# softmax of those scores against the model's float32 α: measured max 4.1e-7 in the same sweep.
SOFTMAX_ATOL = 1e-6
# Thumbnail pixels are 8-bit: the blue ramp's red channel spans 224 levels for α in [0, 1],
# so one level is 1/224; half a level for rounding, plus the stored α's 1/65535 step.
THUMBNAIL_ATOL = 0.5 / 224 + 1 / PROB_SCALE
# Stored float32 values (norms, rollout) shown next to the model's: exact up to the page's
# float64 arithmetic; α means carry the storage step.
BEYOND_ATOL = 1e-4
LINE_MIN = 0.01  # the head view leaves out lines fainter than this (explorer.html: LINE_MIN)

@pytest.fixture(scope="module")
def driver(tmp_path_factory, chromium):
    chrome = chromium(tmp_path_factory.mktemp("chromium-profile"), "1200,900", browser_log=True)
    yield chrome
    chrome.quit()


@pytest.fixture(scope="module")
def model_data(bert_minilm):
    tokenizer = Tokenizer.from_pretrained("all-MiniLM-L6-v2")
    found = [analyse(bert_minilm, tokenizer, text) for text in TEXTS]
    # render() is what explore() does after analysing; reusing `found` saves a second forward pass
    page = render(found, model_name="all-MiniLM-L6-v2")
    return found, page


@pytest.fixture(scope="module")
def page(driver, model_data, tmp_path_factory):
    found, html = model_data
    path = html.save(tmp_path_factory.mktemp("explorer") / "attention_explorer.html")
    driver.get(path.resolve().as_uri())
    return driver, found


@pytest.fixture
def shots(tmp_path):
    """save(name): a screenshot of the page as it is, kept in EXPLORER_SCREENSHOTS when set."""
    def save(driver, name: str) -> Path:
        shot = tmp_path / f"attention_explorer_{name}.png"
        assert driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000, "the screenshot is (nearly) blank"
        keep = os.environ.get("EXPLORER_SCREENSHOTS")
        if keep:
            shutil.copy(shot, Path(keep) / shot.name)
        return shot

    return save


# ----------------------------------------------------------------------------- driving the page

def _select(driver, element_id: str, value: int | str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", element_id)).select_by_value(str(value))


def _view(driver, name: str) -> None:
    driver.find_element("css selector", f'#tabs button[data-view="{name}"]').click()
    assert driver.execute_script("return document.body.dataset.view") == name


def _reset(driver, text: int = 0, layer: int = 0) -> None:
    """Head view, all heads, nothing hovered, on `text` and `layer`."""
    _view(driver, "head")
    _select(driver, "text", text)
    _select(driver, "layer", layer)
    driver.find_element("id", "heads-all").click()
    driver.execute_script("document.getElementById('head-svg').dispatchEvent(new MouseEvent('mouseleave'))")


def _hover(driver, side: str, token: int) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    target = driver.find_element("css selector", f'g.tok[data-side="{side}"][data-token="{token}"] text')
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", target)
    ActionChains(driver).move_to_element(target).perform()
    active = driver.find_elements("css selector", "g.tok.active")
    assert [(a.get_attribute("data-side"), a.get_attribute("data-token")) for a in active] == [(side, str(token))]


def _thumbnail_reds(driver, layer: int, head: int, T: int) -> list[int]:
    """The red channel at the centre of every (query, key) cell of one model-view thumbnail,
    row by row. The blue ramp maps a value v in [0, 1] to red = 255 - 224 v."""
    return driver.execute_script("""
        const [layer, head, T] = arguments;
        const c = document.querySelector(`canvas.thumb[data-layer="${layer}"][data-head="${head}"]`);
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const out = [];
        for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) {
          const x = Math.floor((j + 0.5) * c.width / T), y = Math.floor((i + 0.5) * c.height / T);
          out.push(px[4 * (y * c.width + x)]);
        }
        return out;""", layer, head, T)


def _shading(driver, side: str) -> dict[tuple[int, int], float]:
    """(head, token) -> fill-opacity of the shading boxes on one side."""
    rows = driver.execute_script(
        "return [...document.querySelectorAll(`rect.shade[data-side='${arguments[0]}']`)].map("
        "r => [Number(r.dataset.head), Number(r.dataset.token), Number(r.getAttribute('fill-opacity'))])", side)
    return {(h, t): v for h, t, v in rows}


def _lines(driver) -> dict[tuple[int, int, int], float]:
    """(head, query, key) -> stroke-opacity of every drawn line."""
    rows = driver.execute_script(
        "return [...document.querySelectorAll('#lines line')].map(l => [Number(l.dataset.head), "
        "Number(l.dataset.query), Number(l.dataset.key), Number(l.getAttribute('stroke-opacity'))])")
    return {(h, i, j): v for h, i, j, v in rows}


def _assert_lines_are_the_weights(lines, probs, queries, keys, heads) -> None:
    """Every line with α >= LINE_MIN is drawn at opacity α, and no other line is drawn.
    Weights within a storage step of LINE_MIN may fall on either side."""
    expected = {(h, i, j): float(probs[h, i, j]) for h in heads for i in queries for j in keys
                if probs[h, i, j] >= LINE_MIN}
    borderline = {(h, i, j) for h in heads for i in queries for j in keys
                  if abs(float(probs[h, i, j]) - LINE_MIN) <= 1 / PROB_SCALE}
    assert set(lines) ^ set(expected) <= borderline
    for key, shown in lines.items():
        assert abs(shown - float(probs[key])) <= SHADING_ATOL, (key, shown, float(probs[key]))


# ----------------------------------------------------------------------------- the tests

def test_page_opens_from_disk_and_fetches_nothing(page):
    driver, found = page
    assert driver.current_url.startswith("file://")
    # the only resource is the page itself: no script, style, font or image is fetched
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    options = [o.text for o in driver.find_elements("css selector", "#text option")]
    assert len(options) == len(TEXTS) and options[0].startswith("1: The river bank")


def test_head_view_draws_all_heads_at_their_weights(page, shots):
    driver, found = page
    layer = 1
    _reset(driver, text=0, layer=layer)
    probs = found[0].probs[layer].numpy()
    H, T, _ = probs.shape
    labels = [t.text for t in driver.find_elements("css selector", 'g.tok[data-side="left"] text')]
    assert labels == found[0].tokens
    _assert_lines_are_the_weights(_lines(driver), probs, range(T), range(T), range(H))
    shots(driver, "head")


def test_hovering_a_query_shades_its_row_for_every_head(page, shots):
    driver, found = page
    layer, query = 2, 3  # "bank"
    _reset(driver, text=0, layer=layer)
    _hover(driver, "left", query)
    probs = found[0].probs[layer].numpy()
    H, T, _ = probs.shape
    shading = _shading(driver, "right")
    assert len(shading) == H * T
    for (h, j), shown in shading.items():
        assert abs(shown - probs[h, query, j]) <= SHADING_ATOL, (h, j)
    assert set(_shading(driver, "left").values()) == {0.0}
    _assert_lines_are_the_weights(_lines(driver), probs, [query], range(T), range(H))
    shots(driver, "head_hover")


def test_hovering_a_key_shades_its_column(page):
    driver, found = page
    layer, key = 0, 0  # who looks at [CLS]
    _reset(driver, text=0, layer=layer)
    _hover(driver, "right", key)
    probs = found[0].probs[layer].numpy()
    H, T, _ = probs.shape
    for (h, i), shown in _shading(driver, "left").items():
        assert abs(shown - probs[h, i, key]) <= SHADING_ATOL, (h, i)
    assert set(_shading(driver, "right").values()) == {0.0}
    _assert_lines_are_the_weights(_lines(driver), probs, range(T), [key], range(H))


def test_heads_switch_on_and_off(page):
    from selenium.webdriver.common.action_chains import ActionChains

    driver, found = page
    layer, query = 3, 5
    _reset(driver, text=0, layer=layer)
    driver.find_element("css selector", 'input.head-toggle[data-head="4"]').click()
    _hover(driver, "left", query)
    probs = found[0].probs[layer].numpy()
    heads = [h for h in range(probs.shape[0]) if h != 4]
    _assert_lines_are_the_weights(_lines(driver), probs, [query], range(probs.shape[1]), heads)
    assert all(v == 0 for (h, _), v in _shading(driver, "right").items() if h == 4)
    # double-click a head: that head alone, with its weights as numbers in their own column
    label = driver.find_element("css selector", 'input.head-toggle[data-head="7"]').find_element("xpath", "..")
    ActionChains(driver).double_click(label).perform()
    checked = driver.execute_script(
        "return [...document.querySelectorAll('input.head-toggle')].filter(i => i.checked).map(i => i.dataset.head)")
    assert checked == ["7"]
    _hover(driver, "left", query)
    _assert_lines_are_the_weights(_lines(driver), probs, [query], range(probs.shape[1]), [7])
    numbers = [float(t.text) for t in driver.find_elements("css selector", "text.weight")]
    assert numbers == pytest.approx(probs[7, query].tolist(), abs=5e-4)  # shown with 3 decimals


def test_model_view_thumbnails_are_the_heads_and_open_them(page, shots):
    driver, found = page
    _reset(driver, text=0)
    _view(driver, "model")
    probs = found[0].probs.numpy()
    L, H, T, _ = probs.shape
    thumbs = driver.find_elements("css selector", "canvas.thumb")
    assert len(thumbs) == L * H
    for layer, head in [(0, 2), (4, 9), (5, 11)]:
        reds = _thumbnail_reds(driver, layer, head, T)
        shown = [(255 - r) / 224 for r in reds]
        want = probs[layer, head].reshape(-1)
        assert max(abs(s - w) for s, w in zip(shown, want)) <= THUMBNAIL_ATOL, (layer, head)
    shots(driver, "model")
    # shaded by value-weighted norms: α^h_ij ||f^h(x_j)||, scaled to the thumbnail's largest
    _select(driver, "model-measure", "norm")
    layer, head = 4, 9
    reds = _thumbnail_reds(driver, layer, head, T)
    weighted = (found[0].probs[layer, head] * found[0].value_norms[layer, head][None, :]).numpy()
    want = (weighted / weighted.max()).reshape(-1)
    assert max(abs((255 - r) / 224 - w) for r, w in zip(reds, want)) <= THUMBNAIL_ATOL
    _select(driver, "model-measure", "alpha")
    driver.find_element("css selector", 'canvas.thumb[data-layer="4"][data-head="9"]').click()
    assert driver.execute_script("return document.body.dataset.view") == "head"
    assert driver.find_element("id", "layer").get_attribute("value") == "4"
    checked = driver.execute_script(
        "return [...document.querySelectorAll('input.head-toggle')].filter(i => i.checked).map(i => i.dataset.head)")
    assert checked == ["9"]
    _assert_lines_are_the_weights(_lines(driver), probs[4], range(T), range(T), [9])


def test_neuron_view_recomputes_the_models_weights(page, shots):
    driver, found = page
    layer, head, query = 2, 5, 3
    _reset(driver, text=0, layer=layer)
    _view(driver, "neuron")
    _select(driver, "neuron-head", head)
    _select(driver, "neuron-query", query)
    f = found[0]
    Dh = f.queries.shape[-1]
    scores = (f.keys[layer, head] @ f.queries[layer, head, query]).numpy()  # (T, Dh) @ (Dh,) -> (T,)
    probs = f.probs[layer, head, query].numpy()

    def column(name):
        cells = driver.find_elements("css selector", f"#neuron-table td.{name}")
        return [float(c.get_attribute("data-value")) for c in cells], [c.text.split()[-1] for c in cells]

    score, score_text = column("score")
    scaled, _ = column("scaled")
    softmax, softmax_text = column("softmax")
    model, _ = column("model")
    assert len(score) == len(f.tokens)
    for j in range(len(score)):
        assert abs(score[j] - scores[j]) <= SCORE_ATOL, j
        assert abs(scaled[j] - scores[j] / math.sqrt(Dh)) <= SCORE_ATOL / math.sqrt(Dh), j
        assert abs(softmax[j] - probs[j]) <= SOFTMAX_ATOL, j
        assert abs(model[j] - probs[j]) <= 0.5 / PROB_SCALE + 1e-7, j
        assert score_text[j] == f"{score[j]:.3f}" and softmax_text[j] == f"{softmax[j]:.4f}"
    # the q and k strips show the layer's own vectors (hover titles carry 4 decimals)
    titles = driver.execute_script(
        "return [...document.querySelectorAll('#neuron-table tr.query .strip span')].map(s => s.title)")
    assert [float(t.split(": ")[1]) for t in titles] == pytest.approx(
        f.queries[layer, head, query].tolist(), abs=5e-5)
    assert float(driver.find_element("id", "neuron-check").get_attribute("data-max-diff")) <= 1 / PROB_SCALE
    shots(driver, "neuron")


def test_beyond_view_shows_norms_and_rollout_from_the_model(page, shots):
    driver, found = page
    layer, query = 4, 0
    _reset(driver, text=0, layer=layer)
    _view(driver, "beyond")
    _select(driver, "beyond-query", query)
    f = found[0]

    def column(name):
        return [float(c.get_attribute("data-value"))
                for c in driver.find_elements("css selector", f"#beyond-table td.{name}")]

    _select(driver, "beyond-head", 0)  # all heads: head mean, Kobayashi's layer-level norm
    assert column("alpha") == pytest.approx(f.probs[layer, :, query].mean(0).tolist(), abs=BEYOND_ATOL)
    assert column("norm") == pytest.approx(f.layer_norms[layer, query].tolist(), abs=BEYOND_ATOL)
    assert column("rollout") == pytest.approx(f.rollout[layer, query].tolist(), abs=BEYOND_ATOL)
    shots(driver, "beyond")
    _select(driver, "beyond-head", 3)  # head 3 (0-based 2): α and α·||f(x)||
    assert column("alpha") == pytest.approx(f.probs[layer, 2, query].tolist(), abs=BEYOND_ATOL)
    weighted = f.probs[layer, 2, query] * f.value_norms[layer, 2]
    assert column("norm") == pytest.approx(weighted.tolist(), abs=BEYOND_ATOL)


def test_switching_texts_redraws_from_that_text(page, shots):
    driver, found = page
    layer, query = 1, 2
    for n in (1, 0, 1):
        _reset(driver, text=n, layer=layer)
        f = found[n]
        labels = [t.text for t in driver.find_elements("css selector", 'g.tok[data-side="right"] text')]
        assert labels == f.tokens
        _hover(driver, "left", query)
        probs = f.probs[layer].numpy()
        for (h, j), shown in _shading(driver, "right").items():
            assert abs(shown - probs[h, query, j]) <= SHADING_ATOL
    # the pair's second sentence is coloured as its own segment
    classes = [t.get_attribute("class") for t in driver.find_elements("css selector", 'g.tok[data-side="left"] text')]
    assert classes == [f"seg{s}" for s in found[1].segments] and "seg1" in classes
    # (not hovered: the hovered token is drawn in its own colour)
    driver.execute_script("document.getElementById('head-svg').dispatchEvent(new MouseEvent('mouseleave'))")
    fills = driver.execute_script(
        "return [...document.querySelectorAll('g.tok[data-side=\"left\"] text')].map(t => getComputedStyle(t).fill)")
    assert len({fill for fill, s in zip(fills, found[1].segments) if s == 0}) == 1
    assert {fill for fill, s in zip(fills, found[1].segments) if s == 1}.isdisjoint(
        {fill for fill, s in zip(fills, found[1].segments) if s == 0})
    driver.execute_script("window.scrollTo(0, 0)")
    shots(driver, "pair")


def test_pair_filter_shows_one_sentence_per_side(page, shots):
    driver, found = page
    layer, query = 2, 2
    f = found[1]
    first = [i for i, s in enumerate(f.segments) if s == 0]
    second = [i for i, s in enumerate(f.segments) if s == 1]
    _reset(driver, text=1, layer=layer)
    assert driver.find_element("id", "pair-filter-box").is_displayed()
    _select(driver, "pair-filter", "AB")
    left = [t.text for t in driver.find_elements("css selector", 'g.tok[data-side="left"] text')]
    right = [t.text for t in driver.find_elements("css selector", 'g.tok[data-side="right"] text')]
    assert left == [f.tokens[i] for i in first] and right == [f.tokens[j] for j in second]
    probs = f.probs[layer].numpy()
    _assert_lines_are_the_weights(_lines(driver), probs, first, second, range(probs.shape[0]))
    _hover(driver, "left", query)
    shading = _shading(driver, "right")
    assert {j for _, j in shading} == set(second)
    for (h, j), shown in shading.items():
        assert abs(shown - probs[h, query, j]) <= SHADING_ATOL  # the model's α, not renormalised
    driver.execute_script("window.scrollTo(0, 0)")
    shots(driver, "pair_ab")
    _select(driver, "text", 0)  # a single text has no A/B filter and shows every token
    assert not driver.find_element("id", "pair-filter-box").is_displayed()
    assert len(driver.find_elements("css selector", 'g.tok[data-side="left"]')) == len(found[0].tokens)


def test_128_word_pieces_stay_readable(page, shots):
    driver, found = page
    f = found[2]
    assert len(f.tokens) == 128
    layer, head = 1, 8  # a head that mostly looks at the next token: few, strong lines
    for row in ("14", "20"):
        _reset(driver, text=2, layer=layer)
        _select(driver, "row", row)
        driver.execute_script(f"document.querySelector('input.head-toggle[data-head=\"{head}\"]').parentElement"
                              ".dispatchEvent(new MouseEvent('dblclick', {bubbles: true}))")
        _hover(driver, "left", 64)  # weights appear in their column
        boxes = driver.execute_script("""
            return [...document.querySelectorAll('#head-svg text')].filter(t => t.textContent).map(t => {
              const b = t.getBBox(); return [b.x, b.y, b.x + b.width, b.y + b.height, t.textContent]; });""")
        assert len(boxes) == 3 * 128  # left tokens, right tokens, weights
        # no two labels overlap (a pixel of anti-aliasing allowed)
        boxes.sort(key=lambda b: b[1])
        for n, a in enumerate(boxes):
            for b in boxes[n + 1:]:
                if b[1] >= a[3] - 1:
                    break
                overlap_x = min(a[2], b[2]) - max(a[0], b[0])
                overlap_y = min(a[3], b[3]) - max(a[1], b[1])
                assert overlap_x <= 1 or overlap_y <= 1, (a, b)
        # the head view scrolls rather than shrinking the labels
        scroll = driver.execute_script(
            "const s = document.getElementById('head-scroll'); return [s.scrollHeight, s.clientHeight]")
        assert scroll[0] > scroll[1]
    driver.execute_script("window.scrollTo(0, 0)")
    shots(driver, "long")
    _view(driver, "neuron")
    assert len(driver.find_elements("css selector", "#neuron-table tr.key-row")) == 128


def test_notebook_inline_html_runs_the_page(driver, model_data, tmp_path):
    """`_repr_html_` (what Jupyter shows for a cell's value) is an iframe whose srcdoc is the page."""
    found, _ = model_data
    inline = render([found[0]], model_name="all-MiniLM-L6-v2")._repr_html_()
    wrapper = tmp_path / "notebook_cell.html"
    wrapper.write_text(f"<!doctype html><html><body>{inline}</body></html>", encoding="utf-8")
    driver.get(wrapper.resolve().as_uri())
    driver.switch_to.frame(driver.find_element("tag name", "iframe"))
    try:
        labels = [t.text for t in driver.find_elements("css selector", 'g.tok[data-side="left"] text')]
        assert labels == found[0].tokens
    finally:
        driver.switch_to.default_content()
        driver.back()  # the other tests share the explorer page


# Each payload would set window.pwned if the page ran it as script; the last ones are text that
# has broken JSON-in-HTML pages (separators JavaScript once refused, NUL, quotes, backslashes).
PAYLOADS = [
    "bank </script><script>window.pwned = 1</script> x",
    "bank <!--<script> x",                                   # once kept the page from running at all
    "bank <img src=x onerror=\"window.pwned = 2\"> x",
    "bank \"><svg onload=\"window.pwned = 3\"> x",
    "bank </SCRIPT ><script>window.pwned = 4</script > x",
    "bank 'single' \"double\" back\\slash \\\" x",
    "bank \u2028 line \u2029 paragraph x",
    "bank \x00 nul x",
]


def test_any_text_renders_as_text_and_runs_nothing(driver, bert_minilm, tmp_path):
    """A page of hostile texts: each text shows as its characters, every view draws, no script
    from a text runs, and the console stays clean."""
    tokenizer = Tokenizer.from_pretrained("all-MiniLM-L6-v2")
    pairs = [(PAYLOADS[0], PAYLOADS[1])]
    page = render([analyse(bert_minilm, tokenizer, t) for t in PAYLOADS + pairs], model_name="<b>model</b>")
    path = page.save(tmp_path / "hostile.html")
    driver.get_log("browser")  # start from a clean console
    driver.get(path.resolve().as_uri())
    assert driver.execute_script("return document.querySelectorAll('#text option').length") == len(PAYLOADS) + 1
    assert driver.find_element("id", "model").text.startswith("<b>model</b>:")
    for n, text in enumerate(PAYLOADS + pairs):
        _select(driver, "text", n)
        shown = driver.execute_script("return document.getElementById('shown-text').textContent")
        for part in (text if isinstance(text, tuple) else (text,)):
            assert part in shown, (n, shown)
        tokens = analyse(bert_minilm, tokenizer, text).tokens
        for view in ("head", "model", "neuron", "beyond"):
            _view(driver, view)
        _view(driver, "head")
        drawn = driver.execute_script("return document.querySelectorAll('#head-svg g.tok[data-side=\"left\"]').length")
        assert drawn == len(tokens), n
    assert driver.execute_script("return window.pwned") is None
    assert driver.execute_script("return document.querySelectorAll('body img, body svg svg, #shown-text *:not(span)').length") == 0
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


def test_a_lone_surrogate_or_an_overlong_text_is_a_clear_error(bert_minilm):
    from minibert.attention import explore

    tokenizer = Tokenizer.from_pretrained("all-MiniLM-L6-v2")
    with pytest.raises(ValueError, match=r"texts\[0\] holds a lone surrogate '\\ud800' at character 5"):
        explore(bert_minilm, tokenizer, "bank \ud800 x")
    with pytest.raises(ValueError, match="the text has 602 word pieces .*the model reads at most 512 positions"):
        explore(bert_minilm, tokenizer, "word " * 600, max_tokens=512)
    with pytest.raises(ValueError, match="max_tokens=600 is more than the model's 512 positions"):
        explore(bert_minilm, tokenizer, "word", max_tokens=600)
