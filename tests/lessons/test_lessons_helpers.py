"""The lessons' small numeric helpers against independent derivations."""

import math

import numpy as np
import pytest
import torch

from lessons.attention import head_entropy, head_roles, role_mass
from lessons.common import bert_word_vectors, cosine_matrix, load_bert, pca_2d, sense_separation

# float32 model vectors compared with a float32 mean computed another way: rounding only.
MEAN_ATOL = 1e-6
# A sentence in a padded batch vs alone: the padding is masked, so only float32 rounding of
# different-sized matmuls separates them (the batch-invariance tests of minibert allow 1e-5).
BATCHED_ATOL = 1e-5
# pca_2d's float64 projection vs one via numpy's eigh of the covariance: two float64 routes
# (measured 1.8e-14 on coordinates up to ~9); 1e-8 leaves room for other LAPACK builds, while a
# wrong axis or a missing centring is off by O(1).
PCA_ATOL = 1e-8
# The explained-variance ratios in [0, 1], the same two float64 routes (measured 3.9e-16).
VARIANCE_RATIO_ATOL = 1e-10
# head_entropy of exactly one-hot float64 rows: 1 * log(1) = 0 and the zeros contribute 0 * log(1e-12)
# = 0, so only rounding remains.
ONE_HOT_ENTROPY_ATOL = 1e-9


def test_pca_matches_the_covariance_eigenvectors():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)) @ rng.normal(size=(6, 6))
    points, ratio = pca_2d(x)
    centred = x - x.mean(0)
    values, vectors = np.linalg.eigh(np.cov(centred, rowvar=False))
    top = vectors[:, ::-1][:, :2]  # eigh sorts ascending
    expected = centred @ top
    for k in range(2):  # a principal axis is defined up to its sign
        sign = np.sign(points[:, k] @ expected[:, k])
        np.testing.assert_allclose(points[:, k], sign * expected[:, k], atol=PCA_ATOL)
    np.testing.assert_allclose(ratio, values[::-1][:2] / values.sum(), atol=VARIANCE_RATIO_ATOL)


def test_sense_separation_leaves_out_self_pairs():
    v = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    same, diff, gap = sense_separation(v, ["a", "a", "b", "b"])
    sims = cosine_matrix(v)
    assert same == pytest.approx((sims[0, 1] + sims[2, 3]) / 2)
    assert diff == pytest.approx(sims[:2, 2:].mean())
    assert gap == pytest.approx(same - diff)


def test_entropy_and_roles_on_constructed_attention():
    T = 5
    uniform = np.full((1, 1, T, T), 1 / T)
    one_hot_prev = np.zeros((1, 1, T, T))
    one_hot_prev[0, 0, 0, 0] = 1.0
    for i in range(1, T):
        one_hot_prev[0, 0, i, i - 1] = 1.0
    assert head_entropy(uniform)[0, 0] == pytest.approx(math.log(T))
    assert head_entropy(one_hot_prev)[0, 0] == pytest.approx(0.0, abs=ONE_HOT_ENTROPY_ATOL)
    identity = np.eye(T)[None, None]
    probs = np.concatenate([one_hot_prev, identity, uniform], axis=1)  # 3 heads
    roles = head_roles(role_mass(probs))
    assert roles == [["previous", "self", "mixed"]]


def test_multi_piece_word_is_the_mean_of_its_pieces():
    model, tokenizer = load_bert()
    sentence = "The river bank was eroding due to heavy rainfall."
    static, layers, pieces = bert_word_vectors(model, tokenizer, [sentence], "eroding")
    assert len(pieces[0]) > 1, "pick a word that splits into several word pieces"
    enc = tokenizer([sentence], return_offsets=True)
    positions = [i for i, t in enumerate(enc["tokens"][0]) if t in pieces[0]]
    ids = enc["input_ids"][0, positions]
    expected_static = model.embeddings.word_embeddings.weight[ids].mean(0).detach().numpy()
    np.testing.assert_allclose(static[0], expected_static, atol=MEAN_ATOL)
    with torch.no_grad():
        hidden = model(enc["input_ids"], output_hidden_states=True).hidden_states[-1][0, positions]
    np.testing.assert_allclose(layers[-1, 0], hidden.mean(0).numpy(), atol=MEAN_ATOL)


# ----- unit vectors, progress, the measure cache, notebook parameters -----------------------------

def test_unit_rows_have_length_one_and_zero_stays_zero():
    from lessons.common import unit

    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_array_equal(unit(x), [[0.6, 0.8], [0.0, 0.0]])
    assert unit(np.array([0.0, 2.0])).tolist() == [0.0, 1.0]


def test_progress_yields_everything_and_says_how_far_and_how_long(capsys):
    from lessons.common import progress

    assert list(progress(range(3), "counting")) == [0, 1, 2]
    err = capsys.readouterr().err
    assert "counting [" in err and "0/3" in err and "3/3" in err and "left" in err and err.endswith("\n")


def test_measure_cache_computes_once_per_key(tmp_path, monkeypatch):
    from lessons.common import CACHE_ENV, measure_cache

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return {"names": np.array(["0", "1"]), "cosine": np.arange(6.0).reshape(2, 3)}

    first = measure_cache("probe", "key-a", compute)
    again = measure_cache("probe", "key-a", compute)
    other = measure_cache("probe", "key-b", compute)
    assert len(calls) == 2  # key-a once, key-b once
    np.testing.assert_array_equal(first["cosine"], again["cosine"])
    assert again["names"].tolist() == ["0", "1"] and set(other) == {"names", "cosine"}
    assert sorted(p.name for p in (tmp_path / "lessons").iterdir()) == ["probe-key-a.npz", "probe-key-b.npz"]


def test_a_damaged_cache_file_is_recomputed(tmp_path, monkeypatch):
    from lessons.common import CACHE_ENV, measure_cache

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    (tmp_path / "lessons").mkdir()
    (tmp_path / "lessons" / "probe-k.npz").write_bytes(b"not a zip file")
    assert measure_cache("probe", "k", lambda: {"x": np.ones(2)})["x"].tolist() == [1.0, 1.0]


def test_weights_hash_changes_with_any_weight():
    from lessons.common import weights_hash

    layer = torch.nn.Linear(3, 2)
    before = weights_hash(layer)
    with torch.no_grad():
        layer.bias[0] += 1e-6
    assert weights_hash(layer) != before and weights_hash(np.zeros(3)) != weights_hash(np.zeros(4))


def test_notebook_parameters_refuse_unknown_names_and_prepare_out(tmp_path):
    from lessons.common import LessonError, parameters

    folder = tmp_path / "x"
    assert parameters({}, out=folder, seed=0) == ({"out": folder, "seed": 0}, folder)
    assert folder.is_dir()  # prepared before any model runs
    assert parameters({"PARAMETERS": {"seed": 3}}, out=folder, seed=0)[0] == {"out": folder, "seed": 3}
    with pytest.raises(LessonError, match="unknown lesson parameters"):
        parameters({"PARAMETERS": {"sede": 3}}, out=folder, seed=0)
    (tmp_path / "file").write_text("")
    with pytest.raises(LessonError, match="exists and is not a folder"):
        parameters({"PARAMETERS": {"out": tmp_path / "file"}}, out=folder, seed=0)


def test_text_or_default_refuses_blank_text():
    from lessons.common import LessonError, text_or_default

    assert text_or_default(None, "the example", "empty") == "the example"
    assert text_or_default("mine", "the example", "empty") == "mine"
    with pytest.raises(LessonError, match="^the text is empty$"):
        text_or_default("  ", "the example", "the text is empty")


def test_bert_span_vectors_match_one_sentence_at_a_time():
    from lessons.common import bert_span_vectors

    model, tokenizer = load_bert()
    sentences = ["The river bank was eroding.", "A bank.", "She went to the bank to withdraw money yesterday."]
    spans = [(10, 14), (2, 6), (16, 20)]
    static, layers, pieces = bert_span_vectors(model, tokenizer, sentences, spans, batch=2)
    for i, (sentence, span) in enumerate(zip(sentences, spans)):
        alone_static, alone_layers, alone_pieces = bert_span_vectors(model, tokenizer, [sentence], [span])
        np.testing.assert_allclose(static[i], alone_static[0], atol=BATCHED_ATOL)
        np.testing.assert_allclose(layers[:, i], alone_layers[:, 0], atol=BATCHED_ATOL)
        assert pieces[i] == alone_pieces[0] == ["bank"]
