"""minielmo/fast_grad.py, the training path, against the readable biLM and against finite differences.

Its backward passes are written by hand (the max-pooled convolution, backpropagation through the
biLSTM's time loop), so they are checked twice: by gradcheck in float64 on small random inputs,
and by comparing the outputs and every parameter's gradient with autograd through the readable
modules on padded batches, with clipping active, carried state, and dropout.
"""

import pytest
import torch

import minielmo
from minielmo import BiLM, ElmoConfig, batch_to_ids, fast, fast_grad

# Same float32 maths in a different order (hoisted matmuls, weight gradients summed over all steps
# at once): only rounding differs, as between the inference fast path and the readable one
# (measured up to 5.7e-6 on these models, whose token layers reach 7-17 in magnitude).
TRAINING_VS_READABLE_ATOL = 1e-5
# Gradients are sums over every position of a batch, so their rounding grows with their size;
# compared relative to the largest gradient of the same parameter (measured up to 2.5e-6).
GRAD_RTOL_OF_MAX = 1e-5

# Every feature on (clipping tight enough to bind, skip connections), all sizes distinct.
RANDOM = ElmoConfig(projection_dim=6, cell_size=10, n_layers=2, cell_clip=0.5, proj_clip=0.4,
                    use_skip_connections=True, filters=((1, 3), (2, 5), (4, 7)), n_highway=1,
                    char_embedding_dim=4, n_characters=262, max_characters_per_token=50,
                    activation="relu")


def random_bilm(stateful=False, dropout=0.0, seed=3):
    torch.manual_seed(seed)
    bilm = BiLM(RANDOM, stateful=stateful, dropout=dropout)
    with torch.no_grad():
        for parameter in bilm.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    return bilm


def outputs_and_grads(bilm, char_ids, fast_path, seed=0):
    """Run with gradients on; a fixed random weighting of every layer makes the loss."""
    bilm.fast_path = fast_path
    bilm.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the same dropout masks on both paths
    out = bilm(char_ids)
    generator = torch.Generator().manual_seed(1)
    loss = sum((layer * torch.randn(layer.shape, generator=generator)).sum() for layer in out["activations"])
    loss.backward()
    grads = {name: p.grad.clone() for name, p in bilm.named_parameters()}
    return [layer.detach() for layer in out["activations"]], grads


def assert_same(ours, readable):
    (our_layers, our_grads), (layers, grads) = ours, readable
    for index, (a, b) in enumerate(zip(our_layers, layers)):
        torch.testing.assert_close(a, b, rtol=0, atol=TRAINING_VS_READABLE_ATOL, msg=lambda m: f"layer {index}: {m}")
    assert our_grads.keys() == grads.keys()
    for name, grad in grads.items():
        scale = grad.abs().max().item()
        assert scale > 0, f"{name}: the readable path gives it no gradient; the test would be empty"
        torch.testing.assert_close(our_grads[name], grad, rtol=0, atol=GRAD_RTOL_OF_MAX * scale,
                                   msg=lambda m: f"{name}: {m}")


def test_the_training_path_runs_whenever_a_gradient_or_dropout_is_wanted():
    bilm = random_bilm()
    assert bilm.path() == "training"
    with torch.no_grad():
        assert bilm.path() == "inference"
        bilm.dropout.p = 0.1
        assert bilm.train().path() == "training"  # dropout needs the modules' randomness
    handle = bilm.char_cnn.register_forward_hook(lambda *args: None)
    assert bilm.path() == "readable"  # a hook must see its module called
    handle.remove()
    bilm.fast_path = False
    assert bilm.path() == "readable"


def test_random_model_with_clipping_matches_readable_outputs_and_gradients(padded_batch):
    bilm = random_bilm()
    ours = outputs_and_grads(bilm, padded_batch, True)
    readable = outputs_and_grads(bilm, padded_batch, False)
    assert_same(ours, readable)
    # The clips bind somewhere, so their gradient masks were exercised.
    cells = bilm.forward_layers[0]
    assert any(layer.abs().max() >= cells.proj_clip - 1e-6 for layer in ours[0][1:])


def test_fixture_model_matches_readable(padded_batch):
    bilm = minielmo.BiLM.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS).train()
    assert_same(outputs_and_grads(bilm, padded_batch, True), outputs_and_grads(bilm, padded_batch, False))


def test_dropout_draws_the_same_masks_as_the_readable_path(padded_batch):
    bilm = random_bilm(dropout=0.3).train()
    ours = outputs_and_grads(bilm, padded_batch, True, seed=5)
    assert_same(ours, outputs_and_grads(bilm, padded_batch, False, seed=5))
    assert not torch.equal(ours[0][-1], outputs_and_grads(bilm, padded_batch, True, seed=6)[0][-1])


def test_carried_state_matches_readable(elmo_sentences):
    """Stateful: the second call starts from the first call's final states (no gradient into them)."""
    first = batch_to_ids([s.split() for s in elmo_sentences[1][:5]])
    second = batch_to_ids([s.split() for s in elmo_sentences[2][:7]])
    ours, readable = random_bilm(stateful=True), random_bilm(stateful=True)
    for char_ids in (first, second):
        assert_same(outputs_and_grads(ours, char_ids, True), outputs_and_grads(readable, char_ids, False))
        for a, b in zip(ours._state, readable._state):
            torch.testing.assert_close(a, b, rtol=0, atol=TRAINING_VS_READABLE_ATOL)


def test_a_frozen_char_cnn_still_trains_the_lstm(padded_batch):
    bilm = random_bilm()
    bilm.char_cnn.requires_grad_(False)
    out = bilm(padded_batch)
    out["activations"][-1].sum().backward()
    assert all(p.grad is None for p in bilm.char_cnn.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in bilm.forward_layers.parameters())


@pytest.mark.parametrize("fast_path", [False, True], ids=["readable", "training path"])
def test_a_weight_changed_between_forward_and_backward_is_refused(padded_batch, fast_path):
    """The training path reads the LSTM weights as views of the parameters' storage, and hands the
    parameters to autograd, which checks them as it checks the readable path's: a backward pass
    after an in-place change would mix old activations with new weights, so it raises."""
    bilm = random_bilm()
    bilm.fast_path = fast_path
    out = bilm(padded_batch)
    with torch.no_grad():
        bilm.forward_layers[1].hidden_to_gates.weight.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out["activations"][-1].sum().backward()


@pytest.mark.parametrize("longest", [3, 30, 60])  # trimmed a lot, a little, not at all (cut to 48)
def test_padding_columns_are_skipped_exactly(longest):
    """Both fast paths skip the all-padding character columns (fast.trim_fill); the result is exact."""
    bilm = random_bilm()
    char_ids = batch_to_ids([["a", "x" * longest, "bc"], ["de"]])
    B, T, W = char_ids.shape
    widest = max(width for width, _ in RANDOM.filters)
    trimmed = fast.trim_fill(char_ids.reshape(B * T, W), widest)
    assert trimmed.shape[1] == min(W, min(longest, W - 2) + 2 + widest)  # <w>, the word, </w>, one window
    ours = fast_grad.char_cnn(bilm.char_cnn, char_ids)
    ours.sum().backward()
    ours_grads = [p.grad.clone() for p in bilm.char_cnn.parameters()]
    bilm.zero_grad()
    readable = bilm.char_cnn(char_ids)
    readable.sum().backward()
    torch.testing.assert_close(ours, readable, rtol=0, atol=TRAINING_VS_READABLE_ATOL)
    for mine, theirs in zip(ours_grads, (p.grad for p in bilm.char_cnn.parameters())):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=GRAD_RTOL_OF_MAX * theirs.abs().max().item())


# ----- finite differences (float64) ---------------------------------------------------------------


def test_bilstm_layer_backward_passes_gradcheck():
    """Inputs, both initial states and all eight weights, on a padded batch with both clips binding."""
    torch.manual_seed(0)
    T, B, In, P, C = 5, 3, 4, 3, 5
    double = dict(dtype=torch.float64, requires_grad=True)
    inputs = torch.randn(2, T, B, In, **double)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] * 2 + [False] * 3]).t().contiguous()  # (T, B)
    hidden0, memory0 = 0.3 * torch.randn(2, B, P, **double), torch.randn(2, B, C, **double)
    params = [torch.randn(*shape, **double) for _ in range(2)
              for shape in ((4 * C, In), (4 * C, P), (4 * C,), (P, C))]

    padding = fast_grad.Padding(mask, mask.all(dim=1).tolist())
    clips = fast_grad.Clips(cell=0.8, projection=0.7)

    def layer(inputs, hidden0, memory0, *params):
        # The weights the loop reads, stacked from the parameters here as fast.fused_weights lays
        # them out (a copy: these parameters belong to no cell), so that every perturbation of a
        # parameter reaches them.
        input_w, hidden_w, bias, projection = (torch.stack(pair) for pair in zip(params[:4], params[4:]))
        weights = fast.LayerWeights(input=input_w.transpose(1, 2), bias=bias.unsqueeze(1),
                                    hidden=hidden_w.transpose(1, 2), projection=projection.transpose(1, 2))
        return fast_grad.BiLstmLayer.apply(inputs, padding, hidden0, memory0, clips, weights, *params)

    outputs, _, memory = layer(inputs, hidden0, memory0, *params)
    assert (outputs.abs() == 0.7).any() and (memory.abs() == 0.8).any(), "the clips should bind"
    assert torch.autograd.gradcheck(layer, (inputs, hidden0, memory0, *params))


def test_conv_max_pool_backward_passes_gradcheck():
    torch.manual_seed(0)
    chars = torch.randn(4, 9, 3, dtype=torch.float64, requires_grad=True)  # (N, W, E)
    weight = torch.randn(5, 3, 4, dtype=torch.float64, requires_grad=True)  # (K_i, E, w)
    assert torch.autograd.gradcheck(fast_grad.ConvMaxPool.apply, (chars, weight))
    expected = torch.nn.functional.conv1d(chars.transpose(1, 2), weight).amax(dim=-1)
    torch.testing.assert_close(fast_grad.ConvMaxPool.apply(chars, weight), expected)
