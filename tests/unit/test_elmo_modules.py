"""Each hand-written ELMo op pinned to a library twin or a numpy re-derivation, plus shapes."""

import numpy as np
import pytest
import torch

import minielmo
from minielmo import BiLM, CharCNN, ElmoConfig, Highway, LstmCellWithProjection, ScalarMix

pytestmark = pytest.mark.usefixtures("torch_single_thread")

# Random float32 weights, tens of time steps: the same math in a different order of operations
# (torch.nn.LSTM fuses the gate matmuls) stays within a few ulps of values of size ~1.
FLOAT32_ATOL = 1e-5
FLOAT32_RTOL = 1e-5
# ScalarMix in float32 vs the float64 numpy re-derivation.
SCALAR_MIX_ATOL = 1e-5

TINY = ElmoConfig(projection_dim=6, cell_size=10, n_layers=2, cell_clip=3.0, proj_clip=3.0,
                  use_skip_connections=True, filters=((1, 4), (2, 5), (3, 7)), n_highway=2,
                  char_embedding_dim=4, n_characters=262, max_characters_per_token=50,
                  activation="tanh")


def lstm_pair(input_size=5, P=3, C=7):
    """Our cell and torch.nn.LSTM(proj_size=P) sharing the same random weights."""
    torch.manual_seed(0)
    reference = torch.nn.LSTM(input_size, C, proj_size=P, batch_first=True)
    ours = LstmCellWithProjection(input_size, P, C, cell_clip=None, proj_clip=None)
    with torch.no_grad():
        ours.input_to_gates.weight.copy_(reference.weight_ih_l0)  # both (i, f, g, o)
        ours.hidden_to_gates.weight.copy_(reference.weight_hh_l0)
        ours.hidden_to_gates.bias.copy_(reference.bias_ih_l0 + reference.bias_hh_l0)
        ours.projection.weight.copy_(reference.weight_hr_l0)
    return ours, reference


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_cell_without_clipping_is_torch_lstm_with_projection(reverse):
    ours, reference = lstm_pair()
    torch.manual_seed(1)
    inputs = torch.randn(4, 9, 5)
    h0, c0 = torch.randn(4, 3), torch.randn(4, 7)
    mask = torch.ones(4, 9, dtype=torch.bool)
    with torch.no_grad():
        out, (h, c) = ours(inputs, mask, (h0, c0), reverse=reverse)
        ref_in = inputs.flip(1) if reverse else inputs
        ref_out, (ref_h, ref_c) = reference(ref_in, (h0.unsqueeze(0), c0.unsqueeze(0)))
        ref_out = ref_out.flip(1) if reverse else ref_out
    tol = dict(rtol=FLOAT32_RTOL, atol=FLOAT32_ATOL)
    torch.testing.assert_close(out, ref_out, **tol)
    torch.testing.assert_close(h, ref_h[0], **tol)
    torch.testing.assert_close(c, ref_c[0], **tol)


def test_lstm_cell_respects_lengths_in_both_directions():
    """A padded row equals the same row run alone at its own length: forward stops at its last
    token; backward starts there. Padded outputs are zero."""
    ours, reference = lstm_pair()
    torch.manual_seed(2)
    inputs = torch.randn(2, 8, 5)
    mask = torch.arange(8).unsqueeze(0) < torch.tensor([[8], [5]])
    for reverse in (False, True):
        with torch.no_grad():
            out, (h, c) = ours(inputs * 7.0 * ~mask.unsqueeze(-1) + inputs, mask, reverse=reverse)
            alone, (h_alone, c_alone) = ours(inputs[1:, :5], mask[1:, :5], reverse=reverse)
        torch.testing.assert_close(out[1, :5], alone[0], rtol=FLOAT32_RTOL, atol=FLOAT32_ATOL)
        torch.testing.assert_close(h[1], h_alone[0], rtol=FLOAT32_RTOL, atol=FLOAT32_ATOL)
        assert torch.all(out[1, 5:] == 0)


def test_lstm_cell_clips_memory_and_projection():
    ours = LstmCellWithProjection(3, 2, 4, cell_clip=0.5, proj_clip=0.1)
    with torch.no_grad():
        for param in ours.parameters():
            param.fill_(1.0)
        hidden, memory = ours.step(torch.full((1, 3), 5.0), torch.ones(1, 2), torch.full((1, 4), 9.0))
    assert memory.abs().max().item() == pytest.approx(0.5)
    assert hidden.abs().max().item() == pytest.approx(0.1)


def test_highway_formula_and_shape():
    torch.manual_seed(3)
    highway = Highway(6, num_layers=2)
    x = torch.randn(5, 6)
    expected = x
    for nonlinear, gate in zip(highway.nonlinear, highway.transform_gate):
        t = torch.sigmoid(expected @ gate.weight.T + gate.bias)
        expected = t * torch.relu(expected @ nonlinear.weight.T + nonlinear.bias) + (1 - t) * expected
    out = highway(x)
    assert out.shape == (5, 6)
    torch.testing.assert_close(out, expected, rtol=FLOAT32_RTOL, atol=FLOAT32_ATOL)


def test_char_cnn_shapes_and_max_pool():
    torch.manual_seed(4)
    cnn = CharCNN(TINY)
    char_ids = torch.randint(1, 262, (2, 3, 50))
    assert cnn(char_ids).shape == (2, 3, TINY.projection_dim)
    # The pooled features are the per-filter max over positions (einsum form of a Conv1d).
    chars = cnn.char_embedding(char_ids[0, :1])  # (1, W, E)
    conv = cnn.convs[1]  # width 2
    windows = chars.unfold(1, 2, 1)  # (1, W-1, E, 2)
    manual = torch.einsum("nwek,oek->now", windows, conv.weight) + conv.bias[:, None]
    torch.testing.assert_close(conv(chars.transpose(1, 2)), manual, rtol=1e-5, atol=1e-5)
    assert cnn.char_embedding.weight[0].eq(0).all(), "padding char id 0 embeds to zero"


def test_random_init_bilm_documented_shapes():
    """The model builds without any file; output shapes are those in BiLM.forward's docstring."""
    torch.manual_seed(5)
    bilm = BiLM(TINY).eval()
    char_ids = minielmo.batch_to_ids([["a", "bc", "d"], ["e"]])
    with torch.no_grad():
        out = bilm(char_ids)
    assert len(out["activations"]) == TINY.n_layers + 1 == bilm.num_layers
    for layer in out["activations"]:
        assert layer.shape == (2, 5, 2 * TINY.projection_dim)
    assert out["mask"].shape == (2, 5) and out["mask"].dtype == torch.bool


def numpy_scalar_mix(layers, mask, weights, gamma, layer_norm):
    """ELMo Eq. 1 in float64; layer norm with one mean/variance over all unmasked elements."""
    s = np.exp(weights) / np.exp(weights).sum()
    total = 0.0
    for w, layer in zip(s, layers):
        if layer_norm:
            real = layer[mask.astype(bool)]  # (N_real, D)
            layer = (layer - real.mean()) / np.sqrt(real.var() + 1e-12)
        total = total + w * layer
    return gamma * total


@pytest.mark.parametrize("layer_norm", [False, True])
def test_scalar_mix_matches_numpy(layer_norm):
    torch.manual_seed(6)
    layers = [torch.randn(3, 5, 4) * (j + 1) + j for j in range(3)]
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    mix = ScalarMix(3, do_layer_norm=layer_norm)
    assert mix.weights.shape == (3,) and mix.gamma.shape == (1,)
    with torch.no_grad():
        mix.weights.copy_(torch.tensor([0.3, -1.2, 2.0]))
        mix.gamma.fill_(1.7)
        ours = mix(layers, mask)
    expected = numpy_scalar_mix([l.double().numpy() for l in layers], mask.numpy(),
                                np.array([0.3, -1.2, 2.0]), 1.7, layer_norm)
    torch.testing.assert_close(ours, torch.from_numpy(expected).float(), rtol=0,
                               atol=SCALAR_MIX_ATOL)


def test_scalar_mix_layer_norm_depends_on_the_batch():
    """Documented behaviour (same as the reference): statistics span the whole batch."""
    torch.manual_seed(7)
    layers = [torch.randn(2, 4, 3) for _ in range(2)]
    mask = torch.ones(2, 4, dtype=torch.bool)
    mix = ScalarMix(2, do_layer_norm=True)
    with torch.no_grad():
        together = mix(layers, mask)[0]
        alone = mix([l[:1] for l in layers], mask[:1])[0]
    assert (together - alone).abs().max() > 1e-3


def test_scalar_mix_errors():
    with pytest.raises(ValueError, match="built for 3 layers, got 2"):
        ScalarMix(3)([torch.zeros(1, 1, 1)] * 2)
    with pytest.raises(ValueError, match="needs the mask"):
        ScalarMix(1, do_layer_norm=True)([torch.zeros(1, 1, 1)])


@pytest.mark.parametrize("bad, error, match", [
    ([[1, 2]], TypeError, "LongTensor"),
    (torch.zeros(0, 3, 50, dtype=torch.long), ValueError, "empty batch"),
    (torch.zeros(2, 3, 49, dtype=torch.long), ValueError, r"shape \(B, T, 50\)"),
    (torch.zeros(2, 3, 50), TypeError, r"torch.long \(or int32\) tensor, got torch.float32"),
    (torch.zeros(2, 3, 50, dtype=torch.int8), TypeError, r"torch.long \(or int32\) tensor, got torch.int8"),
    (torch.full((1, 2, 50), 262), ValueError, r"must lie in \[0, 261\].*max 262"),
    (torch.full((1, 2, 50), -1), ValueError, r"must lie in \[0, 261\].*min -1"),
])
def test_bilm_rejects_bad_char_ids(bad, error, match):
    with pytest.raises(error, match=match):
        BiLM(TINY)(bad)


def test_bilm_takes_int32_char_ids_as_it_takes_long_ones():
    bilm = BiLM(TINY).eval()
    char_ids = minielmo.batch_to_ids([["Int32", "ids", "."], ["too"]])
    with torch.no_grad():
        as_long, as_int32 = bilm(char_ids), bilm(char_ids.int())
    for a, b in zip(as_long["activations"], as_int32["activations"]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_bilm_rejects_padding_before_tokens():
    char_ids = minielmo.batch_to_ids([["a", "b"]])
    char_ids[0, 0] = 0
    with pytest.raises(ValueError, match="padding tokens"):
        BiLM(TINY)(char_ids)


def test_empty_sentence_gives_only_boundaries():
    with torch.no_grad():
        out = BiLM(TINY).eval()(minielmo.batch_to_ids([[]]))
    assert out["mask"].tolist() == [[True, True]]
    assert all(layer.shape == (1, 2, 2 * TINY.projection_dim) for layer in out["activations"])


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="activation"):
        ElmoConfig(**{**TINY.__dict__, "activation": "gelu"})
    with pytest.raises(ValueError, match="n_characters"):
        ElmoConfig(**{**TINY.__dict__, "n_characters": 300})


def test_elmo_errors_and_layer_count():
    bilm = BiLM(TINY)
    with pytest.raises(ValueError, match="num_output_representations must be >= 1"):
        minielmo.Elmo(bilm, num_output_representations=0)
    elmo = minielmo.Elmo(bilm, num_output_representations=3, do_layer_norm=True).eval()
    assert [mix.weights.shape for mix in elmo.scalar_mixes] == [(TINY.n_layers + 1,)] * 3
    with pytest.raises(ValueError, match="empty batch"):
        elmo(torch.zeros(0, 1, 50, dtype=torch.long))
    with torch.no_grad():
        out = elmo(minielmo.batch_to_ids([["a"], []]))
    assert out["mask"].tolist() == [[True], [False]]
    assert all(r[1].eq(0).all() for r in out["elmo_representations"]), "padding is zero"
