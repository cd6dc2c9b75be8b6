"""SentenceEncoder beside sentence-transformers on all-MiniLM-L6-v2: the nn.Module side (forward,
state_dict, eval), prompts and encode_query / encode_document, tokenize, get_max_seq_length,
save, and that a refused encode() call leaves the encoder working."""

import json

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from minibert import SentenceEncoder

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_single_thread")]

# float32 against float32, as in test_sentence_minilm.py: two correct implementations differ by
# float noise (measured max|diff| 2.3e-7 on unit vectors).
SENTENCE_ATOL = 1e-5
# Token vectors (forward's token_embeddings) are not unit length (norms ~5-10 on this model), so
# the same float noise is larger in absolute terms (measured 2e-6).
TOKEN_ATOL = 1e-4

TEXTS = ["The bank approved my loan application.", "We sat on the bank of the river.", "", "word " * 300,
         "机器学习很有趣。"]
PROMPTS = {"query": "query: ", "document": "passage: ", "classify": "Classify the topic: "}


def close(ours, reference, atol=SENTENCE_ATOL):
    torch.testing.assert_close(torch.as_tensor(ours).float(), torch.as_tensor(reference).float(), rtol=0, atol=atol)


@pytest.fixture(scope="module")
def expected(ours):
    return ours.encode(TEXTS)


@pytest.fixture(scope="module")
def prompted_dir(minilm_dir, tmp_path_factory):
    """all-MiniLM-L6-v2 with prompts in config_sentence_transformers.json (the weights linked, not copied)."""
    folder = tmp_path_factory.mktemp("prompted")
    for item in minilm_dir.iterdir():
        (folder / item.name).symlink_to(item)
    (folder / "config_sentence_transformers.json").unlink()
    (folder / "config_sentence_transformers.json").write_text(json.dumps({"prompts": PROMPTS}))
    return folder


# ----- one bad call never poisons the encoder ------------------------------------------------------

REFUSED_CALLS = {
    "meta device with tensors": (dict(convert_to_tensor=True, device="meta"), ValueError, "device='meta'"),
    "meta device": (dict(device="meta"), ValueError, "device='meta'"),
    "unknown device": (dict(device="tpu:0"), ValueError, "not a device torch knows"),
    "absent device index": (dict(device="cuda:99"), ValueError, "not available here"),
    "device of wrong type": (dict(device=3.5), ValueError, "not a device torch knows"),
    "zero batch size": (dict(batch_size=0), ValueError, "batch_size must be a positive int"),
    "batch size as str": (dict(batch_size="32"), ValueError, "batch_size must be a positive int"),
    "batch size as bool": (dict(batch_size=True), ValueError, "batch_size must be a positive int"),
    "output value": (dict(output_value="cls"), ValueError, "output_value must be one of"),
    "convert_to_numpy": (dict(convert_to_numpy="yes"), TypeError, "convert_to_numpy must be True or False"),
    "convert_to_tensor": (dict(convert_to_tensor=None), TypeError, "convert_to_tensor must be True or False"),
    "normalize_embeddings": (dict(normalize_embeddings=1), TypeError, "normalize_embeddings must be True or False"),
    "show_progress_bar": (dict(show_progress_bar="no"), TypeError, "show_progress_bar must be True or False"),
    "prompt_name": (dict(prompt_name="query"), ValueError, "prompt_name 'query' is not one of this model's prompts"),
    "prompt": (dict(prompt=3), TypeError, "prompt must be a str"),
    "sentences as bytes": (dict(sentences=b"bytes"), TypeError, "decode bytes first"),
    "sentences as int": (dict(sentences=42), TypeError, "sentences must be a str or an iterable of str"),
    "an item that is not a str": (dict(sentences=["fine", None]), TypeError, r"sentences\[1\] is NoneType"),
    "a lone surrogate": (dict(sentences=["fine", "bad \ud800"]), ValueError, r"sentences\[1\] holds a lone surrogate"),
}


@pytest.mark.parametrize("name", list(REFUSED_CALLS))
def test_a_refused_encode_leaves_the_encoder_working(ours, expected, name):
    arguments, error, message = REFUSED_CALLS[name]
    arguments = dict(arguments)
    sentences = arguments.pop("sentences", TEXTS)
    device_before = ours.device
    with pytest.raises(error, match=message) as raised:
        ours.encode(sentences, **arguments)
    assert "\n" not in str(raised.value)  # one line
    assert ours.device == device_before
    close(ours.encode(TEXTS), expected)  # the next valid call works, with the same vectors
    close(ours.encode(TEXTS, convert_to_tensor=True), expected)


def test_a_generator_failing_midway_leaves_the_encoder_working(ours, expected, monkeypatch):
    from minibert import sentence

    monkeypatch.setattr(sentence, "CHUNK_BATCHES", 1)

    def texts():
        yield from TEXTS * 20  # several chunks of batch_size 2 embedded before the failure
        raise RuntimeError("the file went away")

    with pytest.raises(RuntimeError, match="the file went away"):
        ours.encode(texts(), batch_size=2)
    close(ours.encode(TEXTS), expected)


# ----- nn.Module, forward, tokenize ----------------------------------------------------------------

def test_sentence_encoder_is_an_nn_module(ours):
    assert isinstance(ours, torch.nn.Module)
    assert ours.eval() is ours and not ours.training and not ours.model.training
    state = ours.state_dict()
    assert set(state) == {f"model.{key}" for key in ours.model.state_dict()}
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ours.model.parameters())
    assert ours.to("cpu") is ours


def test_tokenize_equals_sentence_transformers(ours, reference):
    features, reference_features = ours.tokenize(TEXTS), reference.tokenize(TEXTS)
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        torch.testing.assert_close(features[key], reference_features[key], rtol=0, atol=0)  # integer ids


def test_forward_returns_the_dict_sentence_transformers_returns(ours, reference):
    features = ours.tokenize(TEXTS)
    with torch.no_grad():
        output = ours(features)
        reference_output = reference(reference.tokenize(TEXTS))
    for key in ("sentence_embedding", "token_embeddings"):
        assert key in output and output[key].shape == reference_output[key].shape
    close(output["sentence_embedding"], reference_output["sentence_embedding"])
    real = features["attention_mask"].bool()
    close(output["token_embeddings"][real], reference_output["token_embeddings"][real], atol=TOKEN_ATOL)
    close(output["sentence_embedding"], ours.encode(TEXTS))


def test_forward_refuses_what_is_not_a_feature_dict(ours):
    with pytest.raises(TypeError, match="forward takes the dict tokenize\\(\\) returns"):
        ours(torch.zeros(2, 3, dtype=torch.long))


def test_get_max_seq_length_equals_sentence_transformers(ours, reference):
    assert ours.get_max_seq_length() == reference.get_max_seq_length() == 256


# ----- prompts ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def prompted(prompted_dir):
    return SentenceEncoder.from_pretrained(prompted_dir), SentenceTransformer(str(prompted_dir), device="cpu")


def test_prompts_are_read_from_config_sentence_transformers(prompted):
    ours, reference = prompted
    assert ours.prompts == {name: reference.prompts[name] for name in PROMPTS}


@pytest.mark.parametrize(
    "call",
    [
        lambda model: model.encode_query(TEXTS),
        lambda model: model.encode_document(TEXTS),
        lambda model: model.encode(TEXTS, prompt_name="classify"),
        lambda model: model.encode(TEXTS, prompt="Represent this: "),
        lambda model: model.encode_query(TEXTS, prompt="custom: "),
        lambda model: model.encode(TEXTS),
    ],
    ids=["encode_query", "encode_document", "prompt_name", "prompt", "query_with_prompt", "no_prompt"],
)
def test_prompted_encodes_equal_sentence_transformers(prompted, call):
    ours, reference = prompted
    close(call(ours), call(reference))


def test_prompts_change_the_vectors_and_match_prefixed_text(prompted):
    ours, _ = prompted
    close(ours.encode_query(TEXTS), ours.encode([PROMPTS["query"] + text for text in TEXTS]))
    assert not np.allclose(ours.encode_query(TEXTS), ours.encode(TEXTS), atol=1e-3)


def test_encode_query_without_prompts_is_plain_encode(ours, reference, expected):
    close(ours.encode_query(TEXTS), expected)
    close(ours.encode_document(TEXTS), reference.encode_document(TEXTS))


# ----- save ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["minilm", "prompted"])
def test_saved_folder_loads_in_both_with_equal_vectors(ours, prompted, tmp_path, source):
    encoder = ours if source == "minilm" else prompted[0]
    encoder.save(tmp_path / "saved")
    again = SentenceEncoder.from_pretrained(tmp_path / "saved")
    reference = SentenceTransformer(str(tmp_path / "saved"), device="cpu")
    vectors = encoder.encode(TEXTS)
    close(again.encode(TEXTS), vectors)
    close(reference.encode(TEXTS), vectors)
    close(reference.encode_query(TEXTS), encoder.encode_query(TEXTS))
    assert again.prompts == encoder.prompts and again.max_seq_length == encoder.max_seq_length
    assert reference.get_max_seq_length() == encoder.get_max_seq_length()
    for key, value in encoder.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0)  # the same float32 values
