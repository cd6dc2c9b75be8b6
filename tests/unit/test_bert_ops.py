"""Each hand-written op in minibert/model.py pinned to its library twin."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from minibert.config import SUPPORTED_ACTIVATIONS
from minibert.model import ACTIVATIONS, LayerNorm, additive_padding_mask, gelu, gelu_tanh

# Elementwise ops in float32: the same formula evaluated by a different kernel differs by a few
# ulps; 1e-6 absolute over inputs in [-8, 8] is ~10 ulps of the largest outputs, far below any
# real formula error (erf vs tanh GELU differ by up to 4.7e-4, see below).
ELEMENTWISE_ATOL = 1e-6
ELEMENTWISE_RTOL = 1e-6
# LayerNorm reduces over D: summation order differs between our mean/var and the fused kernel,
# measured 7.2e-7 at D=384 on outputs of magnitude ~2.5 (this test's inputs).
LAYERNORM_ATOL = 2e-6
LAYERNORM_RTOL = 1e-6
# Softmax rows are in [0, 1]: float32 noise from a different reduction order is ~1e-7.
SOFTMAX_ATOL = 1e-6
SOFTMAX_RTOL = 1e-6


@pytest.fixture
def x():
    torch.manual_seed(0)
    return torch.linspace(-8, 8, 4001) + 0.001 * torch.randn(4001)


def test_gelu_is_the_exact_erf_form(x):
    torch.testing.assert_close(gelu(x), F.gelu(x), rtol=ELEMENTWISE_RTOL, atol=ELEMENTWISE_ATOL)
    torch.testing.assert_close(gelu(x), x * 0.5 * (1 + torch.erf(x / math.sqrt(2))),
                               rtol=ELEMENTWISE_RTOL, atol=ELEMENTWISE_ATOL)


def test_gelu_is_not_the_tanh_approximation(x):
    # The two forms really differ; a model using the wrong one would fail the equivalence tests.
    assert (gelu(x) - gelu_tanh(x)).abs().max() > 1e-4


def test_gelu_tanh_matches_pytorch_tanh_approximation(x):
    torch.testing.assert_close(gelu_tanh(x), F.gelu(x, approximate="tanh"),
                               rtol=ELEMENTWISE_RTOL, atol=ELEMENTWISE_ATOL)


def test_every_activation_matches_transformers_act2fn(x):
    from transformers.activations import ACT2FN
    for name in SUPPORTED_ACTIVATIONS:
        torch.testing.assert_close(ACTIVATIONS[name](x), ACT2FN[name](x),
                                   rtol=ELEMENTWISE_RTOL, atol=ELEMENTWISE_ATOL, msg=name)


def test_relu_activation(x):
    torch.testing.assert_close(ACTIVATIONS["relu"](x), torch.relu(x), rtol=0, atol=0)


@pytest.mark.parametrize("eps", [1e-12, 1e-5, 0.1])
def test_layer_norm_matches_nn_layer_norm(eps):
    torch.manual_seed(1)
    hidden = torch.randn(3, 7, 384) * 3 + 1
    ours, twin = LayerNorm(384, eps), nn.LayerNorm(384, eps=eps)
    with torch.no_grad():
        for module in (ours, twin):
            module.weight.copy_(torch.linspace(0.5, 1.5, 384))
            module.bias.copy_(torch.linspace(-1, 1, 384))
    torch.testing.assert_close(ours(hidden), twin(hidden), rtol=LAYERNORM_RTOL, atol=LAYERNORM_ATOL)


def test_layer_norm_uses_biased_variance_with_eps_inside_the_sqrt():
    # On a tiny-variance input, eps outside the sqrt (or an unbiased variance) gives a different answer.
    hidden = torch.tensor([[0.0, 0.001, 0.002, 0.003]])
    eps = 1e-5
    expected = (hidden - hidden.mean()) / torch.sqrt(hidden.var(unbiased=False) + eps)
    torch.testing.assert_close(LayerNorm(4, eps)(hidden), expected, rtol=LAYERNORM_RTOL, atol=LAYERNORM_ATOL)


def test_additive_padding_mask_values_and_shape():
    attention_mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    mask = additive_padding_mask(attention_mask, torch.float32)
    assert mask.shape == (2, 1, 1, 3)
    # torch.finfo(float32).min, as transformers uses, not minbert's -10000.
    expected = torch.tensor([[0.0, 0.0, torch.finfo(torch.float32).min], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(mask[:, 0, 0], expected, rtol=0, atol=0)


def test_masked_softmax_equals_softmax_over_real_keys_only():
    torch.manual_seed(2)
    B, H, T = 3, 2, 6
    scores = torch.randn(B, H, T, T) * 5
    lengths = [6, 4, 1]
    attention_mask = torch.tensor([[1] * n + [0] * (T - n) for n in lengths])
    probs = torch.softmax(scores + additive_padding_mask(attention_mask, scores.dtype), dim=-1)
    for b, n in enumerate(lengths):
        # Twin 1: drop the padded key columns, softmax what is left.
        torch.testing.assert_close(probs[b, :, :, :n], torch.softmax(scores[b, :, :, :n], dim=-1),
                                   rtol=SOFTMAX_RTOL, atol=SOFTMAX_ATOL)
        torch.testing.assert_close(probs[b, :, :, n:], torch.zeros(H, T, T - n), rtol=0, atol=0)
    # Twin 2: the -inf masked_fill formulation.
    filled = scores.masked_fill(~attention_mask.bool()[:, None, None, :], float("-inf"))
    torch.testing.assert_close(probs, torch.softmax(filled, dim=-1), rtol=SOFTMAX_RTOL, atol=SOFTMAX_ATOL)


def test_scores_as_einsum_for_teachers():
    # q @ k^T per head is "for each batch b and head h, dot query i with key j".
    torch.manual_seed(3)
    q, k = torch.randn(2, 3, 5, 4), torch.randn(2, 3, 5, 4)   # (B, H, T, Dh)
    torch.testing.assert_close(q @ k.transpose(-2, -1), torch.einsum("bhqd,bhkd->bhqk", q, k),
                               rtol=ELEMENTWISE_RTOL, atol=ELEMENTWISE_ATOL)
