"""minielmo/fast.py against the readable biLM in minielmo/bilm.py.

The fast path runs the char convolutions as unfolded matmuls, hoists the LSTM input projections
out of the time loop, steps both directions in one batched matmul and scripts the loop; none of
that may change the numbers beyond float32 noise. Checked on padded batches of mixed lengths,
stateless and stateful (state carried across calls of different batch sizes).
"""

import pytest
import torch

import minielmo
from minielmo import BiLM, ElmoConfig, batch_to_ids
from minielmo import fast

# Same float32 maths in a different order (hoisted and batched matmuls, fused gates): only
# rounding differs. 1e-5 is the project's ELMo tolerance (AllenNLP met 1e-6 against TF).
FAST_VS_READABLE_ATOL = 1e-5

# A random model with every feature on, sized so that gate and filter counts are all distinct.
RANDOM = ElmoConfig(projection_dim=6, cell_size=10, n_layers=2, cell_clip=0.5, proj_clip=0.4,
                    use_skip_connections=True, filters=((1, 3), (2, 5), (4, 7)), n_highway=1,
                    char_embedding_dim=4, n_characters=262, max_characters_per_token=50,
                    activation="tanh")


def run(bilm, char_ids, fast_path):
    bilm.fast_path = fast_path
    with torch.inference_mode():
        return bilm(char_ids)


def assert_same_outputs(ours, ref):
    assert torch.equal(ours["mask"], ref["mask"])
    assert len(ours["activations"]) == len(ref["activations"])
    for layer, (a, b) in enumerate(zip(ours["activations"], ref["activations"])):
        torch.testing.assert_close(a, b, rtol=0, atol=FAST_VS_READABLE_ATOL, msg=lambda m: f"layer {layer}: {m}")


def random_bilm(stateful=False):
    torch.manual_seed(3)
    bilm = BiLM(RANDOM, stateful=stateful).eval()
    with torch.no_grad():
        for parameter in bilm.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    return bilm


def test_fixture_model_fast_equals_readable_on_padded_batch(tiny_bilm, padded_batch, torch_single_thread):
    readable = run(tiny_bilm, padded_batch, False)
    ours = run(tiny_bilm, padded_batch, True)
    assert_same_outputs(ours, readable)
    padding = ~ours["mask"]
    assert padding.any()
    for layer in ours["activations"]:
        assert layer[padding].eq(0).all(), "padded positions must be exactly zero"


def test_random_model_fast_equals_readable(padded_batch, torch_single_thread):
    bilm = random_bilm()
    assert_same_outputs(run(bilm, padded_batch, True), run(bilm, padded_batch, False))


@pytest.mark.parametrize("rows", [1, 25])  # one step per input matmul; chunks of 2 steps, with a tail
def test_chunked_input_products_equal_readable(padded_batch, rows, monkeypatch, torch_single_thread):
    """W x_t + b is computed a few steps at a time (fast.CHUNK_ROWS); every chunking must agree."""
    monkeypatch.setattr(fast, "CHUNK_ROWS", rows)
    assert fast.chunk_steps(padded_batch.shape[0]) == max(1, rows // padded_batch.shape[0])
    bilm = random_bilm()
    assert_same_outputs(run(bilm, padded_batch, True), run(bilm, padded_batch, False))


@pytest.mark.parametrize("make", [lambda: minielmo.BiLM.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS,
                                                                    stateful=True),
                                  lambda: random_bilm(stateful=True)], ids=["fixture", "random"])
def test_stateful_fast_equals_readable_across_calls(make, elmo_sentences, torch_single_thread):
    """State carried between calls, with the batch shrinking and growing, as in the reference."""
    batches = [batch_to_ids([s.split() for s in sentences])
               for sentences in (elmo_sentences[0][:6], elmo_sentences[1][:3], elmo_sentences[2][:8])]
    readable, ours = make(), make()
    for i, char_ids in enumerate(batches):
        assert_same_outputs(run(ours, char_ids, True), run(readable, char_ids, False))
        for a, b in zip(ours._state, readable._state):
            torch.testing.assert_close(a, b, rtol=0, atol=FAST_VS_READABLE_ATOL, msg=lambda m: f"call {i}: {m}")


def test_char_cnn_fast_equals_readable(tiny_bilm, padded_batch):
    with torch.inference_mode():
        torch.testing.assert_close(fast.char_cnn(tiny_bilm.char_cnn, padded_batch), tiny_bilm.char_cnn(padded_batch),
                                   rtol=0, atol=FAST_VS_READABLE_ATOL)


def test_fused_weights_follow_in_place_weight_changes(padded_batch):
    """The stacked LSTM weights are a cache; an in-place change to a cell must rebuild them."""
    bilm = random_bilm()
    before = run(bilm, padded_batch, True)["activations"][2]
    with torch.no_grad():
        bilm.backward_layers[1].hidden_to_gates.weight.mul_(2.0)
        bilm.forward_layers[1].projection.weight.add_(0.1)
        bilm.char_cnn.highway.transform_gate[0].bias.sub_(0.3)  # the stacked highway weights too
    after = run(bilm, padded_batch, True)
    assert (after["activations"][2] - before).abs().max() > 100 * FAST_VS_READABLE_ATOL  # the change is seen
    assert_same_outputs(after, run(bilm, padded_batch, False))


@pytest.mark.parametrize("chunk", [1, 2, 5])  # one step per matmul, a chunk with a short tail, all steps at once
def test_plain_python_loop_equals_scripted_loop(chunk):
    """Where TorchScript is unavailable the plain function runs instead; both give the same result."""
    generator = torch.Generator().manual_seed(0)
    B, T, P, C = 3, 5, 4, 6
    inputs = torch.randn(2, T, B, P, generator=generator)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] + [False] * 4]).t()  # (T, B)
    args = (torch.randn(2, P, 4 * C, generator=generator), torch.randn(2, 1, 4 * C, generator=generator), mask,
            mask.all(dim=1).tolist(), torch.randn(2, B, P, generator=generator),
            torch.randn(2, B, C, generator=generator), torch.randn(2, P, 4 * C, generator=generator),
            torch.randn(2, C, P, generator=generator), 0.7, 0.6)
    results = [fn(inputs, *args, fast.gate_workspace(B, T, C, inputs), chunk)
               for fn in (fast.recurrence, fast.compiled_recurrence)]
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0, atol=FAST_VS_READABLE_ATOL)
    outputs = results[0][0]  # (T, 2, B, P)
    assert (outputs[3:, :, 1] == 0).all() and (outputs[1:, :, 2] == 0).all()  # padding is exactly zero


def test_a_forward_hook_gets_the_readable_path(tiny_bilm, padded_batch):
    """Hooks on modules the fast path fuses would never fire; with one registered, every module runs."""
    calls = []
    handle = tiny_bilm.forward_layers[1].register_forward_hook(lambda module, args, out: calls.append(out[0].shape))
    try:
        watched = run(tiny_bilm, padded_batch, True)
    finally:
        handle.remove()
    assert calls == [(padded_batch.shape[0], padded_batch.shape[1] + 2, tiny_bilm.config.projection_dim)]
    assert_same_outputs(watched, run(tiny_bilm, padded_batch, True))


def test_a_too_small_workspace_is_refused(padded_batch):
    bilm = random_bilm()
    B, T = padded_batch.shape[0], padded_batch.shape[1] + 2
    inputs = torch.zeros(B, T, RANDOM.projection_dim)
    mask = torch.ones(B, T, dtype=torch.bool)
    with pytest.raises(ValueError, match="too small .* make it with gate_workspace"):
        fast.bilstm_layer(bilm.forward_layers[0], bilm.backward_layers[0], inputs, inputs, mask, (None, None),
                          torch.empty(10))
