"""minibert.SentenceEncoder against sentence-transformers on the real all-MiniLM-L6-v2 checkpoint."""

import json

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from minibert import SentenceEncoder, Tokenizer

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_single_thread")]

# Max-abs tolerance for real MiniLM sentence vectors. Two correct float32 implementations of the
# same network differ by float noise here (matmul blocking and reduction order change with the
# padded length): sentence-transformers differs from *itself* by 1.7e-7 between batch sizes 1 and
# 32; we measured max|diff| 2.3e-7 on unit vectors and 1.5e-6 on unnormalised ones (norm ~6).
SENTENCE_ATOL = 1e-5
SENTENCE_RTOL = 0.0  # a pure max-abs bound: a relative term would loosen it on large values

SEED_SENTENCES = [
    "The bank approved my loan application.",
    "We sat on the bank of the river.",
    "I need to bank this money quickly.",
    "The investment bank offers great returns.",
]
LONG_TEXT = " ".join(f"sentence {i} keeps going with unusual words like photosynthesis" for i in range(60))
CORPUS = SEED_SENTENCES + [
    LONG_TEXT,  # ~600 word pieces: far beyond max_seq_length=256, so it is truncated
    "",
    "   \t\n  ",
    "机器学习很有趣。",
    "日本語のテキストと한국어",
    "I love pizza 🍕🍕 and rockets 🚀!",
    "Héllo Wörld, naïve café!",
    "ALL CAPS SHOUTING",
    "[MASK] [CLS] [SEP]",
    "3.14159 2718 +-*/",
    "a",
    LONG_TEXT[:700],  # ~130 word pieces: long but not truncated
]


@pytest.fixture(scope="module")
def reference_vectors(reference):
    # One text per batch: the reference vectors do not depend on batching, and this avoids padding
    # every text to the long one's 256 word pieces (the slow part of this file on 2 shared cores).
    return reference.encode(CORPUS, batch_size=1)


def assert_vectors_close(ours, reference):
    assert ours.dtype == np.float32 and ours.shape == reference.shape
    torch.testing.assert_close(
        torch.from_numpy(ours), torch.from_numpy(reference), rtol=SENTENCE_RTOL, atol=SENTENCE_ATOL
    )


def test_reads_the_sentence_transformers_files(ours):
    assert ours.max_seq_length == 256  # sentence_bert_config.json
    assert ours.pooling_config.pooling_modes == ("mean",)  # 1_Pooling/config.json
    assert ours.normalize is True  # modules.json lists a Normalize stage
    assert ours.dimension == 384


@pytest.mark.parametrize("batch_size", [1, 5, 32], ids=lambda b: f"batch_size={b}")
def test_matches_sentence_transformers_in_caller_order_whatever_the_batch_size(ours, reference_vectors, batch_size):
    """Batch size 1, one that splits the corpus unevenly, and the default 32 (larger than the
    corpus). The input is shuffled: encode sorts by length inside, and must undo that."""
    assert batch_size == 1 or len(CORPUS) % batch_size or batch_size > len(CORPUS)
    permutation = np.random.default_rng(batch_size).permutation(len(CORPUS))
    vectors = ours.encode([CORPUS[i] for i in permutation], batch_size=batch_size)
    assert_vectors_close(vectors, reference_vectors[permutation])


def test_unnormalised_vectors_match_transformer_plus_pooling(ours, reference):
    """An encoder without the Normalize stage (encoder.normalize = False, as for a modules.json
    without one) equals sentence-transformers' own Transformer and Pooling modules chained
    without it."""
    without_normalize = SentenceTransformer(modules=[reference[0], reference[1]], device="cpu")
    texts = CORPUS[:9]  # the seed sentences, the long text, empty, blank, CJK, emoji
    expected = without_normalize.encode(texts, batch_size=1)
    plain = SentenceEncoder(ours.model, ours.tokenizer, ours.pooling_config, ours.max_seq_length, normalize=False)
    vectors = plain.encode(texts, batch_size=5)
    assert_vectors_close(vectors, expected)
    assert not np.allclose(np.linalg.norm(vectors, axis=1), 1.0)  # really not normalised
    assert_vectors_close(plain.encode(texts, normalize_embeddings=True),
                         expected / np.linalg.norm(expected, axis=1, keepdims=True))


def test_long_text_is_cut_at_max_seq_length(ours):
    """The long text only differs from its own 256-word-piece prefix by float noise."""
    pieces = ours.tokenizer(LONG_TEXT, truncation=False)["input_ids"].shape[1]
    assert pieces > 2 * ours.max_seq_length
    truncated = ours.tokenizer(LONG_TEXT, max_length=ours.max_seq_length, return_offsets=True)
    prefix = LONG_TEXT[: truncated["offsets"][0][-2][1]]  # up to the end of the last kept word piece
    assert_vectors_close(ours.encode([LONG_TEXT]), ours.encode([prefix]))


def test_seed_similarity_ranking(ours, reference):
    """Discrete check: each seed sentence's nearest other sentence is the same as the reference's."""
    ours_vectors, reference_vectors = ours.encode(SEED_SENTENCES), reference.encode(SEED_SENTENCES)
    ours_similarity = ours_vectors @ ours_vectors.T
    reference_similarity = reference_vectors @ reference_vectors.T
    assert_vectors_close(ours_similarity, reference_similarity)
    np.fill_diagonal(ours_similarity, -1.0)
    np.fill_diagonal(reference_similarity, -1.0)
    assert ours_similarity.argmax(axis=1).tolist() == reference_similarity.argmax(axis=1).tolist()


def test_single_string_gives_one_vector_like_sentence_transformers(ours, reference):
    vector = ours.encode(SEED_SENTENCES[0])
    assert vector.shape == (384,)
    assert_vectors_close(vector, reference.encode(SEED_SENTENCES[0]))


def test_empty_list_gives_an_empty_matrix(ours):
    vectors = ours.encode([])
    assert vectors.shape == (0, 384) and vectors.dtype == np.float32


def test_progress_bar_on_request_only(ours, capsys):
    ours.encode(SEED_SENTENCES + ["a"], batch_size=2, show_progress_bar=True)
    bar = capsys.readouterr().err
    assert "5/5 texts" in bar and "texts/s, ETA 0:00:00" in bar and bar.endswith("\n")
    ours.encode(SEED_SENTENCES + ["a"], batch_size=2)
    assert capsys.readouterr().err == ""
    ours.encode(iter(SEED_SENTENCES), show_progress_bar=True)  # N unknown: count and rate, no ETA
    bar = capsys.readouterr().err
    assert "encoding 4 texts" in bar and "texts/s" in bar and "ETA" not in bar


@pytest.mark.parametrize(
    "texts,error,message",
    [
        (["fine", None, "fine"], TypeError, r"sentences\[1\] is NoneType"),
        (["fine", 42], TypeError, r"sentences\[1\] is int"),
        ([["nested"]], TypeError, r"sentences\[0\] is list"),
        (b"bytes", TypeError, "sentences must be a str or an iterable of str, got bytes"),
        (42, TypeError, "sentences must be a str or an iterable of str, got int"),
        (np.array([1.5]), TypeError, r"sentences\[0\] is float"),
    ],
)
def test_bad_texts_are_a_clear_error(ours, texts, error, message):
    with pytest.raises(error, match=message):
        ours.encode(texts)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
def test_bad_batch_size(ours, batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        ours.encode(["x"], batch_size=batch_size)


# ----- other sentence-transformers layouts, built by linking the MiniLM files ---------------------

VARIANT_TEXTS = ["The bank approved my loan application.", "", "word " * 300, "机器学习"]


def _linked_copy(minilm_dir, directory, leave_out=("modules.json", "1_Pooling")):
    for item in minilm_dir.iterdir():
        if item.name not in leave_out:
            (directory / item.name).symlink_to(item)
    return directory


def test_without_modules_json_it_is_plain_mean_pooling_like_sentence_transformers(minilm_dir, tmp_path):
    """No modules.json: mean pooling, no Normalize, and max_seq_length from the model (512), since
    sentence-transformers then ignores sentence_bert_config.json."""
    directory = _linked_copy(minilm_dir, tmp_path)
    encoder = SentenceEncoder.from_pretrained(directory)
    assert (encoder.pooling_config.pooling_modes, encoder.normalize, encoder.max_seq_length) == (("mean",), False, 512)
    reference = SentenceTransformer(str(directory), device="cpu").encode(VARIANT_TEXTS, batch_size=1)
    assert_vectors_close(encoder.encode(VARIANT_TEXTS), reference)


def test_several_pooling_modes_concatenate_like_sentence_transformers(minilm_dir, tmp_path):
    directory = _linked_copy(minilm_dir, tmp_path)
    (directory / "1_Pooling").mkdir()
    flags = {"pooling_mode_cls_token": True, "pooling_mode_max_tokens": True, "pooling_mode_mean_tokens": False}
    (directory / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 384, **flags}))
    modules = json.loads((minilm_dir / "modules.json").read_text())[:2]  # no Normalize stage
    (directory / "modules.json").write_text(json.dumps(modules))

    encoder = SentenceEncoder.from_pretrained(directory)
    assert encoder.pooling_config.pooling_modes == ("cls", "max") and encoder.dimension == 768
    reference = SentenceTransformer(str(directory), device="cpu").encode(VARIANT_TEXTS, batch_size=1)
    assert_vectors_close(encoder.encode(VARIANT_TEXTS), reference)


def test_unsupported_modules_are_named(minilm_dir, tmp_path):
    directory = _linked_copy(minilm_dir, tmp_path, leave_out=("modules.json",))
    modules = json.loads((minilm_dir / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (directory / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match=r"Dense'\] not implemented"):
        SentenceEncoder.from_pretrained(directory)


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="could not find model"):
        SentenceEncoder.from_pretrained(tmp_path / "nowhere")


def test_tokenizer_by_name_equals_tokenizer_by_directory(ours, minilm_dir):
    """Tokenizer.from_pretrained takes the same names as the model (through weights.resolve)."""
    by_name = Tokenizer.from_pretrained("all-MiniLM-L6-v2")
    by_dir = Tokenizer.from_pretrained(minilm_dir)
    for key, value in by_name(CORPUS).items():
        torch.testing.assert_close(value, by_dir(CORPUS)[key], rtol=0, atol=0)


def test_do_lower_case_and_max_seq_length_cap_like_sentence_transformers(minilm_dir, tmp_path):
    """A cased tokenizer (built from vocab.txt) with sentence_bert_config's do_lower_case: true,
    and a max_seq_length (1000) beyond the 512 position embeddings, which must be capped."""
    leave_out = ("tokenizer.json", "tokenizer_config.json", "sentence_bert_config.json")
    directory = _linked_copy(minilm_dir, tmp_path, leave_out=leave_out)
    tokenizer_config = json.loads((minilm_dir / "tokenizer_config.json").read_text())
    (directory / "tokenizer_config.json").write_text(json.dumps({**tokenizer_config, "do_lower_case": False}))
    (directory / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 1000, "do_lower_case": True}))
    texts = ["HELLO [MASK] World", "The BANK approved it.", "word " * 600]

    encoder = SentenceEncoder.from_pretrained(directory)
    assert encoder.max_seq_length == 512
    reference = SentenceTransformer(str(directory), device="cpu")
    # sentence-transformers keeps 1000 and would fail inside BERT on a text over 512 word pieces;
    # we cap instead (a NOTE (deviation) in minibert/sentence.py), so compare at the capped length.
    assert reference.max_seq_length == 1000
    reference.max_seq_length = 512
    assert_vectors_close(encoder.encode(texts), reference.encode(texts, batch_size=1))
    # The special token written in the text survives lowercasing, as in sentence-transformers.
    assert encoder.tokenizer(texts[0], return_offsets=True)["tokens"][0] == ["[CLS]", "hello", "[MASK]", "world", "[SEP]"]


def test_model_saved_by_sentence_transformers_itself_loads(reference, tmp_path):
    """sentence-transformers 6.2 writes its new class paths into modules.json
    (sentence_transformers.base.modules.transformer.Transformer, ...); they name the same stages."""
    reference.save(str(tmp_path))
    types = [module["type"] for module in json.loads((tmp_path / "modules.json").read_text())]
    assert "sentence_transformers.models.Transformer" not in types  # the new spelling, really
    encoder = SentenceEncoder.from_pretrained(tmp_path)
    assert (encoder.pooling_config.pooling_modes, encoder.normalize) == (("mean",), True)
    saved_reference = SentenceTransformer(str(tmp_path), device="cpu")
    assert encoder.max_seq_length == saved_reference.max_seq_length
    assert_vectors_close(encoder.encode(VARIANT_TEXTS), saved_reference.encode(VARIANT_TEXTS, batch_size=1))


def test_older_layout_with_the_transformer_in_a_subfolder_loads(minilm_dir, tmp_path):
    """Older sentence-transformers releases saved the BERT files in 0_Transformer/, named by the
    Transformer entry's "path" in modules.json; only modules.json and the stage folders are on top."""
    transformer = tmp_path / "0_Transformer"
    transformer.mkdir()
    _linked_copy(minilm_dir, transformer, leave_out=("modules.json", "1_Pooling", "2_Normalize"))
    (tmp_path / "1_Pooling").symlink_to(minilm_dir / "1_Pooling")
    (tmp_path / "2_Normalize").mkdir()
    modules = json.loads((minilm_dir / "modules.json").read_text())
    modules[0]["path"] = "0_Transformer"
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    assert not (tmp_path / "model.safetensors").exists()

    encoder = SentenceEncoder.from_pretrained(tmp_path)
    assert (encoder.max_seq_length, encoder.normalize) == (256, True)  # 0_Transformer/sentence_bert_config.json
    reference = SentenceTransformer(str(tmp_path), device="cpu")
    assert_vectors_close(encoder.encode(VARIANT_TEXTS), reference.encode(VARIANT_TEXTS, batch_size=1))
