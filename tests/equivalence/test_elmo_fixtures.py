"""minielmo vs the original TensorFlow biLM, on the tiny model shipped in the allennlp 0.9.0 wheel.

The reference numbers are the TF biLM's own outputs (tests/fixtures/elmo/PROVENANCE.md); AllenNLP
is not installed. The run mirrors allennlp's tests/modules/elmo_test.py: batch i is
(sentences[0][i], sentences[1][i], sentences[2][i]), fed in order to one stateful model.
"""

import h5py
import numpy as np
import pytest
import torch

import minielmo
from minielmo import BiLM, batch_to_ids

pytestmark = pytest.mark.usefixtures("torch_single_thread")

# allennlp 0.9.0 met these files at atol 1e-6 (float32, one network of width 16-64); we measure
# ~1.2e-6 on the biLM and ~1e-6 on the char encoder. 1e-5 is an order of
# magnitude above float32 accumulation noise, far below any real error (a wrong gate order or
# a missing forget bias moves outputs by >1e-2).
TF_BILM_ATOL = 1e-5
TF_CHAR_ENCODER_ATOL = 1e-5
# Two runs of the same float32 model on the same input: must agree bit for bit.
DETERMINISM_ATOL = 0.0
# A sentence alone vs inside a padded batch: the same arithmetic on different batch shapes;
# BLAS may block rows differently, so allow float32 rounding noise only.
BATCH_INVARIANCE_ATOL = 1e-5
# <S>/</S> in a batch vs the char-CNN run alone on just those two tokens: the same arithmetic on
# different batch shapes (measured 9.5e-7 on vectors of norm ~1); 1e-6 is float32 noise only.
BOUNDARY_ATOL = 1e-6
# Elmo's scalar mix vs the same weighted sum written out in the test from a second BiLM: the same
# float32 ops on the same layers (measured 0.0 on outputs up to ~4); 1e-6 allows summation-order
# rounding only.
SCALAR_MIX_ATOL = 1e-6
# The hdf5 file's float32 values vs their 7-decimal print in EXPECTED_SLICE: rounding to 7
# decimals (5e-8) plus float32's spacing near 3 (2.4e-7 ulp) (measured 6.0e-8).
PRINTED_SLICE_ATOL = 1e-7


def expected_top_layers(fixture_dir) -> list[list[np.ndarray]]:
    """expected[k][i]: (tokens, 2P) top layer of sentence sentences[k][i], forward | backward."""
    expected = []
    for k in range(3):
        with h5py.File(fixture_dir / f"lm_embeddings_{k}.hdf5", "r") as file:
            expected.append([np.concatenate([file[str(i)][0], file[str(i)][1]], axis=-1)
                             for i in range(10)])
    return expected


def top_layer_without_boundaries(output: dict, row: int, length: int) -> torch.Tensor:
    return output["activations"][-1][row, 1 : length + 1]  # drop <S> at 0 and </S> at length+1


def test_stateful_bilm_reproduces_all_30_tf_sentences(elmo_fixture_dir, elmo_sentences):
    expected = expected_top_layers(elmo_fixture_dir)
    bilm = BiLM.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS, stateful=True)
    worst = 0.0
    with torch.no_grad():
        for i in range(10):
            batch = [elmo_sentences[k][i].split() for k in range(3)]
            output = bilm(batch_to_ids(batch))
            assert output["mask"].sum(dim=1).tolist() == [len(s) + 2 for s in batch]
            for k, sentence in enumerate(batch):
                ours = top_layer_without_boundaries(output, k, len(sentence))
                ref = torch.from_numpy(expected[k][i])
                worst = max(worst, (ours - ref).abs().max().item())
                torch.testing.assert_close(
                    ours, ref, rtol=0, atol=TF_BILM_ATOL,
                    msg=lambda m, i=i, k=k: f"batch {i}, row {k} (sentences[{k}][{i}]): {m}")
    print(f"stateful, 30 sentences: max|diff| = {worst:.3g}")


def test_stateful_bilm_is_wrong_without_state(elmo_fixture_dir, elmo_sentences):
    """Guards the test above: batch 1 depends on the state left by batch 0, so a model that
    forgets it must miss the reference (otherwise test 1 would not test statefulness)."""
    expected = expected_top_layers(elmo_fixture_dir)
    bilm = BiLM.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS, stateful=False)
    batch = [elmo_sentences[k][1].split() for k in range(3)]
    with torch.no_grad():
        ours = top_layer_without_boundaries(bilm(batch_to_ids(batch)), 0, len(batch[0]))
    assert (ours - torch.from_numpy(expected[0][1])).abs().max().item() > 100 * TF_BILM_ATOL


def test_reset_states_restarts_from_zero(elmo_sentences):
    bilm = BiLM.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS, stateful=True)
    char_ids = batch_to_ids([elmo_sentences[k][0].split() for k in range(3)])
    with torch.no_grad():
        first = bilm(char_ids)["activations"][-1]
        bilm.reset_states()
        again = bilm(char_ids)["activations"][-1]
    torch.testing.assert_close(again, first, rtol=0, atol=DETERMINISM_ATOL)


def test_stateless_bilm_reproduces_first_batch_and_is_deterministic(
        tiny_bilm, elmo_fixture_dir, elmo_sentences):
    expected = expected_top_layers(elmo_fixture_dir)
    batch = [elmo_sentences[k][0].split() for k in range(3)]
    char_ids = batch_to_ids(batch)
    with torch.no_grad():
        output = tiny_bilm(char_ids)
        repeated = [tiny_bilm(char_ids) for _ in range(2)]
    worst = 0.0
    for k, sentence in enumerate(batch):
        ours = top_layer_without_boundaries(output, k, len(sentence))
        ref = torch.from_numpy(expected[k][0])
        worst = max(worst, (ours - ref).abs().max().item())
        torch.testing.assert_close(ours, ref, rtol=0, atol=TF_BILM_ATOL)
    for again in repeated:
        for layer, layer_again in zip(output["activations"], again["activations"]):
            torch.testing.assert_close(layer_again, layer, rtol=0, atol=DETERMINISM_ATOL)
    print(f"stateless, first batch: max|diff| = {worst:.3g}")


def test_char_encoder_matches_tf_token_embeddings(tiny_bilm, elmo_fixture_dir):
    words = (elmo_fixture_dir / "vocab_test.txt").read_text(encoding="utf-8").strip().split("\n")
    with h5py.File(elmo_fixture_dir / "elmo_token_embeddings.hdf5", "r") as file:
        expected = torch.from_numpy(file["embedding"][...])  # (458, P)
    assert len(words) == expected.shape[0] == 458
    # Context-free, so any batching works: here 10 rows of up to 50 words, like the reference.
    rows = [words[k : k + 50] for k in range(0, len(words), 50)]
    with torch.no_grad():
        embedded = tiny_bilm.char_cnn(batch_to_ids(rows))  # (10, 50, P)
    ours = torch.cat([embedded[r, : len(row)] for r, row in enumerate(rows)])  # (458, P)
    print(f"char encoder, 458 words: max|diff| = {(ours - expected).abs().max().item():.3g}")
    torch.testing.assert_close(ours, expected, rtol=0, atol=TF_CHAR_ENCODER_ATOL)


def test_token_layer_is_char_encoder_duplicated_and_padding_is_zero(tiny_bilm):
    char_ids = batch_to_ids([["The", "cat", "sat", "."], ["Hi"], []])
    with torch.no_grad():
        output = tiny_bilm(char_ids)
        boundaries = tiny_bilm.char_cnn(batch_to_ids([["<S>", "</S>"]]))[0]  # (2, P)
    mask, layers = output["mask"], output["activations"]
    assert mask.sum(dim=1).tolist() == [6, 3, 2]  # tokens + <S> + </S>; empty sentence: 2
    P = tiny_bilm.config.projection_dim
    token_layer = layers[0]
    torch.testing.assert_close(token_layer[..., :P], token_layer[..., P:], rtol=0, atol=0)
    # <S> / </S> are the literal boundary tokens' char-CNN vectors, at 0 and at length + 1.
    torch.testing.assert_close(token_layer[1, 0, :P], boundaries[0], rtol=0, atol=BOUNDARY_ATOL)
    torch.testing.assert_close(token_layer[1, 2, :P], boundaries[1], rtol=0, atol=BOUNDARY_ATOL)
    for layer in layers:
        assert layer.shape == (3, 6, 2 * P)
        assert torch.all(layer[~mask] == 0), "padded positions must be exactly zero"


def test_batch_invariance_stateless(tiny_bilm, elmo_sentences):
    sentences = [elmo_sentences[0][3].split(), elmo_sentences[1][0].split(), [], ["Short", "."]]
    with torch.no_grad():
        together = tiny_bilm(batch_to_ids(sentences))
        for row, sentence in enumerate(sentences):
            alone = tiny_bilm(batch_to_ids([sentence]))
            n = len(sentence) + 2
            for layer_alone, layer_together in zip(alone["activations"], together["activations"]):
                torch.testing.assert_close(layer_together[row, :n], layer_alone[0, :n],
                                           rtol=0, atol=BATCH_INVARIANCE_ATOL)


def test_elmo_mixes_bilm_layers_and_drops_boundaries(elmo_sentences):
    elmo = minielmo.Elmo.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS,
                                    num_output_representations=2)
    bilm_alone = BiLM.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS)
    sentences = [["The", "sentence", "."], ["ELMo", "helps", "disambiguate", "ELMo", "."]]
    char_ids = batch_to_ids(sentences)
    with torch.no_grad():
        elmo.scalar_mixes[1].weights.copy_(torch.tensor([1.0, -2.0, 0.5]))
        elmo.scalar_mixes[1].gamma.fill_(0.7)
        output = elmo(char_ids)
        layers = bilm_alone(char_ids)["activations"]
    assert len(elmo.scalar_mixes) == 2 and len(output["elmo_representations"]) == 2
    assert output["mask"].tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    for mix, representation in zip(elmo.scalar_mixes, output["elmo_representations"]):
        s = torch.softmax(mix.weights.detach(), dim=0)
        expected = mix.gamma.detach() * sum(w * layer for w, layer in zip(s, layers))
        expected = expected[:, 1:-1] * output["mask"].unsqueeze(-1)  # tokens only, padding zero
        assert representation.shape == (2, 5, 2 * bilm_alone.config.projection_dim)
        torch.testing.assert_close(representation, expected, rtol=0, atol=SCALAR_MIX_ATOL)


def test_elmo_keep_sentence_boundaries():
    elmo = minielmo.Elmo.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS,
                                    keep_sentence_boundaries=True)
    with torch.no_grad():
        output = elmo(batch_to_ids([["a", "b"], ["c"]]))
    assert output["elmo_representations"][0].shape[:2] == (2, 4)
    assert output["mask"].sum(dim=1).tolist() == [4, 3]


# A readable 3x3 view of the reference, for documentation: copied from
# tests/fixtures/elmo/lm_embeddings_0.hdf5, dataset "0", [0, :3, :3] (forward direction, first
# three tokens "The U.S. Centers" of sentences[0][0], first three features), 7 decimals.
EXPECTED_SLICE = torch.tensor([[1.8224438, 2.8207562, 0.5328439],
                               [-0.5008021, -1.0439548, -2.7663023],
                               [0.9911413, 0.2637637, -0.8146753]])
# The slice was printed with 7 decimals, so it is exact to 5e-8; our model adds ~1e-6.
EXPECTED_SLICE_ATOL = 1e-5


def test_expected_slice(tiny_bilm, elmo_fixture_dir, elmo_sentences):
    with h5py.File(elmo_fixture_dir / "lm_embeddings_0.hdf5", "r") as file:
        torch.testing.assert_close(torch.from_numpy(file["0"][0, :3, :3]), EXPECTED_SLICE,
                                   rtol=0, atol=PRINTED_SLICE_ATOL)
    batch = [elmo_sentences[k][0].split() for k in range(3)]
    with torch.no_grad():
        top = tiny_bilm(batch_to_ids(batch))["activations"][-1]  # (3, T+2, 2P)
    torch.testing.assert_close(top[0, 1:4, :3], EXPECTED_SLICE, rtol=0, atol=EXPECTED_SLICE_ATOL)


def test_stateful_keeps_state_by_batch_position_across_batch_sizes(elmo_sentences):
    """The reference's rule when the batch size changes: row i continues from row i of the
    previous call; rows a smaller batch lacks keep their state; rows a bigger batch adds start from
    zero. So each row must equal a one-row stateful model fed that row's own sentences."""
    a, b, c, d, e = (elmo_sentences[0][i].split()[:12] for i in range(5))
    calls = [[a, b, c], [d, e], [c, a, b, e]]  # 3 rows, then 2, then 4
    bilm = BiLM.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS, stateful=True)
    with torch.no_grad():
        outputs = [bilm(batch_to_ids(batch))["activations"][-1] for batch in calls]
        for row in range(4):
            single = BiLM.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS,
                                     stateful=True)
            for call, batch in enumerate(calls):
                if row < len(batch):
                    alone = single(batch_to_ids([batch[row]]))["activations"][-1][0]
                    n = len(batch[row]) + 2
                    torch.testing.assert_close(outputs[call][row, :n], alone[:n], rtol=0,
                                               atol=BATCH_INVARIANCE_ATOL,
                                               msg=lambda m: f"call {call}, row {row}: {m}")


# ----- AllenNLP's interfaces: get_output_dim, scalar_mix_parameters, ElmoEmbedder ----------------

def test_get_output_dim_is_the_representation_width():
    elmo = minielmo.Elmo.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS)
    with torch.no_grad():
        representation = elmo(batch_to_ids([["a", "b"]]))["elmo_representations"][0]
    assert elmo.get_output_dim() == representation.shape[-1] == 32  # 2P, P = 16 in the tiny model


def test_scalar_mix_parameters_fix_the_mix_as_in_allennlp(elmo_sentences):
    """AllenNLP: Elmo(..., scalar_mix_parameters=s) mixes with softmax(s) and gamma 1, neither trained."""
    parameters = [1.0, -2.0, 0.5]
    elmo = minielmo.Elmo.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS,
                                    num_output_representations=2, scalar_mix_parameters=parameters)
    bilm_alone = BiLM.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS)
    char_ids = batch_to_ids([sentence.split() for sentence in elmo_sentences[0][:4]])
    with torch.no_grad():
        output = elmo(char_ids)
        layers = bilm_alone(char_ids)["activations"]
    weights = torch.softmax(torch.tensor(parameters), dim=0)
    expected = sum(w * layer for w, layer in zip(weights, layers))[:, 1:-1] * output["mask"].unsqueeze(-1)
    for representation in output["elmo_representations"]:
        torch.testing.assert_close(representation, expected, rtol=0, atol=SCALAR_MIX_ATOL)
    assert not any(p.requires_grad for p in elmo.parameters())  # biLM frozen, mix fixed
    with pytest.raises(ValueError, match="scalar_mix_parameters must be 3 finite numbers"):
        minielmo.Elmo.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS, scalar_mix_parameters=[1.0, 2.0])


def test_elmo_embedder_gives_every_layer_and_its_top_layer_is_the_tf_biLM(elmo_fixture_dir, elmo_sentences):
    """embed_sentences: (L+1, T, 2P) per sentence, as AllenNLP's ElmoEmbedder: layer 0 the token
    embedding (both halves equal), the top layer equal to the TF biLM's output."""
    expected = expected_top_layers(elmo_fixture_dir)
    embedder = minielmo.ElmoEmbedder(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS)
    batch = [elmo_sentences[k][0].split() for k in range(3)]
    embedded = list(embedder.embed_sentences(batch, batch_size=2))
    for k, (sentence, layers) in enumerate(zip(batch, embedded)):
        assert layers.shape == (3, len(sentence), 32)
        torch.testing.assert_close(torch.from_numpy(layers[-1]), torch.from_numpy(expected[k][0]), rtol=0, atol=TF_BILM_ATOL)
        torch.testing.assert_close(torch.from_numpy(layers[0][:, :16]), torch.from_numpy(layers[0][:, 16:]), rtol=0, atol=0)
        alone = embedder.embed_sentence(sentence)  # a sentence alone equals it inside a batch
        torch.testing.assert_close(torch.from_numpy(alone), torch.from_numpy(layers), rtol=0, atol=BATCH_INVARIANCE_ATOL)


def test_elmo_embedder_edge_cases_and_errors():
    embedder = minielmo.ElmoEmbedder(bilm=BiLM.from_pretrained("fixture"))
    assert embedder.embed_sentence([]).shape == (3, 0, 32)
    assert [a.shape for a in embedder.embed_batch([["a"], [], ["b", "c"]])] == [(3, 1, 32), (3, 0, 32), (3, 2, 32)]
    with pytest.raises(TypeError, match="list of tokenised sentences"):
        embedder.embed_sentence("The cat sat")
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        list(embedder.embed_sentences([["a"]], batch_size=0))
    with pytest.raises(TypeError, match="needs both options_file and weight_file"):
        minielmo.ElmoEmbedder(minielmo.FIXTURE_OPTIONS)
