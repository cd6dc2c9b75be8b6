"""minibert.attention: the numbers behind the attention explorer, and the page it writes.

Every quantity is re-derived here another way: softmax(q·k / sqrt(Dh)) against the model's own
probabilities, the value-weighted decomposition against the attention module's output, the
rollout against a numpy product of the paper's matrices. The page's embedded arrays are decoded
back and compared with the tensors they came from."""

from __future__ import annotations

import base64
import json
import math
import re

import numpy as np
import pytest
import torch

from minibert import BertConfig, Tokenizer
from minibert.attention import (PROB_SCALE, ExplorerPage, analyse, attention_rollout, explore,
                                head_values, render)

# float32: the recomputation runs the model's own ops and is bit-identical here (measured 0); a
# different summation order (BLAS blocking, thread count) moves values of order 1 by a few ulps,
# and 1e-5 is the project's float32 tolerance.
FLOAT32_ATOL = 1e-5
# α is stored as round(α * PROB_SCALE): the decoded value is within half a step.
PROB_STEP_ATOL = 0.5 / PROB_SCALE + 1e-7
# The page must stay small enough to mail or commit: about 2 MB for a 40-token sentence
# (docs/attention_explorer.md gives the sizes measured).
MAX_PAGE_BYTES_40_TOKENS = 2_000_000

SENTENCE = "The river bank was eroding due to heavy rainfall."
PAIR = ("The bank raised its rates.", "Savers were pleased.")
# exactly 40 word pieces with all-MiniLM-L6-v2's tokenizer, [CLS] and [SEP] included
TEXT_40 = ("The committee continued its negotiations over the proposed merger of the two regional banks, "
           "while analysts warned that unexpectedly heavy rainfall along the river could delay construction "
           "of the new headquarters by several more long months.")


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.from_pretrained("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def tiny(perturbed_bert):
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    return perturbed_bert(config)


@pytest.fixture(scope="module")
def found(tiny, tokenizer):
    return analyse(tiny, tokenizer, SENTENCE)


def _decode(payload: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(payload), dtype=dtype)


def _page_data(page: str) -> dict:
    blob = re.search(r'<script id="explorer-data" type="application/json">(.*?)</script>', page, re.S).group(1)
    return json.loads(blob)


def test_shapes(found, tiny):
    L, H, Dh = 2, 4, 8
    T = len(found.tokens)
    assert found.tokens[0] == "[CLS]" and found.tokens[-1] == "[SEP]"
    assert found.probs.shape == (L, H, T, T)
    assert found.queries.shape == found.keys.shape == (L, H, T, Dh)
    assert found.value_norms.shape == (L, H, T)
    assert found.layer_norms.shape == found.rollout.shape == (L, T, T)
    assert found.segments == [0] * T


def test_softmax_of_recomputed_scores_is_the_models_attention(found):
    Dh = found.queries.shape[-1]
    scores = found.queries @ found.keys.transpose(-2, -1) / math.sqrt(Dh)  # (L, H, T, Dh) @ (L, H, Dh, T)
    torch.testing.assert_close(torch.softmax(scores, -1), found.probs, rtol=0, atol=FLOAT32_ATOL)


@torch.no_grad()
def test_value_weighted_terms_sum_to_the_attention_output(tiny, tokenizer):
    """Σ_h Σ_j α^h_ij f^h(x_j) + b_O is the attention sublayer's output (Kobayashi et al. 2020 §3)."""
    enc = tokenizer([SENTENCE])
    out = tiny(enc["input_ids"], output_attentions=True, output_hidden_states=True)
    T = enc["input_ids"].shape[1]
    no_mask = torch.zeros(1, 1, 1, T)
    for layer, hidden_in, probs in zip(tiny.encoder.layers, out.hidden_states, out.attentions):
        f = head_values(layer.attn, hidden_in[0])                          # (H, T, D)
        rebuilt = torch.einsum("hij,hjd->id", probs[0], f) + layer.attn.out_proj.bias
        expected, _ = layer.attn(hidden_in, no_mask)
        torch.testing.assert_close(rebuilt, expected[0], rtol=0, atol=FLOAT32_ATOL)


@torch.no_grad()
def test_norms_match_a_loop_over_pairs(tiny, tokenizer, found):
    enc = tokenizer([SENTENCE])
    out = tiny(enc["input_ids"], output_hidden_states=True)
    layer = 1
    f = head_values(tiny.encoder.layers[layer].attn, out.hidden_states[layer][0])  # (H, T, D)
    alpha = found.probs[layer]
    T = alpha.shape[-1]
    for i, j in [(0, 0), (2, 5), (T - 1, 1)]:
        terms = [alpha[h, i, j] * f[h, j] for h in range(f.shape[0])]
        torch.testing.assert_close(found.layer_norms[layer, i, j], torch.stack(terms).sum(0).norm(),
                                   rtol=0, atol=FLOAT32_ATOL)
        for h, term in enumerate(terms):
            torch.testing.assert_close(found.probs[layer, h, i, j] * found.value_norms[layer, h, j], term.norm(),
                                       rtol=0, atol=FLOAT32_ATOL)


def test_rollout_is_the_product_of_residual_mixed_layers(found):
    """Abnar & Zuidema 2020: Â = 0.5 A + 0.5 I (A = head mean), rows renormalised, Â_l ... Â_1."""
    probs = found.probs.double().numpy()
    L, _, T, _ = probs.shape
    expected = np.eye(T)
    for layer in range(L):
        mixed = 0.5 * probs[layer].mean(0) + 0.5 * np.eye(T)
        mixed /= mixed.sum(-1, keepdims=True)
        expected = mixed @ expected
        np.testing.assert_allclose(found.rollout[layer].numpy(), expected, rtol=0, atol=FLOAT32_ATOL)
    np.testing.assert_allclose(found.rollout.sum(-1).numpy(), 1.0, rtol=0, atol=FLOAT32_ATOL)


def test_rollout_of_identity_attention_is_identity():
    T = 5
    probs = torch.eye(T).expand(3, 2, T, T)
    torch.testing.assert_close(attention_rollout(probs), torch.eye(T).expand(3, T, T))


def test_pair_has_two_segments(tiny, tokenizer):
    pair = analyse(tiny, tokenizer, PAIR)
    assert pair.text == PAIR
    assert pair.tokens.count("[SEP]") == 2
    second = pair.tokens.index("[SEP]") + 1
    assert pair.segments == [0] * second + [1] * (len(pair.tokens) - second)


@pytest.mark.parametrize("texts, message", [
    ("", "texts\\[0\\] is empty"),
    (("a", "b", "c"), "a tuple means a sentence pair"),
    ([], "non-empty list"),
    (["fine", 3], "holds int"),
    (("fine", "   "), "is empty"),
])
def test_bad_texts_get_one_clear_error(tiny, tokenizer, texts, message):
    with pytest.raises((TypeError, ValueError), match=message):
        explore(tiny, tokenizer, texts)


def test_too_long_and_training_mode_are_refused(tiny, tokenizer):
    with pytest.raises(TypeError, match="explore takes a list"):
        analyse(tiny, tokenizer, [SENTENCE, SENTENCE])
    with pytest.raises(ValueError, match="at most 5"):
        analyse(tiny, tokenizer, SENTENCE, max_tokens=5)
    tiny.train()
    try:
        with pytest.raises(ValueError, match="model.eval"):
            analyse(tiny, tokenizer, SENTENCE)
    finally:
        tiny.eval()


def test_page_embeds_every_text_and_decodes_back(tiny, tokenizer):
    page = explore(tiny, tokenizer, [SENTENCE, PAIR], model_name="tiny")
    assert isinstance(page, ExplorerPage) and isinstance(page, str) and page.html == str(page)
    data = _page_data(page)
    assert (data["layers"], data["heads"], data["headDim"]) == (2, 4, 8)
    assert [t["text"] for t in data["texts"]] == [SENTENCE, list(PAIR)]
    for text, entry in zip([SENTENCE, PAIR], data["texts"]):
        ref = analyse(tiny, tokenizer, text)
        assert entry["tokens"] == ref.tokens and entry["segments"] == ref.segments
        probs = _decode(entry["probs"], "<u2").reshape(ref.probs.shape) / data["probScale"]
        np.testing.assert_allclose(probs, ref.probs.numpy(), rtol=0, atol=PROB_STEP_ATOL)
        for key, tensor in [("queries", ref.queries), ("keys", ref.keys), ("valueNorms", ref.value_norms),
                            ("layerNorms", ref.layer_norms), ("rollout", ref.rollout)]:
            np.testing.assert_array_equal(_decode(entry[key], "<f4").reshape(tensor.shape), tensor.numpy())


def test_page_is_self_contained_and_shows_in_notebooks(tiny, tokenizer, tmp_path):
    page = explore(tiny, tokenizer, SENTENCE, head_labels=[[["a"] * 4, ["b"] * 4]])
    assert "__EXPLORER_DATA__" not in page
    for needle in ("src=", "href=", "@import", "url(", "fetch(", "XMLHttpRequest"):
        assert needle not in page, needle
    assert page.count("http") == page.count("http://www.w3.org/2000/svg")
    assert _page_data(page)["texts"][0]["labels"] == [["a"] * 4, ["b"] * 4]
    saved = page.save(tmp_path / "explorer.html")
    assert saved.read_text(encoding="utf-8") == page
    inline = page._repr_html_()
    assert inline.startswith("<iframe srcdoc=\"") and "<script" not in inline  # escaped inside srcdoc


def test_head_labels_must_fit_the_model(tiny, tokenizer):
    with pytest.raises(ValueError, match="2 lists of 4"):
        explore(tiny, tokenizer, SENTENCE, head_labels=[[["a"] * 3]])


@pytest.mark.slow
def test_minilm_page_for_40_word_pieces_is_under_2_mb(bert_minilm, tokenizer):
    found = analyse(bert_minilm, tokenizer, TEXT_40)
    assert len(found.tokens) == 40
    page = render([found], model_name="all-MiniLM-L6-v2")
    assert len(page.encode("utf-8")) < MAX_PAGE_BYTES_40_TOKENS
