"""batch_to_ids against the byte rule of allennlp 0.9.0's ELMoCharacterMapper, re-derived here
independently from its description (not from minielmo's code):

    token -> [259, b_1 + 1, ..., b_n + 1, 260, 261, 261, ...]   (50 ids)

with b_1..b_n the token's UTF-8 bytes (lone surrogates dropped), cut after 48 bytes; 259/260/261
are begin-of-word 258, end-of-word 259 and padding 260 shifted by +1. "<S>" and "</S>" become
[259, 257, 260, 261...] and [259, 258, 260, 261...]; padding tokens are 50 zeros.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minielmo import batch_to_ids

BOW, EOW, PAD = 259, 260, 261  # begin-of-word, end-of-word, padding, after the +1 shift


def expected_ids(token: str) -> list[int]:
    if token == "<S>":
        return [BOW, 257, EOW] + [PAD] * 47
    if token == "</S>":
        return [BOW, 258, EOW] + [PAD] * 47
    data = bytearray()
    for ch in token:
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:  # a lone surrogate has no UTF-8 form: dropped
            continue
        if code < 0x80:
            data += bytes([code])
        elif code < 0x800:
            data += bytes([0xC0 | code >> 6, 0x80 | code & 0x3F])
        elif code < 0x10000:
            data += bytes([0xE0 | code >> 12, 0x80 | code >> 6 & 0x3F, 0x80 | code & 0x3F])
        else:
            data += bytes([0xF0 | code >> 18, 0x80 | code >> 12 & 0x3F,
                           0x80 | code >> 6 & 0x3F, 0x80 | code & 0x3F])
    data = data[:48]
    ids = [BOW] + [b + 1 for b in data] + [EOW]
    return ids + [PAD] * (50 - len(ids))


tokens = st.one_of(
    # Any code point, lone surrogates included (hypothesis leaves them out unless asked).
    st.text(st.characters(exclude_categories=()), max_size=60),
    st.text("é中😀a", min_size=14, max_size=40),  # multi-byte characters across the 48-byte cut
    st.sampled_from(["", "<S>", "</S>", "<s>", "<S", "a" * 48, "a" * 49, "a" * 47 + "é", "a\ud800b"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(tokens, max_size=6), min_size=1, max_size=4))
def test_batch_to_ids_matches_the_byte_rule(sentences):
    char_ids = batch_to_ids(sentences)
    longest = max(len(s) for s in sentences)
    assert char_ids.dtype == torch.long and char_ids.shape == (len(sentences), longest, 50)
    for i, sentence in enumerate(sentences):
        for j in range(longest):
            expected = expected_ids(sentence[j]) if j < len(sentence) else [0] * 50
            assert char_ids[i, j].tolist() == expected, (i, j, sentence[j:j + 1])


def test_known_examples():
    """Hand-checked rows: 'é' is UTF-8 c3 a9 -> 196 170 after the shift; '' is a real token."""
    ids = batch_to_ids([["é", ""], []])
    assert ids[0, 0, :5].tolist() == [BOW, 0xC3 + 1, 0xA9 + 1, EOW, PAD]
    assert ids[0, 1, :3].tolist() == [BOW, EOW, PAD]
    assert ids[1].eq(0).all()
    # A 2-byte character straddling the cut keeps only its first byte (the reference does so too).
    assert batch_to_ids([["a" * 47 + "é"]])[0, 0, 47:50].tolist() == [ord("a") + 1, 0xC3 + 1, EOW]


def test_empty_sentence_is_valid():
    assert batch_to_ids([[]]).shape == (1, 0, 50)


@pytest.mark.parametrize("bad, error, match", [
    ([], ValueError, "empty batch"),
    ("a sentence", TypeError, "list of sentences"),
    (["not", "tokenised"], TypeError, r"sentence 0 must be a list of token strings, got str"),
    ([["ok"], ["fine", 3]], TypeError, r"sentence 1, token 1 must be a str, got int"),
    ([["bytes", b"x"]], TypeError, r"sentence 0, token 1 must be a str, got bytes"),
    ([[None]], TypeError, r"sentence 0, token 0 must be a str, got NoneType"),
])
def test_bad_input_raises_clear_errors(bad, error, match):
    with pytest.raises(error, match=match):
        batch_to_ids(bad)
