"""SentenceEncoder's sentence-transformers interface on the real all-MiniLM-L6-v2: the encode
arguments, iterables read in chunks, similarity(), the dimension, devices and model dtypes."""

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from minibert import SentenceEncoder, sentence

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_single_thread")]

# float32 against float32, as in test_sentence_minilm.py: two correct implementations differ by
# float noise (measured max|diff| 2.3e-7 on unit vectors).
SENTENCE_ATOL = 1e-5
# Lower-precision models against the float32 one, on unit vectors of TEXTS (measured on this
# machine, CPU, torch 2.13: bfloat16 2.5e-3, float16 3.1e-4; docs/api.md states these). The
# bounds leave 4x headroom for other CPUs' kernels, and stay far below the gaps between
# different sentences' similarities (~0.1) that any use of the vectors depends on.
BFLOAT16_ATOL = 1e-2
FLOAT16_ATOL = 2e-3

TEXTS = [
    "The bank approved my loan application.",
    "We sat on the bank of the river.",
    "I need to bank this money quickly.",
    "The investment bank offers great returns.",
    "word " * 300,  # cut at 256 word pieces
    "",
    "机器学习很有趣。",
    "a",
    "Héllo Wörld, naïve café!",
]


@pytest.fixture(scope="module")
def expected(ours):
    return ours.encode(TEXTS)


def close(ours, reference, atol=SENTENCE_ATOL):
    torch.testing.assert_close(torch.as_tensor(ours).float(), torch.as_tensor(reference).float(), rtol=0, atol=atol)


@pytest.mark.parametrize("make", [tuple, iter, lambda t: (x for x in t), np.array], ids=["tuple", "iterator", "generator", "numpy"])
def test_any_iterable_of_str_gives_the_list_result(ours, expected, make):
    close(ours.encode(make(TEXTS), batch_size=2), expected)


def test_chunks_keep_the_callers_order(ours, expected, monkeypatch):
    """One batch per chunk: every chunk boundary is crossed, and rows still come back in order."""
    monkeypatch.setattr(sentence, "CHUNK_BATCHES", 1)
    close(ours.encode(TEXTS, batch_size=2), expected)
    close(ours.encode(iter(TEXTS), batch_size=4), expected)


def test_return_types_follow_sentence_transformers(ours, reference, expected):
    as_tensor = ours.encode(TEXTS, convert_to_tensor=True)
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.shape == (len(TEXTS), 384)
    listed = ours.encode(TEXTS, convert_to_numpy=False)
    assert isinstance(listed, list) and len(listed) == len(TEXTS) and listed[0].shape == (384,)
    reference_listed = reference.encode(TEXTS, convert_to_numpy=False)
    assert type(listed) is type(reference_listed) and listed[0].shape == reference_listed[0].shape
    close(torch.stack(listed), expected)
    close(as_tensor, reference.encode(TEXTS, convert_to_tensor=True))
    one = ours.encode(TEXTS[0], convert_to_tensor=True)
    assert one.shape == (384,)


def test_normalize_embeddings_is_a_no_op_on_an_already_normalised_model(ours, expected):
    close(ours.encode(TEXTS, normalize_embeddings=True), expected)


def test_token_embeddings_are_the_last_hidden_state_at_real_tokens(ours, reference):
    tokens = ours.encode(TEXTS[:5], output_value="token_embeddings")
    reference_tokens = reference.encode(TEXTS[:5], output_value="token_embeddings")
    assert [t.shape for t in tokens] == [t.shape for t in reference_tokens]
    for mine, theirs in zip(tokens, reference_tokens):
        # Unnormalised hidden states (norm ~6): float noise scales with them (measured 1.5e-6).
        close(mine, theirs)
    single = ours.encode(TEXTS[0], output_value="token_embeddings")
    close(single, tokens[0])


def test_unknown_output_value_is_a_clear_error(ours):
    with pytest.raises(ValueError, match="output_value must be one of .'sentence_embedding', 'token_embeddings'., got None"):
        ours.encode(TEXTS, output_value=None)


def test_similarity_and_dimension_match_sentence_transformers(ours, reference, expected):
    assert ours.get_sentence_embedding_dimension() == ours.get_embedding_dimension() == reference.get_embedding_dimension() == 384
    mine = ours.similarity(expected[:3], expected)
    theirs = reference.similarity(expected[:3], expected)
    assert mine.shape == theirs.shape == (3, len(TEXTS))
    close(mine, theirs)
    close(ours.similarity(expected[0], torch.from_numpy(expected[1])), theirs[0:1, 1:2])
    with pytest.raises(ValueError, match="cannot compare 384-dim with 3-dim vectors"):
        ours.similarity(expected, np.ones(3, dtype=np.float32))


def test_device_argument_and_to(ours, expected):
    assert ours.to("cpu") is ours and ours.device == torch.device("cpu")
    close(ours.encode(TEXTS, device="cpu"), expected)


@pytest.mark.parametrize("dtype,atol", [(torch.bfloat16, BFLOAT16_ATOL), (torch.float16, FLOAT16_ATOL)],
                         ids=["bfloat16", "float16"])
def test_lower_precision_models_stay_close_to_float32(expected, dtype, atol):
    loaded = SentenceEncoder.from_pretrained("all-MiniLM-L6-v2", dtype=dtype)
    assert loaded.model.embeddings.word_embeddings.weight.dtype == dtype
    vectors = loaded.encode(TEXTS)
    # numpy has no bfloat16: it comes back as float32, as in sentence-transformers; float16 stays.
    assert vectors.dtype == (np.float32 if dtype == torch.bfloat16 else np.float16)
    close(vectors, expected, atol=atol)
    assert loaded.encode(TEXTS, convert_to_tensor=True).dtype == dtype
    # Casting a float32 model afterwards (the way users do it) gives the same vectors.
    cast = SentenceEncoder.from_pretrained("all-MiniLM-L6-v2").to(dtype)
    close(cast.encode(TEXTS), vectors, atol=0)
    # The teaching path (used when a forward hook watches the model) runs in that dtype too.
    handle = loaded.model.encoder.layers[0].register_forward_hook(lambda *args: None)
    try:
        close(loaded.encode(TEXTS), expected, atol=atol)
    finally:
        handle.remove()


def test_bad_dtype_is_a_clear_error():
    with pytest.raises(TypeError, match="dtype must be a floating torch dtype .* got torch.int8"):
        SentenceEncoder.from_pretrained("all-MiniLM-L6-v2", dtype=torch.int8)


def test_a_lone_surrogate_is_named_by_its_index_in_the_callers_input(ours, monkeypatch):
    monkeypatch.setattr(sentence, "CHUNK_BATCHES", 1)  # the bad text sits in the second chunk
    with pytest.raises(ValueError, match=r"sentences\[2\] holds a lone surrogate '\\udcff' at character 3"):
        ours.encode(["fine", "also fine", "bad\udcff text"], batch_size=2)
