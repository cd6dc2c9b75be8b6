"""The biLM under bf16 autocast (CPU): the readable path and both fast paths run, agree with each
other, and a tiny model trains.

Autocast runs the readable cells' matmuls in bfloat16, and with them the states that follow
from their outputs. The fast paths cannot leave that to autocast (their time loops write into
preallocated buffers), so they cast their inputs, states and weights to autocast's dtype
themselves (fast.compute_dtype). The result is the same maths in bfloat16 on every path, which
these tests hold to bfloat16's rounding rather than float32's.
"""

import pytest
import torch

import minielmo
from minielmo import BiLM, batch_to_ids
from minielmo.train import SIZES, SharedSoftmax, bilm_nll

# bfloat16 keeps 8 significant bits (relative rounding 2^-8 = 0.4%), and the paths round in a
# different order. Measured on these models: the paths differ by at most 0.8% of a layer's largest
# value, as much as the readable path under autocast differs from float32 (1.1%); 2% leaves room.
BF16_OF_LAYER_MAX = 2e-2
# The training path's LSTM weight gradients in bfloat16 against the float32 readable ones,
# relative to each gradient's largest value. Measured up to 3.7% (the readable path under
# autocast: up to 2.4%); a wrong backward pass is off by the size of the gradient itself.
BF16_GRAD_OF_MAX = 0.1

SENTENCES = [["The", "bank", "of", "the", "river", "flooded", "."], ["He", "deposited", "money", "."],
             ["Yes"], ["A", "longer", "sentence", "with", "several", "words", "in", "it", "today"]]


def bf16(fn):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return fn()


@pytest.fixture(params=["tiny", "fixture"])
def bilm(request):
    torch.manual_seed(0)
    if request.param == "tiny":
        return BiLM(SIZES["tiny"]).eval()
    return BiLM.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS)


def activations(bilm, char_ids, fast_path: bool, grad: bool, expected_path: str):
    bilm.fast_path = fast_path
    with torch.set_grad_enabled(grad):
        assert bf16(bilm.path) == expected_path
        return [layer.float() for layer in bf16(lambda: bilm(char_ids))["activations"]]


def test_every_path_runs_in_bfloat16_and_agrees_with_the_readable_one(bilm):
    char_ids = batch_to_ids(SENTENCES)
    readable = activations(bilm, char_ids, False, False, "readable")
    with torch.no_grad():
        assert all(layer.dtype == torch.bfloat16 for layer in bf16(lambda: bilm(char_ids))["activations"])
    for path, grad in (("inference", False), ("training", True)):
        ours = activations(bilm, char_ids, True, grad, path)
        for index, (a, b) in enumerate(zip(ours, readable)):
            torch.testing.assert_close(a, b, rtol=0, atol=BF16_OF_LAYER_MAX * b.abs().max().item(),
                                       msg=lambda m: f"{path} path, layer {index}: {m}")


def lstm_gradients(bilm, char_ids, fast_path: bool, autocast: bool) -> dict:
    bilm.fast_path = fast_path
    bilm.zero_grad(set_to_none=True)
    out = bf16(lambda: bilm(char_ids)) if autocast else bilm(char_ids)
    generator = torch.Generator().manual_seed(1)  # a fixed random weighting of every layer makes the loss
    sum((layer.float() * torch.randn(layer.shape, generator=generator)).sum() for layer in out["activations"]).backward()
    return {name: p.grad.clone() for name, p in bilm.named_parameters() if name.split(".")[0].endswith("_layers")}


def test_training_path_gradients_under_autocast_match_float32(bilm):
    char_ids = batch_to_ids(SENTENCES)
    reference = lstm_gradients(bilm, char_ids, False, autocast=False)
    ours = lstm_gradients(bilm, char_ids, True, autocast=True)
    assert ours.keys() == reference.keys() and len(ours) == 8 * bilm.config.n_layers
    for name, grad in reference.items():
        assert ours[name].dtype == torch.float32  # the parameters' own dtype
        torch.testing.assert_close(ours[name], grad, rtol=0, atol=BF16_GRAD_OF_MAX * grad.abs().max().item(),
                                   msg=lambda m: f"{name}: {m}")


def test_a_tiny_model_trains_under_bf16_autocast():
    """A few Adam steps of the biLM objective (minielmo.train's loss, shared adaptive softmax) on
    one batch, the forward pass under autocast: the loss stays finite and falls."""
    torch.manual_seed(0)
    config = SIZES["tiny"]
    bilm = BiLM(config, dropout=0.1).train()
    vocabulary = ["<S>", "</S>"] + sorted({word for sentence in SENTENCES for word in sentence})
    index = {word: i for i, word in enumerate(vocabulary)}
    char_ids = batch_to_ids(SENTENCES)  # (B, T, W)
    word_ids = torch.zeros(len(SENTENCES), char_ids.shape[1] + 2, dtype=torch.long)  # (B, T+2): <S> words </S>
    for row, sentence in enumerate(SENTENCES):
        word_ids[row, :len(sentence) + 2] = torch.tensor([0] + [index[w] for w in sentence] + [1])
    softmax = SharedSoftmax(config.projection_dim, len(vocabulary)).train()
    parameters = list(bilm.parameters()) + list(softmax.parameters())
    optimizer = torch.optim.Adam(parameters, lr=1e-2)
    losses = []
    for _ in range(8):
        assert bf16(bilm.path) == "training"
        with torch.autocast("cpu", dtype=torch.bfloat16):
            forward_nll, backward_nll, n = bilm_nll(bilm, softmax, char_ids, word_ids, torch.nn.Dropout(0.1))
        loss = (forward_nll + backward_nll).float() / (2 * n)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in parameters)
    # Each step may wobble (dropout, bfloat16), but eight steps on one batch must make progress
    # (measured: 3.72 -> 3.04 nats, falling at every step).
    assert losses[-1] < 0.9 * losses[0], losses
